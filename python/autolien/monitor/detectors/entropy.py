"""Entropy increase: a CUSUM of the two largest robust z-scores of the
trajectory entropies against the vehicle's baseline."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..features import F64, HOUR
from .base import HourBlock, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["ENTROPY_FEATURES", "EntropyIncrease", "explained_features"]

ENTROPY_FEATURES = (
    "turn_entropy",
    "heading_entropy",
    "speed_entropy",
    "location_entropy",
    "stop_entropy",
    "new_place_share",
)
_PLACE = [ENTROPY_FEATURES.index("location_entropy"), ENTROPY_FEATURES.index("new_place_share")]
# what driving more explains: other roads, other speeds, more stops
_DRIVING = [i for i in range(len(ENTROPY_FEATURES)) if i not in _PLACE]


class EntropyIncrease:
    """Reads ``driving_more``, which the mileage detector sets: run it after that one."""

    kinds: tuple[str, ...] = ("entropy_increase",)

    def detect(self, v: Vehicle, b: HourBlock) -> list[Signal]:
        sl, t_end, feats, score, cus = b.sl, b.t_end, b.feats, b.score, b.cus
        jump, away = b.driving_more, b.away
        c = v.cfg
        n = t_end.size
        z = np.full((n, len(ENTROPY_FEATURES)), np.nan)
        explained = explained_features(v, t_end, jump, away)
        for i, f in enumerate(ENTROPY_FEATURES):
            med, mad, cnt = v.base.get(f, (math.nan, math.nan, 0))
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
                v.cusum = max(0.0, v.cusum - c.cusum_k)
            else:
                was = v.cusum
                v.cusum = min(max(0.0, v.cusum + float(sc[i]) - c.cusum_k), 3 * c.cusum_h)
                if was == 0.0 and v.cusum > 0.0:  # the run of windows that drives the score starts
                    v.cusum_since = float(t_end[i]) - HOUR
            cus[sl.start + i] = v.cusum
            if math.isnan(sc[i]) or v.cusum < c.cusum_h:
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
                "cusum": v.cusum,
                "window_h": c.context_h,
                "windows_from": v.cusum_since,
                "windows_to": te,
                # features left out of the score: another detector explains them
                "explained": [f for k, f in enumerate(ENTROPY_FEATURES) if explained[i, k]],
            }
            seg = (te - c.context_h * HOUR, te)  # the path the buffer holds: the latest window
            out.append(Signal(te, "entropy_increase", 0, v.cusum, ev, seg, v._path_fn(seg)))
        return out


def explained_features(
    v: Vehicle, t_end: F64, jump: npt.NDArray[np.bool_], away: F64
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
    c = v.cfg
    n = t_end.size
    out = np.zeros((n, len(ENTROPY_FEATURES)), dtype=bool)
    hold = c.close_after_h * HOUR
    if n:
        # the end of the latest flagged hour so far, hour by hour (hours only
        # move forward, so the latest is the largest)
        flag = np.maximum(np.maximum.accumulate(np.where(jump, t_end, -np.inf)), v.mileage_flag_t)
        v.mileage_flag_t = float(flag[-1])
        out[:, _DRIVING] = (t_end - flag < hold)[:, None]
    with np.errstate(invalid="ignore"):
        far = np.nan_to_num(away, nan=0.0) >= c.away_km
    out[:, _PLACE] |= far[:, None]
    return out
