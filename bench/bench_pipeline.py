"""The main job end to end (``autolien run``) over simulated portfolios of
10, 100 and 1,000 vehicles x 30 days: vehicle-days per second, with each
stage's seconds in the benchmark's ``extra_info`` and printed per run.

There is no peer: no other library runs this pipeline. The stage split says
where the time goes (the monitor's per-vehicle Python loop leads at scale).
"""

from __future__ import annotations

import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from autolien.pipeline import run_portfolio
from autolien.sim.portfolio import write_portfolio
from conftest import QUICK, sizes, tag

DAYS = 3 if QUICK else 30
SIZES = sizes((10, 100, 1_000), (2, 4, 8))
_ROOT = Path(tempfile.mkdtemp(prefix="autolien-bench-pipeline-"))


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Any:
    yield
    shutil.rmtree(_ROOT, ignore_errors=True)


@cache
def portfolio(vehicles: int) -> Path:
    out = _ROOT / f"pf{vehicles}"
    write_portfolio(out, vehicles, DAYS, seed=21)
    return out


@pytest.mark.parametrize("vehicles", SIZES)
@pytest.mark.benchmark(group="pipeline")
def test_pipeline_ours(benchmark: Any, vehicles: int) -> None:
    pf = portfolio(vehicles)
    runs: list[dict[str, Any]] = []

    def run() -> dict[str, Any]:
        work = Path(tempfile.mkdtemp(dir=_ROOT))
        try:
            report = run_portfolio(pf, work / "autolien.duckdb", out=work / "report")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        runs.append(report)
        return report

    tag(
        benchmark,
        "ours",
        f"autolien run: vehicle-days ({DAYS} days)",
        vehicles * DAYS,
        size=vehicles,
    )
    report = benchmark.pedantic(run, rounds=1, iterations=1)
    stages = report["timings_s"]
    benchmark.extra_info["stages_s"] = stages
    print(
        f"\n  pipeline {vehicles} vehicles x {DAYS} days: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items())
    )
    assert report["valuation"]["valued"] == vehicles
    assert report["ledger"]["pledges"] >= 1
