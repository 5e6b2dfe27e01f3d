"""Checks a value against a type hint of ``_core.pyi`` (TypedDicts, numpy
arrays with their dtype, tuples, lists), for the tests that hold the stub
equal to what the compiled module returns."""

from __future__ import annotations

import typing
from typing import Any

import numpy as np


def _dtype(hint: Any) -> str | None:
    """'uint8' for NDArray[np.uint8], None for anything else."""
    if typing.get_origin(hint) is not np.ndarray:
        return None
    (scalar,) = typing.get_args(typing.get_args(hint)[1])
    return str(np.dtype(scalar))


def _check(value: Any, hint: Any, where: str) -> None:
    origin = typing.get_origin(hint)
    if typing.is_typeddict(hint):
        hints = typing.get_type_hints(hint)
        assert isinstance(value, dict), where
        assert set(value) == set(hints), (where, set(value) ^ set(hints))
        for key, sub in hints.items():
            _check(value[key], sub, f"{where}.{key}")
    elif origin is np.ndarray:
        assert isinstance(value, np.ndarray), where
        assert value.dtype == np.dtype(_dtype(hint)), where
    elif origin is tuple:
        assert isinstance(value, tuple), where
        assert len(value) == len(typing.get_args(hint)), where
        for i, (v, h) in enumerate(zip(value, typing.get_args(hint), strict=True)):
            _check(v, h, f"{where}[{i}]")
    elif origin is list:
        assert isinstance(value, list), where
        for i, v in enumerate(value):
            _check(v, typing.get_args(hint)[0], f"{where}[{i}]")
    else:
        assert isinstance(value, hint), where
