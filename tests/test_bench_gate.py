"""The bench regression gate's comparison rules (bench/gate.py), on synthetic runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

spec = importlib.util.spec_from_file_location(
    "gate", Path(__file__).parent.parent / "bench" / "gate.py"
)
assert spec is not None
assert spec.loader is not None
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


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
