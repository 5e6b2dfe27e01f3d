"""FPGA kernels (fpga/): the lint on its broken samples, the testbenches as
filters against autolien (the C++ core), the fixed-point entropy's error
bound against the double-precision measure, the table shared with the core.

`make test` runs `make -C fpga csim lint rtl-quick` first (every golden
check); these tests build what they need through the same Makefile (cached).
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autolien.entropy import (
    histogram_edges,
    rolling_perm_entropy,
    rolling_shannon_entropy,
)
from autolien.ledger import leaf_hash, node_hash

ROOT = Path(__file__).resolve().parent.parent
FPGA = ROOT / "fpga"
BUILD = FPGA / "build"
SAMPLES = sorted((FPGA / "lint" / "samples").glob("*.cpp"))
UNIT = 2.0**-32  # the fixed-point entropy's unit, bits
BOUND = 2.0**-31  # its error bound against the exact entropy (entropy_fixed.hpp)

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the C-simulation needs g++")


def make(*targets: str) -> None:
    subprocess.run(["make", "-s", "-C", str(FPGA), *targets, f"PY={sys.executable}"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip


@pytest.fixture(scope="module")
def csim() -> Path:
    make("csim-build", "golden")
    return BUILD


def inc_flags() -> list[str]:
    make("build/ap_types/.stamp")
    return ["-isystem", str(BUILD / "ap_types"), "-I", str(ROOT / "cpp" / "include")]


def lint(*args: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(FPGA / "lint" / "hls_lint.py"), *args, "--", *inc_flags(), *flags]
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


# ------------------------------------------------------------------ lint


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.stem for s in SAMPLES])
def test_lint_reports_exactly_the_broken_rule(sample: Path) -> None:
    want_line = sample.read_text().splitlines()[0]
    m = re.match(r"//\s*expect:\s*(.*)$", want_line)
    assert m, f"{sample.name} has no '// expect:' line"
    want = set() if m.group(1).strip() == "none" else {w.strip() for w in m.group(1).split(",")}
    r = lint(str(sample))
    got = set(re.findall(r"^\S+:\d+: ([a-z-]+): ", r.stdout, re.MULTILINE))
    assert got == want, r.stdout + r.stderr
    assert r.returncode == (1 if want else 0)


def test_lint_covers_every_rule_with_a_sample() -> None:
    expected = set()
    for s in SAMPLES:
        expected |= {w.strip() for w in s.read_text().splitlines()[0].split(":", 1)[1].split(",")}
    assert {
        "recursion",
        "vla",
        "dynamic-memory",
        "std-container",
        "loop-bound",
        "pragma",
    } <= expected


def test_lint_points_at_the_line(tmp_path: Path) -> None:
    src = tmp_path / "k.cpp"
    src.write_text("int k(const int a[8]) {\n    int s = 0;\n    for (int i = 0; i < 8; ++i) {\n"
                   "#pragma HLS UNROL\n        s += a[i];\n    }\n    return s;\n}\n")  # fmt: skip
    r = lint(str(src))
    assert re.search(r"k\.cpp:4: pragma: unknown HLS pragma keyword 'UNROL'", r.stdout), r.stdout


def test_lint_is_clean_on_the_kernels() -> None:
    kernels = sorted(str(p) for p in (FPGA / "include" / "autolien_fpga").glob("*.hpp"))
    tops = sorted(str(p) for p in (FPGA / "top").glob("*.cpp"))
    r = lint(*kernels, *tops, flags=("-I", str(FPGA / "include"), "-I", str(FPGA / "top")))
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------- filters and checks


def records(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(r)) + r for r in items)


def run(tb: Path, *args: str, data: bytes) -> bytes:
    return subprocess.run([str(tb), *args], input=data, capture_output=True, check=True).stdout


def test_leaf_filter_matches_ledger(csim: Path) -> None:
    rng = np.random.default_rng(7)
    recs = [
        rng.integers(0, 256, int(n), dtype=np.uint8).tobytes() for n in rng.integers(0, 200, 50)
    ]
    recs[:4] = [b"", b"x" * 55, b"y" * 63, b"z" * 64]
    for name in ("sha256", "keccak256"):
        out = run(csim / f"csim_{name}", "--leaf", data=records(recs))
        assert out == b"".join(leaf_hash(r, hash=name) for r in recs)  # type: ignore[arg-type]


def test_node_filter_matches_ledger(csim: Path) -> None:
    rng = np.random.default_rng(8)
    pairs = [rng.integers(0, 256, 64, dtype=np.uint8).tobytes() for _ in range(5)]
    out = run(csim / "csim_sha256", "--node", data=records(pairs))
    assert out == b"".join(node_hash(p[:32], p[32:]) for p in pairs)


def test_node_filter_refuses_other_lengths(csim: Path) -> None:
    r = subprocess.run(
        [str(csim / "csim_sha256"), "--node"],
        check=False,
        input=records([b"short"]),
        capture_output=True,
    )
    assert r.returncode == 2
    assert b"64 bytes" in r.stderr


def test_truncated_records_are_refused(csim: Path) -> None:
    r = subprocess.run([str(csim / "csim_sha256"), "--leaf"], check=False, input=struct.pack("<I", 10) + b"abc",
                       capture_output=True)  # fmt: skip
    assert r.returncode == 2
    assert b"claims 10 bytes" in r.stderr


def test_testbench_counts_mismatches(csim: Path, tmp_path: Path) -> None:
    golden = BUILD / "golden"
    want = bytearray((golden / "random_leaf_sha256.md").read_bytes())
    for i in (3, 100, 299):
        want[32 * i] ^= 1
    bad = tmp_path / "bad.md"
    bad.write_bytes(bytes(want))
    r = subprocess.run([str(csim / "csim_sha256"), "--leaf", "--in", str(golden / "random.rec"),
                        "--check", str(bad)], check=False, capture_output=True)  # fmt: skip
    assert r.returncode == 3, r.stderr


def fixed(out: bytes) -> np.ndarray:
    v = np.frombuffer(out, dtype="<u8")
    return np.where(v == np.uint64(0xFFFFFFFFFFFFFFFF), np.nan, v.astype(np.float64) * UNIT)


@pytest.mark.parametrize(("order", "window"), [(3, 16), (4, 256), (5, 1024)])
def test_perm_filter_is_the_core_fixed_point_and_within_bound(
    csim: Path, order: int, window: int
) -> None:
    rng = np.random.default_rng(order * window)
    x = np.cumsum(rng.normal(size=2500)).astype(np.float32)
    out = fixed(run(csim / "csim_perm_entropy", "--order", str(order), "--window", str(window),
                    data=x.tobytes()))  # fmt: skip
    x64 = x.astype(np.float64)
    core_fixed = rolling_perm_entropy(x64, window, order=order, fixed_point=True)
    np.testing.assert_array_equal(out, core_fixed)  # bit for bit (NaN where none)
    exact = rolling_perm_entropy(x64, window, order=order)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(exact))
    err = np.abs(out - exact)[~np.isnan(exact)]
    # The double measure is within ~1e-14 bits of the exact value, far
    # below the fixed-point bound.
    assert err.max() < BOUND + 1e-12, err.max()


def test_shannon_filter_is_the_core_fixed_point_and_within_bound(
    csim: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(16)
    x = rng.gamma(2.0, size=3000).astype(np.float32)
    x[::97] = np.nan
    x64 = x.astype(np.float64)
    edges = histogram_edges(x64, 16)
    ef = tmp_path / "edges.f64"
    ef.write_bytes(np.asarray(edges, "<f8").tobytes())
    out = fixed(
        run(csim / "csim_shannon_entropy", "--window", "256", "--edges", str(ef), data=x.tobytes())
    )
    np.testing.assert_array_equal(
        out, rolling_shannon_entropy(x64, 256, bins=edges, fixed_point=True)
    )
    exact = rolling_shannon_entropy(x64, 256, bins=edges)
    err = np.abs(out - exact)[~np.isnan(exact)]
    assert err.max() < BOUND + 1e-12, err.max()


def test_tables_are_the_cores() -> None:
    r = subprocess.run([sys.executable, str(FPGA / "scripts" / "gen_table.py"), "--check"], check=False,
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 0, r.stdout


def test_rtl_reciprocal_division_is_exact() -> None:
    sys.path.insert(0, str(FPGA / "rtl"))
    from params import perm_params

    rng = np.random.default_rng(5)
    for order in (3, 4, 5):
        for window in (16, 32, 64, 128, 256, 512, 1024):
            p = perm_params(order, window)
            d = window - order + 1
            nums = [0, 1, d - 1, d, p["T_NP"], (1 << p["NUM_BITS"]) - 1]
            nums += [int(v) for v in rng.integers(0, 1 << p["NUM_BITS"], 2000, dtype=np.uint64)]
            for n in nums:
                assert (n * p["M"]) >> p["SH"] == n // d


TCL_STUBS = """
foreach c {open_project set_top open_solution set_part create_clock csynth_design
           export_design} { proc $c args {} }
