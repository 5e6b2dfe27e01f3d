"""VIN change: a GB/T 32960 terminal reports another VIN."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..features import HOUR
from .base import Scan, Signal

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["VinChange"]


class VinChange:
    kinds: tuple[str, ...] = ("vin_change",)

    def detect(self, v: Vehicle, s: Scan) -> list[Signal]:
        h_a, h_b = s.h_a, s.h_b
        out = []
        keep = []
        for t, vin in v.vins:
            h = math.floor(t / HOUR)
            if h >= h_b:
                keep.append((t, vin))
                continue
            if h < h_a:
                continue
            if v.last_vin is not None and vin != v.last_vin:
                out.append(
                    Signal(
                        t, "vin_change", 2, 1.0, {"previous_vin": v.last_vin, "vin": vin}, (t, t)
                    )
                )
            v.last_vin = vin
        v.vins = keep
        return out
