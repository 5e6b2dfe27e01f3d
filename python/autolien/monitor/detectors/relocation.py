"""Relocation: hours spent far from every familiar place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ... import _core
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
        # the away hours of each hour's context window and the streak, in
        # one core call (cpp/src/monitor/score.cpp; the numpy form it
        # replaced is tests/monitor_reference.py's relocation_flags): the
        # history rows the first window reaches back to, then the day's
        lo = max(0, int(P[0]) + 1 - int(c.context_h))
        n_away, streak, level, v.away_streak = _core.monitor_relocation(
            np.ascontiguousarray(v.hist["away_km"][lo : int(P[-1]) + 1], dtype=np.float64),
            int(P.size),
            float(c.away_km),
            int(c.context_h),
            int(c.away_hours),
            int(c.away_emergency_h),
            int(v.away_streak),
        )
        out: list[Signal] = []
        for i in np.flatnonzero(level >= 0).tolist():
            te = float(t_end[i])
            seg = (te - c.context_h * HOUR, te)
            ev = {
                "away_km": float(away[i]),
                "away_hours_in_window": int(n_away[i]),
                "away_streak_h": int(streak[i]),
            }
            out.append(
                Signal(te, "relocation", int(level[i]), float(away[i]), ev, seg, v._path_fn(seg))
            )
        return out
