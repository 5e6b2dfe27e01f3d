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

from .. import _core
from ..gnss import nearest_distance_m
from .config import MonitorConfig
from .detectors import (
    ENTROPY,
    ENTROPY_FEATURES,
    MILEAGE,
    RELOCATION,
    SCAN_DETECTORS,
    SILENCE,
    HourBlock,
    Scan,
    Signal,
    silence,
)
from .features import (
    F64,
    HOUR,
    I64,
    Block,
    cell_centers,
    derive_block,
)

__all__ = ["ENTROPY_FEATURES", "HOURLY_FEATURES", "KIND_CAP", "Alert", "Signal", "Vehicle"]

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
# the baseline band columns of a feature row, in the order _score_hours writes them
FEATURE_BANDS = tuple(f"{f}_{q}" for f in (*ENTROPY_FEATURES, "km_24h") for q in ("median", "mad"))
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


def derive_vehicles(vehicles: list[Vehicle], h_end: int) -> Block:
    """One block derivation of the buffers of ``vehicles`` (each due at
    ``h_end``, all with the same config): vehicle i of the list is entry i
    of the block."""
    if not vehicles:
        raise ValueError("no vehicles to derive")
    cfg = vehicles[0].cfg
    raws = [v.raw for v in vehicles]
    sizes = [r["t"].size for r in raws]
    offsets = np.zeros(len(raws) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])

    def cat(k: str) -> F64:
        return np.concatenate([r[k] for r in raws]) if raws else np.zeros(0)

    h_a = np.array([v.h_done for v in vehicles], dtype=np.int64)
    return derive_block(
        offsets,
        cat("t"),
        cat("lat"),
        cat("lon"),
        cat("speed"),
        np.array([v.run_carry for v in vehicles], dtype=np.float64),
        h_a,
        np.full(len(vehicles), h_end, dtype=np.int64),
        cfg,
    )


