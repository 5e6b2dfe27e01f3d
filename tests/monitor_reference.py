"""The monitor's per-vehicle numpy derivation as it was before the block
kernel (autolien.monitor.features at commit 085fd56: derive, hourly, and the
cell dwell of engine.Vehicle._append_history, its _history_h and _location), kept as the independent
reference the C++ block kernel is tested against (tests/test_monitor_block.py).
The heading entropy of engine.Vehicle._heading_entropy (commit 1cd85de), one
vehicle at a time, before it moved into the block (features._heading_hours).
Also the hourly scoring's numpy forms before the score kernels (commit
5e91568: engine._trailing and _trailing_all and the window features of
Vehicle._score_hours; the arithmetic of detectors/mileage.py, entropy.py
with its explained_features, and relocation.py), which
tests/test_monitor_score.py holds cpp/src/monitor/score.cpp to."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from autolien.entropy import rolling_perm_entropy, shannon_counts
from autolien.gnss import distance_m
from autolien.monitor.config import MonitorConfig
from autolien.monitor.engine import _HISTS, _SUMS, ENTROPY_FEATURES
from autolien.monitor.features import (
    F64,
    HOUR,
    I64,
    SPEED_BINS,
    STOP_BINS,
    TURN_BINS,
    Derived,
    cell_ids,
    local_hour,
)


def derive(
    t: F64, lat: F64, lon: F64, speed_in: F64, run_carry: float, cfg: MonitorConfig
) -> Derived:
    n = t.size
    dist = np.zeros(n)
    dt = np.zeros(n)
    if n > 1:
        dist[1:] = distance_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
        dt[1:] = np.diff(t)
    implied = np.zeros(n)
    np.divide(dist * 3.6, dt, out=implied, where=dt > 0)
    speed = np.where(np.isnan(speed_in), implied, speed_in)
    moving = speed >= cfg.moving_kmh
    # Jumps: a step too fast to drive, or a long hop between two standstills.
    still = np.zeros(n, dtype=bool)
    if n > 1:
        measured = ~np.isnan(speed_in)
        still[1:] = (
            measured[1:]
            & measured[:-1]
            & (speed_in[1:] < cfg.moving_kmh)
            & (speed_in[:-1] < cfg.moving_kmh)
        )
    jump = (dist >= cfg.jump_min_m) & (
        ((dt > 0) & (implied > cfg.jump_kmh)) | (dt <= 0) | (still & (dt >= cfg.jump_still_gap_s))
    )
    jump[:1] = False
    jump_m = np.where(jump, dist, 0.0)
    # neither a jump nor a hop across a silence is observed driving
    dist = np.where(jump | (dt > cfg.silence_warning_h * HOUR), 0.0, dist)
    step = np.minimum(dt, cfg.step_cap_s)
    moving_s = np.where(moving & ~jump, step, 0.0)
    local_h = local_hour(t, cfg)
    if cfg.night_start_h > cfg.night_end_h:
        night = (local_h >= cfg.night_start_h) | (local_h < cfg.night_end_h)
    else:
        night = (local_h >= cfg.night_start_h) & (local_h < cfg.night_end_h)
    night_s = np.where(night, moving_s, 0.0)
    speeding_s = np.where(speed > cfg.speeding_kmh, moving_s, 0.0)
    accel = np.zeros(n)
    dense = (dt > 0) & (dt <= cfg.harsh_max_dt_s)
    if n > 1:
        dv = np.zeros(n)
        dv[1:] = np.diff(speed) / 3.6
        np.divide(dv, dt, out=accel, where=dense)
    harsh_a = dense & (accel >= cfg.harsh_accel_mps2)
    harsh_b = dense & (accel <= -cfg.harsh_brake_mps2)
    # headings of moving steps, and the turn between consecutive ones
    heading = np.full(n, np.nan)
    ok = moving & (dist >= 5.0)
    ok[:1] = False
    if ok.any():
        i = np.flatnonzero(ok)
        p1, p2 = np.radians(lat[i - 1]), np.radians(lat[i])
        dl = np.radians(lon[i] - lon[i - 1])
        y = np.sin(dl) * np.cos(p2)
        x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
        heading[i] = np.degrees(np.arctan2(y, x))
    turn = np.full(n, np.nan)
    if n > 1:
        d = heading[1:] - heading[:-1]
        turn[1:] = 180.0 - np.mod(180.0 - d, 360.0)  # wrap into (-180, 180]
    dwell = np.rint(np.minimum(dt, cfg.dwell_cap_s)).astype(np.int64)
    cells = cell_ids(lat, lon, cfg.cell_m)
    # stationary runs; the first may have begun before this buffer
    stat = ~moving
    begins = stat.copy()
    begins[1:] &= ~stat[:-1]
    start_t = t.copy()
    if n and stat[0] and not np.isnan(run_carry):
        start_t[0] = run_carry
    run_id = np.cumsum(begins)
    first_of_run = start_t[np.flatnonzero(begins)]
    run_start = np.full(n, np.nan)
    run_start[stat] = first_of_run[run_id[stat] - 1]
    stop_end = np.zeros(n, dtype=bool)
    stop_s = np.zeros(n)
    if n > 1:
        ends = moving[1:] & stat[:-1]
        dur = t[1:] - run_start[:-1]
        stop_end[1:] = ends & (dur >= cfg.stop_min_s)
        stop_s[1:] = np.where(stop_end[1:], dur, 0.0)
    return Derived(
        t,
        lat,
        lon,
        speed,
        moving,
        dist,
        moving_s,
        night_s,
        speeding_s,
        harsh_a,
        harsh_b,
        turn,
        dwell,
        cells,
        run_start,
        stop_end,
        stop_s,
        jump,
        jump_m,
    )


def _hist(idx: I64, bins: I64, nb: int, nh: int, w: npt.NDArray[np.int64] | None = None) -> I64:
    flat = (
        np.bincount(idx * nb + bins, weights=w, minlength=nh * nb)
        if idx.size
        else np.zeros(nh * nb)
    )
    return np.rint(flat).astype(np.int64).reshape(nh, nb)


def hourly(d: Derived, h_a: int, h_b: int) -> dict[str, np.ndarray]:
    """Per-hour sums and histograms for hours [h_a, h_b) from the fixes whose
    time falls in them."""
    nh = h_b - h_a
    hs = np.floor(d.t / HOUR).astype(np.int64)
    sel = (hs >= h_a) & (hs < h_b)
    idx = hs[sel] - h_a

    def s(x: np.ndarray) -> F64:
        return np.bincount(idx, weights=np.asarray(x, dtype=np.float64)[sel], minlength=nh).astype(
            np.float64
        )

    out: dict[str, np.ndarray] = {
        "hour": np.arange(h_a, h_b, dtype=np.int64),
        "n": np.bincount(idx, minlength=nh).astype(np.int64),
        "dist_km": s(d.dist_m) / 1000.0,
        "moving_s": s(d.moving_s),
        "night_s": s(d.night_s),
        "speeding_s": s(d.speeding_s),
        "harsh_accel": np.bincount(idx, weights=d.harsh_accel[sel], minlength=nh).astype(np.int64),
        "harsh_brake": np.bincount(idx, weights=d.harsh_brake[sel], minlength=nh).astype(np.int64),
    }
    mv = sel & d.moving
    mi = hs[mv] - h_a
    sb = np.clip(np.floor(d.speed[mv] / 10.0), 0, SPEED_BINS - 1).astype(np.int64)
    out["speed_hist"] = _hist(mi, sb, SPEED_BINS, nh, np.rint(d.moving_s[mv]).astype(np.int64))
    tv = sel & ~np.isnan(d.turn)
    tb = np.clip(np.floor((d.turn[tv] + 180.0) / 30.0), 0, TURN_BINS - 1).astype(np.int64)
    out["turn_hist"] = _hist(hs[tv] - h_a, tb, TURN_BINS, nh)
    se = sel & d.stop_end
    stb = np.clip(np.floor(np.log2(d.stop_s[se] / 60.0)) - 1, 0, STOP_BINS - 1).astype(np.int64)
    out["stop_hist"] = _hist(hs[se] - h_a, stb, STOP_BINS, nh)
    last_lat = np.full(nh, np.nan)
    last_lon = np.full(nh, np.nan)
    if idx.size:
        # the last fix of each hour (fixes are in time order)
        rows = np.flatnonzero(sel)
        ends = np.flatnonzero(np.r_[idx[1:] != idx[:-1], True])
        last_lat[idx[ends]] = d.lat[rows[ends]]
        last_lon[idx[ends]] = d.lon[rows[ends]]
    out["last_lat"] = last_lat
    out["last_lon"] = last_lon
    return out


def cell_dwell(d: Derived, h_a: int, h_b: int) -> dict[str, np.ndarray]:
    """Dwell seconds per (hour, cell) of the hours [h_a, h_b), ascending
    (engine.Vehicle._append_history before the block kernel)."""
    hs = np.floor(d.t / HOUR).astype(np.int64)
    sel = (hs >= h_a) & (hs < h_b)
    key_h, key_c, w = hs[sel], d.cells[sel], d.dwell_s[sel]
    if not key_h.size:
        return {"hour": key_h, "cell": key_c, "secs": w}
    order = np.lexsort((key_c, key_h))
    key_h, key_c, w = key_h[order], key_c[order], w[order]
    starts = np.flatnonzero(np.r_[True, (key_h[1:] != key_h[:-1]) | (key_c[1:] != key_c[:-1])])
    return {"hour": key_h[starts], "cell": key_c[starts], "secs": np.add.reduceat(w, starts)}


def history_h(hours: I64, block: F64) -> I64:
    """engine._history_h before it marked all columns in one pass: one
    np.unique per column."""
    out = np.zeros(block.shape[1], dtype=np.int64)
    for j in range(block.shape[1]):
        h = hours[~np.isnan(block[:, j])]
        if not h.size:
            continue
        days = np.unique(h // 24)
        out[j] = 24 * days.size - int(h.min() - (h.min() // 24) * 24)
    return out


def _shannon_by_target(target: I64, counts: F64, nt: int) -> F64:
    """Shannon entropy (bits) per target of (target, count) rows sorted by
    target; NaN for targets without rows."""
    out = np.full(nt, np.nan)
    if target.size == 0:
        return out
    starts = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
    out[target[starts]] = shannon_counts(counts, offsets=np.r_[starts, target.size])
    return out


def location(C: dict[str, np.ndarray], h_a: int, h_b: int, c: MonitorConfig) -> tuple[F64, F64]:
    """Location entropy (bits of dwell time per cell) over each hour's
    context window, and the share of that time in cells the baseline
    period never visited."""
    k = c.context_h
    nh = h_b - h_a
    win = (C["hour"] > h_a - k) & (C["hour"] < h_b)
    hr, cell, secs = C["hour"][win], C["cell"][win], C["secs"][win]
    off = np.arange(k)
    tgt = np.repeat(hr, k) + np.tile(off, hr.size)
    cel = np.repeat(cell, k)
    sec = np.repeat(secs, k)
    ok = (tgt >= h_a) & (tgt < h_b)
    tgt, cel, sec = tgt[ok] - h_a, cel[ok], sec[ok]
    order = np.lexsort((cel, tgt))
    tgt, cel, sec = tgt[order], cel[order], sec[order]
    if tgt.size:
        st = np.flatnonzero(np.r_[True, (tgt[1:] != tgt[:-1]) | (cel[1:] != cel[:-1])])
        g_t, g_c, g_s = tgt[st], cel[st], np.add.reduceat(sec, st).astype(np.float64)
    else:
        g_t, g_c, g_s = tgt, cel, sec.astype(np.float64)
    loc = _shannon_by_target(g_t, g_s, nh)
    # visited in the baseline period of the target's day?
    day = ((g_t + h_a) // 24) * 24
    lo, hi = day - c.lag_h - c.baseline_h, day - c.lag_h
    ukeys, inv = np.unique(C["cell"], return_inverse=True)
    base_h = C["hour"] - (C["hour"].min() if C["hour"].size else 0)
    key = inv.astype(np.int64) * (1 << 24) + base_h
    order2 = np.argsort(key, kind="stable")
    skey = key[order2]
    rank = np.searchsorted(ukeys, g_c)
    rank = np.clip(rank, 0, max(ukeys.size - 1, 0))
    known = ukeys.size > 0
    h0 = C["hour"].min() if C["hour"].size else 0
    q = rank.astype(np.int64) * (1 << 24) + (hi - 1 - h0)
    at = np.searchsorted(skey, q, side="right") - 1
    visited = np.zeros(g_t.size, dtype=bool)
    if known and g_t.size:
        valid = at >= 0
        hit_key = np.where(valid, skey[np.maximum(at, 0)], -1)
        same = valid & ((hit_key >> 24) == rank) & (ukeys[rank] == g_c)
        visited = same & ((hit_key & ((1 << 24) - 1)) + h0 >= lo)
    tot = np.bincount(g_t, weights=g_s, minlength=nh)
    new = np.bincount(g_t, weights=np.where(visited, 0.0, g_s), minlength=nh)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(tot > 0, new / tot, np.nan)
    return loc, share


def baseline(
    H: dict[str, np.ndarray], cells: dict[str, np.ndarray], lo: int, hi: int, home_days: int
) -> tuple[F64, F64, I64, I64, I64]:
    """Vehicle._baseline's numpy form before the core kernel: per column of
    the baseline block (the entropy features and km_24h), the median, MAD,
    count and history span over the rows of [lo, hi) with data, and the
    cells visited on at least ``home_days`` UTC days in [lo, hi)."""
    from autolien.monitor.engine import ENTROPY_FEATURES

    sel = (H["hour"] >= lo) & (H["hour"] < hi) & (H["n"] + H["n_odo"] > 0)
    names = (*ENTROPY_FEATURES, "km_24h")
    block = np.stack([H[f][sel] for f in names], axis=1)
    med, cnt = _col_median(block)
    mad, _ = _col_median(np.abs(block - med))
    span = _history_h(H["hour"][sel], block)
    cs = (cells["hour"] >= lo) & (cells["hour"] < hi)
    cell, dayn = cells["cell"][cs], cells["hour"][cs] // 24
    order = np.lexsort((dayn, cell))
    cell, dayn = cell[order], dayn[order]
    first = (
        np.r_[True, (cell[1:] != cell[:-1]) | (dayn[1:] != dayn[:-1])]
        if cell.size
        else cell.astype(bool)
    )
    uniq, days = np.unique(cell[first], return_counts=True)
    return med, mad, cnt, span, uniq[days >= home_days]


def _col_median(a: F64) -> tuple[F64, I64]:
    """Median of each column ignoring NaN (NaN where a column has none)."""
    cnt = (~np.isnan(a)).sum(axis=0)
    if a.shape[0] == 0:
        return np.full(a.shape[1], np.nan), cnt
    srt = np.sort(a, axis=0)  # NaN sorts last
    cols = np.arange(a.shape[1])
    lo = srt[np.maximum((cnt - 1) // 2, 0), cols]
    hi = srt[np.maximum(cnt // 2, 0), cols]
    return np.where(cnt > 0, (lo + hi) / 2, np.nan), cnt


def _history_h(hours: I64, block: F64) -> I64:
    """Per column: the elapsed history its values cover, in hours. Each UTC
    day with a value counts whole (24 h), except the first, which counts
    from its first hour with a value. A terminal that reports every few
    minutes around the clock gets the hours with data, as before; one that
    reports only while driving (a few hours a day, asleep while parked)
    gets the days it drove, so a week of driving is a week of history.
    Days without any value count nothing. (All columns in one pass: the
    days with a value are marked in a days x columns table.)"""
    valid = ~np.isnan(block)
    out = np.zeros(block.shape[1], dtype=np.int64)
    if not valid.any():
        return out
    days, inv = np.unique(hours // 24, return_inverse=True)
    seen = np.zeros((days.size, block.shape[1]), dtype=bool)
    r, col = np.nonzero(valid)
    seen[inv[r], col] = True
    n_days = seen.sum(axis=0)
    big = np.iinfo(np.int64).max
    first = np.where(valid, hours[:, None], big).min(axis=0)
    has = n_days > 0
    out[has] = 24 * n_days[has] - (first[has] - (first[has] // 24) * 24)
    return out


# -- the hourly scoring before cpp/src/monitor/score.cpp ------------------


def _trailing(a: np.ndarray, k: int, positions: I64) -> np.ndarray:
    """Sum of a[p-k+1 .. p] for each position, added in a fixed order so that
    a shorter stored history gives the same floating-point result.
    ``positions`` is a run of consecutive indices: each term is then a view."""
    out = np.zeros((positions.size, *a.shape[1:]), dtype=a.dtype)
    if not positions.size:
        return out
    lo, hi = int(positions[0]), int(positions[-1]) + 1
    if hi - lo != positions.size:
        raise ValueError("positions must be consecutive")
    for s in range(k):
        # rows p - s for p in [lo, hi); those before the history add nothing
        a0, a1 = lo - s, hi - s
        if a1 <= 0:
            break
        skip = max(0, -a0)
        out[skip:] += a[a0 + skip : a1]
    return out


def _trailing_all(
    H: dict[str, np.ndarray], names: tuple[str, ...], k: int, positions: I64
) -> dict[str, np.ndarray]:
    """``_trailing`` of several columns, those of one dtype side by side in
    one matrix: each element adds the same terms in the same order as alone."""
    out: dict[str, np.ndarray] = {}
    groups: dict[np.dtype[Any], list[str]] = {}
    for f in names:
        groups.setdefault(H[f].dtype, []).append(f)
    # only the rows the windows read go into the matrix (not the whole
    # history): the same terms, added in the same order
    lo = max(0, int(positions[0]) - k + 1) if positions.size else 0
    hi = int(positions[-1]) + 1 if positions.size else 0
    for fs in groups.values():
        rows = hi - lo
        mat = np.concatenate(
            [H[f][lo:hi].reshape(rows, math.prod(H[f].shape[1:])) for f in fs], axis=1
        )
        tr = _trailing(mat, k, positions - lo)
        at = 0
        for f in fs:
            w = math.prod(H[f].shape[1:])
            out[f] = tr[:, at : at + w].reshape(positions.size, *H[f].shape[1:])
            at += w
    return out


def window_features(H: dict[str, np.ndarray], pos: I64, k: int) -> dict[str, np.ndarray]:
    """Vehicle._score_hours' trailing-window features (and the fixes of each
    window, "n")."""
    both = _trailing_all(H, _SUMS + _HISTS, k, pos)
    sums = {f: both[f] for f in _SUMS}
    hists = {f: both[f] for f in _HISTS}
    feats: dict[str, np.ndarray] = {
        "n": sums["n"],
        "turn_entropy": shannon_counts(hists["turn_hist"]),
        "speed_entropy": shannon_counts(hists["speed_hist"]),
        "stop_entropy": shannon_counts(hists["stop_hist"]),
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        feats["night_share"] = np.where(
            sums["moving_s"] > 0, sums["night_s"] / sums["moving_s"], np.nan
        )
        km_track = sums["dist_km"]
        km_odo = np.where(sums["n_odo"] > 0, sums["odo_km"], np.nan)
        feats["km_track_24h"] = km_track
        feats["km_odo_24h"] = km_odo
        feats["km_24h"] = np.where(sums["n_odo"] >= 2, sums["odo_km"], km_track)
        per100 = np.where(km_track > 1.0, 100.0 / km_track, 0.0)
        speeding = np.where(sums["moving_s"] > 0, sums["speeding_s"] / sums["moving_s"], 0.0)
        feats["behaviour"] = np.where(
            sums["moving_s"] > 0,
            np.exp(
                -(
                    sums["harsh_accel"] * per100 / 10.0
                    + sums["harsh_brake"] * per100 / 5.0
                    + 2.0 * speeding
                )
            ),
            np.nan,
        )
    return feats


def mileage_flags(
    km: F64,
    track: F64,
    odo: F64,
    fixes: np.ndarray,
    earlier: F64,
    base: tuple[float, float, int],
    c: MonitorConfig,
) -> dict[str, np.ndarray]:
    """detectors/mileage.py's tests over one day's hours."""
    med, mad, cnt = base
    jump = np.zeros(km.size, dtype=bool)
    excess = km - med
    z = (
        excess / max(1.4826 * mad, c.mileage_mad_floor_km)
        if cnt >= c.min_baseline_h
        else excess * np.nan
    )
    with np.errstate(invalid="ignore"):
        if cnt >= c.min_baseline_h:
            jump = (excess * 30 >= c.mileage_warn_km_month) & (z >= c.mileage_z)
        more = jump.copy()
        if c.mileage_confirm_h and cnt >= c.min_baseline_h:
            jump &= (earlier - med) * 30 >= c.mileage_warn_km_month
        checked = (
            ~np.isnan(odo)
            & (fixes > 0)
            & ((track >= c.freeze_track_km) | (odo >= c.freeze_track_km))
        )
        frozen = checked & (odo < c.rollback_km)
        ratio = np.where(checked & ~frozen, odo / np.where(track > 0, track, 1.0), 1.0)
        mismatch = checked & ~frozen & ((ratio < c.mismatch_low) | (ratio > c.mismatch_high))
    return {
        "excess": excess,
        "z": z,
        "ratio": ratio,
        "jump": jump,
        "more": more,
        "frozen": frozen,
        "mismatch": mismatch,
    }


ENTROPY_PLACE = ("location_entropy", "new_place_share")


def entropy_scores(
    feats: dict[str, F64],
    base: dict[str, tuple[float, float, int]],
    t_end: F64,
    jump: npt.NDArray[np.bool_],
    away: F64,
    state: list[float],
    c: MonitorConfig,
) -> dict[str, np.ndarray]:
    """detectors/entropy.py's z-scores, explained features, score and both
    CUSUM charts over one day's hours; ``state`` is [cusum, cusum_since,
    mileage_flag_t, slow, slow_since], updated in place."""
    from autolien.monitor.engine import ENTROPY_FEATURES

    place = [ENTROPY_FEATURES.index(f) for f in ENTROPY_PLACE]
    driving = [i for i in range(len(ENTROPY_FEATURES)) if i not in place]
    n = t_end.size
    explained = np.zeros((n, len(ENTROPY_FEATURES)), dtype=bool)
    hold = c.close_after_h * HOUR
    if n:
        flag = np.maximum(np.maximum.accumulate(np.where(jump, t_end, -np.inf)), state[2])
        state[2] = float(flag[-1])
        explained[:, driving] = (t_end - flag < hold)[:, None]
    with np.errstate(invalid="ignore"):
        far = np.nan_to_num(away, nan=0.0) >= c.away_km
    explained[:, place] |= far[:, None]
    z = np.full((n, len(ENTROPY_FEATURES)), np.nan)
    for i, f in enumerate(ENTROPY_FEATURES):
        med, mad, cnt = base.get(f, (np.nan, np.nan, 0))
        if cnt < c.min_baseline_h:
            continue
        floor = {"new_place_share": c.share_z_floor, "stop_entropy": c.stop_z_floor}.get(
            f, c.entropy_z_floor
        )
        z[:, i] = (feats[f] - med) / max(1.4826 * mad, floor)
    zs_all = z.copy()
    z[explained] = np.nan
    valid = (~np.isnan(z)).sum(axis=1)
    top = -np.sort(-np.where(np.isnan(z), -np.inf, np.clip(z, 0.0, 10.0)), axis=1)[:, :2]
    with np.errstate(invalid="ignore"):
        sc = np.where(
            valid >= 2, (top[:, 0] + top[:, 1]) / 2, np.where(valid == 1, top[:, 0], np.nan)
        )
    charts = {"cusum": (0, 1, c.cusum_k, c.cusum_h), "slow": (3, 4, c.cusum_slow_k, c.cusum_slow_h)}
    out: dict[str, np.ndarray] = {"z": zs_all, "explained": explained, "score": sc}
    for name, (at, at_since, k, h) in charts.items():
        cus = np.zeros(n)
        since = np.zeros(n)
        for i in range(n):
            if h <= 0:
                pass  # no such chart: its state stays as it was
            elif np.isnan(sc[i]):
                state[at] = max(0.0, state[at] - k)
            else:
                was = state[at]
                state[at] = min(max(0.0, state[at] + float(sc[i]) - k), 3 * h)
                if was == 0.0 and state[at] > 0.0:
                    state[at_since] = float(t_end[i]) - HOUR
            cus[i] = state[at]
            since[i] = state[at_since]
        out[name] = cus
        out["since" if name == "cusum" else "slow_since"] = since
    return out


def relocation_flags(
    away_hist: F64, pos: I64, streak: int, c: MonitorConfig
) -> tuple[I64, I64, I64, int]:
    """detectors/relocation.py's away counts, streaks and levels (-1: no
    signal) of the history rows ``pos`` (one day's hours) of a vehicle's
    away_km history."""
    flag = np.nan_to_num(away_hist, nan=0.0) >= c.away_km
    cs = np.r_[0, np.cumsum(flag)]
    n_away = cs[pos + 1] - cs[np.maximum(pos + 1 - c.context_h, 0)]
    streaks = np.zeros(pos.size, dtype=np.int64)
    level = np.full(pos.size, -1, dtype=np.int64)
    for i in range(pos.size):
        is_away = bool(flag[pos[i]])
        streak = streak + 1 if is_away else 0
        streaks[i] = streak
        if is_away and n_away[i] >= c.away_hours:
            level[i] = 2 if streak >= c.away_emergency_h else 1
    return n_away, streaks, level, streak


def heading_entropy(d: Derived, h_a: int, h_b: int, context_h: int) -> F64:
    """Normalised permutation entropy (order 3) of the turn series over the
    context window ending at each hour's last fix."""
    nh = h_b - h_a
    out = np.full(nh, np.nan)
    if d.t.size < 3:
        return out
    span = float(context_h * HOUR)
    pe = rolling_perm_entropy(d.turn, span, order=3, delay=1, normalize=True, times=d.t)
    hs = np.floor(d.t / HOUR).astype(np.int64)
    sel = np.flatnonzero((hs >= h_a) & (hs < h_b))
    if sel.size:
        hh = hs[sel] - h_a
        ends = np.flatnonzero(np.r_[hh[1:] != hh[:-1], True])
        out[hh[ends]] = pe[sel[ends]]
    return out


def score_hours(
    H: dict[str, np.ndarray],
    C: dict[str, np.ndarray],
    first: int,
    heading: F64,
    state: dict[str, float],
    c: MonitorConfig,
) -> dict[str, np.ndarray]:
    """Vehicle._score_hours as it was before the block kernel (commit
    e947b73), one vehicle in numpy with the reference forms above: the new
    history rows [first, rows) of ``H`` (every hourly column, and the scored
    feature columns of the rows before) with the dwell table ``C``, day by
    day. ``state`` (``STATE_KEYS`` and away_streak) is updated in place. Returns per new
    row the features, the day's baseline (median, MAD, n), away, the
    confirming window's km and each detector's arithmetic."""
    from autolien.gnss import nearest_distance_m
    from autolien.monitor.engine import ENTROPY_FEATURES
    from autolien.monitor.features import cell_centers

    names = (*ENTROPY_FEATURES, "km_24h")
    H = {k: v.copy() for k, v in H.items()}
    rows = H["hour"].size
    pos = np.arange(first, rows)
    nh = pos.size
    h_a = int(H["hour"][first])
    h_b = h_a + nh
    w = window_features(H, pos, c.context_h)
    loc, share = location(C, h_a, h_b, c)
    feats = {
        "turn_entropy": w["turn_entropy"],
        "heading_entropy": heading,
        "speed_entropy": w["speed_entropy"],
        "location_entropy": loc,
        "stop_entropy": w["stop_entropy"],
        "new_place_share": share,
        "km_24h": w["km_24h"],
    }
    for f, v in feats.items():
        H[f][pos] = v
    out: dict[str, np.ndarray] = {
        "fixes": w["n"],
        "km_track_24h": w["km_track_24h"],
        "km_odo_24h": w["km_odo_24h"],
        "km_24h": w["km_24h"],
        "away_km": np.full(nh, np.nan),
        "earlier": np.full(nh, np.nan),
        "t_end": (np.arange(h_a, h_b, dtype=np.float64) + 1) * HOUR,
        "base_median": np.full((nh, 7), np.nan),
        "base_mad": np.full((nh, 7), np.nan),
        "base_n": np.zeros((nh, 7), dtype=np.int64),
    }
    parts: dict[str, list[np.ndarray]] = {}
    ent = [state[k] for k in STATE_KEYS[:5]]
    j = 0
    while j < nh:
        day = ((h_a + j) // 24) * 24
        je = min(nh, day + 24 - h_a)
        sl = slice(j, je)
        med, mad, cnt, span, cells = baseline(
            H, C, day - c.lag_h - c.baseline_h, day - c.lag_h, c.home_days
        )
        n = np.where(cnt >= c.min_baseline_samples, span, 0)
        out["base_median"][sl] = med
        out["base_mad"][sl] = mad
        out["base_n"][sl] = n
        base = {f: (float(med[i]), float(mad[i]), int(n[i])) for i, f in enumerate(names)}
        blat, blon = cell_centers(cells, c.cell_m)
        # hours without a fix: where the vehicle was last seen
        lat, lon = H["last_lat"][pos[sl]].copy(), H["last_lon"][pos[sl]].copy()
        for i in range(lat.size):
            if np.isnan(lat[i]):
                lat[i], lon[i] = state["lat"], state["lon"]
            else:
                state["lat"], state["lon"] = float(lat[i]), float(lon[i])
        if blat.size:
            d = nearest_distance_m(lat, lon, blat, blon) / 1e3
            out["away_km"][sl] = np.where(np.isnan(lat), np.nan, d)
        H["away_km"][pos[sl]] = out["away_km"][sl]
        for i in range(j, je):
            back = [pos[i] - lag for lag in range(c.mileage_confirm_h, 2 * c.mileage_confirm_h)]
            vals = [H["km_24h"][b] for b in back if b >= 0 and not np.isnan(H["km_24h"][b])]
            out["earlier"][i] = max(vals) if vals else np.nan
        m = mileage_flags(
            w["km_24h"][sl],
            w["km_track_24h"][sl],
            w["km_odo_24h"][sl],
            w["n"][sl].astype(np.float64),
            out["earlier"][sl],
            base["km_24h"],
            c,
        )
        e = entropy_scores(
            {f: feats[f][sl] for f in ENTROPY_FEATURES},
            base,
            out["t_end"][sl],
            m["more"],
            out["away_km"][sl],
            ent,
            c,
        )
        n_away, streak, level, state["away_streak"] = relocation_flags(
            H["away_km"], pos[sl], int(state["away_streak"]), c
        )
        for k, v in {
            **{f"mileage_{k}" if k == "z" else k: v for k, v in m.items()},
            **e,
            "n_away": n_away,
            "streak": streak,
            "level": level,
        }.items():
            parts.setdefault(k, []).append(v)
        j = je
    for k, v in parts.items():
        out[k] = np.concatenate(v)
    out.update({f: feats[f] for f in ("turn_entropy", "speed_entropy", "stop_entropy")})
    out["location_entropy"], out["new_place_share"] = loc, share
    out["night_share"] = w["night_share"]
    state.update(zip(STATE_KEYS[:5], ent, strict=True))
    return out


# --- random vehicles for the block scoring kernel (tests and bench) -------

# a vehicle's scoring state, as score_hours keeps it and the kernel returns
# it (``end_<key>``), beside its away streak
STATE_KEYS = (
    "cusum",
    "cusum_since",
    "mileage_flag_t",
    "cusum_slow",
    "cusum_slow_since",
    "lat",
    "lon",
)


def random_history(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
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


def random_vehicle(
    rng: np.random.Generator, rows: int, nh: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]:
    """One vehicle's history as the block kernel reads it: hourly rows with
    positions (hours without a fix NaN; some far from home), the scored
    columns of the rows before the new ``nh`` (some NaN), a dwell table of a
    few familiar cells and some new ones, and a detector state."""
    H = random_history(rng, rows)
    h0 = int(rng.integers(480_000, 480_024)) + 24 * int(rng.integers(0, 3))
    H["hour"] = np.arange(h0, h0 + rows, dtype=np.int64)
    home = np.array([31.23, 121.47]) + rng.normal(0, 0.05, 2)
    far = rng.random(rows) < (0.5 if rng.random() < 0.3 else 0.02)
    lat = home[0] + rng.normal(0, 0.03, rows) + np.where(far, 0.9, 0.0)
    lon = home[1] + rng.normal(0, 0.03, rows)
    none = H["n"] == 0
    H["last_lat"] = np.where(none, np.nan, lat)
    H["last_lon"] = np.where(none, np.nan, lon)
    old = np.arange(rows) < rows - nh
    for f in ENTROPY_FEATURES:
        v = rng.uniform(0, 1 if f == "new_place_share" else 3, rows)
        H[f] = np.where(old & (rng.random(rows) > 0.1), v, np.nan)
    H["km_24h"] = np.where(old, rng.exponential(40.0, rows) * rng.choice([1.0, 4.0], rows), np.nan)
    H["away_km"] = np.where(old, np.where(far, 95.0, rng.uniform(0, 5, rows)), np.nan)
    # dwell: the hour's cell, and a second one now and then
    cells = cell_ids(np.where(none, home[0], lat), np.where(none, home[1], lon), 1000.0)
    extra = rng.random(rows) < 0.3
    C = {
        "hour": np.r_[H["hour"], H["hour"][extra]],
        "cell": np.r_[cells, cells[extra] + 1],
        "secs": np.r_[rng.integers(1, 3600, rows), rng.integers(0, 600, int(extra.sum()))],
    }
    order = np.lexsort((C["cell"], C["hour"]))
    C = {k: v[order].astype(np.int64) for k, v in C.items()}
    state = {
        "cusum": float(rng.choice([0.0, rng.uniform(0, 30), 70.0])),
        "cusum_since": float(rng.choice([np.nan, (h0 - 5) * HOUR])),
        "mileage_flag_t": float(rng.choice([-np.inf, (h0 + rows - nh - 3) * HOUR])),
        "cusum_slow": float(rng.choice([0.0, rng.uniform(0, 80)])),
        "cusum_slow_since": float(rng.choice([np.nan, (h0 - 9) * HOUR])),
        "lat": float(rng.choice([np.nan, home[0]])),
        "lon": float(home[1]),
        "away_streak": int(rng.integers(0, 80)),
    }
    return H, C, state


def block_columns(
    vs: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, float]]],
    first: list[int],
    headings: list[F64],
    c: MonitorConfig,
) -> dict[str, np.ndarray]:
    """The columns of ``_core.monitor_score_block`` for vehicles ``vs``
    (history, dwell table, state), each new from row ``first[i]``."""
    from autolien.monitor.detectors.entropy import _PLACE_MASK, _floor
    from autolien.monitor.engine import ENTROPY_FEATURES

    scored = (*ENTROPY_FEATURES, "km_24h", "away_km")
    cols: dict[str, np.ndarray] = {
        "row_offsets": np.r_[0, np.cumsum([H["hour"].size for H, _, _ in vs])].astype(np.int64),
        "first": np.array(first, dtype=np.int64),
        "cell_offsets": np.r_[0, np.cumsum([C["hour"].size for _, C, _ in vs])].astype(np.int64),
        "scored": np.ascontiguousarray(
            np.column_stack([np.concatenate([H[f] for H, _, _ in vs]) for f in scored])
        ),
        "heading": np.concatenate(headings).astype(np.float64),
        "away_streak": np.array([s["away_streak"] for _, _, s in vs], dtype=np.int64),
        "z_floor": np.array([_floor(c, f) for f in ENTROPY_FEATURES]),
        "place": _PLACE_MASK,
    }
    ints = (
        "hour",
        "n",
        "n_odo",
        "harsh_accel",
        "harsh_brake",
        "speed_hist",
        "turn_hist",
        "stop_hist",
    )
    for k in ints:
        cols[k] = np.concatenate([H[k] for H, _, _ in vs]).astype(np.int64)
    for k in ("dist_km", "moving_s", "night_s", "speeding_s", "odo_km", "last_lat", "last_lon"):
        cols[k] = np.concatenate([H[k] for H, _, _ in vs]).astype(np.float64)
    for k, src in (("cell_hour", "hour"), ("cell", "cell"), ("cell_secs", "secs")):
        cols[k] = np.concatenate([C[src] for _, C, _ in vs]).astype(np.int64)
    names = dict(zip(STATE_KEYS, (*STATE_KEYS[:5], "last_lat0", "last_lon0"), strict=True))
    for k, name in names.items():
        cols[name] = np.array([s[k] for _, _, s in vs], dtype=np.float64)
    return cols
