"""One vehicle's monitoring state: a bounded buffer of recent rows, hourly
history for the baselines, detector state and its alerts. ``advance`` takes
new rows and the fleet clock and returns the alert changes; batch scoring is
one ``advance`` over everything, streaming is many."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _core
from .config import MonitorConfig
from .features import (
    F64,
    HOUR,
    I64,
    cell_centers,
    derive,
    haversine_m,
    hourly,
    shannon_groups,
    shannon_rows,
)

__all__ = ["ENTROPY_FEATURES", "HOURLY_FEATURES", "KIND_CAP", "Vehicle"]

ENTROPY_FEATURES = (
    "turn_entropy",
    "heading_entropy",
    "speed_entropy",
    "location_entropy",
    "stop_entropy",
    "new_place_share",
)
HOURLY_FEATURES = (
    *ENTROPY_FEATURES,
    "night_share",
    "km_track_24h",
    "km_odo_24h",
    "km_24h",
    "behaviour",
    "away_km",
    "score",
    "cusum",
)
# The highest level persistence can raise each kind to (docs/monitor.md).
KIND_CAP = {
    "entropy_increase": 1,
    "mileage_jump": 1,
    "odometer_mismatch": 1,
    # a jump is an event, not a state: repeated jumps never escalate by
    # persistence (only a jump of jump_alert_m or more is an alert)
    "position_jump": 0,
    "towing": 2,
    "odometer_freeze": 2,
    "odometer_rollback": 2,
    "relocation": 2,
    "device_silence": 2,
    "vin_change": 2,
}
_EXPLAINS_ENTROPY = ("towing", "relocation")
_PLACE = [ENTROPY_FEATURES.index("location_entropy"), ENTROPY_FEATURES.index("new_place_share")]
# what driving more explains: other roads, other speeds, more stops
_DRIVING = [i for i in range(len(ENTROPY_FEATURES)) if i not in _PLACE]
_SUMS = (
    "n",
    "dist_km",
    "moving_s",
    "night_s",
    "speeding_s",
    "harsh_accel",
    "harsh_brake",
    "odo_km",
    "n_odo",
)
_HISTS = ("speed_hist", "turn_hist", "stop_hist")


@dataclass
class Signal:
    time: float
    kind: str
    level: int
    score: float
    evidence: dict[str, Any]
    segment: tuple[float, float]
    path: Any = None  # callable -> (t, lat, lon), evaluated only when an alert opens or escalates


@dataclass
class Alert:
    vehicle_id: str
    kind: str
    level: int
    score: float
    opened: float
    updated: float
    last_signal: float
    first_signal: float
    base_level: int = 0
    n_signals: int = 1
    closed: float | None = None
    segment: tuple[float, float] = (math.nan, math.nan)
    evidence: dict[str, Any] = field(default_factory=dict)
    path: tuple[F64, F64, F64] | None = None

    def evidence_json(self) -> str:
        return json.dumps(self.evidence, sort_keys=True, default=float)

    @property
    def alert_id(self) -> str:
        return f"{self.vehicle_id}:{self.kind}:{round(self.opened * 1e6)}"


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _take(a: dict[str, np.ndarray], sel: Any) -> dict[str, np.ndarray]:
    return {k: v[sel] for k, v in a.items()}


def _empty_track() -> dict[str, np.ndarray]:
    return {k: np.zeros(0) for k in ("t", "lat", "lon", "speed", "ignition")}


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
    Days without any value count nothing."""
    out = np.zeros(block.shape[1], dtype=np.int64)
    for j in range(block.shape[1]):
        h = hours[~np.isnan(block[:, j])]
        if not h.size:
            continue
        days = np.unique(h // 24)
        out[j] = 24 * days.size - int(h.min() - (h.min() // 24) * 24)
    return out


class Vehicle:
    # a class default too, so that a state pickled before it existed loads
    mileage_flag_t = -math.inf  # end of the last hour whose mileage was a jump's

    def __init__(self, vehicle_id: str, cfg: MonitorConfig) -> None:
        self.id = vehicle_id
        self.cfg = cfg
        self.h_done: int | None = None  # hours before this one are scored
        self.raw = _empty_track()
        self.run_carry = math.nan
        self.odo = {"t": np.zeros(0), "km": np.zeros(0)}
        self.vins: list[tuple[float, str]] = []
        self.last_vin: str | None = None
        self.hist: dict[str, np.ndarray] = {}
        self.cells = {
            "hour": np.zeros(0, np.int64),
            "cell": np.zeros(0, np.int64),
            "secs": np.zeros(0, np.int64),
        }
        self.cusum = 0.0
        self.cusum_since = math.nan
        self.mileage_flag_t = -math.inf
        self.away_streak = 0
        self.baseline_day: int | None = None
        self.base: dict[str, tuple[float, float, int]] = {}
        self.base_cells: tuple[F64, F64] = (np.zeros(0), np.zeros(0))
        self.last_seen: float | None = None
        self.silence_from: float | None = None
        self.silence_sent = 0
        self.gaps: list[tuple[float, float]] = []  # (end, length) of learnt silences
        self.place_change = math.inf  # when the last towing or relocation alert opened
        self.last_pos = (math.nan, math.nan)  # the last fix of the hours scored so far
        self.open: dict[str, Alert] = {}
        self.closed: list[Alert] = []
        self.feature_rows: list[dict[str, np.ndarray]] = []

    # -- input -----------------------------------------------------------
    def first_time(self) -> float | None:
        ts = [x for x in (self.raw["t"][:1], self.odo["t"][:1]) if x.size]
        ts += [np.array([self.vins[0][0]])] if self.vins else []
        return float(min(float(x[0]) for x in ts)) if ts else None

    def add(
        self,
        track: dict[str, np.ndarray] | None,
        odo: dict[str, np.ndarray] | None,
        vins: list[tuple[float, str]] | None,
    ) -> list[Signal]:
        """Buffers new rows; returns the silence signals their times settle."""
        times = []
        if track is not None and track["t"].size:
            merged = _concat(self.raw, track)
            order = np.argsort(merged["t"], kind="stable")
            self.raw = _take(merged, order)
            times.append(track["t"])
        if odo is not None and odo["t"].size:
            merged = _concat(self.odo, odo)
            self.odo = _take(merged, np.argsort(merged["t"], kind="stable"))
            times.append(odo["t"])
        if vins:
            self.vins = sorted(self.vins + vins, key=lambda v: v[0])
            times.append(np.array([v[0] for v in vins]))
        if self.h_done is None:
            first = self.first_time()
            if first is not None:
                self.h_done = math.floor(first / HOUR)
        if not times:
            return []
        return self._silence_gaps(np.sort(np.concatenate(times)))

    # -- device silence ----------------------------------------------------
    def _silence_levels(self, at: float) -> list[float]:
        """Warning, alert and emergency thresholds (s) for a silence that
        begins at ``at``. A vehicle that habitually goes quiet for long (a
        taxi's off-shift, a car parked overnight with its terminal asleep)
        has its ladder moved up: the warning waits ``silence_margin`` times
        the 90th percentile of its learnt gaps in the baseline period, and
        alert and emergency keep their distance above it."""
        c = self.cfg
        w, a, e = c.silence_warning_h * HOUR, c.silence_alert_h * HOUR, c.silence_emergency_h * HOUR
        recent = [g for end, g in self.gaps if at - c.baseline_h * HOUR < end <= at]
        if len(recent) >= c.silence_learn_gaps:
            habit = float(np.quantile(np.array(recent), 0.9, method="lower"))
            w2 = max(w, c.silence_margin * habit)
            a2 = max(a, w2 + (a - w))
            return [w2, a2, max(e, a2 + (e - a))]
        return [w, a, e]

    def _silence_gaps(self, times: F64) -> list[Signal]:
        out: list[Signal] = []
        c = self.cfg
        if self.last_seen is None:
            self.last_seen = float(times[0])
        times = times[times > self.last_seen]
        if times.size == 0:
            return out
        # only gaps worth learning (or signalling) need a look
        prev = np.r_[self.last_seen, times[:-1]]
        big = np.flatnonzero(times - prev >= c.silence_learn_min_h * HOUR)
        if self.silence_sent:  # a silence already signalled ends at the next row
            big = np.union1d([0], big)
        for i in big:
            gap_start = float(prev[i])
            self.last_seen = gap_start
            t = float(times[i])
            thr = self._silence_levels(gap_start)
            for lvl in range(self.silence_sent, 3):
                if gap_start + thr[lvl] < t:
                    out.append(self._silence_signal(gap_start, lvl, thr))
                    self.silence_sent = lvl + 1
            if self.silence_sent:
                out.append(
                    Signal(
                        t, "device_silence", -1, t - gap_start, {"resumed": True}, (gap_start, t)
                    )
                )
            self.silence_sent = 0
            if t - gap_start >= c.silence_learn_min_h * HOUR:
                # gaps that can no longer fall in a baseline period are dropped
                self.gaps = [g for g in self.gaps if g[0] > t - c.baseline_h * HOUR]
                self.gaps.append((t, t - gap_start))
        self.last_seen = float(times[-1])
        return out

    def _silence_signal(self, gap_start: float, lvl: int, thr: list[float]) -> Signal:
        at = gap_start + thr[lvl]
        lat, lon = self._last_position(gap_start)
        return Signal(
            at,
            "device_silence",
            lvl,
            at - gap_start,
            {
                "silent_since": gap_start,
                "silent_h": (at - gap_start) / HOUR,
                "threshold_h": thr[lvl] / HOUR,
                "last_lat": lat,
                "last_lon": lon,
            },
            (gap_start, at),
        )

    def silence_until(self, now: float) -> list[Signal]:
        if self.last_seen is None:
            return []
        out = []
        thr = self._silence_levels(self.last_seen)
        for lvl in range(self.silence_sent, 3):
            if self.last_seen + thr[lvl] <= now:
                out.append(self._silence_signal(self.last_seen, lvl, thr))
                self.silence_sent = lvl + 1
        return out

    def _last_position(self, at: float) -> tuple[float, float]:
        # trimming always keeps the last two fixes, so this one is still here
        lat = self.raw["lat"]
        ok = np.flatnonzero(~np.isnan(lat) & (self.raw["t"] <= at))
        return (
            (float(lat[ok[-1]]), float(self.raw["lon"][ok[-1]]))
            if ok.size
            else (math.nan, math.nan)
        )

    # -- hourly scoring ----------------------------------------------------
    def advance(self, h_end: int) -> list[Signal]:
        """Scores the hours [h_done, h_end); returns their signals in time order."""
        if self.h_done is None or h_end <= self.h_done:
            return []
        c = self.cfg
        h_a, h_b = self.h_done, h_end
        r = self.raw
        d = derive(r["t"], r["lat"], r["lon"], r["speed"], self.run_carry, c)
        rows = hourly(d, h_a, h_b)
        odo_steps = self._odometer(rows, h_a, h_b)
        signals = self._jumps_and_rollbacks(d, odo_steps, h_a, h_b)
        signals += self._towing(d, h_a, h_b)
        signals += self._vin_changes(h_a, h_b)
        self._append_history(rows, d, h_a, h_b)
        signals += self._score_hours(h_a, h_b)
        self._trim(d, h_b)
        self.h_done = h_b
        signals.sort(key=lambda s: s.time)
        return signals

    def _odometer(self, rows: dict[str, np.ndarray], h_a: int, h_b: int) -> tuple[np.ndarray, ...]:
        """Adds the hourly odometer sums to ``rows``; returns (time, km, step,
        hour) of every buffered reading for the rollback check."""
        t, km = self.odo["t"], self.odo["km"]
        nh = h_b - h_a
        hs = np.floor(t / HOUR).astype(np.int64)
        step = np.zeros(t.size)
        gap = np.zeros(t.size)
        if t.size > 1:
            step[1:] = np.diff(km)
            gap[1:] = np.diff(t)
        sel = (hs >= h_a) & (hs < h_b)
        sel[:1] = False  # the first reading has no step
        # distance across a silence was not driven in this hour: not counted
        sel &= gap <= self.cfg.silence_warning_h * HOUR
        idx = hs[sel] - h_a
        rows["odo_km"] = np.bincount(idx, weights=np.maximum(step[sel], 0.0), minlength=nh)
        cnt = (hs >= h_a) & (hs < h_b)
        rows["n_odo"] = np.bincount(hs[cnt] - h_a, minlength=nh).astype(np.int64)
        return t, km, step, hs

    def _jumps_and_rollbacks(
        self, d: Any, odo_steps: tuple[np.ndarray, ...], h_a: int, h_b: int
    ) -> list[Signal]:
        c = self.cfg
        out: list[Signal] = []
        hs = np.floor(d.t / HOUR).astype(np.int64)
        for i, at in self._confirmed_jumps(d, hs, h_a, h_b):
            lvl = 1 if d.jump_m[i] >= c.jump_alert_m else 0
            ev = {
                "from": [float(d.lat[i - 1]), float(d.lon[i - 1])],
                "to": [float(d.lat[i]), float(d.lon[i])],
                "distance_m": float(d.jump_m[i]),
                "gap_s": float(d.t[i] - d.t[i - 1]),
                "confirmed_by_fixes": c.jump_confirm_fixes,
            }
            seg = (float(d.t[i - 1]), float(d.t[i]))
            out.append(
                Signal(
                    float(d.t[at]),
                    "position_jump",
                    lvl,
                    float(d.jump_m[i]),
                    ev,
                    seg,
                    self._path_fn(seg),
                )
            )
        t, km, step, ohs = odo_steps
        for r in np.flatnonzero((step < -c.rollback_km) & (ohs >= h_a) & (ohs < h_b)):
            ev = {
                "before_km": float(km[r - 1]),
                "after_km": float(km[r]),
                "rollback_km": float(-step[r]),
            }
            out.append(
                Signal(
                    float(t[r]),
                    "odometer_rollback",
                    2,
                    float(-step[r]),
                    ev,
                    (float(t[r - 1]), float(t[r])),
                )
            )
        return out

    def _confirmed_jumps(self, d: Any, hs: I64, h_a: int, h_b: int) -> list[tuple[int, int]]:
        """(jump fix, confirming fix) of the jumps confirmed in hours [h_a, h_b).

        A single bad fix that lies far away and comes straight back is a GPS
        glitch, not a move. A jump at fix i is confirmed by fix i + K
        (K = ``jump_confirm_fixes``) when none of fixes i+1 .. i+K is back
        within ``jump_min_m`` of fix i-1; the step that comes back from a
        glitch (fix j back near the fix before a jump among j-K .. j-1) is no
        jump either. Both tests read only fixes i-K-1 .. i+K, which the
        buffer keeps (``_trim``), so streaming decides as batch does."""
        k = self.cfg.jump_confirm_fixes
        lim = self.cfg.jump_min_m
        n = d.t.size
        out = []
        for j in np.flatnonzero(d.jump):
            i = int(j)
            at = i + k
            if at >= n or not h_a <= hs[at] < h_b:
                continue
            ahead = slice(i + 1, at + 1)
            if (haversine_m(d.lat[i - 1], d.lon[i - 1], d.lat[ahead], d.lon[ahead]) < lim).any():
                continue  # out and back: a glitch
            before = np.arange(max(1, i - k), i)
            before = before[d.jump[before]]
            if (
                before.size
                and (
                    haversine_m(d.lat[before - 1], d.lon[before - 1], d.lat[i], d.lon[i]) < lim
                ).any()
            ):
                continue  # the return from a glitch
            out.append((i, at))
        return out

    def _towing(self, d: Any, h_a: int, h_b: int) -> list[Signal]:
        """Moves with the ignition off: a run of moving steps between fixes
        that both report the ACC bit off signals once, at the fix where it
        first lies ``tow_min_m`` from where it started (unknown ignition is
        never off). Evidence stops at that fix, so a run split across
        updates signals the same. A run over which the odometer advanced at
        least half the distance was driven: a terminal whose ACC line is not
        wired reports it off all the time, and that is not a tow."""
        off = self.raw["ignition"] == 0
        n = d.t.size
        if n < 2 or not off.any():
            return []
        step = np.zeros(n, bool)
        step[1:] = off[1:] & off[:-1] & d.moving[1:] & ~d.jump[1:]
        idx = np.flatnonzero(step)
        if not idx.size:
            return []
        hs = np.floor(d.t / HOUR)
        out: list[Signal] = []
        for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
            a = int(run[0]) - 1  # the fix the run leaves from
            disp = haversine_m(d.lat[a], d.lon[a], d.lat[run], d.lon[run])
            hit = np.flatnonzero(disp >= self.cfg.tow_min_m)
            if not hit.size:
                continue
            j = int(run[hit[0]])
            if not h_a <= hs[j] < h_b:
                continue
            ot, okm = self.odo["t"], self.odo["km"]
            i0 = int(np.searchsorted(ot, d.t[a], side="left"))
            i1 = int(np.searchsorted(ot, d.t[j], side="right")) - 1
            odo_km = float(okm[i1] - okm[i0]) if i1 > i0 else math.nan
            if odo_km >= 0.5 * disp[hit[0]] / 1000.0:
                continue
            ev = {
                "from": [float(d.lat[a]), float(d.lon[a])],
                "to": [float(d.lat[j]), float(d.lon[j])],
                "distance_m": float(disp[hit[0]]),
                "duration_s": float(d.t[j] - d.t[a]),
                "fixes": int(hit[0]) + 2,
                "max_speed_kmh": float(np.max(d.speed[a + 1 : j + 1])),
                "odometer_km": None if math.isnan(odo_km) else odo_km,
            }
            seg = (float(d.t[a]), float(d.t[j]))
            out.append(
                Signal(float(d.t[j]), "towing", 1, float(disp[hit[0]]), ev, seg, self._path_fn(seg))
            )
        return out

    def _vin_changes(self, h_a: int, h_b: int) -> list[Signal]:
        out = []
        keep = []
        for t, vin in self.vins:
            h = math.floor(t / HOUR)
            if h >= h_b:
                keep.append((t, vin))
                continue
            if h < h_a:
                continue
            if self.last_vin is not None and vin != self.last_vin:
                out.append(
                    Signal(
                        t, "vin_change", 2, 1.0, {"previous_vin": self.last_vin, "vin": vin}, (t, t)
                    )
                )
            self.last_vin = vin
        self.vins = keep
        return out

    def _append_history(self, rows: dict[str, np.ndarray], d: Any, h_a: int, h_b: int) -> None:
        # cell dwell seconds per (hour, cell) of the new hours
        hs = np.floor(d.t / HOUR).astype(np.int64)
        sel = (hs >= h_a) & (hs < h_b)
        key_h, key_c, w = hs[sel], d.cells[sel], d.dwell_s[sel]
        if key_h.size:
            order = np.lexsort((key_c, key_h))
            key_h, key_c, w = key_h[order], key_c[order], w[order]
            starts = np.flatnonzero(
                np.r_[True, (key_h[1:] != key_h[:-1]) | (key_c[1:] != key_c[:-1])]
            )
            new = {"hour": key_h[starts], "cell": key_c[starts], "secs": np.add.reduceat(w, starts)}
            self.cells = _concat(self.cells, new)
        if not self.hist:
            self.hist = {k: v[:0] for k, v in rows.items()}
            for f in HOURLY_FEATURES:
                self.hist[f] = np.zeros(0)
        for f in HOURLY_FEATURES:
            rows[f] = np.full(h_b - h_a, np.nan)
        self.hist = _concat(self.hist, rows)
        self._heading = self._heading_entropy(d, h_a, h_b)

    def _heading_entropy(self, d: Any, h_a: int, h_b: int) -> F64:
        """Normalised permutation entropy (order 3) of the turn series over the
        context window ending at each hour's last fix."""
        nh = h_b - h_a
        out = np.full(nh, np.nan)
        if d.t.size < 3:
            return out
        one = np.array([0, d.t.size], dtype=np.int64)
        span = float(self.cfg.context_h * HOUR)
        pe = _core.entropy_rolling(
            np.ascontiguousarray(d.turn),
            np.ascontiguousarray(d.t),
            one,
            0,
            span,
            3,
            1,
            True,
            np.zeros(0),
        )
        hs = np.floor(d.t / HOUR).astype(np.int64)
        sel = np.flatnonzero((hs >= h_a) & (hs < h_b))
        if sel.size:
            hh = hs[sel] - h_a
            ends = np.flatnonzero(np.r_[hh[1:] != hh[:-1], True])
            out[hh[ends]] = pe[sel[ends]]
        return out

    def _baseline(self, day: int) -> None:
        """Median/MAD of each scored feature, and the visited cells, over the
        baseline period before `day` (hours), computed once per day."""
        c = self.cfg
        if self.baseline_day == day:
            return
        self.baseline_day = day
        lo, hi = day - c.lag_h - c.baseline_h, day - c.lag_h
        H = self.hist
        sel = (H["hour"] >= lo) & (H["hour"] < hi) & (H["n"] + H["n_odo"] > 0)
        names = (*ENTROPY_FEATURES, "km_24h")
        block = np.stack([H[f][sel] for f in names], axis=1)
        med, cnt = _col_median(block)
        mad, _ = _col_median(np.abs(block - med))
        span = _history_h(H["hour"][sel], block)
        self.base = {
            f: (
                float(med[i]),
                float(mad[i]),
                int(span[i]) if cnt[i] >= c.min_baseline_samples else 0,
            )
            for i, f in enumerate(names)
        }
        # the familiar area: cells visited on at least home_days distinct days
        cs = (self.cells["hour"] >= lo) & (self.cells["hour"] < hi)
        cell, dayn = self.cells["cell"][cs], self.cells["hour"][cs] // 24
        order = np.lexsort((dayn, cell))
        cell, dayn = cell[order], dayn[order]
        first = (
            np.r_[True, (cell[1:] != cell[:-1]) | (dayn[1:] != dayn[:-1])]
            if cell.size
            else cell.astype(bool)
        )
        cells, days = np.unique(cell[first], return_counts=True)
        self.base_cells = cell_centers(cells[days >= c.home_days], c.cell_m)

    def _score_hours(self, h_a: int, h_b: int) -> list[Signal]:
        c = self.cfg
        H = self.hist
        pos = np.arange(H["hour"].size - (h_b - h_a), H["hour"].size)
        k = c.context_h
        sums = {f: _trailing(H[f], k, pos) for f in _SUMS}
        hists = {f: _trailing(H[f], k, pos) for f in _HISTS}
        feats: dict[str, F64] = {
            "turn_entropy": shannon_rows(hists["turn_hist"]),
            "heading_entropy": self._heading,
            "speed_entropy": shannon_rows(hists["speed_hist"]),
            "stop_entropy": shannon_rows(hists["stop_hist"]),
        }
        loc, new_share = self._location(h_a, h_b)
        feats["location_entropy"] = loc
        feats["new_place_share"] = new_share
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
        signals: list[Signal] = []
        nh = h_b - h_a
        away = np.full(nh, np.nan)
        score = np.full(nh, np.nan)
        cus = np.full(nh, np.nan)
        band = {
            f"{f}_{q}": np.full(nh, np.nan)
            for f in (*ENTROPY_FEATURES, "km_24h")
            for q in ("median", "mad")
        }
        for f, v in feats.items():
            H[f][pos] = v
        # one block per UTC day: the baseline is fixed within a day
        j = 0
        while j < nh:
            day = ((h_a + j) // 24) * 24
            je = min(nh, day + 24 - h_a)
            sl = slice(j, je)
            self._baseline(day)
            for f in (*ENTROPY_FEATURES, "km_24h"):
                med, mad, n = self.base[f]
                if n >= c.min_baseline_h:
                    band[f"{f}_median"][sl] = med
                    band[f"{f}_mad"][sl] = mad
            blat, blon = self.base_cells
            # An hour without fixes is spent where the vehicle was last seen:
            # a terminal that sleeps while parked still leaves it there.
            lat, lon = self._carry_position(H["last_lat"][pos[sl]], H["last_lon"][pos[sl]])
            if blat.size:
                dist = haversine_m(lat[:, None], lon[:, None], blat[None, :], blon[None, :])
                away[sl] = np.where(np.isnan(lat), np.nan, dist.min(axis=1) / 1e3)
            H["away_km"][pos[sl]] = away[sl]
            t_end = (np.arange(h_a + j, h_a + je, dtype=np.float64) + 1) * HOUR
            # the most km_24h of the windows that ended mileage_confirm_h to
            # 2 * mileage_confirm_h earlier: each lies wholly before the
            # current window, so two separate days carry the excess (every
            # hour has a history row)
            earlier = np.full(je - j, np.nan)
            for lag in range(int(c.mileage_confirm_h), 2 * int(c.mileage_confirm_h)):
                back = pos[sl] - lag
                earlier = np.fmax(
                    earlier, np.where(back >= 0, H["km_24h"][np.maximum(back, 0)], np.nan)
                )
            mileage, jump = self._mileage_block(sl, t_end, feats, earlier, sums["n"][sl])
            signals += self._entropy_block(sl, t_end, feats, score, cus, jump, away[sl])
            signals += mileage
            signals += self._relocation_block(pos[sl], t_end, away[sl])
            j = je
        H["score"][pos] = score
        H["cusum"][pos] = cus
        self.feature_rows.append(
            {
                "hour": H["hour"][pos],
                "n_fixes": H["n"][pos],
                "km_track": H["dist_km"][pos],
                **{f: H[f][pos] for f in HOURLY_FEATURES},
                **band,
            }
        )
        return signals

    def _carry_position(self, lat: F64, lon: F64) -> tuple[F64, F64]:
        """Forward-fills hours without a fix from the last position seen
        (kept across calls, so streaming fills as batch does)."""
        lat, lon = lat.copy(), lon.copy()
        seen = np.flatnonzero(~np.isnan(lat))
        idx = np.maximum.accumulate(np.where(~np.isnan(lat), np.arange(lat.size), -1))
        fill = idx < 0
        lat[~fill], lon[~fill] = lat[idx[~fill]], lon[idx[~fill]]
        lat[fill], lon[fill] = self.last_pos
        if seen.size:
            self.last_pos = (float(lat[seen[-1]]), float(lon[seen[-1]]))
        return lat, lon

    def _location(self, h_a: int, h_b: int) -> tuple[F64, F64]:
        """Location entropy (bits of dwell time per cell) over each hour's
        context window, and the share of that time in cells the baseline
        period never visited."""
        c = self.cfg
        k = c.context_h
        C = self.cells
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
        loc = shannon_groups(g_t, g_s, nh)
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

    # -- detectors ---------------------------------------------------------
    def _explained(
        self, t_end: F64, jump: npt.NDArray[np.bool_], away: F64
    ) -> npt.NDArray[np.bool_]:
        """Per hour and entropy feature: is its rise already explained by a
        concurrent detector, and so left out of the entropy score? Driving
        much more (an hour in the last ``close_after_h`` met the mileage
        jump test, confirmed or not; ``jump`` flags them) means more and
        longer trips on other roads at other speeds: the speed, turn,
        heading and stop features; the entropy alert then rests on where
        the vehicle goes (location entropy and the new-place share), which
        a change of usage (a rental's fares all over town) moves far more
        than an extra trip on the usual pattern does. Standing far from
        every familiar place (the relocation detector's own input,
        ``away_km``) puts all the dwell time in new cells: location entropy
        and the new-place share."""
        c = self.cfg
        n = t_end.size
        out = np.zeros((n, len(ENTROPY_FEATURES)), dtype=bool)
        hold = c.close_after_h * HOUR
        for i in range(n):
            if jump[i]:
                self.mileage_flag_t = float(t_end[i])
            out[i, _DRIVING] = t_end[i] - self.mileage_flag_t < hold
        with np.errstate(invalid="ignore"):
            far = np.nan_to_num(away, nan=0.0) >= c.away_km
        out[:, _PLACE] |= far[:, None]
        return out

    def _entropy_block(
        self,
        sl: slice,
        t_end: F64,
        feats: dict[str, F64],
        score: F64,
        cus: F64,
        jump: npt.NDArray[np.bool_],
        away: F64,
    ) -> list[Signal]:
        c = self.cfg
        n = t_end.size
        z = np.full((n, len(ENTROPY_FEATURES)), np.nan)
        explained = self._explained(t_end, jump, away)
        for i, f in enumerate(ENTROPY_FEATURES):
            med, mad, cnt = self.base.get(f, (math.nan, math.nan, 0))
            if cnt < c.min_baseline_h:
                continue
            floor = {"new_place_share": c.share_z_floor, "stop_entropy": c.stop_z_floor}.get(
                f, c.entropy_z_floor
            )
            z[:, i] = (feats[f][sl] - med) / max(1.4826 * mad, floor)
        zs_all = z.copy()
        z[explained] = np.nan
        # the mean of the two largest increases: misuse moves several
        # features at once, noise in one feature alone does not count double
        valid = (~np.isnan(z)).sum(axis=1)
        top = -np.sort(-np.where(np.isnan(z), -np.inf, np.clip(z, 0.0, 10.0)), axis=1)[:, :2]
        with np.errstate(invalid="ignore"):
            sc = np.where(
                valid >= 2, (top[:, 0] + top[:, 1]) / 2, np.where(valid == 1, top[:, 0], np.nan)
            )
        score[sl] = sc
        out: list[Signal] = []
        for i in range(n):
            if math.isnan(sc[i]):
                # an hour with nothing to score (a window without data: a long
                # silence) is no evidence of change: the sum falls by its
                # allowance, so a stale sum cannot signal when data returns
                self.cusum = max(0.0, self.cusum - c.cusum_k)
            else:
                was = self.cusum
                self.cusum = min(max(0.0, self.cusum + float(sc[i]) - c.cusum_k), 3 * c.cusum_h)
                if (
                    was == 0.0 and self.cusum > 0.0
                ):  # the run of windows that drives the score starts
                    self.cusum_since = float(t_end[i]) - HOUR
            cus[sl.start + i] = self.cusum
            if math.isnan(sc[i]) or self.cusum < c.cusum_h:
                continue
            te = float(t_end[i])
            zs = {
                f: round(float(zs_all[i, k]), 3)
                for k, f in enumerate(ENTROPY_FEATURES)
                if not math.isnan(zs_all[i, k])
            }
            # the scored hours since the CUSUM left zero, each with its context window
            ev = {
                "z": zs,
                "score": float(sc[i]),
                "cusum": self.cusum,
                "window_h": c.context_h,
                "windows_from": self.cusum_since,
                "windows_to": te,
                # features left out of the score: another detector explains them
                "explained": [f for k, f in enumerate(ENTROPY_FEATURES) if explained[i, k]],
            }
            seg = (te - c.context_h * HOUR, te)  # the path the buffer holds: the latest window
            out.append(Signal(te, "entropy_increase", 0, self.cusum, ev, seg, self._path_fn(seg)))
        return out

    def _mileage_block(
        self, sl: slice, t_end: F64, feats: dict[str, F64], earlier: F64, fixes: F64
    ) -> tuple[list[Signal], npt.NDArray[np.bool_]]:
        """Mileage, freeze and mismatch signals, and the hours whose mileage
        is a jump's (confirmed or not). With ``mileage_confirm_h`` > 0 a
        jump must also have held in a window that ended that long to twice
        that long before (``earlier``, the most of them): a separate day.
        One odd day of driving (a weekend excursion) looks like a jump's
        first day, so it raises nothing; a jump that holds on a second day
        is the lasting change, and opens as an alert, when persistence
        would have raised the first day's warning to one."""
        c = self.cfg
        out: list[Signal] = []
        med, mad, cnt = self.base.get("km_24h", (math.nan, math.nan, 0))
        km = feats["km_24h"][sl]
        track, odo = (
            feats["km_track_24h"][sl],
            feats["km_odo_24h"][sl],
        )  # odo is NaN without readings
        jump = np.zeros(t_end.size, dtype=bool)
        excess = km - med
        z = (
            excess / max(1.4826 * mad, c.mileage_mad_floor_km)
            if cnt >= c.min_baseline_h
            else excess * np.nan
        )
        with np.errstate(invalid="ignore"):
            if cnt >= c.min_baseline_h:
                jump = (excess * 30 >= c.mileage_warn_km_month) & (z >= c.mileage_z)
            # the vehicle drives much more: what the entropy score leaves out
            # (_explained) whether or not the jump is confirmed yet
            more = jump.copy()
            if c.mileage_confirm_h and cnt >= c.min_baseline_h:
                jump &= (earlier - med) * 30 >= c.mileage_warn_km_month
            # either source having run freeze_track_km is enough to compare
            # them: an odometer that leaps while the track barely moves (a
            # vehicle that drives little) is the mismatch too; with no fix
            # in the window there is no track to compare with
            checked = (
                ~np.isnan(odo)
                & (fixes > 0)
                & ((track >= c.freeze_track_km) | (odo >= c.freeze_track_km))
            )
            frozen = checked & (odo < c.rollback_km)
            ratio = np.where(checked & ~frozen, odo / np.where(track > 0, track, 1.0), 1.0)
            mismatch = checked & ~frozen & ((ratio < c.mismatch_low) | (ratio > c.mismatch_high))
        # an excess held on two separate days is the lasting change that
        # persistence would raise to an alert a day later anyway
        lvl = 1 if c.mileage_confirm_h else 0
        for i in np.flatnonzero(jump | frozen | mismatch):
            te = float(t_end[i])
            seg = (te - c.context_h * HOUR, te)
            if jump[i]:
                ev = {
                    "km_24h": float(km[i]),
                    "baseline_km_24h": med,
                    "excess_km_month": float(excess[i] * 30),
                    "z": float(z[i]),
                }
                if c.mileage_confirm_h:
                    # the separate day that confirms it
                    ev["confirming_km_24h"] = float(earlier[i])
                out.append(
                    Signal(
                        te,
                        "mileage_jump",
                        lvl,
                        float(excess[i] * 30),
                        ev,
                        seg,
                        self._path_fn(seg),
                    )
                )
            ev = {"km_track_24h": float(track[i]), "km_odo_24h": float(odo[i])}
            if frozen[i]:
                out.append(
                    Signal(te, "odometer_freeze", 1, float(track[i]), ev, seg, self._path_fn(seg))
                )
            if mismatch[i]:
                ev["ratio"] = float(ratio[i])
                out.append(
                    Signal(
                        te,
                        "odometer_mismatch",
                        0,
                        abs(math.log(ratio[i])),
                        ev,
                        seg,
                        self._path_fn(seg),
                    )
                )
        return out, more

    def _relocation_block(self, P: I64, t_end: F64, away: F64) -> list[Signal]:
        c = self.cfg
        flag = np.nan_to_num(self.hist["away_km"], nan=0.0) >= c.away_km
        cs = np.r_[0, np.cumsum(flag)]
        n_away = cs[P + 1] - cs[np.maximum(P + 1 - c.context_h, 0)]
        out: list[Signal] = []
        for i in range(t_end.size):
            is_away = bool(flag[P[i]])
            self.away_streak = self.away_streak + 1 if is_away else 0
            if not is_away or n_away[i] < c.away_hours:
                continue
            te = float(t_end[i])
            lvl = 2 if self.away_streak >= c.away_emergency_h else 1
            seg = (te - c.context_h * HOUR, te)
            ev = {
                "away_km": float(away[i]),
                "away_hours_in_window": int(n_away[i]),
                "away_streak_h": self.away_streak,
            }
            out.append(Signal(te, "relocation", lvl, float(away[i]), ev, seg, self._path_fn(seg)))
        return out

    # -- evidence and trimming --------------------------------------------
    def _path_fn(self, seg: tuple[float, float]) -> Any:
        t, lat, lon = self.raw["t"], self.raw["lat"], self.raw["lon"]
        n_max = self.cfg.path_points

        def path() -> tuple[F64, F64, F64]:
            sel = np.flatnonzero((t >= seg[0]) & (t <= seg[1]) & ~np.isnan(lat))
            if sel.size > n_max:
                sel = sel[np.unique(np.linspace(0, sel.size - 1, n_max).round().astype(np.int64))]
            return t[sel].copy(), lat[sel].copy(), lon[sel].copy()

        return path

    def _trim(self, d: Any, h_b: int) -> None:
        c = self.cfg
        t = self.raw["t"]
        # keep the context window (+1 h) and two fixes before it: every kept
        # fix then derives exactly what it derived in a full run
        cut = int(np.searchsorted(t, (h_b - c.context_h - 1) * HOUR, side="left"))
        # (and the 2K+2 before them that confirming a position jump reads)
        cut = max(0, cut - max(2, 2 * c.jump_confirm_fixes + 2))
        if cut > 0:
            self.run_carry = float(d.run_start[cut]) if cut < t.size else math.nan
            self.raw = _take(self.raw, slice(cut, None))
        ot = self.odo["t"]
        # odometer readings as far back as the fixes: the towing check reads both
        ocut = int(np.searchsorted(ot, (h_b - c.context_h - 1) * HOUR, side="left")) - 1
        if ocut > 0:
            self.odo = _take(self.odo, slice(ocut, None))
        keep_h = h_b - (c.baseline_h + c.lag_h + 2 * c.context_h + 24)
        hk = self.hist["hour"] >= keep_h
        if not hk.all():
            self.hist = _take(self.hist, hk)
        ck = self.cells["hour"] >= keep_h
        if not ck.all():
            self.cells = _take(self.cells, ck)

    # -- alerts --------------------------------------------------------------
    def apply(
        self, signals: list[Signal], hour_ends: list[float], changed: dict[str, Alert]
    ) -> None:
        """Feeds signals and hour-end close checks to the alert book, in time order."""
        events: list[tuple[float, int, Signal | None]] = [(s.time, 0, s) for s in signals]
        events += [(t, 1, None) for t in hour_ends]
        events.sort(key=lambda e: (e[0], e[1]))
        c = self.cfg
        for t, _, sig in events:
            if sig is None:
                for kind, a in list(self.open.items()):
                    if kind != "device_silence" and t - a.last_signal >= c.close_after_h * HOUR:
                        self._close(a, t, changed)
                continue
            self._signal(sig, changed)

    def _close(self, a: Alert, t: float, changed: dict[str, Alert]) -> None:
        a.closed = t
        a.updated = t
        del self.open[a.kind]
        self.closed.append(a)
        changed[a.alert_id] = a

    def _signal(self, s: Signal, changed: dict[str, Alert]) -> None:
        c = self.cfg
        if s.kind == "entropy_increase" and s.evidence.get("windows_from", -math.inf) >= (
            self.place_change - c.context_h * HOUR
        ):
            # A vehicle towed or relocated stands in new places, which raises
            # the new-place share and location entropy for days: the towing
            # or relocation alert already explains the run of windows that
            # began with it. One incident, one alert.
            why = next((self.open[k] for k in _EXPLAINS_ENTROPY if k in self.open), None)
            if why is not None:
                why.evidence["entropy_signals_explained"] = (
                    why.evidence.get("entropy_signals_explained", 0) + 1
                )
            return
        if s.kind == "entropy_increase" and "device_silence" in self.open:
            # a silent device's context windows empty out hour by hour, and
            # the shares of what is left (the last place it was seen) rise:
            # the silence alert is the explanation
            sil = self.open["device_silence"]
            sil.evidence["entropy_signals_explained"] = (
                sil.evidence.get("entropy_signals_explained", 0) + 1
            )
            return
        if s.kind == "odometer_mismatch" and "towing" in self.open:
            # towed distance is on the track and not on the odometer: the
            # towing alert is the explanation
            tow = self.open["towing"]
            tow.evidence["mismatch_signals_explained"] = (
                tow.evidence.get("mismatch_signals_explained", 0) + 1
            )
            return
        a = self.open.get(s.kind)
        if s.level < 0:  # silence over: the device reported again
            if a is not None:
                a.segment = s.segment
                self._close(a, s.time, changed)
            return
        if a is None:
            a = Alert(
                self.id,
                s.kind,
                s.level,
                s.score,
                s.time,
                s.time,
                s.time,
                s.time,
                base_level=s.level,
            )
            self._evidence(a, s)
            self.open[s.kind] = a
            changed[a.alert_id] = a
            if s.kind in _EXPLAINS_ENTROPY:
                self.place_change = s.time
            return
        a.n_signals += 1
        a.score = max(a.score, s.score)
        # Persistence escalates: every escalate_h of signalling without a
        # break longer than the cool-down raises the level one step.
        if s.time - a.last_signal > c.cooldown_h * HOUR:
            a.first_signal = s.time
        a.last_signal = s.time
        run = s.time - a.first_signal
        cap = KIND_CAP.get(s.kind, 2)
        level = max(a.level, s.level, min(cap, a.base_level + int(run // (c.escalate_h * HOUR))))
        if level > a.level:
            a.level = level
            a.updated = s.time
            self._evidence(a, s)
            changed[a.alert_id] = a
        # otherwise a duplicate (same level, or within the cool-down): suppressed

    def _evidence(self, a: Alert, s: Signal) -> None:
        a.evidence = {**s.evidence, "signal_time": s.time}
        a.segment = s.segment
        if s.path is not None:
            a.path = s.path()
