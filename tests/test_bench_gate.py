"""The bench regression gate (bench/gate.py): its rules on synthetic runs, and
real bench runs on a quiet machine, a busy one and with a real 2x slowdown."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def _bench_module(name: str, file: str) -> Any:
    """A module of bench/ (not a package) by its path."""
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parent.parent / "bench" / file
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gate = _bench_module("gate", "gate.py")
bench_conftest = _bench_module("bench_conftest", "conftest.py")


def run(
    ratio: float, spread: float = 0.02, growth: float = 1.0, instr: int = 1_000_000
) -> dict[str, Any]:
    return {
        "quick": False,
        "ratios": {"g | n=10 | ours / peer": {"ratio": ratio, "spread": spread}},
        "growth": {"g | ours": growth},
        "instructions": {"kernel": instr},
    }


def test_same_run_passes() -> None:
    failures, _ = gate.compare(run(10.0), run(10.0), 0.25)
    assert failures == []


def test_ratio_drop_beyond_threshold_fails_and_noise_widens_it() -> None:
    assert gate.compare(run(10.0), run(7.0), 0.25)[0]  # -30%
    assert not gate.compare(run(10.0), run(8.0), 0.25)[0]  # -20%
    # With 20% spread on both sides the tolerance widens to 2 x 28% = 57%.
    assert not gate.compare(run(10.0, 0.2), run(5.0, 0.2), 0.25)[0]
    assert gate.compare(run(10.0, 0.2), run(4.0, 0.2), 0.25)[0]
    # Getting faster never fails.
    assert not gate.compare(run(10.0), run(50.0), 0.25)[0]


def test_growth_and_instruction_regressions_fail() -> None:
    assert gate.compare(run(10.0), run(10.0, growth=1.4), 0.25)[0]
    assert not gate.compare(run(10.0), run(10.0, growth=1.2), 0.25)[0]
    assert gate.compare(run(10.0), run(10.0, instr=1_030_000), 0.25)[0]
    assert not gate.compare(run(10.0), run(10.0, instr=1_010_000), 0.25)[0]


def test_quick_and_full_runs_are_not_compared() -> None:
    quick = {**run(10.0), "quick": True}
    failures, _ = gate.compare(run(10.0), quick, 0.25)
    assert failures
    assert "mode differs" in failures[0]


# --- machines and load ------------------------------------------------------


def machine_run(cpu: str, cores: int, ratios: dict[str, tuple[float, bool]]) -> dict[str, Any]:
    return {
        "quick": False,
        "timer": "time.process_time",
        "machine": {"cpu": cpu, "cores": cores},
        "ratios": {
            k: {"ratio": r, "spread": 0.02, "single_thread": one} for k, (r, one) in ratios.items()
        },
        "growth": {},
        "instructions": {"kernel": 1_000_000},
    }


def test_another_cpu_reports_multi_core_ratios_and_gates_single_thread_ones() -> None:
    epyc = machine_run("AMD EPYC", 2, {"all cores": (10.0, False), "one thread": (4.0, True)})
    # The case: a Xeon runs 26-59% behind an EPYC baseline, same code.
    xeon = machine_run(
        "Intel(R) Xeon(R) Processor", 2, {"all cores": (4.1, False), "one thread": (2.8, True)}
    )
    failures, notes = gate.compare(epyc, xeon, 0.25)
    assert failures == []
    assert any("reported, not gated" in n and "all cores" in n for n in notes)
    # The same drop on the baseline's own CPU is a regression.
    epyc_again = machine_run("AMD EPYC", 2, {"all cores": (4.1, False), "one thread": (2.8, True)})
    assert len(gate.compare(epyc, epyc_again, 0.25)[0]) == 2
    # A different core count is another machine too.
    assert (
        gate.compare(epyc, {**epyc_again, "machine": {"cpu": "AMD EPYC", "cores": 16}}, 0.25)[0]
        == []
    )
    # Across CPUs a single-thread ratio at half the baseline fails (band 40%) ...
    slow = machine_run(
        "Intel(R) Xeon(R) Processor", 2, {"all cores": (4.1, False), "one thread": (2.0, True)}
    )
    failures, _ = gate.compare(epyc, slow, 0.25)
    assert len(failures) == 1
    assert "one thread" in failures[0]
    # ... and so do instruction counts, which do not depend on the CPU.
    more = {**xeon, "instructions": {"kernel": 1_030_000}}
    assert gate.compare(epyc, more, 0.25)[0]


def test_wall_and_cpu_timed_ratios_are_not_compared() -> None:
    base = machine_run("AMD EPYC", 2, {"one thread": (4.0, True)})
    wall = {**machine_run("AMD EPYC", 2, {"one thread": (1.0, True)}), "timer": "time.perf_counter"}
    failures, notes = gate.compare(base, wall, 0.25)
    assert failures == []
    assert any("not gated" in n for n in notes)


def test_ratios_timed_on_a_busy_machine_are_reported_not_gated() -> None:
    def loaded(ratio: float, load: float | None) -> dict[str, Any]:
        r = machine_run("AMD EPYC", 2, {"one thread": (ratio, True)})
        r["ratios"]["one thread"]["other_load"] = load
        return r

    # a 2x slowdown fails when both sides were quiet or not measured ...
    assert gate.compare(loaded(4.0, 0.02), loaded(2.0, 0.10), 0.25)[0]
    assert gate.compare(loaded(4.0, None), loaded(2.0, None), 0.25)[0]
    # ... and is not judged when either side's machine was busy, which a note says
    for base, now in ((loaded(4.0, 0.02), loaded(2.0, 0.6)), (loaded(4.0, 0.6), loaded(2.0, 0.0))):
        failures, notes = gate.compare(base, now, 0.25)
        assert failures == []
        assert any("machine busy, 60% of its cores" in n for n in notes)
        assert any("1 ratio(s) timed while the machine was busy" in n for n in notes)
    # instruction counts are still judged on a busy machine
    more = {**loaded(4.0, 0.6), "instructions": {"kernel": 1_030_000}}
    assert gate.compare(loaded(4.0, 0.0), more, 0.25)[0]


def test_other_load_is_the_other_processes_share_of_the_cores() -> None:
    # 2 s on 4 cores: the machine was busy 5 core-seconds, 1 of them ours
    assert bench_conftest.other_load((10.0, 100.0, 3.0), (12.0, 105.0, 4.0), 4) == 0.5
    assert bench_conftest.other_load((10.0, 100.0, 3.0), (12.0, 101.0, 4.0), 4) == 0.0
    # too short a window for 10 ms ticks is not judged
    assert bench_conftest.other_load((10.0, 100.0, 3.0), (10.1, 101.0, 3.0), 4) is None


def test_a_spinning_process_shows_in_the_machine_load() -> None:
    if bench_conftest._load_sample() is None:
        pytest.skip("no /proc/stat on this platform")
    spin = "import time\nt = time.time()\nwhile time.time() - t < 30: pass\n"
    hog = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.3)  # let it start
        start = bench_conftest._load_sample()
        time.sleep(1.0)
        end = bench_conftest._load_sample()
    finally:
        hog.kill()
        hog.wait()
    load = bench_conftest.other_load(start, end, os.cpu_count() or 1)
    # one busy process out of our cores, plus whatever else ran meanwhile
    assert load is not None
    assert load >= 0.8 / (os.cpu_count() or 1)


def test_baselines_are_keyed_by_cpu_model_and_cores(tmp_path: Path) -> None:
    m = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2}
    assert gate.machine_key(m) == "intel-r-xeon-r-processor-2c"
    assert (
        gate.pick_baseline(None, m) == gate.DEFAULT_BASELINE
        or gate.pick_baseline(None, m) == gate.BASELINES / "intel-r-xeon-r-processor-2c.json"
    )
    assert gate.pick_baseline(tmp_path / "x.json", m) == tmp_path / "x.json"


# A real bench run through bench/conftest.py, timed as `make bench-check` times
# it (CPU seconds): our Merkle build on all cores and on one thread against a
# hashlib loop. GATE_TEST_SLOWDOWN makes our kernel do its work that many times.
PROBE_BENCH = """
import hashlib
import os

