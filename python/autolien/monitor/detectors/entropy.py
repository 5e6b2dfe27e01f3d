"""Entropy increase: two CUSUM charts of the mean of the two largest
robust z-scores of the trajectory entropies against the vehicle's baseline,
one for strong changes and one for weak, lasting ones."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..features import HOUR
from .base import ScoredHours, Signal

if TYPE_CHECKING:
    from ..config import MonitorConfig
    from ..engine import Vehicle

__all__ = ["ENTROPY_FEATURES", "EntropyIncrease"]

ENTROPY_FEATURES = (
    "turn_entropy",
    "heading_entropy",
    "speed_entropy",
    "location_entropy",
    "stop_entropy",
    "new_place_share",
)
_PLACE = [ENTROPY_FEATURES.index("location_entropy"), ENTROPY_FEATURES.index("new_place_share")]
# the features standing far away explains; driving more explains the others
# (other roads, other speeds, more stops)
_PLACE_MASK = np.isin(np.arange(len(ENTROPY_FEATURES)), _PLACE)


class EntropyIncrease:
    """Builds the signals of the hours either chart is at its threshold.

    A feature whose rise a concurrent detector already explains is left out
    of the score, hour by hour. Driving much more (an hour in the last
    ``close_after_h`` met the mileage jump test, confirmed or not) means
    more and longer trips on other roads at other speeds: the speed, turn,
    heading and stop features; the entropy alert then rests on where the
    vehicle goes (location entropy and the new-place share), which a change
    of usage (a rental's fares all over town) moves far more than an extra
    trip on the usual pattern does. Standing far from every familiar place
    (the relocation detector's own input, ``away_km``) puts all the dwell
    time in new cells: location entropy and the new-place share."""

    kinds: tuple[str, ...] = ("entropy_increase",)

    @staticmethod
    def fires(b: Any, c: MonitorConfig) -> npt.NDArray[np.bool_]:
        """The scored hours either chart is at its threshold (``b``: the
        block's result columns, or one vehicle's ``ScoredHours``)."""
        sc, cs, slow = b["score"], b["cusum"], b["slow"]
        slow_on = slow >= c.cusum_slow_h if c.cusum_slow_h > 0 else np.zeros(cs.size, bool)
        out: npt.NDArray[np.bool_] = ~np.isnan(sc) & ((cs >= c.cusum_h) | slow_on)
        return out

    def detect(self, v: Vehicle, b: ScoredHours) -> list[Signal]:
        # the z-scores, what is explained, the score and both CUSUM charts
        # come from the block kernel (cpp/src/monitor/fleet.cpp, which calls
        # score.cpp's entropy_scores day by day; the numpy form it replaced
        # is tests/monitor_reference.py's entropy_scores)
        c = v.cfg
        t_end, sc, cs, slow = b["t_end"], b["score"], b["cusum"], b["slow"]
        out: list[Signal] = []
        # A one-off odd day lifts the 24 trailing windows that hold it: the
        # fast chart's allowance is above what such a day sustains, and the
        # slow chart, with a lower allowance, needs a sum three times the
        # fast one's, more than one such day makes (docs/monitor.md, "The
        # entropy CUSUM at fleet scale").
        fired = np.flatnonzero(self.fires(b, c))
        if not fired.size:
            return out
        fast_on = cs >= c.cusum_h
        zs_all, explained = b["z"], b["explained"].view(bool)
        since, slow_since = b["since"], b["slow_since"]
        for i in fired.tolist():
            te = float(t_end[i])
            # the chart that signals: the fast one when it is at its
            # threshold, else the slow one; its value and its run of windows
            fast = bool(fast_on[i])
            value = float(cs[i]) if fast else float(slow[i])
            start = float(since[i]) if fast else float(slow_since[i])
            zs = {
                f: round(float(zs_all[i, k]), 3)
                for k, f in enumerate(ENTROPY_FEATURES)
                if not math.isnan(zs_all[i, k])
            }
            # the scored hours since the CUSUM left zero, each with its context window
            ev = {
                "z": zs,
                "score": float(sc[i]),
                "cusum": float(cs[i]),
                "cusum_slow": float(slow[i]),
                "chart": "fast" if fast else "slow",
                "window_h": c.context_h,
                "windows_from": start,
                "windows_to": te,
                # features left out of the score: another detector explains them
                "explained": [f for k, f in enumerate(ENTROPY_FEATURES) if explained[i, k]],
            }
            seg = (te - c.context_h * HOUR, te)  # the path the buffer holds: the latest window
            out.append(Signal(te, "entropy_increase", 0, value, ev, seg, v._path_fn(seg)))
        return out


def _floor(c: MonitorConfig, f: str) -> float:
    """The smallest robust scale of a feature's z-score."""
    return float(
        {"new_place_share": c.share_z_floor, "stop_entropy": c.stop_z_floor}.get(
            f, c.entropy_z_floor
        )
    )
