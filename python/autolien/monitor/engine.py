"""One vehicle's monitoring state: a bounded buffer of recent rows, hourly
history for the baselines, detector state and its alerts. ``advance_block``
scores the new hours of a block of vehicles (one derivation and one scoring
call into the core for the whole block) and returns each one's signals;
batch scoring is one advance over everything, streaming is many."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core
from ..gnss import EARTH_M
from .config import MonitorConfig
from .detectors import (
    ENTROPY,
    ENTROPY_FEATURES,
    HOUR_DETECTORS,
    MILEAGE,
    RELOCATION,
    SCAN_DETECTORS,
    SILENCE,
    Scan,
    ScoredHours,
    Signal,
    silence,
)
from .detectors.entropy import _PLACE_MASK, _floor
from .features import (
    F64,
    HOUR,
    Block,
    cell_centers,
    derive_block,
)

__all__ = [
    "ENTROPY_FEATURES",
    "HOURLY_FEATURES",
    "KIND_CAP",
    "Alert",
    "Signal",
    "Vehicle",
    "advance_block",
    "score_block",
]

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


@dataclass
class _Pending:
    """A vehicle between the two halves of an advance."""

    d: Any
    h_a: int
    h_b: int
    heading: F64
    signals: list[Signal]


# the features the baseline scores (the kernel's first seven scored
# columns), and the scored columns a history row keeps for the kernel
_BASE_FEATURES = (*ENTROPY_FEATURES, "km_24h")
_SCORED = (*_BASE_FEATURES, "away_km")
_HIST_INTS = ("hour", "n", "n_odo", "harsh_accel", "harsh_brake")
_HIST_FLOATS = ("dist_km", "moving_s", "night_s", "speeding_s", "odo_km", "last_lat", "last_lon")
_HISTOGRAMS = ("speed_hist", "turn_hist", "stop_hist")


def _kernel_params(c: MonitorConfig) -> dict[str, float]:
    return {
        "context_h": c.context_h,
        "lag_h": c.lag_h,
        "baseline_h": c.baseline_h,
        "home_days": c.home_days,
        "min_baseline_samples": c.min_baseline_samples,
        "min_baseline_h": c.min_baseline_h,
        "mileage_confirm_h": int(c.mileage_confirm_h),
        "cell_m": c.cell_m,
        "earth_m": EARTH_M,
        "hour_s": HOUR,
        "mileage_mad_floor_km": c.mileage_mad_floor_km,
        "mileage_warn_km_month": c.mileage_warn_km_month,
        "mileage_z": c.mileage_z,
        "freeze_track_km": c.freeze_track_km,
        "rollback_km": c.rollback_km,
        "mismatch_low": c.mismatch_low,
        "mismatch_high": c.mismatch_high,
        "hold_s": c.close_after_h * HOUR,
        "away_km": c.away_km,
        "cusum_k": c.cusum_k,
        "cusum_h": c.cusum_h,
        "cusum_slow_k": c.cusum_slow_k,
        "cusum_slow_h": c.cusum_slow_h,
        "away_hours": c.away_hours,
        "away_emergency_h": c.away_emergency_h,
    }


def score_block(vehicles: list[Vehicle], pending: list[_Pending]) -> dict[str, np.ndarray]:
    """The new hours of every vehicle of a block scored in one core call
    (cpp/src/monitor/fleet.cpp): their window and location features, and
    day by day the baseline, the away distance and the mileage, entropy and
    relocation detectors' arithmetic, with each vehicle's state carried.
    Python gathers the histories into columns and hands back each
    vehicle's rows; it loops over hours only where a detector flags one."""
    c = vehicles[0].cfg
    hs = [v.hist for v in vehicles]
    sizes = np.array([h["hour"].size for h in hs], dtype=np.int64)
    row_offsets = np.zeros(len(hs) + 1, dtype=np.int64)
    np.cumsum(sizes, out=row_offsets[1:])
    cells = [v.cells for v in vehicles]
    cell_offsets = np.zeros(len(hs) + 1, dtype=np.int64)
    np.cumsum([x["hour"].size for x in cells], out=cell_offsets[1:])

    def cat(src: list[dict[str, np.ndarray]], k: str, dtype: Any) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate([x[k] for x in src]), dtype=dtype)

    def state(get: Any, dtype: Any = np.float64) -> np.ndarray:
        return np.array([get(v) for v in vehicles], dtype=dtype)

    cols: dict[str, np.ndarray] = {
        "row_offsets": row_offsets,
        "first": sizes - np.array([p.h_b - p.h_a for p in pending], dtype=np.int64),
        **{k: cat(hs, k, np.int64) for k in (*_HIST_INTS, *_HISTOGRAMS)},
        **{k: cat(hs, k, np.float64) for k in _HIST_FLOATS},
        "scored": np.ascontiguousarray(
            np.column_stack([cat(hs, k, np.float64) for k in _SCORED]), dtype=np.float64
        ),
        "heading": np.ascontiguousarray(
            np.concatenate([p.heading for p in pending]), dtype=np.float64
        ),
        "cell_offsets": cell_offsets,
        "cell_hour": cat(cells, "hour", np.int64),
        "cell": cat(cells, "cell", np.int64),
        "cell_secs": cat(cells, "secs", np.int64),
        "cusum": state(lambda v: v.cusum),
        "cusum_since": state(lambda v: v.cusum_since),
        "mileage_flag_t": state(lambda v: v.mileage_flag_t),
        "cusum_slow": state(lambda v: v.cusum_slow),
        "cusum_slow_since": state(lambda v: v.cusum_slow_since),
        "last_lat0": state(lambda v: v.last_pos[0]),
        "last_lon0": state(lambda v: v.last_pos[1]),
        "away_streak": state(lambda v: v.away_streak, np.int64),
        "z_floor": np.array([_floor(c, f) for f in ENTROPY_FEATURES], dtype=np.float64),
        "place": _PLACE_MASK,
    }
    res: dict[str, np.ndarray] = _core.monitor_score_block(cols, _kernel_params(c))
    # numpy's exp, as before (its SIMD exp is not libm's)
    res["behaviour"] = np.where(res["moving"].view(bool), np.exp(-res["behaviour_arg"]), np.nan)
    # the hours some detector flags (its own test), and so the vehicles
    # that build signals
    flag = np.logical_or.reduce([det.fires(res, c) for det in (ENTROPY, MILEAGE, RELOCATION)])
    per = np.concatenate([[0], np.cumsum(flag, dtype=np.int64)])
    res["flagged"] = per[res["hour_offsets"][1:]] > per[res["hour_offsets"][:-1]]
    return res