import numpy as np
import pytest

from autolien import _core
from autolien.ledger import MerkleLog
from conftest import tag

SLOW = int(os.environ.get("GATE_TEST_SLOWDOWN", "1"))
ROWS = (np.arange(2_000_000, dtype=np.uint32) % 251).astype(np.uint8).reshape(20_000, 100)
RECS = [r.tobytes() for r in ROWS[:4000]]


def _ours():
    for _ in range(SLOW):
        MerkleLog().extend(ROWS)


@pytest.mark.benchmark(group="gate-probe")
def test_ours_all_cores(benchmark):
    tag(benchmark, "ours", "extend, all cores", 20_000, size=20_000)
    benchmark(_ours)


@pytest.mark.benchmark(group="gate-probe")
def test_ours_one_thread(benchmark):
    before = _core.get_num_threads()
    _core.set_num_threads(1)
    try:
        tag(benchmark, "ours", "extend, 1 thread", 20_000, size=20_000)
        benchmark(_ours)
    finally:
        _core.set_num_threads(before)


@pytest.mark.benchmark(group="gate-probe")
def test_peer(benchmark):
    tag(benchmark, "peer", "hashlib loop", 4_000, size=20_000)
    benchmark(lambda: [hashlib.sha256(bytes(1) + r).digest() for r in RECS])
