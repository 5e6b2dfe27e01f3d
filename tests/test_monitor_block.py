"""The monitor's block kernel (``features.derive_block``, C++
cpp/src/monitor/block.cpp) against the per-vehicle numpy code it replaced
(tests/monitor_reference.py, kept from before the kernel): every derived
sample, every hourly sum and histogram, every (hour, cell) dwell and each
hour's heading entropy must be
the same value, bit for bit, on random multi-vehicle blocks with the edge
cases the monitor meets (one-fix and empty vehicles, unmeasured speeds,
repeated times, hours cut at the block's ends, carried stationary runs,
jumps and long silences). Bad input raises ValueError. The history span
and the trailing sums, computed for all columns at once, equal their
column-by-column forms; the location entropy and new-place share (C++) equal
the numpy grouping they replaced."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from autolien import _core
from autolien.monitor import Monitor, stream
from autolien.monitor.config import MonitorConfig
from autolien.monitor.features import HOUR, Derived, derive_block
from autolien.sim import simulate_fleet
from monitor_reference import (
    _history_h,
    _trailing,
    _trailing_all,
    cell_dwell,
    derive,
    heading_entropy,
    history_h,
    hourly,
    location,
)

T0 = 1_700_000_000.0


def _vehicle(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    """n fixes of a vehicle that drives, parks, repeats times, jumps and falls silent."""
    gaps = rng.choice(
        [0.0, 1.0, 3.0, 10.0, 30.0, 300.0, 900.0, 8 * HOUR],
        size=n,
        p=[0.05, 0.25, 0.15, 0.2, 0.2, 0.08, 0.05, 0.02],
    )
    t = T0 + rng.uniform(0, 3 * HOUR) + np.cumsum(gaps)
    step = rng.normal(0, 0.002, (n, 2))
    step[rng.random(n) < 0.4] = 0.0  # parked
    jumps = rng.random(n) < 0.03
    step[jumps] += rng.choice([-1, 1], size=(jumps.sum(), 2)) * rng.uniform(
        0.05, 1.0, (jumps.sum(), 2)
    )
    lat = 31.2 + np.cumsum(step[:, 0])
    lon = 121.4 + np.cumsum(step[:, 1])
    speed = rng.uniform(0, 140, n)
    speed[rng.random(n) < 0.3] = 0.0
    speed[rng.random(n) < 0.3] = np.nan
    return t, lat, lon, speed


def _block(rng: np.random.Generator, sizes: list[int]) -> dict:
    parts = [_vehicle(rng, n) for n in sizes]
    carry, h_a, h_b = [], [], []
    for t, *_ in parts:
        first = math.floor(t[0] / HOUR) if t.size else math.floor(T0 / HOUR)
        last = math.floor(t[-1] / HOUR) if t.size else first
        # hours that start before, cut into or run past the buffer
        a = first + int(rng.integers(-2, 3))
        h_a.append(a)
        h_b.append(max(a, last + int(rng.integers(-3, 3))))
        carry.append(t[0] - rng.uniform(0, 5000) if t.size and rng.random() < 0.5 else math.nan)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    cat = [np.concatenate([p[k] for p in parts]) if parts else np.zeros(0) for k in range(4)]
    return {
        "offsets": offsets,
        "t": cat[0],
        "lat": cat[1],
        "lon": cat[2],
        "speed_in": cat[3],
        "run_carry": np.array(carry),
        "h_a": np.array(h_a, np.int64),
        "h_b": np.array(h_b, np.int64),
    }


def _same(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype, f"{what}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    # bit for bit: NaN where NaN, and equal doubles (0.0 == -0.0 aside)
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), what


def _check(blk_in: dict, cfg: MonitorConfig) -> None:
    blk = derive_block(cfg=cfg, **blk_in)
    off = blk_in["offsets"]
    for i in range(off.size - 1):
        a, b = int(off[i]), int(off[i + 1])
        sl = {k: blk_in[k][a:b] for k in ("t", "lat", "lon", "speed_in")}
        ref = derive(
            sl["t"], sl["lat"], sl["lon"], sl["speed_in"], float(blk_in["run_carry"][i]), cfg
        )
        d, rows, cells = blk.vehicle(i)
        for f in Derived.__dataclass_fields__:
            _same(getattr(d, f), getattr(ref, f), f"vehicle {i} {f}")
        h_a, h_b = int(blk_in["h_a"][i]), int(blk_in["h_b"][i])
        want = hourly(ref, h_a, h_b)
        assert list(rows) == list(want)
        for k, v in want.items():
            _same(rows[k], v, f"vehicle {i} hourly {k}")
        for k, v in cell_dwell(ref, h_a, h_b).items():
            _same(cells[k], v, f"vehicle {i} cells {k}")
    # the heading entropy needs each vehicle's fixes in time order
    if any(
        (np.diff(blk_in["t"][int(off[i]) : int(off[i + 1])]) < 0).any() for i in range(off.size - 1)
    ):
        with pytest.raises(ValueError, match="decrease"):
            blk.heading_of(0)
        return
    for i in range(off.size - 1):
        d, _, _ = blk.vehicle(i)
        h_a, h_b = int(blk_in["h_a"][i]), int(blk_in["h_b"][i])
        want_pe = heading_entropy(d, h_a, h_b, cfg.context_h)
        _same(blk.heading_of(i), want_pe, f"vehicle {i} heading entropy")


@pytest.mark.parametrize("seed", range(6))
def test_block_equals_per_vehicle_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = [int(x) for x in rng.choice([0, 1, 2, 3, 50, 400], size=12)]
    _check(_block(rng, sizes), MonitorConfig())


def test_block_equals_numpy_with_other_thresholds_and_a_zone() -> None:
    rng = np.random.default_rng(11)
    blk = _block(rng, [300, 0, 1, 250, 2])
    # daytime "night", a DST zone, zero stop minimum, small cells
    cfg = MonitorConfig(
        night_start_h=9,
        night_end_h=17,
        tz="America/Chicago",
        stop_min_s=0.0,
        cell_m=250.0,
        moving_kmh=0.0,
        jump_min_m=500.0,
        harsh_max_dt_s=30.0,
        dwell_cap_s=7.0,
    )
    _check(blk, cfg)
    _check(blk, MonitorConfig(tz_offset_h=-9.5, step_cap_s=0.0))


def test_block_equals_numpy_on_fixes_out_of_time_order() -> None:
    # the monitor sorts its buffers; the kernel must not depend on it
    rng = np.random.default_rng(12)
    blk = _block(rng, [200, 3, 120])
    perm = np.r_[rng.permutation(200), 200 + np.arange(3), 203 + rng.permutation(120)]
    for k in ("t", "lat", "lon", "speed_in"):
        blk[k] = blk[k][perm]
    _check(blk, MonitorConfig())


def test_hand_computed_vehicle_at_an_hour_boundary() -> None:
    # two fixes 10 s apart across the hour boundary, 100 m north: moving at 36 km/h
    h = 472_222
    t = np.array([h * HOUR - 5.0, h * HOUR + 5.0])
    lat = np.array([31.0, 31.0 + 100.0 / 6_371_008.8 * 180.0 / math.pi])
    lon = np.array([121.0, 121.0])
    blk = derive_block(
        [0, 0, 2],
        t,
        lat,
        lon,
        [np.nan, np.nan],
        [np.nan, np.nan],
        [h - 1, h - 1],
        [h - 1, h + 1],
        MonitorConfig(),
    )
    d, rows, cells = blk.vehicle(1)
    assert d.dist_m[1] == pytest.approx(100.0, rel=1e-9)
    assert d.speed[1] == pytest.approx(36.0, rel=1e-9)
    assert list(d.moving) == [False, True]
    assert list(rows["hour"]) == [h - 1, h]
    assert list(rows["n"]) == [1, 1]
    assert list(rows["moving_s"]) == [0.0, 10.0]
    assert rows["dist_km"][1] == pytest.approx(0.1, rel=1e-9)
    assert rows["speed_hist"][1, 3] == 10  # 36 km/h: the 30-40 bin
    assert list(cells["hour"]) == [h - 1, h]
    assert list(cells["secs"]) == [0, 10]
    # the empty vehicle: no rows of its own (h_a == h_b)
    d0, rows0, cells0 = blk.vehicle(0)
    assert d0.t.size == 0
    assert rows0["hour"].size == 0
    assert cells0["hour"].size == 0


def test_bad_input_raises_value_error() -> None:
    cfg = MonitorConfig()
    t = T0 + np.arange(4.0)
    z = np.zeros(4)
    ok = {
        "offsets": [0, 4],
        "t": t,
        "lat": z,
        "lon": z,
        "speed_in": z,
        "run_carry": [np.nan],
        "h_a": [0],
        "h_b": [1],
    }
    derive_block(cfg=cfg, **ok)
    three = {"run_carry": [np.nan] * 3, "h_a": [0] * 3, "h_b": [1] * 3}
    bad = [
        ({"lat": np.zeros(3)}, "same length"),
        ({"offsets": [0, 3, 2, 4], **three}, "must not decrease"),
        ({"offsets": [1, 4]}, "start at 0"),
        ({"offsets": [0, 5]}, "end at the sample count"),
        ({"offsets": [0, 2, 4]}, "one entry per vehicle"),
        ({"h_b": [-1]}, "h_b must not be below h_a"),
        ({"lat": np.array([0.0, np.nan, 0.0, 0.0])}, "must be finite"),
        ({"t": np.array([T0, np.inf, T0, T0])}, "must be finite"),
    ]
    for change, why in bad:
        with pytest.raises(ValueError, match=why):
            derive_block(cfg=cfg, **{**ok, **change})


def test_history_span_of_all_columns_at_once_equals_column_by_column() -> None:
    rng = np.random.default_rng(3)
    for rows in (0, 1, 5, 400):
        hours = np.sort(rng.choice(np.arange(470_000, 470_000 + 900), size=rows, replace=False))
        block = rng.normal(size=(rows, 7))
        block[rng.random((rows, 7)) < rng.uniform(0, 1, 7)] = np.nan
        if rows:
            block[:, 0] = np.nan  # a column without values
        _same(_history_h(hours, block), history_h(hours, block), f"{rows} rows")


def test_trailing_sums_side_by_side_equal_one_column_at_a_time() -> None:
    rng = np.random.default_rng(4)
    rows = 60
    H = {
        "a": rng.normal(size=rows) * 1e3,
        "b": rng.integers(0, 9, rows),
        "c": rng.integers(0, 99, (rows, 5)),
        "d": rng.uniform(size=rows) / 7,
    }
    # the newest hours of a long history (only the rows their windows read
    # are gathered), hours at its start, one hour, none
    for a, b in ((rows - 30, rows), (0, 10), (5, 40), (rows - 1, rows), (7, 7)):
        pos = np.arange(a, b)
        got = _trailing_all(H, tuple(H), 24, pos)
        for f, v in H.items():
            _same(got[f], _trailing(v, 24, pos), f"{f} [{a}, {b})")


def _cells(rng: np.random.Generator, hours: int, h0: int) -> dict[str, np.ndarray]:
    """An (hour, cell, seconds) table as Vehicle.cells keeps it: ascending
    (hour, cell), a home area visited most days, some hours empty, some
    seconds zero."""
    rows = []
    for h in range(h0, h0 + hours):
        if rng.random() < 0.3:
            continue
        k = int(rng.integers(1, 5))
        cells = np.unique(
            np.where(rng.random(k) < 0.7, rng.integers(0, 4, k), rng.integers(4, 400, k))
        )
        rows += [(h, int(c), int(rng.choice([0, 5, 60, 600, 3600]))) for c in cells]
    a = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return {"hour": a[:, 0].copy(), "cell": (a[:, 1] << 32) + 7, "secs": a[:, 2].copy()}


@pytest.mark.parametrize("seed", range(4))
def test_location_features_equal_the_numpy_grouping(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cfg = MonitorConfig()
    h0 = 471_000 + seed * 7  # not a UTC midnight
    C = _cells(rng, 24 * 20, h0)
    for h_a, h_b in ((h0 + 24 * 17, h0 + 24 * 18), (h0 + 5, h0 + 30), (h0 - 40, h0 - 1), (h0, h0)):
        loc, share = _core.monitor_location(
            C["hour"], C["cell"], C["secs"], h_a, h_b, cfg.context_h, cfg.lag_h, cfg.baseline_h
        )
        want_loc, want_share = location(C, h_a, h_b, cfg)
        _same(loc, want_loc, f"entropy {h_a}-{h_b}")
        _same(share, want_share, f"new-place share {h_a}-{h_b}")
        # rows out of hour order (the kernel sorts them itself)
        p = rng.permutation(C["hour"].size)
        loc, share = _core.monitor_location(
            C["hour"][p], C["cell"][p], C["secs"][p], h_a, h_b, cfg.context_h, cfg.lag_h,
            cfg.baseline_h,
        )  # fmt: skip
        _same(loc, want_loc, f"entropy shuffled {h_a}-{h_b}")
        _same(share, want_share, f"new-place share shuffled {h_a}-{h_b}")
    empty = {k: v[:0] for k, v in C.items()}
    loc, share = _core.monitor_location(
        empty["hour"], empty["cell"], empty["secs"], 5, 8, 24, 24, 336
    )
    assert np.isnan(loc).all()
    assert np.isnan(share).all()


def test_location_bad_input_raises_value_error() -> None:
    z = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="same length"):
        _core.monitor_location(z, z[:2], z, 0, 1, 24, 24, 336)
    with pytest.raises(ValueError, match=">= 0"):
        _core.monitor_location(z, z, np.array([1, -1, 0]), 0, 1, 24, 24, 336)
    with pytest.raises(ValueError, match="h_a <= h_b"):
        _core.monitor_location(z, z, z, 2, 1, 24, 24, 336)


def test_the_monitor_scores_the_same_whatever_the_block_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vehicles derived one at a time, 5 at a time (the last block partial)
    or all together give the same alerts and feature hours, cell for cell."""
    kinds = ("mileage_jump", "relocation", "rental", "silence", "tow")
    fleet = simulate_fleet(12, 24, seed=9, anomaly_day=16, anomalies=dict.fromkeys(kinds, 1))
    runs = []
    for size in (1, 5, 256):
        monkeypatch.setattr(stream, "BLOCK", size)
        m = Monitor()
        m.update(fleet.tracks, fleet.odometer)
        runs.append((m.alerts(), m.features()))
    alerts, features = runs[-1]
    assert alerts.num_rows >= 4
    for a, f in runs[:-1]:
        assert a.equals(alerts)
        assert f.schema.equals(features.schema)
        assert _nan_rows(f) == _nan_rows(features)


