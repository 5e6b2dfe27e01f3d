"""NMEA 0183 and u-blox UBX from the BeiDou+GPS RTK receiver.

``decode_nmea(data)`` takes one byte stream in which NMEA sentences (GGA, RMC,
GST, GSA, VTG from any talker: GP, GN, BD, GB, GL, GA, ...) and UBX messages
(NAV-PVT) are interleaved. It returns a :class:`DecodeResult` with:

* ``table``: one row per epoch, in :data:`FIX_SCHEMA`. NMEA sentences that
  carry the same time of day form one epoch (GSA and VTG join the current
  one), and each NAV-PVT is an epoch of its own.
* ``messages``: every sentence or UBX message, used or not (GSV, ESF-MEAS, ...
  are listed with ``used = false``);
* ``rejects``: junk between messages (counted, with its bytes), bad
  checksums, malformed times, qualities, positions or dates (the whole
  sentence: none of it reaches a row), sentences cut short by another one
  before any checksum, and truncated input.

Column rules:

* ``quality`` is the GGA fix quality: 0 invalid, 1 single, 2 DGPS, 4 RTK
  fixed, 5 RTK float, 6 dead reckoning. It is read from GGA field 6 or mapped
  from NAV-PVT: fixType 1 (dead reckoning only) gives 6; otherwise carrSoln 2
  gives 4, carrSoln 1 gives 5, diffSoln gives 2, else 1. A GNSS+DR fix
  (fixType 4) is classed by its GNSS part, as receivers write it in GGA and as
  gpsd reports it; ``fix_type`` keeps the raw value.
  It is never read from the RMC mode letter, which receivers misreport (kept
  as ``rmc_mode``). It is null for an epoch with neither GGA nor NAV-PVT.
* ``time`` is UTC. NMEA times of day take their date from RMC (or the last
  known date, rolling over at midnight); before any date is known the time is
  null.
* ``altitude_m`` is above mean sea level and ``height_m`` above the ellipsoid.
* ``sigma_n_m``, ``sigma_e_m`` and ``sigma_u_m`` are the GST standard
  deviations. For NAV-PVT they are hAcc (north and east alike) and vAcc.
* ``checksum_present`` is false when a sentence of the epoch came without its
  ``*hh`` checksum: such a sentence, ended by CR/LF, is decoded (as pynmea2
  and gpsd do) but could not be checked.
* ``bad_fields`` names the columns that a sentence sent malformed (a number
  that is not one, a count out of range, a status that is not a letter):
  they are null unless another sentence of the epoch gave them, and the rest
  of the sentence is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ._common import (
    TIME_TYPE,
    DecodeResult,
    binary_array,
    column_list,
    generated_column,
    generated_fields,
    read_input,
    rejects_table,
    validity,
)

__all__ = ["FIX_SCHEMA", "REASONS", "decode_nmea"]

REASONS = {1: "junk", 2: "bad_checksum", 3: "no_checksum", 4: "bad_field", 5: "truncated"}

# The fix columns with an output type, from the C++ column list, in its order.
_FIX_GENERATED = generated_fields("nmea.fixes")
# Bit i of the raw bad_fields mask is the C++ list's column i.
_FIX_COLUMN_NAMES = [name for name, _, _ in column_list("nmea.fixes")]

FIX_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("time", TIME_TYPE),
        *_FIX_GENERATED,
        pa.field("rmc_status", pa.string()),
        pa.field("rmc_mode", pa.string()),
        # False when a sentence of the epoch came without its *hh checksum.
        pa.field("checksum_present", pa.bool_(), nullable=False),
        # The columns a sentence sent malformed (so they are null unless
        # another sentence gave them), comma-separated; null when none.
        pa.field("bad_fields", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

_MESSAGE_GENERATED = generated_fields("nmea.messages")

MESSAGE_SCHEMA = pa.schema(
    [
        *_MESSAGE_GENERATED,
        pa.field("kind", pa.string(), nullable=False),
        pa.field("used", pa.bool_(), nullable=False),
        pa.field("checksum_present", pa.bool_(), nullable=False),
    ]
)


_SOURCES = pa.array(["", "nmea", "ubx"], pa.string())
_UINT64 = pa.uint64()
# A column without a bitmap from the decoder (not nullable): every row valid.
_NO_BITS = np.zeros(0, np.uint8)


def _letters(codes: np.ndarray) -> pa.Array:
    # One letter per row (0 = absent): the codes are the string data itself,
    # since the decoder sends only ASCII capitals (valid UTF-8) or 0.
    n = len(codes)
    present = codes != 0
    if present.all():
        return pa.Array.from_buffers(
            pa.string(),
            n,
            [None, pa.py_buffer(np.arange(n + 1, dtype=np.int32)), pa.py_buffer(codes)],
        )
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(present, out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(),
        n,
        [
            validity(present),
            pa.py_buffer(offsets),
            pa.py_buffer(np.ascontiguousarray(codes[present])),
        ],
    )


# Per generated fix column, worked out once: (name, field, Arrow type, numpy
# dtype to narrow to, its largest value). A DataType read from a field, a
# dtype from to_pandas_dtype() and an iinfo each cost about a microsecond, per
# column and call. A float64 column has no dtype to narrow to; any other type
# than float64 or unsigned takes the general path (generated_column).
def _plan(fld: pa.Field) -> tuple[str, pa.Field, pa.DataType, np.dtype[Any] | None, int]:
    if pa.types.is_unsigned_integer(fld.type):
        target = np.dtype(fld.type.to_pandas_dtype())
        return fld.name, fld, fld.type, target, int(np.iinfo(target).max)
    return fld.name, fld, fld.type, None, -1 if fld.type == pa.float64() else -2


_FIX_PLAN = [_plan(fld) for fld in _FIX_GENERATED]


def _column(
    values: np.ndarray,
    field: pa.Field,
    typ: pa.DataType,
    target: np.dtype[Any] | None,
    top: int,
    bits: np.ndarray,
) -> pa.Array:
    # The decoder built the validity bitmap (empty: no row is absent) while
    # the rows were in cache, so a column is its buffers: no pass over the
    # values here but the one narrowing of the small counts to uint8.
    valid = pa.py_buffer(bits) if len(bits) else None
    if target is None and top == -1 and values.dtype == np.float64:
        return pa.Array.from_buffers(typ, len(values), [valid, pa.py_buffer(values)])
    # Absent counts hold -1 (masked by the bitmap); the rest fit by the
    # decoder's checks, and the general path still raises if not.
    if (
        target is not None
        and values.dtype == np.int32
        and (len(values) == 0 or (values.min() >= -1 and values.max() <= top))
    ):
        return pa.Array.from_buffers(typ, len(values), [valid, pa.py_buffer(values.astype(target))])
    return generated_column(values, field)


def _bools(values: np.ndarray) -> pa.Array:
    # 0/1 bytes to an Arrow boolean column: the bits packed in one numpy pass.
    bits = np.packbits(values.view(np.bool_), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _kinds(col: tuple[np.ndarray, np.ndarray]) -> pa.Array:
    # Message kinds (at most 9 bytes each) with 32-bit offsets built in numpy:
    # Arrow's large_string cast checks more than these need.
    data, starts = col
    if len(data) >= 2**31:
        return binary_array(col, pa.string())
    offsets = starts.astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(starts) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _sources(codes: np.ndarray) -> pa.Array:
    # 1 NMEA, 2 UBX. A log of one kind (the rule) is one string repeated:
    # built from buffers, as a take costs several ns a row.
    n = len(codes)
    for code in (1, 2):
        if n and (codes == code).all():
            text = _SOURCES[code].as_py().encode()
            offsets = np.arange(0, len(text) * n + 1, len(text), dtype=np.int32)
            return pa.Array.from_buffers(
                pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text * n)]
            )
    return _SOURCES.take(pa.array(codes))


def _bad_fields(mask: np.ndarray) -> pa.Array:
    # Names for each distinct mask only (bad fields are rare): no loop over rows.
    flagged = np.flatnonzero(mask)
    if flagged.size == 0:
        return pa.nulls(len(mask), pa.string())
    masks, which = np.unique(mask[flagged], return_inverse=True)
    names = [
        ",".join(name for b, name in enumerate(_FIX_COLUMN_NAMES) if int(m) >> b & 1) for m in masks
    ]
    codes = np.zeros(len(mask), np.int32)
    codes[flagged] = which
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, mask=mask == 0), pa.array(names, pa.string())
    ).cast(pa.string())


def decode_nmea(data: Any, *, vehicle_id: str | None = None) -> DecodeResult:
    """Decodes NMEA and UBX (bytes, a uint8 array or a file path).

    ``vehicle_id`` fills the column of that name (receivers do not send one).
    """
    raw = _core.decode_nmea(read_input(data))
    f, m = raw["fixes"], raw["messages"]
    fix_cols: Mapping[str, Any] = f  # indexed by the generated names
    msg_cols: Mapping[str, Any] = m
    bits: Mapping[str, Any] = raw["validity"]
    n = len(f["offset"])
    t = f["time_us"]
    time_bits = bits["time_us"]
    table = pa.Table.from_arrays(
        [
            # vehicle_id: all null unless given (pa.nulls is ten times quicker
            # than repeating a null scalar)
            pa.nulls(n, pa.string())
            if vehicle_id is None
            else pa.repeat(pa.scalar(vehicle_id, pa.string()), n),
            pa.Array.from_buffers(
                TIME_TYPE, n, [pa.py_buffer(time_bits) if len(time_bits) else None, pa.py_buffer(t)]
            ),
            *[
                _column(fix_cols[name], fld, typ, target, top, bits.get(name, _NO_BITS))
                for name, fld, typ, target, top in _FIX_PLAN
            ],
            _letters(f["rmc_status"]),
            _letters(f["rmc_mode"]),
            _bools(f["checksum_present"]),
            _bad_fields(f["bad_fields"]),
            _sources(f["source"]),
            pa.Array.from_buffers(_UINT64, n, [None, pa.py_buffer(f["offset"])]),
        ],
        schema=FIX_SCHEMA,
    )
    messages = pa.Table.from_arrays(
        [
            *[generated_column(msg_cols[fld.name], fld) for fld in _MESSAGE_GENERATED],
            _kinds(m["kind"]),
            _bools(m["used"]),
            _bools(m["checksum_present"]),
        ],
        schema=MESSAGE_SCHEMA,
    )
    return DecodeResult(
        table=table, rejects=rejects_table(raw["rejects"], REASONS), messages=messages
    )
