"""Entropy kernels and fleet scoring against antropy, on the same data in one run.

* ``entropy-rolling-perm``: rolling permutation entropy (order 5, window 256)
  over n samples, ours (O(1) per sample, C++) against a Python loop over
  ``antropy.perm_entropy`` on each window;
* ``entropy-sample``: sample entropy (order 2, r = 0.2 SD) against
  ``antropy.sample_entropy`` (its numba path below 5,000 samples, KDTree above);
* ``monitor-fleet``: ``autolien.monitor.score`` over a simulated fleet for 30
  days (ours only: vehicle-days/s).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest

import autolien.entropy as ent
from autolien.monitor import score
from autolien.sim import simulate_fleet
from conftest import require_module, sizes, tag

ROLL_SIZES = sizes((10_000, 100_000, 1_000_000), (300, 3_000, 30_000))
SAMPEN_SIZES = sizes((1_000, 10_000, 100_000), (300, 3_000, 30_000))
FLEET_SIZES = sizes((10, 100, 1_000), (2, 20, 200))
FLEET_DAYS = 30 if FLEET_SIZES[-1] == 1_000 else 10
WINDOW = 256


@cache
def series(n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.cumsum(rng.standard_normal(n)) * 0.05 + rng.standard_normal(n)


@pytest.mark.parametrize("n", ROLL_SIZES)
@pytest.mark.benchmark(group="entropy-rolling-perm")
def test_rolling_perm_ours(benchmark: Any, n: int) -> None:
    x = series(n)
    tag(benchmark, "ours", "rolling_perm_entropy (C++, O(1) update)", n, size=n)
    out = benchmark.pedantic(
        lambda: ent.rolling_perm_entropy(x, WINDOW, order=5, normalize=True),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert np.isnan(out[: WINDOW - 1]).all()
    assert not np.isnan(out[WINDOW - 1 :]).any()


@pytest.mark.parametrize("n", ROLL_SIZES)
@pytest.mark.benchmark(group="entropy-rolling-perm")
def test_rolling_perm_peer_antropy(benchmark: Any, n: int) -> None:
    antropy = require_module("antropy")
    x = series(n)
    tag(benchmark, "peer", "Python loop over antropy.perm_entropy", n, size=n)

    def loop() -> np.ndarray:
        out = np.full(n, np.nan)
        for t in range(WINDOW - 1, n):
            out[t] = antropy.perm_entropy(x[t - WINDOW + 1 : t + 1], order=5, normalize=True)
        return out

    out = benchmark.pedantic(loop, rounds=1, iterations=1)
    ours = ent.rolling_perm_entropy(x, WINDOW, order=5, normalize=True)
    np.testing.assert_allclose(out, ours, rtol=1e-9)


@pytest.mark.parametrize("n", SAMPEN_SIZES)
@pytest.mark.benchmark(group="entropy-sample")
def test_sample_entropy_ours(benchmark: Any, n: int) -> None:
    x = series(n)
    tag(benchmark, "ours", "sample_entropy (C++, sorted templates)", n, size=n)
    v = benchmark.pedantic(ent.sample_entropy, args=(x,), rounds=3, iterations=1, warmup_rounds=1)
    assert np.isfinite(v)


@pytest.mark.parametrize("n", SAMPEN_SIZES)
@pytest.mark.benchmark(group="entropy-sample")
def test_sample_entropy_peer_antropy(benchmark: Any, n: int) -> None:
    antropy = require_module("antropy")
    x = series(n)
    antropy.sample_entropy(x[:100])  # numba compiles outside the timing
    tag(benchmark, "peer", "antropy.sample_entropy", n, size=n)
    v = benchmark.pedantic(antropy.sample_entropy, args=(x,), rounds=1, iterations=1)
    assert v == pytest.approx(ent.sample_entropy(x), rel=1e-9)


@cache
def fleet(vehicles: int) -> Any:
    return simulate_fleet(
        vehicles,
        FLEET_DAYS,
        seed=11,
        anomaly_day=FLEET_DAYS // 2,
        anomalies={"mileage_jump": 1, "rental": 1} if vehicles >= 2 else {},
    )


@pytest.mark.parametrize("vehicles", FLEET_SIZES)
@pytest.mark.benchmark(group="monitor-fleet")
def test_fleet_scoring_ours(benchmark: Any, vehicles: int) -> None:
    f = fleet(vehicles)
    tag(
        benchmark,
        "ours",
        f"monitor.score: vehicle-days ({f.tracks.num_rows // vehicles:,} fixes/vehicle)",
        vehicles * FLEET_DAYS,
        size=vehicles,
    )
    alerts = benchmark.pedantic(score, args=(f.tracks, f.odometer), rounds=1, iterations=1)
    assert alerts.num_rows >= 1
