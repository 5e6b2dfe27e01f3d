"""Mileage jump (excess over the vehicle's baseline), odometer freeze and
odometer/track mismatch, over the trailing 24 h window of each hour."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..features import HOUR
from .base import ScoredHours, Signal

# the km_24h column of the baseline columns (the entropy features, then km_24h)
KM_COL = 6

if TYPE_CHECKING:
    from ..config import MonitorConfig
    from ..engine import Vehicle

__all__ = ["Mileage"]


class Mileage:
    kinds: tuple[str, ...] = ("mileage_jump", "odometer_freeze", "odometer_mismatch")

    @staticmethod
    def fires(b: Any, _c: MonitorConfig) -> npt.NDArray[np.bool_]:
        """The scored hours with a jump, freeze or mismatch (``b``: the
        block's result columns, or one vehicle's ``ScoredHours``)."""
        out: npt.NDArray[np.bool_] = (
            b["jump"].view(bool) | b["frozen"].view(bool) | b["mismatch"].view(bool)
        )
        return out

    def detect(self, v: Vehicle, b: ScoredHours) -> list[Signal]:
        """Mileage, freeze and mismatch signals. With ``mileage_confirm_h``
        > 0 a jump must also have held in a window that ended that long to
        twice that long before (``earlier``, the most of them): a separate
        day. One odd day of driving (a weekend excursion) looks like a
        jump's first day, so it raises nothing; a jump that holds on a
        second day is the lasting change, and opens as an alert, when
        persistence would have raised the first day's warning to one.

        The tests come from the block kernel (cpp/src/monitor/fleet.cpp,
        which calls score.cpp's mileage_flags day by day; the numpy form it
        replaced is tests/monitor_reference.py's mileage_flags). Either
        source having run freeze_track_km is enough to compare them: an
        odometer that leaps while the track barely moves (a vehicle that
        drives little) is the mismatch too; with no fix in the window there
        is no track to compare with. The kernel also hands the entropy
        score the hours the vehicle drives much more (the jump test,
        confirmed or not), which it leaves the driving features out of."""
        c = v.cfg
        jump, frozen, mismatch = (b[k].view(bool) for k in ("jump", "frozen", "mismatch"))
        hits = np.flatnonzero(self.fires(b, c))
        out: list[Signal] = []
        if not hits.size:
            return out
        t_end, km, track, odo = b["t_end"], b["km_24h"], b["km_track_24h"], b["km_odo_24h"]
        excess, z, ratio, earlier = b["excess"], b["mileage_z"], b["ratio"], b["earlier"]
        med = b["base_median"][:, KM_COL]
        # an excess held on two separate days is the lasting change that
        # persistence would raise to an alert a day later anyway
        lvl = 1 if c.mileage_confirm_h else 0
        for i in hits:
            te = float(t_end[i])
            seg = (te - c.context_h * HOUR, te)
            if jump[i]:
                ev = {
                    "km_24h": float(km[i]),
                    "baseline_km_24h": float(med[i]),
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
        return out