def advance_block(
    vehicles: list[Vehicle], h_end: int, block: Block | None = None
) -> list[list[Signal]]:
    """Scores the hours [h_done, h_end) of each of ``vehicles`` (all due at
    ``h_end``, one config); returns each one's signals in time order.
    ``block`` is their derivation (``derive_vehicles``, vehicle i of the list
    entry i of the block), else it is derived here."""
    if not vehicles:
        return []
    if block is None:
        block = derive_vehicles(vehicles, h_end)
    pending = [v._begin(h_end, block, j) for j, v in enumerate(vehicles)]
    res = score_block(vehicles, pending)
    return [v._finish(p, res, j) for j, (v, p) in enumerate(zip(vehicles, pending, strict=True))]


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
        """Whether ``advance_block`` to ``h_end`` has hours to score."""
        return self.h_done is not None and h_end > self.h_done

    def _begin(self, h_end: int, block: Block, j: int) -> _Pending:
        """The first half of an advance: the scan detectors over the buffer,
        and the new hours appended to the history (unscored)."""
        assert self.h_done is not None
        h_a, h_b = self.h_done, h_end
        d, rows, new_cells = block.vehicle(j)
        heading = block.heading_of(j)
        if rows["hour"].size != h_b - h_a:
            raise ValueError("the block was derived for other hours")
        rows = dict(rows)
        scan = Scan(d, h_a, h_b, self._odometer(rows, h_a, h_b))
        signals = [s for det in SCAN_DETECTORS for s in det.detect(self, scan)]
        self._append_history(rows, h_a, h_b, new_cells)
        return _Pending(d, h_a, h_b, heading, signals)

    def _finish(self, p: _Pending, res: dict[str, np.ndarray], j: int) -> list[Signal]:
        """The second half: this vehicle's rows of the block's scores into
        its history, feature rows and state; the hour detectors' signals."""
        c = self.cfg
        o0, o1 = int(res["hour_offsets"][j]), int(res["hour_offsets"][j + 1])
        sl = slice(o0, o1)
        H = self.hist
        nh = p.h_b - p.h_a
        pos = slice(H["hour"].size - nh, H["hour"].size)
        for f in HOURLY_FEATURES:
            if f != "heading_entropy":
                H[f][pos] = res[f][sl]
        H["heading_entropy"][pos] = p.heading
        ok = res["base_n"][sl] >= c.min_baseline_h
        band = {}
        for k, f in enumerate(_BASE_FEATURES):
            band[f"{f}_median"] = np.where(ok[:, k], res["base_median"][sl, k], np.nan)
            band[f"{f}_mad"] = np.where(ok[:, k], res["base_mad"][sl, k], np.nan)
        self.feature_rows.append(
            {
                "hour": H["hour"][pos],
                "n_fixes": H["n"][pos],
                "km_track": H["dist_km"][pos],
                **{f: H[f][pos] for f in HOURLY_FEATURES},
                **band,
            }
        )
        self.cusum = float(res["end_cusum"][j])
        self.cusum_since = float(res["end_cusum_since"][j])
        self.mileage_flag_t = float(res["end_mileage_flag_t"][j])
        self.cusum_slow = float(res["end_cusum_slow"][j])
        self.cusum_slow_since = float(res["end_cusum_slow_since"][j])
        self.away_streak = int(res["end_away_streak"][j])
        self.last_pos = (float(res["end_lat"][j]), float(res["end_lon"][j]))
        # the last scored day's baseline, kept with the state
        self.baseline_day = int(res["base_day"][j])
        self.base = {
            f: (
                float(res["day_median"][j, k]),
                float(res["day_mad"][j, k]),
                int(res["day_n"][j, k]),
            )
            for k, f in enumerate(_BASE_FEATURES)
        }
        c0, c1 = int(res["day_cell_offsets"][j]), int(res["day_cell_offsets"][j + 1])
        self.base_cells = cell_centers(res["day_cells"][c0:c1], c.cell_m)
        signals = p.signals
        if res["flagged"][j]:
            scored = ScoredHours(res, sl)
            signals += [s for det in HOUR_DETECTORS for s in det.detect(self, scored)]
        self._trim(p.d, p.h_b)
        self.h_done = p.h_b
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
