"""The monitor's hourly scoring kernels (C++ cpp/src/monitor/score.cpp)
against the numpy code they replaced (tests/monitor_reference.py, kept from
before the kernels): the trailing-window features of Vehicle._score_hours,
and the arithmetic of the mileage, entropy and relocation detectors, value
for value and bit for bit, on random histories with the edge cases the
monitor meets (windows reaching before the history, hours without fixes
or odometer readings, NaN features, baselines too short to score, NaN and
zero MADs, ties among z-scores, CUSUM runs carried from one day to the
next, away streaks across days). Bad input raises ValueError."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from autolien import _core
from autolien.monitor.config import MonitorConfig
from autolien.monitor.detectors.entropy import _PLACE_MASK, _floor
from autolien.monitor.engine import ENTROPY_FEATURES, Vehicle
from autolien.monitor.features import HOUR
from monitor_reference import entropy_scores, mileage_flags, relocation_flags, window_features


def _bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        # the same doubles, NaN where NaN (the bits, so -0.0 is not 0.0)
        x, y = a.astype(np.float64), b.astype(np.float64)
        assert np.array_equal(np.isnan(x), np.isnan(y)), what
        ok = ~np.isnan(x)
        assert (x[ok].view(np.int64) == y[ok].view(np.int64)).all(), what
    else:
        assert np.array_equal(a.astype(np.int64), b.astype(np.int64)), what


def _history(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """Hourly rows as Vehicle.hist keeps them: sums, histograms, some hours
    without fixes, without moving time or without odometer readings."""
    quiet = rng.random(rows) < 0.3
    moving = rng.uniform(0, 3600, rows) * (rng.random(rows) < 0.7)
    H = {
        "n": np.where(quiet, 0, rng.integers(1, 400, rows)).astype(np.int64),
        "dist_km": np.where(quiet, 0.0, rng.exponential(8.0, rows)),
        "moving_s": np.where(quiet, 0.0, moving),
        "night_s": np.where(
            quiet, 0.0, moving * rng.uniform(0, 1, rows) * (rng.random(rows) < 0.3)
        ),
        "speeding_s": np.where(quiet, 0.0, moving * rng.uniform(0, 0.2, rows)),
        "harsh_accel": rng.integers(0, 4, rows).astype(np.int64),
        "harsh_brake": rng.integers(0, 3, rows).astype(np.int64),
        "odo_km": rng.exponential(9.0, rows) * (rng.random(rows) < 0.6),
        "n_odo": rng.integers(0, 4, rows).astype(np.int64),
    }
    for name, bins in (("speed_hist", 14), ("turn_hist", 12), ("stop_hist", 11)):
        h = rng.integers(0, 30, (rows, bins)).astype(np.int64)
        h[rng.random(rows) < 0.4] = 0  # hours without moving steps or stops
        H[name] = h
    return H


@pytest.mark.parametrize("seed", range(5))
def test_window_features_equal_the_numpy_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(30, 200))
    H = _history(rng, rows)
    for k in (1, 5, 24):
        cfg = dataclasses.replace(MonitorConfig(), context_h=k)
        v = Vehicle("v", cfg)
        v.hist = H
        v._heading = rng.uniform(0, 1, rows)
        # the newest hours of a long history, hours at its start, one hour
        for a, b in ((rows - 30, rows), (0, 10), (5, 40), (rows - 1, rows), (0, 1)):
            pos = np.arange(a, b)
            v._heading = rng.uniform(0, 1, b - a)
            got, fixes = v._window_features(pos)
            want = window_features(H, pos, k)
            _bits(fixes, want["n"], f"fixes k={k} [{a}, {b})")
            for f in (
                "turn_entropy",
                "speed_entropy",
                "stop_entropy",
                "night_share",
                "km_track_24h",
                "km_odo_24h",
                "km_24h",
                "behaviour",
            ):
                _bits(got[f], want[f], f"{f} k={k} [{a}, {b})")
            assert got["heading_entropy"] is v._heading
    with pytest.raises(ValueError, match="one value per row"):
        _core.monitor_window_features(
            H["n"], H["dist_km"][:-1], H["moving_s"], H["night_s"], H["speeding_s"],
            H["odo_km"], H["harsh_accel"], H["harsh_brake"], H["n_odo"],
            H["speed_hist"], H["turn_hist"], H["stop_hist"], 0, 24,
        )  # fmt: skip
    with pytest.raises(ValueError, match="first <= rows"):
        _core.monitor_window_features(
            H["n"], H["dist_km"], H["moving_s"], H["night_s"], H["speeding_s"],
            H["odo_km"], H["harsh_accel"], H["harsh_brake"], H["n_odo"],
            H["speed_hist"], H["turn_hist"], H["stop_hist"], rows + 1, 24,
        )  # fmt: skip


def _day(rng: np.random.Generator, n: int = 24) -> dict[str, np.ndarray]:
    km = rng.exponential(40.0, n) * rng.choice([0.2, 1.0, 8.0], n)
    track = np.where(rng.random(n) < 0.1, 0.0, km * rng.uniform(0.5, 1.5, n))
    odo = np.where(rng.random(n) < 0.3, np.nan, km * rng.choice([0.0, 1.0, 3.0], n))
    return {
        "km": km,
        "track": track,
        "odo": odo,
        "fixes": rng.integers(0, 3, n).astype(np.float64),
        "earlier": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(60.0, n)),
    }


@pytest.mark.parametrize("seed", range(6))
def test_mileage_kernel_equals_the_numpy_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for confirm_h in (0, 24):
        c = dataclasses.replace(MonitorConfig(), mileage_confirm_h=confirm_h)
        for base in (
            (30.0, 12.0, 400),  # a baseline
            (30.0, 0.0, 400),  # no spread: the floor
            (30.0, np.nan, 400),
            (30.0, 12.0, 10),  # too short to score
            (np.nan, np.nan, 0),
        ):
            d = _day(rng)
            got = _core.monitor_mileage(
                d["km"], d["track"], d["odo"], d["fixes"], d["earlier"],
                float(base[0]), float(base[1]), int(base[2]),
                int(c.min_baseline_h), float(c.mileage_mad_floor_km),
                float(c.mileage_warn_km_month), float(c.mileage_z),
                float(c.freeze_track_km), float(c.rollback_km),
                float(c.mismatch_low), float(c.mismatch_high), bool(c.mileage_confirm_h),
            )  # fmt: skip
            want = mileage_flags(d["km"], d["track"], d["odo"], d["fixes"], d["earlier"], base, c)
            for k, w in want.items():
                _bits(got[k], w, f"{k} base {base} confirm {confirm_h}")
    # the cases the tests are for occur
    assert any(got[k].any() for k in ("jump", "frozen", "mismatch"))
    with pytest.raises(ValueError, match="one value per hour"):
        _core.monitor_mileage(
            d["km"], d["track"][:3], d["odo"], d["fixes"], d["earlier"],
            1.0, 1.0, 400, 168, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 2.0, False,
        )  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_entropy_kernel_equals_the_numpy_form_day_after_day(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = MonitorConfig()
    names = list(ENTROPY_FEATURES)
    base: dict[str, tuple[float, float, int]] = {}
    for i, f in enumerate(names):
        # the driving features always have a baseline, the others may not
        kind = 3 if i < 3 else rng.integers(0, 4)
        if kind == 0:
            continue  # never measured
        base[f] = (
            float(rng.uniform(0.5, 2.0)),
            float(rng.choice([0.0, 0.05, 0.3])),
            (400 if kind > 1 else 50),  # some too short to score
        )
    # cusum, cusum_since, mileage_flag_t, slow, slow_since
    mine = [0.0, float("nan"), -np.inf, 0.0, float("nan")]
    ref = list(mine)
    h0 = 480_000
    peak = slow_peak = 0.0
    for day in range(5):
        t_end = (h0 + day * 24 + np.arange(24) + 1.0) * HOUR
        # quiet days, then a rise in several features at once (the CUSUM
        # runs, signals and carries into the next day), with ties and NaN
        rise = 0.0 if day < 2 else float(rng.uniform(1.0, 3.0))
        feats = {
            f: np.where(
                rng.random(24) < 0.1,
                np.nan,
                base.get(f, (1.0, 0.0, 0))[0] + rise + rng.normal(0, 0.1, 24),
            )
            for f in names
        }
        feats[names[0]][:4] = feats[names[2]][:4]  # ties
        # flagged hours on the first day only: their hold runs into the second
        jump = rng.random(24) < (0.1 if day == 0 else 0.0)
        away = np.where(rng.random(24) < 0.2, np.nan, rng.choice([1.0, 80.0], 24))
        got = _core.monitor_entropy(
            np.stack([feats[f] for f in names], axis=1),
            np.array([base.get(f, (np.nan, np.nan, 0))[0] for f in names]),
            np.array([base.get(f, (np.nan, np.nan, 0))[1] for f in names]),
            np.array([_floor(c, f) for f in names]),
            np.array([base.get(f, (np.nan, np.nan, 0))[2] for f in names], dtype=np.int64),
            _PLACE_MASK,
            t_end,
            away,
            jump,
            int(c.min_baseline_h),
            float(c.close_after_h * HOUR),
            float(c.away_km),
            float(c.cusum_k),
            float(c.cusum_h),
            float(HOUR),
            *mine[:3],
            float(c.cusum_slow_k),
            float(c.cusum_slow_h),
            *mine[3:],
        )
        mine = list(got["end"])
        peak = max(peak, float(got["cusum"].max()))
        slow_peak = max(slow_peak, float(got["slow"].max()))
        want = entropy_scores(feats, base, t_end, jump, away, ref, c)
        for k in ("z", "score", "cusum", "since", "slow", "slow_since"):
            _bits(got[k], want[k], f"{k} day {day}")
        _bits(got["explained"], want["explained"], f"explained day {day}")
        _bits(np.array(mine), np.array(ref), f"state after day {day}")
    # the CUSUM crossed its threshold (the detector signals); a flagged hour
    # was carried from the first day
    assert peak >= c.cusum_h
    assert slow_peak >= c.cusum_slow_h
    assert ref[2] > -np.inf
    with pytest.raises(ValueError, match="one row per hour"):
        _core.monitor_entropy(
            np.zeros((3, 6)), np.zeros(6), np.zeros(6), np.ones(6), np.zeros(6, np.int64),
            _PLACE_MASK, np.zeros(4), np.zeros(4), np.zeros(4, bool),
            1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0,
        )  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_relocation_kernel_equals_the_numpy_form_day_after_day(seed: int) -> None:
    rng = np.random.default_rng(seed)
    c = MonitorConfig()
    rows = 24 * 6
    # runs of hours far away, some unknown (NaN), across day boundaries
    far = np.repeat(rng.random(rows // 6) < 0.5, 6)
    away = np.where(far, rng.uniform(40, 200, rows), rng.uniform(0, 5, rows))
    away[rng.random(rows) < 0.1] = np.nan
    mine = ref = 0
    for day in range(6):
        pos = np.arange(day * 24, day * 24 + 24)
        lo = max(0, int(pos[0]) + 1 - c.context_h)
        n_away, streak, level, mine = _core.monitor_relocation(
            np.ascontiguousarray(away[lo : pos[-1] + 1]),
            24,
            float(c.away_km),
            int(c.context_h),
            int(c.away_hours),
            int(c.away_emergency_h),
            mine,
        )
        # the reference reads the whole history (later hours unwritten)
        hist = away.copy()
        hist[pos[-1] + 1 :] = np.nan
        want = relocation_flags(hist, pos, ref, c)
        ref = want[3]
        for what, g, w in zip(
            ("n_away", "streak", "level"), (n_away, streak, level), want, strict=False
        ):
            _bits(g, w, f"{what} day {day}")
        assert mine == ref
    with pytest.raises(ValueError, match="day's hours last"):
        _core.monitor_relocation(np.zeros(3), 4, 50.0, 24, 12, 72, 0)
