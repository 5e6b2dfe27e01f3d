"""Vehicle valuation: the base value model (gradient boosting on log price,
ONNX-exported, compiled for the C++ scorer), usage and battery factors,
battery health from GB/T 32960, the value forecast and LTV. The market factor
is not built yet (docs/valuation.md)."""

from __future__ import annotations

from .adjust import battery_factor, estimate_soh, ltv, usage_factor
from .model import DEFAULT_MODEL, VALUE_SCHEMA, Valuer
from .train import ExportParityError, train

__all__ = [
    "DEFAULT_MODEL",
    "VALUE_SCHEMA",
    "ExportParityError",
    "Valuer",
    "battery_factor",
    "estimate_soh",
    "ltv",
    "train",
    "usage_factor",
]
