"""The monitor's detectors, one module each, behind one protocol
(``base.Detector``): per advance over the buffer (``Scan``), over a vehicle's hours scored
by the block kernel (``ScoredHours``), or against the fleet clock (device
silence).
``engine.Vehicle`` holds the state and calls them in a fixed order
(docs/monitor.md)."""

from __future__ import annotations

from . import silence
from .base import Detector, Scan, ScoredHours, Signal
from .entropy import ENTROPY_FEATURES, EntropyIncrease
from .jumps import PositionJump
from .mileage import Mileage
from .odometer import OdometerRollback
from .relocation import Relocation
from .silence import DeviceSilence
from .towing import Towing
from .vin import VinChange

__all__ = [
    "ENTROPY",
    "ENTROPY_FEATURES",
    "HOUR_DETECTORS",
    "MILEAGE",
    "RELOCATION",
    "SCAN_DETECTORS",
    "SILENCE",
    "Detector",
    "DeviceSilence",
    "EntropyIncrease",
    "Mileage",
    "OdometerRollback",
    "PositionJump",
    "Relocation",
    "Scan",
    "ScoredHours",
    "Signal",
    "Towing",
    "VinChange",
    "silence",
]

# in this order: their signals keep it where times tie
SCAN_DETECTORS: tuple[Detector[Scan], ...] = (
    PositionJump(),
    OdometerRollback(),
    Towing(),
    VinChange(),
)
MILEAGE = Mileage()
ENTROPY = EntropyIncrease()
RELOCATION = Relocation()
# in this order: their signals keep it where times tie
HOUR_DETECTORS: tuple[Detector[ScoredHours], ...] = (ENTROPY, MILEAGE, RELOCATION)
SILENCE = DeviceSilence()
