"""The monitor's block scoring kernel against the per-vehicle numpy code it
replaced, on the same data in one run (``monitor-score``): the hourly
scoring of one new day for V vehicles, each with 16 days of history (the
window and location features, then day by day the baseline, the away
distance and the mileage, entropy and relocation detectors' arithmetic).

* ours: ``_core.monitor_score_block``, one call for the block, as
  ``engine.score_block`` makes it;
* peer: the numpy ``score_hours`` of tests/monitor_reference.py, one
  vehicle at a time: ``Vehicle._score_hours`` before the core kernels.

Both give the same numbers, bit for bit (tests/test_monitor_score.py).
Items are vehicle-days; the summary prints the ratio at each size.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autolien import _core
from autolien.monitor.config import MonitorConfig
from autolien.monitor.engine import _kernel_params
from conftest import sizes, tag

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from monitor_reference import block_columns, random_vehicle, score_hours

VEHICLES = sizes((10, 100, 1_000), (3, 30, 300))
ROWS, NEW = 16 * 24 + 24, 24  # 16 days of history, then the new day
CFG = MonitorConfig()


@cache
def fleet(v: int) -> tuple[list[Any], list[np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    vs = [random_vehicle(rng, ROWS, NEW) for _ in range(v)]
    headings = [rng.uniform(0, 1, NEW) for _ in range(v)]
    return vs, headings, block_columns(vs, [ROWS - NEW] * v, headings, CFG)


@pytest.mark.parametrize("v", VEHICLES)
@pytest.mark.benchmark(group="monitor-score")
def test_monitor_score_ours(benchmark: Any, v: int) -> None:
    _, _, cols = fleet(v)
    params = _kernel_params(CFG)
    tag(benchmark, "ours", "monitor_score_block (one C++ call per block)", v, size=v)
    out = benchmark.pedantic(
        lambda: _core.monitor_score_block(cols, params), rounds=5, iterations=1, warmup_rounds=1
    )
    assert out["fixes"].size == NEW * v


@pytest.mark.parametrize("v", VEHICLES)
@pytest.mark.benchmark(group="monitor-score")
def test_monitor_score_peer_numpy(benchmark: Any, v: int) -> None:
    vs, headings, _ = fleet(v)
    tag(benchmark, "peer", "numpy score_hours per vehicle", v, size=v)

    def loop() -> int:
        hours = 0
        for (H, C, state), heading in zip(vs, headings, strict=True):
            hours += score_hours(H, C, ROWS - NEW, heading, dict(state), CFG)["t_end"].size
        return hours

    assert benchmark.pedantic(loop, rounds=3, iterations=1, warmup_rounds=0) == NEW * v
