"""Relocation: hours spent far from every familiar place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..features import HOUR
from .base import HourBlock, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["Relocation"]


class Relocation:
    kinds: tuple[str, ...] = ("relocation",)

    def detect(self, v: Vehicle, b: HourBlock) -> list[Signal]:
        P, t_end, away = b.pos, b.t_end, b.away
        c = v.cfg
        flag = np.nan_to_num(v.hist["away_km"], nan=0.0) >= c.away_km
        cs = np.r_[0, np.cumsum(flag)]
        n_away = cs[P + 1] - cs[np.maximum(P + 1 - c.context_h, 0)]
        out: list[Signal] = []
        for i in range(t_end.size):
            is_away = bool(flag[P[i]])
            v.away_streak = v.away_streak + 1 if is_away else 0
            if not is_away or n_away[i] < c.away_hours:
                continue
            te = float(t_end[i])
            lvl = 2 if v.away_streak >= c.away_emergency_h else 1
            seg = (te - c.context_h * HOUR, te)
            ev = {
                "away_km": float(away[i]),
                "away_hours_in_window": int(n_away[i]),
                "away_streak_h": v.away_streak,
            }
            out.append(Signal(te, "relocation", lvl, float(away[i]), ev, seg, v._path_fn(seg)))
        return out