def _nan_rows(t: pa.Table) -> list[tuple]:
    """Rows with NaN as a marker (NaN is unequal to itself, so Table.equals fails on it)."""
    return [
        tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in r.values())
        for r in t.to_pylist()
    ]


def _history(rng: np.random.Generator, rows: int, h0: int) -> dict[str, np.ndarray]:
    """Hourly history rows as Vehicle.hist keeps them: one per hour, some
    without data (n + n_odo = 0), features NaN now and then, whole columns
    NaN, repeated values (median ties)."""
    from autolien.monitor.engine import ENTROPY_FEATURES

    H: dict[str, np.ndarray] = {
        "hour": np.arange(h0, h0 + rows, dtype=np.int64),
        "n": np.where(rng.random(rows) < 0.3, 0, rng.integers(1, 200, rows)).astype(np.int64),
        "n_odo": np.where(rng.random(rows) < 0.7, 0, rng.integers(1, 5, rows)).astype(np.int64),
    }
    for k, f in enumerate((*ENTROPY_FEATURES, "km_24h")):
        v = np.round(rng.gamma(2.0, 1.5, rows), 1 if k % 2 else 6)  # rounded: ties
        v[rng.random(rows) < rng.uniform(0, 0.6)] = np.nan
        if k == 3 and rows % 2:
            v[:] = np.nan  # a feature never measured
        H[f] = v
    return H


