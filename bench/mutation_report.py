"""Writes docs/mutation.md from the last `make mutate` run: every surviving
mutant with its changed line and the reason it survives (a class assigned
by the rules below, each of which was checked by hand on examples).

    python bench/mutation_report.py [build/mutate]
"""

from __future__ import annotations

import ast
import difflib
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = str(ROOT / ".venv" / "bin" / "mutmut")

# (pattern on the mutated line, reason); the first match wins
RULES = [
    (
        r"_core\.verify_\w+\(.*, \)$",
        "fixed after this run: test_ledger_merkle_mutants.py::test_the_hash_choice_reaches_both_verifiers",
    ),
    (
        r"s - 3601",
        "fixed after this run: test_monitor_quality.py::test_the_one_hour_slack_to_the_second",
    ),
    (
        r"LargeListArray\.from_arrays",
        "untestable here: the large-list branch needs more than 2^31 proof hashes in one call",
    ),
    (
        r"ListArray\.from_arrays\(pa\.array\(offsets, type=None\)",
        "equivalent: ListArray.from_arrays casts the int64 offsets to int32 itself",
    ),
    (
        r"to_numpy\(zero_copy_only=False\), (None|\)),?$|^None,$|^\)$",
        (
            "equivalent: the column is cast to that type already (a null charging status"
            " reads as not charging either way)"
        ),
    ),
    (
        r'"min_cell_v"\} < set',
        (
            "equivalent: the table always holds the six required columns too,"
            " so subset and proper subset agree"
        ),
    ),
    (
        r"xc \* \(y \+ y\.mean\(\)\)",
        "equivalent: the x deviations sum to 0, so the y mean drops out of Sxy",
    ),
    (r"or True else np\.zeros", "equivalent: an empty column converts to an empty array too"),
    (
        r'tz=None|tz="utc"|timestamp\("us", \)',
        "equivalent: the times are UTC instants; a naive or lower-case UTC cast counts the same",
    ),
    (r"/ 1000001\.0", "test gap: eval_start as a datetime is tested to the hour, not to the ppm"),
    (r"needs \{need_s / 3601", "message wording: 192 h rounds the same"),
    (r"np\.asarray\(.*, \) / 1e6", "equivalent: dividing by 1e6 gives float64 anyway"),
    (
        r"strict=|zip\(.*, \)",
        "equivalent: the zipped sequences have the same length by construction",
    ),
    (
        r"zero_copy_only=None",
        "equivalent: None is falsy, so to_numpy copies as with False",
    ),
    (
        r"(raise \w+Error|_check_int\(|msg = |f\"\{name\} must)",
        "message wording: tests check the error type and the key phrase, not every word",
    ),
    (
        r"pa\.(array|scalar)\([^)]*, (None|)\)|dtype=None|np\.asarray\([^)]*, \)|np\.float64\)|np\.asarray\(\w+, None\)",
        "equivalent: the type given is the one inferred from the values",
    ),
    (r"int32\)\.max|iinfo", "untestable here: needs more than 2 GiB of leaf data in one call"),
    (r"\b(break)\b", "test gap: a skipped row in the middle of the input is not exercised"),
    (
        r"np\.asarray\(np\.clip\(.*\), (None|)\)$",
        "equivalent: the type given is the one inferred from the values",
    ),
    (
        r"np\.clip\(1\.0 - fade_per_year \* age, 0\.5, (None|2\.0)\)",
        (
            "equivalent: age is clipped at 0 and the fade is positive, so the expected SOH"
            " never exceeds 1"
        ),
    ),
    (r"np\.clip\(", "test gap: an input outside the documented range is not exercised"),
    (r"\"XX|'XX|\"[A-Z_ ]{4,}\"", "output or key text: a string the tests do not read"),
]


# mutmut marks some mutants "suspicious" (their runs exceeded its time
# budget: the extend mutants import the GPU stack). Each was re-run by hand
# in build/mutate/mutants with PYTHONPATH=src MUTANT_UNDER_TEST=<name>
# against tests/test_ledger_merkle*.py; these rules give what that showed.
SUSPICIOUS_RULES = [
    (
        (
            r'resolve_backend\(None\)|resolve_backend\(backend\) != "gpu"|!= np\.uint8 and|'
            r'^msg = None$|ValueError\(None\)|type\(None\)\.__name__|_check_int\(size, |"XXitems must'
        ),
        "killed when re-run by hand (test_extend_input_checks_and_the_cpu_fallback)",
    ),
    (
        r'backend == "cpu"|backend != "(XXcpuXX|CPU)"',
        "equivalent: resolve_backend('cpu') returns 'cpu', so extend falls through to the CPU path",
    ),
    (
        r'== "(XXgpuXX|GPU)"|extend_log\(',
        "untestable here: the GPU path needs a device (tests/test_gpu*.py run it on one)",
    ),
    (
        r"data_buf is not None\) or True|np\.zeros\(",
        (
            "equivalent: pyarrow gives every binary array a data buffer (size 0 when empty),"
            " so the fallback never runs"
        ),
    ),
]


