"""What every detector shares: the signal it emits, the context it reads,
and the one protocol it follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from ..features import F64, I64, Derived

if TYPE_CHECKING:
    from ..engine import Vehicle

__all__ = ["Detector", "HourBlock", "Scan", "Signal"]


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
class HourBlock:
    """The scored hours of one UTC day within an advance (the baseline is
    fixed within a day): ``sl`` indexes the advance's hours, ``pos`` the
    vehicle's history rows, ``t_end`` each hour's end; ``feats`` are the
    advance's hourly features. The entropy detector writes ``score`` and
    ``cus`` (the advance's columns); the mileage detector sets
    ``driving_more``, which the entropy detector reads."""

    sl: slice
    pos: I64
    t_end: F64
    feats: dict[str, F64]
    away: F64
    earlier: F64
    score: F64
    cus: F64
    driving_more: npt.NDArray[np.bool_]
    fixes: F64  # fixes in each hour's context window


C_contra = TypeVar("C_contra", contravariant=True)


class Detector(Protocol[C_contra]):
    """A detector names the alert kinds it raises and turns a vehicle's state
    and a context (a ``Scan``, an ``HourBlock``, or the fleet clock) into
    signals. The state it reads and updates lives on the vehicle, so a
    detector holds none and one instance serves every vehicle."""

    kinds: tuple[str, ...]

    def detect(self, v: Vehicle, ctx: C_contra, /) -> list[Signal]: ...