@pytest.mark.parametrize("seed", range(6))
def test_baseline_kernel_equals_the_numpy_form(seed: int) -> None:
    """The baseline (cpp/src/monitor/block.cpp) equals the numpy code it
    replaced (tests/monitor_reference.py), value for value: medians and
    MADs, counts, history spans, the familiar cells; over whole periods,
    periods cut at any hour, ones before or after every row, empty ones."""
    from autolien.monitor.engine import ENTROPY_FEATURES
    from monitor_reference import baseline as reference

    rng = np.random.default_rng(seed)
    h0 = 471_000 + seed * 5  # not a UTC midnight
    rows = int(rng.integers(0, 420))
    H = _history(rng, rows, h0)
    C = _cells(rng, rows, h0)
    names = (*ENTROPY_FEATURES, "km_24h")
    for lo, hi in (
        (h0 - 10, h0 + rows + 10),
        (h0 + 17, h0 + rows - 30),
        (h0 + 24 * 3, h0 + 24 * 3 + 1),
        (h0 - 100, h0),
        (h0 + rows, h0 + rows + 50),
        (h0 + 40, h0 + 40),
    ):
        for home_days in (0, 1, 2, 3):
            got = _core.monitor_baseline(
                H["hour"],
                H["n"],
                H["n_odo"],
                np.stack([H[f] for f in names], axis=1),
                C["hour"],
                C["cell"],
                lo,
                hi,
                home_days,
            )
            want = reference(H, C, lo, hi, home_days)
            for what, g, w in zip(
                ("median", "mad", "count", "span", "cells"), got, want, strict=True
            ):
                _same(g, np.asarray(w, dtype=g.dtype), f"{what} [{lo}, {hi}) home_days {home_days}")
            # rows out of hour order (the kernel's sorted fast paths do not apply)
            ph, pc_ = rng.permutation(rows), rng.permutation(C["hour"].size)
            got = _core.monitor_baseline(
                H["hour"][ph],
                H["n"][ph],
                H["n_odo"][ph],
                np.stack([H[f][ph] for f in names], axis=1),
                C["hour"][pc_],
                C["cell"][pc_],
                lo,
                hi,
                home_days,
            )
            for what, g, w in zip(
                ("median", "mad", "count", "span", "cells"), got, want, strict=True
            ):
                _same(g, np.asarray(w, dtype=g.dtype), f"{what} shuffled [{lo}, {hi})")
    with pytest.raises(ValueError, match="same length"):
        _core.monitor_baseline(
            H["hour"], H["n"][:0], H["n_odo"], np.zeros((rows, 7)), C["hour"], C["cell"], 0, 1, 1
        )
    with pytest.raises(ValueError, match="home_days"):
        _core.monitor_baseline(
            H["hour"], H["n"], H["n_odo"], np.zeros((rows, 7)), C["hour"], C["cell"], 0, 1, -1
        )
