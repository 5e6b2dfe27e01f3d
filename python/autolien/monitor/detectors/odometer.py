"""Odometer rollback: a reading below the one before it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import Scan, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["OdometerRollback"]


class OdometerRollback:
    kinds: tuple[str, ...] = ("odometer_rollback",)

    def detect(self, v: Vehicle, s: Scan) -> list[Signal]:
        h_a, h_b, odo_steps = s.h_a, s.h_b, s.odo_steps
        c = v.cfg
        out: list[Signal] = []
        t, km, step, ohs = odo_steps
        for r in np.flatnonzero((step < -c.rollback_km) & (ohs >= h_a) & (ohs < h_b)):
            ev = {
                "before_km": float(km[r - 1]),
                "after_km": float(km[r]),
                "rollback_km": float(-step[r]),
            }
            out.append(
                Signal(
                    float(t[r]),
                    "odometer_rollback",
                    2,
                    float(-step[r]),
                    ev,
                    (float(t[r - 1]), float(t[r])),
                )
            )
        return out
