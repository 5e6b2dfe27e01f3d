"""Mileage jump (excess over the vehicle's baseline), odometer freeze and
odometer/track mismatch, over the trailing 24 h window of each hour."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ... import _core
from ..features import HOUR
from .base import HourBlock, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["Mileage"]


class Mileage:
    kinds: tuple[str, ...] = ("mileage_jump", "odometer_freeze", "odometer_mismatch")

    def detect(self, v: Vehicle, b: HourBlock) -> list[Signal]:
        """Mileage, freeze and mismatch signals, and the hours whose mileage
        is a jump's (confirmed or not). With ``mileage_confirm_h`` > 0 a
        jump must also have held in a window that ended that long to twice
        that long before (``earlier``, the most of them): a separate day.
        One odd day of driving (a weekend excursion) looks like a jump's
        first day, so it raises nothing; a jump that holds on a second day
        is the lasting change, and opens as an alert, when persistence
        would have raised the first day's warning to one."""
        sl, t_end, feats, earlier = b.sl, b.t_end, b.feats, b.earlier
        c = v.cfg
        out: list[Signal] = []
        med, mad, cnt = v.base.get("km_24h", (math.nan, math.nan, 0))
        km = feats["km_24h"][sl]
        track, odo = (
            feats["km_track_24h"][sl],
            feats["km_odo_24h"][sl],
        )  # odo is NaN without readings
        # the jump test (with and without its confirming day), freeze and
        # mismatch in one core call (cpp/src/monitor/score.cpp; the numpy
        # form it replaced is tests/monitor_reference.py's mileage_flags).
        # Either source having run freeze_track_km is enough to compare
        # them: an odometer that leaps while the track barely moves (a
        # vehicle that drives little) is the mismatch too; with no fix in the
        # window there is no track to compare with.
        r = _core.monitor_mileage(
            np.ascontiguousarray(km, dtype=np.float64),
            np.ascontiguousarray(track, dtype=np.float64),
            np.ascontiguousarray(odo, dtype=np.float64),
            np.ascontiguousarray(b.fixes, dtype=np.float64),
            np.ascontiguousarray(earlier, dtype=np.float64),
            float(med),
            float(mad),
            int(cnt),
            int(c.min_baseline_h),
            float(c.mileage_mad_floor_km),
            float(c.mileage_warn_km_month),
            float(c.mileage_z),
            float(c.freeze_track_km),
            float(c.rollback_km),
            float(c.mismatch_low),
            float(c.mismatch_high),
            bool(c.mileage_confirm_h),
        )
        excess, z, ratio = r["excess"], r["z"], r["ratio"]
        jump, frozen, mismatch = (r[k].view(bool) for k in ("jump", "frozen", "mismatch"))
        # the vehicle drives much more: what the entropy score leaves out,
        # whether or not the jump is confirmed yet
        more = r["more"].view(bool)
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
                    Signal(te, "mileage_jump", lvl, float(excess[i] * 30), ev, seg, v._path_fn(seg))
                )
            ev = {"km_track_24h": float(track[i]), "km_odo_24h": float(odo[i])}
            if frozen[i]:
                out.append(
                    Signal(te, "odometer_freeze", 1, float(track[i]), ev, seg, v._path_fn(seg))
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
                        v._path_fn(seg),
                    )
                )
        b.driving_more = more
        return out
