"""The monitor's block kernel against the per-vehicle numpy code it replaced,
on the same data in one run (``monitor-block``): per-sample derivation,
hourly sums and histograms and the (hour, cell) dwell of V vehicles x one
day of 30 s fixes each (2,880 per vehicle).

* ours: ``autolien.monitor.features.derive_block``, one call for the block
  (numpy for the local hour, heading and cell of every fix, C++ for the rest);
* peer: the numpy ``derive``, ``hourly`` and cell dwell of
  tests/monitor_reference.py, one vehicle at a time, as ``Vehicle.advance``
  ran them before.

Items are vehicle-days; the summary prints the ratio at each size.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autolien.monitor.config import MonitorConfig
from autolien.monitor.features import HOUR, derive_block
from conftest import sizes, tag

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from monitor_reference import cell_dwell, derive, hourly

VEHICLES = sizes((10, 100, 1_000), (3, 30, 300))
FIXES = 2_880  # one day at 30 s
CFG = MonitorConfig()
T0 = 1_700_006_400.0  # a UTC midnight


@cache
def block(v: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    t = T0 + np.arange(FIXES) * 30.0
    lat, lon, speed = [], [], []
    for _ in range(v):
        moving = (np.arange(FIXES) // 120) % 3 == 1  # an hour driving in three
        step = rng.normal(0, 2e-4, (FIXES, 2)) * moving[:, None]
        lat.append(31.2 + np.cumsum(step[:, 0]))
        lon.append(121.4 + np.cumsum(step[:, 1]))
        sp = np.where(moving, rng.uniform(20, 90, FIXES), 0.0)
        sp[rng.random(FIXES) < 0.1] = np.nan
        speed.append(sp)
    h0 = int(T0 // HOUR)
    return {
        "offsets": np.arange(v + 1, dtype=np.int64) * FIXES,
        "t": np.tile(t, v),
        "lat": np.concatenate(lat),
        "lon": np.concatenate(lon),
        "speed_in": np.concatenate(speed),
        "run_carry": np.full(v, np.nan),
        "h_a": np.full(v, h0, np.int64),
        "h_b": np.full(v, h0 + 24, np.int64),
    }


@pytest.mark.parametrize("v", VEHICLES)
@pytest.mark.benchmark(group="monitor-block")
def test_monitor_block_ours(benchmark: Any, v: int) -> None:
    b = block(v)
    tag(benchmark, "ours", "derive_block (one C++ call per block)", v, size=v)
    out = benchmark.pedantic(
        lambda: derive_block(cfg=CFG, **b), rounds=5, iterations=1, warmup_rounds=1
    )
    assert out.rows["hour"].size == 24 * v


@pytest.mark.parametrize("v", VEHICLES)
@pytest.mark.benchmark(group="monitor-block")
def test_monitor_block_peer_numpy(benchmark: Any, v: int) -> None:
    b = block(v)
    tag(benchmark, "peer", "numpy derive + hourly + cell dwell per vehicle", v, size=v)

    def loop() -> int:
        hours = 0
        for i in range(v):
            a, e = int(b["offsets"][i]), int(b["offsets"][i + 1])
            d = derive(b["t"][a:e], b["lat"][a:e], b["lon"][a:e], b["speed_in"][a:e], np.nan, CFG)
            h_a, h_b = int(b["h_a"][i]), int(b["h_b"][i])
            hours += hourly(d, h_a, h_b)["hour"].size
            cell_dwell(d, h_a, h_b)
        return hours

    assert benchmark.pedantic(loop, rounds=5, iterations=1, warmup_rounds=1) == 24 * v