def _functions(path: Path) -> dict[str, list[str]]:
    """Source lines of every function (and method) in a mutmut-generated file."""
    src = path.read_text()
    lines = src.splitlines()
    out: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out[node.name] = lines[node.lineno : node.end_lineno]  # without the def line
    return out


def main(where: str = "build/mutate") -> None:
    cwd = ROOT / where
    res = subprocess.run([MUTMUT, "results"], cwd=cwd, capture_output=True, text=True, check=True)
    names = [ln.split(":")[0].strip() for ln in res.stdout.splitlines() if "survived" in ln]
    res = subprocess.run(
        [MUTMUT, "results", "--all", "true"], cwd=cwd, capture_output=True, text=True, check=True
    )
    shaky = [ln.split(":")[0].strip() for ln in res.stdout.splitlines() if "suspicious" in ln]
    funcs: dict[str, list[str]] = {}
    for f in (cwd / "mutants" / "src").rglob("*.py"):
        funcs.update({f"{_module(f, cwd)}.{k}": v for k, v in _functions(f).items()})
    by_fn: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    sus_rows: list[tuple[str, str, str, str]] = []
    sus_counts: dict[str, int] = defaultdict(int)
    for name in names + shaky:
        fn, num = name.split("__mutmut_")
        mod, _, short = fn.rpartition(".")
        mutant = funcs.get(f"{mod}.{short}__mutmut_{num}", [])
        orig = funcs.get(f"{mod}.{short}__mutmut_orig", [])
        plus = [
            ln[1:].strip()
            for ln in difflib.unified_diff(orig, mutant, lineterm="", n=0)
            if ln.startswith("+") and not ln.startswith("+++")
        ]
        line = plus[0] if plus else "?"
        if name in shaky:
            reason = next(
                (r for p, r in SUSPICIOUS_RULES if re.search(p, line)), "open: not yet classified"
            )
            sus_rows.append((fn.replace("ǁ", "."), num, line, reason))
            sus_counts[reason] += 1
            continue
        reason = next((r for p, r in RULES if re.search(p, line)), "open: not yet classified")
        by_fn[fn.replace("ǁ", ".")].append((num, line, reason))
        counts[reason] += 1
    out = [
        "# Surviving mutants (`make mutate`)",
        "",
        "Generated by `python bench/mutation_report.py` from the last `make mutate`",
        "run (mutmut 3.8.1 over `monitor/quality.py`, `valuation/adjust.py` and",
        "`ledger/merkle.py`, with the tests named in `[tool.mutmut]`). Each",
        "survivor is listed with its mutated line and the class of reason it",
        "survives; docs/monitor.md (Mutation testing) gives the totals and what",
        "was fixed.",
        "",
        "| reason | survivors |",
        "|---|---|",
        *[f"| {r} | {n} |" for r, n in sorted(counts.items(), key=lambda x: -x[1])],
        "",
    ]
    for fn, rows in sorted(by_fn.items()):
        out += [f"## `{fn}`", "", "| mutant | mutated line | reason |", "|---|---|---|"]
        for num, line, reason in rows:
            short = line.replace("|", "\\|")
            if len(short) > 110:
                short = short[:107] + "..."
            out.append(f"| {num} | `{short}` | {reason} |")
        out.append("")
    if sus_rows:
        out += [
            "## Suspicious (mutmut could not judge them), re-run by hand",
            "",
            "mutmut's runs of these exceeded its time budget. Each was re-run in",
            "`build/mutate/mutants` with `PYTHONPATH=src MUTANT_UNDER_TEST=<name>`",
            "against `tests/test_ledger_merkle.py` and `tests/test_ledger_merkle_mutants.py`.",
            "",
            "| reason | mutants |",
            "|---|---|",
            *[f"| {r} | {n} |" for r, n in sorted(sus_counts.items(), key=lambda x: -x[1])],
            "",
            "| function | mutant | mutated line | reason |",
            "|---|---|---|---|",
        ]
        for fn, num, line, reason in sus_rows:
            short = line.replace("|", "\\|")
            out.append(f"| `{fn}` | {num} | `{short[:90]}` | {reason} |")
        out.append("")
    (ROOT / "docs" / "mutation.md").write_text("\n".join(out))
    print(f"{len(names)} survivors written to docs/mutation.md", file=sys.stderr)


def _module(path: Path, cwd: Path) -> str:
    rel = path.relative_to(cwd / "mutants" / "src").with_suffix("")
    return ".".join(rel.parts)


if __name__ == "__main__":
    main(*sys.argv[1:2])
