"""What every detector shares: the signal it emits, the context it reads,
and the one protocol it follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from ..features import Derived

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["Detector", "Scan", "ScoredHours", "Signal"]


@dataclass
class Signal:
    time: float
    kind: str
    level: int
    score: float
    evidence: dict[str, Any]
    segment: tuple[float, float]
    path: Any = None  # callable -> (t, lat, lon), evaluated only when an alert opens or escalates


@dataclass
class Scan:
    """One advance over a vehicle's buffer: its derived samples, the hours
    [h_a, h_b) being scored and the buffered odometer readings as (time, km,
    step from the reading before, hour)."""

    d: Derived
    h_a: int
    h_b: int
    odo_steps: tuple[np.ndarray, ...]


@dataclass
class ScoredHours:
    """One vehicle's scored hours within a block (``engine.score_block``,
    one core call for the block): ``cols`` are the block's per-hour result
    columns and ``sl`` this vehicle's rows of them; ``b[name]`` is its view
    of a column. The hour detectors read these to build their signals."""

    cols: dict[str, np.ndarray]
    sl: slice

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name][self.sl]


C_contra = TypeVar("C_contra", contravariant=True)


class Detector(Protocol[C_contra]):
    """A detector names the alert kinds it raises and turns a vehicle's state
    and a context (a ``Scan``, ``ScoredHours``, or the fleet clock) into
    signals. The state it reads and updates lives on the vehicle, so a
    detector holds none and one instance serves every vehicle."""

    kinds: tuple[str, ...]

    def detect(self, v: Vehicle, ctx: C_contra, /) -> list[Signal]: ...
