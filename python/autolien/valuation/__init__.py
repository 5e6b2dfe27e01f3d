"""Vehicle valuation: the base value model (gradient boosting on log price,
ONNX-exported, compiled for the C++ scorer). Usage, market and battery
adjustments, the decay forecast and LTV arrive next (docs/valuation.md)."""

from __future__ import annotations

from .model import DEFAULT_MODEL, VALUE_SCHEMA, Valuer
from .train import ExportParityError, train

__all__ = ["DEFAULT_MODEL", "VALUE_SCHEMA", "ExportParityError", "Valuer", "train"]
