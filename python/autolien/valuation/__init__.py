"""Vehicle valuation: the base value model (gradient boosting on log price,
ONNX-exported, compiled for the C++ scorer), usage, market and battery
factors, battery health from GB/T 32960, the value forecast and LTV
(docs/valuation.md)."""

from __future__ import annotations

from .adjust import battery_factor, estimate_soh, ltv, usage_factor
from .market import MARKET_SCHEMA, fit_market_response, market_index
from .model import DEFAULT_MODEL, VALUE_SCHEMA, Valuer
from .train import ExportParityError, train

__all__ = [
    "DEFAULT_MODEL",
    "MARKET_SCHEMA",
    "VALUE_SCHEMA",
    "ExportParityError",
    "Valuer",
    "battery_factor",
    "estimate_soh",
    "fit_market_response",
    "ltv",
    "market_index",
    "train",
    "usage_factor",
]