"""


def _bench_run(tmp: Path, name: str, slowdown: int = 1) -> dict[str, Any]:
    work = tmp / name
    work.mkdir()
    shutil.copy(Path(gate.__file__).parent / "conftest.py", work / "conftest.py")
    (work / "test_probe.py").write_text(PROBE_BENCH)
    summary = work / "summary.json"
    env = {
        **os.environ,
        "AUTOLIEN_BENCH_SUMMARY": str(summary),
        "GATE_TEST_SLOWDOWN": str(slowdown),
    }
    env.pop("AUTOLIEN_BENCH_QUICK", None)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(work),
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(work),
            "--benchmark-only",
            "--benchmark-timer=time.process_time",
            "--benchmark-min-rounds=7",
            "--benchmark-max-time=0.5",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return gate.snapshot(json.loads(summary.read_text()), {})  # type: ignore[no-any-return]


def _busy(run: dict[str, Any]) -> bool:
    """Whether any ratio of a bench run was timed on a busy machine."""
    return any((r.get("other_load") or 0.0) > gate.BUSY_LIMIT for r in run["ratios"].values())


@pytest.mark.slow
def test_busy_machine_passes_and_a_real_2x_slowdown_fails(tmp_path: Path) -> None:
    quiet = _bench_run(tmp_path, "quiet")
    kinds = {k.split(" | ")[2]: v["single_thread"] for k, v in quiet["ratios"].items()}
    assert kinds["extend, 1 thread / hashlib loop"] is True
    if (os.cpu_count() or 1) > 1:
        assert kinds["extend, all cores / hashlib loop"] is False
    # One spinning process per core, for at most 120 s whatever happens.
    spin = "import time\nt = time.time()\nwhile time.time() - t < 120: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        busy = _bench_run(tmp_path, "busy")
        assert all(h.poll() is None for h in hogs)  # the hogs ran throughout
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    # The hogs took two thirds of the cores (three runnable processes on them).
    assert all(r["other_load"] > gate.BUSY_LIMIT for r in busy["ratios"].values()), busy
    failures, notes = gate.compare(quiet, busy, 0.25)
    assert failures == [], notes
    assert any("timed while the machine was busy" in n for n in notes), notes
    # The gate widens its tolerance with the measured spread (2 x the combined
    # spread); a pair of runs that a VM hiccup made noisy (72% once) cannot
    # tell a 2x slowdown from noise, so such a pair is measured again (at
    # most four times: a noisy host gave three such pairs in a row once)
    # before the slowdown is judged.
    # Against a baseline from another CPU model the slowdown fails on its
    # like-for-like single-thread ratio alone, on the 40% band: 10 points from
    # a clean -50%, so this judgement is retried on a noisy pair as well.
    # Load from outside the test (another job on a shared machine) makes the
    # gate refuse to judge, rightly: such a pair is measured again too, and
    # if every pair was busy the slowdown cannot be judged here at all.
    one_thread = ["gate-probe | n=20000 | extend, 1 thread / hashlib loop"]
    for attempt in range(5):
        if attempt:
            quiet = _bench_run(tmp_path, f"quiet{attempt}")
        slow = _bench_run(tmp_path, f"slow{attempt}", slowdown=2)
        failures, notes = gate.compare(quiet, slow, 0.25)
        foreign = json.loads(json.dumps(quiet))
        foreign["machine"]["cpu"] = "Some Other CPU"
        foreign_failures, foreign_notes = gate.compare(foreign, slow, 0.25)
        busy_pair = _busy(quiet) or _busy(slow)
        if (
            not busy_pair
            and len(failures) == 2
            and [f.split(":")[0] for f in foreign_failures] == one_thread
        ):
            break
    if busy_pair:
        pytest.skip(f"the machine was busy from outside in all 5 quiet/slow pairs: {notes}")
    assert len(failures) == 2, notes  # both of our entries, on this machine
    assert [f.split(":")[0] for f in foreign_failures] == one_thread, foreign_notes
    # ... and the busy run passes against the foreign baseline too.
    assert gate.compare(foreign, busy, 0.25)[0] == []


def test_a_benchmark_missing_from_the_run_fails() -> None:
    gone = run(10.0)
    gone["ratios"] = {}
    failures, _ = gate.compare(run(10.0), gone, 0.25)
    assert failures == ["missing in this run: g | n=10 | ours / peer"]
    gone = run(10.0)
    gone["growth"] = {}
    assert gate.compare(run(10.0), gone, 0.25)[0] == ["missing in this run: g | ours"]
    # one instruction count of several missing fails; a run without valgrind
    # (no counts at all) is not judged on them
    base = run(10.0)
    base["instructions"]["other kernel"] = 5
    assert gate.compare(base, run(10.0), 0.25)[0] == ["missing in this run: other kernel"]
    uncounted = run(10.0)
    uncounted["instructions"] = {}
    assert gate.compare(run(10.0), uncounted, 0.25)[0] == []