proc add_files args { puts "file [lindex $args end-2]" }
proc csim_design {-argv argv} { puts "argv $argv" }
proc cosim_design {-argv argv} { puts "argv $argv" }
proc exit {} {}
set ::env(COSIM) 1
cd [lindex $argv 0]
source run_hls.tcl
"""


@pytest.mark.skipif(shutil.which("tclsh") is None, reason="tclsh is not installed")
@pytest.mark.parametrize("top", sorted(p.parent.name for p in (FPGA / "hls").glob("*/run_hls.tcl")))
def test_vitis_scripts_name_real_sources_and_golden_files(top: str, tmp_path: Path) -> None:
    # No vendor tool here: run each script with the Vitis commands stubbed, and
    # check that the files it adds and the golden files it passes exist.
    make("golden")
    stub = tmp_path / "stub.tcl"
    stub.write_text(TCL_STUBS)
    here = FPGA / "hls" / top
    out = subprocess.run(
        ["tclsh", str(stub), str(here)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    files = [line.split()[-1] for line in out if line.startswith("file ")]
    assert (here / f"../../top/{top}.cpp").resolve() in [(here / f).resolve() for f in files]
    for f in files:
        assert (here / f).resolve().is_file(), f
    argv = [line for line in out if line.startswith("argv ")]
    assert len(argv) == 2  # C-simulation and co-simulation get the same arguments
    golden = [a for a in argv[0].split() if "/build/golden/" in a]
    assert golden
    for g in golden:
        assert Path(g).is_file(), g
