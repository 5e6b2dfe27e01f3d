"""The pipeline's stages import only down the stage order.

telemetry -> gnss -> entropy -> monitor -> valuation -> ledger -> report: a
module of one stage imports from its own stage, from an earlier one, or from
the shared modules (schemas, errors, _typing, _core, _tables, _memory, the package
root; the store adapter sits with telemetry, whose Store it wraps); never
from a later stage, and never from the modules that drive the stages (pipeline, cli, sim, gateway). The GPU backends sit with
the stage they accelerate. Read from the source's imports (AST), lazy imports
inside functions included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import autolien

STAGES = ("telemetry", "gnss", "entropy", "monitor", "valuation", "ledger", "report")
SHARED = {
    "schemas",
    "errors",
    "_typing",
    "_core",
    "_tables",
    "_memory",
    "_fs",
    "_spawn",
    "__version__",
}
# The store adapter builds on telemetry.store's DuckDB Store (which knows the
# decoded schemas), so it sits with telemetry: every later stage may use it.
PLACED = {"store": "telemetry"}
DRIVERS = {"pipeline", "cli", "sim", "gateway", "dask_engine", "__main__"}
# autolien.gpu.<x> is the GPU backend of one stage; gpu/__init__ (backend choice) is shared
GPU_STAGE = {"fusion": "gnss", "entropy": "entropy", "ledger": "ledger"}

ROOT = Path(autolien.__file__).parent


def _module(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """Every autolien module (or module attribute) that ``path`` imports, with its line."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None:  # from . import x: x may be a module
                out += [(f"{target}.{a.name}", node.lineno) for a in node.names]
            else:
                out.append((target, node.lineno))
    return [(t, line) for t, line in out if t == "autolien" or t.startswith("autolien.")]


def layer(module: str) -> str:
    """The stage, ``shared`` or driver that a module belongs to."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in SHARED:
        return "shared"
    if parts[1] in PLACED:
        return PLACED[parts[1]]
    if parts[1] == "gpu":
        return GPU_STAGE.get(parts[2], "shared") if len(parts) > 2 else "shared"
    return parts[1]


def climbs(root: Path = ROOT) -> list[str]:
    """Each import that goes up the stage order or into a driver."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        here = layer(module)
        if here not in STAGES and here != "shared":
            continue  # drivers may import any stage
        for target, line in imports(path, root):
            there = layer(target)
            if there in ("shared", here):
                continue
            if there in DRIVERS or here == "shared" or STAGES.index(there) > STAGES.index(here):
                found.append(f"{module}:{line} ({here}) imports {target} ({there})")
    return found


def test_every_area_is_placed() -> None:
    areas = {
        p.name if p.is_dir() else p.stem
        for p in ROOT.iterdir()
        if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix in (".py", ".pyi")
    }
    unplaced = areas - set(STAGES) - SHARED - set(PLACED) - DRIVERS - {"gpu", "__init__"}
    assert not unplaced, f"place these in the stage order or SHARED/DRIVERS: {sorted(unplaced)}"
    gpu = {p.stem for p in (ROOT / "gpu").glob("*.py")} - {"__init__"}
    assert gpu <= set(GPU_STAGE), f"which stage do these GPU backends serve: {gpu - set(GPU_STAGE)}"


def test_no_stage_imports_a_later_stage() -> None:
    assert climbs() == []


def test_the_check_sees_a_climb(tmp_path: Path) -> None:
    # a planted climb, lazy and relative, is found: the test is not vacuous
    pkg = tmp_path / "autolien"
    (pkg / "valuation").mkdir(parents=True)
    (pkg / "monitor").mkdir()
    for p in (pkg, pkg / "valuation", pkg / "monitor"):
        (p / "__init__.py").write_text("")
    (pkg / "monitor" / "x.py").write_text(
        "from ..schemas import LEVELS\n\ndef f():\n    from ..valuation import stage\n"
    )
    (pkg / "valuation" / "y.py").write_text("from ..monitor.config import LEVELS\n")
    assert climbs(pkg) == ["autolien.monitor.x:4 (monitor) imports autolien.valuation (valuation)"]


@pytest.mark.parametrize(
    ("module", "want"),
    [
        ("autolien.schemas", "shared"),
        ("autolien._core", "shared"),
        ("autolien", "shared"),
        ("autolien.gpu", "shared"),
        ("autolien.gpu.fusion", "gnss"),
        ("autolien.monitor.stream", "monitor"),
        ("autolien.sim.consortium", "sim"),
    ],
)
def test_layer(module: str, want: str) -> None:
    assert layer(module) == want


# The one store adapter: autolien.store (a package) and the telemetry Store it builds on.
ADAPTER = ("autolien.store", "autolien.telemetry.store")
_SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|CREATE\s+(OR\s+REPLACE\s+)?(TABLE|VIEW)|DROP\s+(TABLE|VIEW)|DELETE\s+FROM|COPY\s)",
    re.DOTALL,
)


def store_access(root: Path = ROOT) -> list[str]:
    """Each place a stage module outside the store adapter imports DuckDB
    or holds SQL (a string constant, f-strings included)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module(path, root)
        if layer(module) not in STAGES or module.startswith(ADAPTER):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                mods = []
            if any(m.split(".")[0] == "duckdb" for m in mods):
                found.append(f"{module}:{node.lineno} imports duckdb")
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SQL.search(node.value)
            ):
                found.append(f"{module}:{node.lineno} holds SQL")
    return found


def test_no_stage_writes_sql_of_its_own() -> None:
    # issue 17.1: every read and write of DuckDB goes through the store adapter
    assert store_access() == []


def test_the_sql_check_sees_a_query(tmp_path: Path) -> None:
    pkg = tmp_path / "autolien"
    for sub in ("gnss", "store", "report"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "gnss" / "x.py").write_text(
        "def f(con, t):\n    import duckdb\n    return con.sql(f'SELECT * FROM {t} WHERE a')\n"
    )
    (pkg / "report" / "y.py").write_text("Q = 'DROP TABLE IF EXISTS z'\nN = 'select the rows'\n")
    (pkg / "store" / "z.py").write_text("import duckdb\nQ = 'SELECT a FROM b'\n")
    assert store_access(pkg) == [
        "autolien.gnss.x:2 imports duckdb",
        "autolien.gnss.x:3 holds SQL",
        "autolien.report.y:1 holds SQL",
    ]
