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
from autolien.monitor.engine import ENTROPY_FEATURES, _kernel_params
from autolien.monitor.features import HOUR
from monitor_reference import (
    STATE_KEYS,
    block_columns,
    entropy_scores,
    mileage_flags,
    random_history,
    random_vehicle,
    relocation_flags,
    score_hours,
    window_features,
)


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


def _window(H: dict[str, np.ndarray], pos: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The kernel as the block scoring calls it: the k - 1 rows before the
    first scored one and the scored rows."""
    lo, hi = max(0, int(pos[0]) - k + 1), int(pos[-1]) + 1
    w = _core.monitor_window_features(
        *(np.ascontiguousarray(H[f][lo:hi], dtype=np.int64 if f in _INTS else np.float64)
          for f in ("n", "dist_km", "moving_s", "night_s", "speeding_s", "odo_km", "harsh_accel",
                    "harsh_brake", "n_odo", "speed_hist", "turn_hist", "stop_hist")),
        int(pos[0]) - lo, k,
    )  # fmt: skip
    w["behaviour"] = np.where(w["moving"].view(bool), np.exp(-w["behaviour_arg"]), np.nan)
    return w


_INTS = ("n", "harsh_accel", "harsh_brake", "n_odo", "speed_hist", "turn_hist", "stop_hist")


@pytest.mark.parametrize("seed", range(5))
def test_window_features_equal_the_numpy_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(30, 200))
    H = random_history(rng, rows)
    for k in (1, 5, 24):
        # the newest hours of a long history, hours at its start, one hour
        for a, b in ((rows - 30, rows), (0, 10), (5, 40), (rows - 1, rows), (0, 1)):
            pos = np.arange(a, b)
            got = _window(H, pos, k)
            want = window_features(H, pos, k)
            _bits(got["n"], want["n"], f"fixes k={k} [{a}, {b})")
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


@pytest.mark.parametrize("seed", range(4))
def test_block_scoring_equals_the_numpy_form_vehicle_by_vehicle(seed: int) -> None:
    """The block kernel (cpp/src/monitor/fleet.cpp, engine.score_block)
    against the per-vehicle numpy form of Vehicle._score_hours it replaced
    (monitor_reference.score_hours), every output of every vehicle bit for
    bit: blocks of vehicles with short and long histories, new hours that
    cross days or start mid-day, a whole history new, one new hour,
    baselines too short to score, hours away, CUSUM runs carried in."""
    rng = np.random.default_rng(seed)
    for cfg in (
        MonitorConfig(),
        dataclasses.replace(MonitorConfig(), mileage_confirm_h=0, cusum_slow_h=0.0),
        dataclasses.replace(MonitorConfig(), context_h=6, min_baseline_h=48, home_days=2),
    ):
        nv = 6
        shapes = [(int(rng.integers(200, 520)), int(rng.choice([1, 7, 24, 40]))) for _ in range(nv)]
        shapes[0] = (60, 60)  # everything new: no baseline yet
        vs = [random_vehicle(rng, rows, nh) for rows, nh in shapes]
        headings = [rng.uniform(0, 1, n) for _, n in shapes]
        cols = block_columns(vs, [r - n for r, n in shapes], headings, cfg)
        got = _core.monitor_score_block(cols, _kernel_params(cfg))
        fired = 0
        for i, ((H, C, state), (rows, nh)) in enumerate(zip(vs, shapes, strict=True)):
            want = score_hours(H, C, rows - nh, headings[i], state, cfg)
            sl = slice(int(got["hour_offsets"][i]), int(got["hour_offsets"][i + 1]))
            assert sl.stop - sl.start == nh
            for k, w in want.items():
                _bits(got[k][sl], w, f"{k} of vehicle {i}")
            for k in STATE_KEYS:
                _bits(got[f"end_{k}"][i : i + 1], np.array([state[k]]), f"end {k} of vehicle {i}")
            assert got["end_away_streak"][i] == state["away_streak"]
            fired += int(
                (got["level"][sl] >= 0).sum()
                + got["jump"][sl].sum()
                + (got["cusum"][sl] >= cfg.cusum_h).sum()
            )
        # the draw reaches the detectors, not only their quiet paths
        assert fired > 0


def test_block_scoring_rejects_inconsistent_input() -> None:
    rng = np.random.default_rng(7)
    H, C, state = random_vehicle(rng, 100, 10)
    cfg = MonitorConfig()
    cols = block_columns([(H, C, state)], [90], [np.zeros(10)], cfg)
    params = _kernel_params(cfg)
    assert _core.monitor_score_block(cols, params)["fixes"].size == 10
    bad = [
        ({"hour": np.r_[H["hour"][:50], H["hour"][51:], H["hour"][-1] + 5]}, "consecutive hours"),
        ({"first": np.array([101], dtype=np.int64)}, "within the vehicle's rows"),
        ({"heading": np.zeros(9)}, "one value per new row"),
        ({"dist_km": H["dist_km"][:-1]}, "one value per row"),
        ({"row_offsets": np.array([0, 100, 90], dtype=np.int64)}, "must not decrease"),
        ({"scored": np.zeros((100, 7))}, "rows x 8"),
    ]
    for change, match in bad:
        with pytest.raises(ValueError, match=match):
            _core.monitor_score_block({**cols, **change}, params)
    with pytest.raises(TypeError, match="C-contiguous array of int64"):
        _core.monitor_score_block({**cols, "n": H["n"].astype(np.int32)}, params)
    with pytest.raises(ValueError, match="columns lack 'cell'"):
        _core.monitor_score_block({k: v for k, v in cols.items() if k != "cell"}, params)
    with pytest.raises(ValueError, match="params lacks 'cusum_h'"):
        _core.monitor_score_block(cols, {k: v for k, v in params.items() if k != "cusum_h"})
