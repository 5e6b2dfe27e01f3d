"""Device silence: graded by how long the device has been quiet, against
thresholds the vehicle's own habitual gaps can move up."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..features import F64, HOUR
from .base import Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["DeviceSilence", "gaps", "last_position", "levels", "signal"]


class DeviceSilence:
    """Signals of the silence that has lasted until the fleet clock ``now``."""

    kinds: tuple[str, ...] = ("device_silence",)

    def detect(self, v: Vehicle, now: float) -> list[Signal]:
        if v.last_seen is None:
            return []
        out = []
        thr = levels(v, v.last_seen)
        for lvl in range(v.silence_sent, 3):
            if v.last_seen + thr[lvl] <= now:
                out.append(signal(v, v.last_seen, lvl, thr))
                v.silence_sent = lvl + 1
        return out


def levels(v: Vehicle, at: float) -> list[float]:
    """Warning, alert and emergency thresholds (s) for a silence that
    begins at ``at``. A vehicle that habitually goes quiet for long (a
    taxi's off-shift, a car parked overnight with its terminal asleep)
    has its ladder moved up: the warning waits ``silence_margin`` times
    the 90th percentile of its learnt gaps in the baseline period, and
    alert and emergency keep their distance above it."""
    c = v.cfg
    w, a, e = c.silence_warning_h * HOUR, c.silence_alert_h * HOUR, c.silence_emergency_h * HOUR
    recent = [g for end, g in v.gaps if at - c.baseline_h * HOUR < end <= at]
    if len(recent) >= c.silence_learn_gaps:
        habit = float(np.quantile(np.array(recent), 0.9, method="lower"))
        w2 = max(w, c.silence_margin * habit)
        a2 = max(a, w2 + (a - w))
        return [w2, a2, max(e, a2 + (e - a))]
    return [w, a, e]


def gaps(v: Vehicle, times: F64) -> list[Signal]:
    out: list[Signal] = []
    c = v.cfg
    if v.last_seen is None:
        v.last_seen = float(times[0])
    times = times[times > v.last_seen]
    if times.size == 0:
        return out
    # only gaps worth learning (or signalling) need a look
    prev = np.r_[v.last_seen, times[:-1]]
    big = np.flatnonzero(times - prev >= c.silence_learn_min_h * HOUR)
    if v.silence_sent:  # a silence already signalled ends at the next row
        big = np.union1d([0], big)
    for i in big:
        gap_start = float(prev[i])
        v.last_seen = gap_start
        t = float(times[i])
        thr = levels(v, gap_start)
        for lvl in range(v.silence_sent, 3):
            if gap_start + thr[lvl] < t:
                out.append(signal(v, gap_start, lvl, thr))
                v.silence_sent = lvl + 1
        if v.silence_sent:
            out.append(
                Signal(t, "device_silence", -1, t - gap_start, {"resumed": True}, (gap_start, t))
            )
        v.silence_sent = 0
        if t - gap_start >= c.silence_learn_min_h * HOUR:
            # gaps that can no longer fall in a baseline period are dropped
            v.gaps = [g for g in v.gaps if g[0] > t - c.baseline_h * HOUR]
            v.gaps.append((t, t - gap_start))
    v.last_seen = float(times[-1])
    return out


def signal(v: Vehicle, gap_start: float, lvl: int, thr: list[float]) -> Signal:
    at = gap_start + thr[lvl]
    lat, lon = last_position(v, gap_start)
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


def last_position(v: Vehicle, at: float) -> tuple[float, float]:
    lat = v.raw["lat"]
    ok = np.flatnonzero(~np.isnan(lat) & (v.raw["t"] <= at))
    return (float(lat[ok[-1]]), float(v.raw["lon"][ok[-1]])) if ok.size else (math.nan, math.nan)