class Vehicle:
    # a class default too, so that a state pickled before it existed loads
    mileage_flag_t = -math.inf  # end of the last hour whose mileage was a jump's
    cusum_slow = 0.0
    cusum_slow_since = math.nan

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
        self.cusum_slow = 0.0  # the entropy score's second, slow chart
        self.cusum_slow_since = math.nan
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
        return silence.gaps(self, np.sort(np.concatenate(times)))

    # -- device silence (detectors/silence.py) ------------------------------
    def silence_until(self, now: float) -> list[Signal]:
        return SILENCE.detect(self, now)

    # -- hourly scoring ----------------------------------------------------
    def due(self, h_end: int) -> bool:
        """Whether ``advance(h_end)`` has hours to score."""
        return self.h_done is not None and h_end > self.h_done

    def advance(self, h_end: int, block: tuple[Block, int] | None = None) -> list[Signal]:
        """Scores the hours [h_done, h_end); returns their signals in time
        order. ``block`` is this vehicle's derivation within a fleet block
        (``derive_vehicles``), else it is derived here alone: the same numbers."""
        if self.h_done is None or h_end <= self.h_done:
            return []
        h_a, h_b = self.h_done, h_end
        if block is None:
            block = (derive_vehicles([self], h_end), 0)
        d, rows, new_cells = block[0].vehicle(block[1])
        heading = block[0].heading_of(block[1])
        if rows["hour"].size != h_b - h_a:
            raise ValueError("the block was derived for other hours")
        rows = dict(rows)
        scan = Scan(d, h_a, h_b, self._odometer(rows, h_a, h_b))
        signals = [s for det in SCAN_DETECTORS for s in det.detect(self, scan)]
        self._append_history(rows, heading, h_a, h_b, new_cells)
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

    def _append_history(
        self,
        rows: dict[str, np.ndarray],
        heading: F64,
        h_a: int,
        h_b: int,
        new_cells: dict[str, np.ndarray],
    ) -> None:
        # cell dwell seconds per (hour, cell) of the new hours (from the block)
        if new_cells["hour"].size:
            self.cells = _concat(self.cells, new_cells)
        if not self.hist:
            self.hist = {k: v[:0] for k, v in rows.items()}
            for f in HOURLY_FEATURES:
                self.hist[f] = np.zeros(0)
        for f in HOURLY_FEATURES:
            rows[f] = np.full(h_b - h_a, np.nan)
        self.hist = _concat(self.hist, rows)
        self._heading = heading

    def _baseline(self, day: int) -> None:
        """Median/MAD of each scored feature, and the visited cells, over the
        baseline period before `day` (hours), computed once per day."""
        c = self.cfg
        if self.baseline_day == day:
            return
        self.baseline_day = day
        lo, hi = day - c.lag_h - c.baseline_h, day - c.lag_h
        H = self.hist
        names = (*ENTROPY_FEATURES, "km_24h")
        # one core call (cpp/src/monitor/block.cpp; the numpy form it
        # replaced is tests/monitor_reference.py's baseline): a fifth of the
        # per-vehicle scoring was these twenty-odd small numpy calls
        med, mad, cnt, span, cells = _core.monitor_baseline(
            np.ascontiguousarray(H["hour"], dtype=np.int64),
            np.ascontiguousarray(H["n"], dtype=np.int64),
            np.ascontiguousarray(H["n_odo"], dtype=np.int64),
            np.stack([H[f] for f in names], axis=1).astype(np.float64, copy=False),
            np.ascontiguousarray(self.cells["hour"], dtype=np.int64),
            np.ascontiguousarray(self.cells["cell"], dtype=np.int64),
            int(lo),
            int(hi),
            int(c.home_days),
        )
        self.base = {
            f: (
                float(med[i]),
                float(mad[i]),
                int(span[i]) if cnt[i] >= c.min_baseline_samples else 0,
            )
            for i, f in enumerate(names)
        }
        # the familiar area: cells visited on at least home_days distinct days
        self.base_cells = cell_centers(cells, c.cell_m)

    def _score_hours(self, h_a: int, h_b: int) -> list[Signal]:
        c = self.cfg
        H = self.hist
        pos = np.arange(H["hour"].size - (h_b - h_a), H["hour"].size)
        feats, fixes = self._window_features(pos)
        loc, new_share = self._location(h_a, h_b)
        feats["location_entropy"] = loc
        feats["new_place_share"] = new_share
        signals: list[Signal] = []
        nh = h_b - h_a
        away = np.full(nh, np.nan)
        score = np.full(nh, np.nan)
        cus = np.full(nh, np.nan)
        band = {b: np.full(nh, np.nan) for b in FEATURE_BANDS}
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
                away[sl] = np.where(
                    np.isnan(lat), np.nan, nearest_distance_m(lat, lon, blat, blon) / 1e3
                )
            H["away_km"][pos[sl]] = away[sl]
            t_end = (np.arange(h_a + j, h_a + je, dtype=np.float64) + 1) * HOUR
            # the most km_24h of the windows that ended mileage_confirm_h to
            # 2 * mileage_confirm_h earlier: each lies wholly before the
            # current window, so two separate days carry the excess (every
            # hour has a history row)
            lags = np.arange(int(c.mileage_confirm_h), 2 * int(c.mileage_confirm_h))
            back = pos[sl][:, None] - lags[None, :]
            earlier = np.fmax.reduce(
                np.where(back >= 0, H["km_24h"][np.maximum(back, 0)], np.nan),
                axis=1,
                initial=np.nan,
            )
            blk = HourBlock(
                sl,
                pos[sl],
                t_end,
                feats,
                away[sl],
                earlier,
                score,
                cus,
                np.zeros(0, bool),
                fixes[sl],
            )
            # mileage first (it sets driving_more, which the entropy score
            # reads); its signals go after the entropy ones where times tie
            mileage = MILEAGE.detect(self, blk)
            signals += ENTROPY.detect(self, blk)
            signals += mileage
            signals += RELOCATION.detect(self, blk)
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

    def _window_features(self, pos: I64) -> tuple[dict[str, F64], F64]:
        """The trailing-window features of the history rows ``pos`` (the
        scored hours) and the fixes in each window, in one core call
        (cpp/src/monitor/score.cpp; the numpy form it replaced is
        tests/monitor_reference.py's window_features)."""
        H = self.hist
        k = self.cfg.context_h
        lo, hi = max(0, int(pos[0]) - k + 1), int(pos[-1]) + 1

        def f(name: str) -> F64:
            return np.ascontiguousarray(H[name][lo:hi], dtype=np.float64)

        def i(name: str) -> I64:
            return np.ascontiguousarray(H[name][lo:hi], dtype=np.int64)

        w = _core.monitor_window_features(
            i("n"),
            f("dist_km"),
            f("moving_s"),
            f("night_s"),
            f("speeding_s"),
            f("odo_km"),
            i("harsh_accel"),
            i("harsh_brake"),
            i("n_odo"),
            i("speed_hist"),
            i("turn_hist"),
            i("stop_hist"),
            int(pos[0]) - lo,
            int(k),
        )
        # numpy's exp, as before (its SIMD exp is not libm's)
        behaviour = np.where(w["moving"].view(bool), np.exp(-w["behaviour_arg"]), np.nan)
        feats: dict[str, F64] = {
            "turn_entropy": w["turn_entropy"],
            "heading_entropy": self._heading,
            "speed_entropy": w["speed_entropy"],
            "stop_entropy": w["stop_entropy"],
            "night_share": w["night_share"],
            "km_track_24h": w["km_track_24h"],
            "km_odo_24h": w["km_odo_24h"],
            "km_24h": w["km_24h"],
            "behaviour": behaviour,
        }
        return feats, w["n"]

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
        period never visited (one core call: cpp/src/monitor/block.cpp)."""
        c = self.cfg
        C = self.cells
        loc, share = _core.monitor_location(
            np.ascontiguousarray(C["hour"], dtype=np.int64),
            np.ascontiguousarray(C["cell"], dtype=np.int64),
            np.ascontiguousarray(C["secs"], dtype=np.int64),
            int(h_a),
            int(h_b),
            int(c.context_h),
            int(c.lag_h),
            int(c.baseline_h),
        )
        return loc, share

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
        if s.kind == "entropy_increase" and (
            s.evidence.get("windows_from", -math.inf) >= self.place_change - c.context_h * HOUR
            or (s.evidence.get("chart") == "slow" and self.place_change <= s.time)
        ):
            # A vehicle towed or relocated stands in new places, which raises
            # the new-place share and location entropy for days: the towing
            # or relocation alert already explains the run of windows that
            # began with it, and the slow chart's long run that it pushed over
            # the threshold. One incident, one alert.
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
