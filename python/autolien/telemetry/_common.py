"""Shared pieces of the decoders: input handling, Arrow helpers, the result type."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ..schemas import TIME_TYPE as TIME_TYPE  # noqa: PLC0414 - re-exported to the decoders
from ._raw import RawRejects

REJECT_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.uint64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("raw", pa.binary(), nullable=False),
    ]
)


@dataclass(frozen=True)
class DecodeResult:
    """What a decoder returns: the main table, every message, and the rejects."""

    table: pa.Table
    rejects: pa.Table
    messages: pa.Table | None = None

    def __repr__(self) -> str:
        extra = f", messages={self.messages.num_rows}" if self.messages is not None else ""
        return f"DecodeResult(rows={self.table.num_rows}{extra}, rejects={self.rejects.num_rows})"


def read_input(data: Any) -> bytes | bytearray | memoryview:
    """bytes, bytearray, memoryview, a uint8 numpy array, or a file path."""
    if isinstance(data, bytes | bytearray | memoryview):
        return data
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            msg = f"data as an array must be 1-D uint8, got {data.ndim}-D {data.dtype}"
            raise TypeError(msg)
        return np.ascontiguousarray(data).data
    if isinstance(data, str | os.PathLike):
        return Path(data).read_bytes()
    msg = f"data must be bytes, a uint8 array or a path, got {type(data).__name__}"
    raise TypeError(msg)


_BINARY = pa.binary()


def binary_array(col: tuple[np.ndarray, np.ndarray], typ: pa.DataType = _BINARY) -> pa.Array:
    """Arrow binary (or string) from (data, int64 offsets) arrays."""
    data, offsets = col
    large = pa.large_binary() if typ == _BINARY else pa.large_string()
    arr = pa.Array.from_buffers(
        large, len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    return arr.cast(typ)


def nullable(values: np.ndarray, absent: Any, typ: pa.DataType) -> pa.Array:
    """Marks ``absent`` (or NaN) as null."""
    mask = np.isnan(values) if values.dtype.kind == "f" else values == absent
    return pa.array(values, mask=mask).cast(typ)


_NO_REJECTS = REJECT_SCHEMA.empty_table()


def rejects_table(rej: RawRejects, reasons: dict[int, str]) -> pa.Table:
    if len(rej["offset"]) == 0:
        return _NO_REJECTS  # the rule: no per-call cost for it
    return pa.table(
        {
            "offset": pa.array(rej["offset"], pa.uint64()),
            "reason": pa.array([reasons[int(r)] for r in rej["reason"]], pa.string()),
            "message": pa.array(rej["message"], pa.string()),
            "raw": binary_array(rej["raw"]),
        },
        schema=REJECT_SCHEMA,
    )


@cache
def _column_types() -> dict[str, list[tuple[str, str, str]]]:
    return _core.column_types()


def column_list(table: str) -> list[tuple[str, str, str]]:
    """A C++ column list: (name, numpy dtype, output type) in declaration order."""
    return _column_types()[table]


def generated_fields(table: str) -> list[pa.Field]:
    """The Arrow fields of a C++ column list's columns that have an output type.

    The C++ headers declare each result's columns once, as (name, element
    type, output type); "?" marks a column whose absent marker (NaN, or -1)
    becomes null. The binding and these fields are both generated from that
    list, so a column's name is never written twice.
    """
    return [
        pa.field(name, pa.type_for_alias(out.rstrip("?")), nullable=out.endswith("?"))
        for name, _, out in _column_types()[table]
        if out
    ]


def generated_column(values: np.ndarray, field: pa.Field) -> pa.Array:
    """A generated field's column from its raw values."""
    if not field.nullable:
        return pa.array(values, field.type)
    if values.dtype.kind == "f" and field.type == pa.float64():
        # NaN -> null as a validity bitmap over the same values: no copy.
        return pa.Array.from_buffers(
            field.type, len(values), [validity(~np.isnan(values)), pa.py_buffer(values)]
        )
    if values.dtype.kind == "i" and pa.types.is_unsigned_integer(field.type):
        # -1 -> null; narrowed in numpy when every other value fits, which
        # skips Arrow's checked cast (the general path still raises if not).
        target, top = _unsigned(field.type)
        if ((values >= -1) & (values <= top)).all():
            present = values != -1
            return pa.Array.from_buffers(
                field.type,
                len(values),
                [validity(present), pa.py_buffer(values.astype(target))],
            )
    return nullable(values, -1, field.type)


@cache
def _unsigned(typ: pa.DataType) -> tuple[np.dtype[Any], int]:
    target = np.dtype(typ.to_pandas_dtype())
    return target, int(np.iinfo(target).max)


def validity(valid: np.ndarray) -> pa.Buffer | None:
    """An Arrow validity bitmap from booleans (None when every row is valid)."""
    if valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))
