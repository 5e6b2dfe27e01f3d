"""Position jumps: a step too fast to drive, or a long hop between two
standstills, confirmed by the fixes after it (a glitch comes back)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...gnss import distance_m
from ..features import HOUR, I64
from .base import Scan, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["PositionJump", "confirmed_jumps"]


class PositionJump:
    kinds: tuple[str, ...] = ("position_jump",)

    def detect(self, v: Vehicle, s: Scan) -> list[Signal]:
        d, h_a, h_b = s.d, s.h_a, s.h_b
        c = v.cfg
        out: list[Signal] = []
        hs = np.floor(d.t / HOUR).astype(np.int64)
        for i, at in confirmed_jumps(v, d, hs, h_a, h_b):
            lvl = 1 if d.jump_m[i] >= c.jump_alert_m else 0
            ev = {
                "from": [float(d.lat[i - 1]), float(d.lon[i - 1])],
                "to": [float(d.lat[i]), float(d.lon[i])],
                "distance_m": float(d.jump_m[i]),
                "gap_s": float(d.t[i] - d.t[i - 1]),
                "confirmed_by_fixes": c.jump_confirm_fixes,
            }
            seg = (float(d.t[i - 1]), float(d.t[i]))
            out.append(
                Signal(
                    float(d.t[at]),
                    "position_jump",
                    lvl,
                    float(d.jump_m[i]),
                    ev,
                    seg,
                    v._path_fn(seg),
                )
            )
        return out


def confirmed_jumps(v: Vehicle, d: Any, hs: I64, h_a: int, h_b: int) -> list[tuple[int, int]]:
    """(jump fix, confirming fix) of the jumps confirmed in hours [h_a, h_b).

    A single bad fix that lies far away and comes straight back is a GPS
    glitch, not a move. A jump at fix i is confirmed by fix i + K
    (K = ``jump_confirm_fixes``) when none of fixes i+1 .. i+K is back
    within ``jump_min_m`` of fix i-1; the step that comes back from a
    glitch (fix j back near the fix before a jump among j-K .. j-1) is no
    jump either. Both tests read only fixes i-K-1 .. i+K, which the
    buffer keeps (``_trim``), so streaming decides as batch does."""
    k = v.cfg.jump_confirm_fixes
    lim = v.cfg.jump_min_m
    n = d.t.size
    out = []
    for j in np.flatnonzero(d.jump):
        i = int(j)
        at = i + k
        if at >= n or not h_a <= hs[at] < h_b:
            continue
        ahead = slice(i + 1, at + 1)
        if (distance_m(d.lat[i - 1], d.lon[i - 1], d.lat[ahead], d.lon[ahead]) < lim).any():
            continue  # out and back: a glitch
        before = np.arange(max(1, i - k), i)
        before = before[d.jump[before]]
        if (
            before.size
            and (distance_m(d.lat[before - 1], d.lon[before - 1], d.lat[i], d.lon[i]) < lim).any()
        ):
            continue  # the return from a glitch
        out.append((i, at))
    return out
