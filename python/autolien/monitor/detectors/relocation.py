"""Relocation: hours spent far from every familiar place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..features import HOUR
from .base import ScoredHours, Signal

if TYPE_CHECKING:
    from ..config import MonitorConfig
    from ..engine import Vehicle

__all__ = ["Relocation"]


class Relocation:
    kinds: tuple[str, ...] = ("relocation",)

    @staticmethod
    def fires(b: Any, _c: MonitorConfig) -> npt.NDArray[np.bool_]:
        """The scored hours with an away level (``b``: the block's result
        columns, or one vehicle's ``ScoredHours``)."""
        out: npt.NDArray[np.bool_] = b["level"] >= 0
        return out

    def detect(self, v: Vehicle, b: ScoredHours) -> list[Signal]:
        # the away hours of each hour's context window and the streak come
        # from the block kernel (cpp/src/monitor/fleet.cpp, which calls
        # score.cpp's relocation_flags day by day; the numpy form it
        # replaced is tests/monitor_reference.py's relocation_flags)
        c = v.cfg
        hits = np.flatnonzero(self.fires(b, c))
        out: list[Signal] = []
        if not hits.size:
            return out
        level = b["level"]
        t_end, away, n_away, streak = b["t_end"], b["away_km"], b["n_away"], b["streak"]
        for i in hits.tolist():
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
