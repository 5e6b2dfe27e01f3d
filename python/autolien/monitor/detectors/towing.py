"""Towing: moving with the ignition (JT/T 808 ACC bit) off while the
odometer stands still. This is the one towing detector: it reads every
terminal's ACC bit (an RTK vehicle gets its terminal's, docs/pipeline.md),
where the fused track's parked/displacement events exist only for the few
vehicles with an RTK receiver (docs/gnss.md)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ...gnss import distance_m
from ..features import HOUR
from .base import Scan, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["Towing"]


class Towing:
    kinds: tuple[str, ...] = ("towing",)

    def detect(self, v: Vehicle, s: Scan) -> list[Signal]:
        """Moves with the ignition off: a run of moving steps between fixes
        that both report the ACC bit off signals once, at the fix where it
        first lies ``tow_min_m`` from where it started (unknown ignition is
        never off). Evidence stops at that fix, so a run split across
        updates signals the same. A run over which the odometer advanced at
        least half the distance was driven: a terminal whose ACC line is not
        wired reports it off all the time, and that is not a tow."""
        d, h_a, h_b = s.d, s.h_a, s.h_b
        off = v.raw["ignition"] == 0
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
            disp = distance_m(d.lat[a], d.lon[a], d.lat[run], d.lon[run])
            hit = np.flatnonzero(disp >= v.cfg.tow_min_m)
            if not hit.size:
                continue
            j = int(run[hit[0]])
            if not h_a <= hs[j] < h_b:
                continue
            ot, okm = v.odo["t"], v.odo["km"]
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
                Signal(float(d.t[j]), "towing", 1, float(disp[hit[0]]), ev, seg, v._path_fn(seg))
            )
        return out
