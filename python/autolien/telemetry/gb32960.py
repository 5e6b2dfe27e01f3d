"""GB/T 32960.3-2016 EV data (real-time 0x02, reissue 0x03, login, logout,
heartbeat, time calibration).

``decode_gb32960(data)`` returns a :class:`DecodeResult`:

* ``table``: one row per real-time or reissue frame (:data:`EV_SCHEMA`).
  The vehicle unit gives ``soc_pct``, ``pack_voltage_v``, ``pack_current_a``
  (offset -1000 A), ``odometer_km`` and ``speed_kmh``. Location (unit 0x05,
  longitude first) gives ``lat``/``lon``, signed by its status bits and null
  when bit 0 says invalid. The other units have their own columns:
  extremes, alarms with fault codes, drive motors (temperatures -40, speed
  -20000 rpm, torque -2000 Nm), the frame's share of cell voltages (unit 0x08
  splits a pack across frames by start cell: see ``cells``) and probe
  temperatures (-40). Custom units 0x80-0xFE, and the fuel-cell unit 0x03,
  are kept raw in ``custom_units``.
* A unit that cannot be read (unknown id, or cut short) costs only itself and
  the units after it: they are kept raw in ``units_tail`` and flagged in
  ``units_error`` (:data:`UNITS_ERRORS`) and ``units_error_offset``.
* Values sent as 0xFE.. (abnormal) or 0xFF.. (invalid) are null, and the field
  names go into ``abnormal_fields`` / ``invalid_fields``.
* ``messages``: every frame with its header, VIN, command and data, and the
  login fields (serial, ICCID, subsystem codes) and logout serial.
* ``rejects``: junk, BCC mismatches, bad data and truncated input.

Times are the data collection time (binary, GMT+8) converted to UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ._common import (
    TIME_TYPE,
    DecodeResult,
    binary_array,
    generated_column,
    generated_fields,
    nullable,
    read_input,
    rejects_table,
)

__all__ = ["EV_SCHEMA", "MESSAGE_SCHEMA", "REASONS", "UNITS_ERRORS", "decode_gb32960"]

REASONS = {1: "junk", 2: "bad_checksum", 3: "bad_body", 4: "truncated"}

# Why a row's information units did not all decode (C++ UnitsError).
UNITS_ERRORS = {1: "unknown_unit", 2: "cut_short"}


# The scalar fields, in the order of the C++ Field enum (bit i of the flags).
_SCALAR_FIELDS = generated_fields("gb32960.scalars")
SCALARS = [(f.name, f.type) for f in _SCALAR_FIELDS]
_ROW_GENERATED = generated_fields("gb32960.rows")
_FRAME_GENERATED = generated_fields("gb32960.frames")
_UNITS_ERROR_NAMES = pa.array(
    [UNITS_ERRORS.get(i) for i in range(max(UNITS_ERRORS) + 1)], pa.string()
)
MOTOR_TYPE = pa.struct(
    [
        ("no", pa.uint8()),
        ("status", pa.uint8()),
        ("controller_temp_c", pa.float64()),
        ("speed_rpm", pa.float64()),
        ("torque_nm", pa.float64()),
        ("temp_c", pa.float64()),
        ("voltage_v", pa.float64()),
        ("current_a", pa.float64()),
    ]
)
CELLS_TYPE = pa.struct(
    [
        ("subsystem", pa.uint8()),
        ("voltage_v", pa.float64()),
        ("current_a", pa.float64()),
        ("total_cells", pa.uint16()),
        ("start_cell", pa.uint16()),
        ("voltages_v", pa.list_(pa.float64())),
    ]
)
PROBES_TYPE = pa.struct([("subsystem", pa.uint8()), ("temps_c", pa.list_(pa.float64()))])
FAULT_TYPE = pa.struct([("category", pa.string()), ("code", pa.uint32())])
CUSTOM_TYPE = pa.struct([("id", pa.uint8()), ("value", pa.binary())])
FAULT_CATEGORIES = ["ress", "drive_motor", "engine", "other"]

EV_SCHEMA = pa.schema(
    [
        pa.field("vin", pa.string(), nullable=False),
        pa.field("time", TIME_TYPE),
        pa.field("reissue", pa.bool_(), nullable=False),
        *_SCALAR_FIELDS,
        pa.field("gear", pa.uint8()),
        *_ROW_GENERATED,
        pa.field("faults", pa.list_(FAULT_TYPE), nullable=False),
        pa.field("motors", pa.list_(MOTOR_TYPE), nullable=False),
        pa.field("cells", pa.list_(CELLS_TYPE), nullable=False),
        pa.field("cell_voltages_v", pa.list_(pa.float64()), nullable=False),
        pa.field("probe_temps", pa.list_(PROBES_TYPE), nullable=False),
        pa.field("probe_temps_c", pa.list_(pa.float64()), nullable=False),
        pa.field("custom_units", pa.list_(CUSTOM_TYPE), nullable=False),
        pa.field("abnormal_fields", pa.list_(pa.string()), nullable=False),
        pa.field("invalid_fields", pa.list_(pa.string()), nullable=False),
        # Null when every unit decoded; else UNITS_ERRORS, the byte of the
        # frame's data where the bad unit starts, and it and the rest, raw.
        pa.field("units_error", pa.string()),
        pa.field("units_error_offset", pa.uint32()),
        pa.field("units_tail", pa.binary()),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("vin", pa.string(), nullable=False),
        pa.field("time", TIME_TYPE),
        *_FRAME_GENERATED,
        pa.field("iccid", pa.string()),
        pa.field("ress_codes", pa.list_(pa.string()), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
        # A login or logout cut short after its time: what is missing.
        pa.field("data_error", pa.string()),
    ]
)


def _offsets(a: np.ndarray) -> pa.Array:
    return pa.array(a.astype(np.int32), pa.int32())


def _time(t: np.ndarray) -> pa.Array:
    return pa.array(t, mask=t == np.iinfo(np.int64).min).cast(TIME_TYPE)


_SCALAR_NAMES = pa.array([name for name, _ in SCALARS], pa.string())


def _flags(masks: np.ndarray) -> pa.Array:
    """The names of each mask's set bits (bit i: ``SCALARS[i]``), in bit
    order: a row loop in Python cost 0.35 s for a 10,000-vehicle day file."""
    k = len(_SCALAR_NAMES)
    m = np.asarray(masks).astype(np.uint64)
    bits = ((m[:, None] >> np.arange(k, dtype=np.uint64)[None, :]) & np.uint64(1)).astype(bool)
    offsets = np.zeros(m.size + 1, np.int32)
    np.cumsum(bits.sum(axis=1), out=offsets[1:])
    # nonzero walks the matrix row by row: each row's bits in ascending order
    names = _SCALAR_NAMES.take(pa.array(np.nonzero(bits)[1].astype(np.int32)))
    return pa.ListArray.from_arrays(pa.array(offsets), names, type=pa.list_(pa.string()))


def _empty_as_null(a: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(a, ""), pa.scalar(None, pa.string()), a)


def decode_gb32960(data: Any) -> DecodeResult:
    """Decodes a stream of GB/T 32960 frames (bytes, a uint8 array or a file path)."""
    raw = _core.decode_gb32960(read_input(data))
    fr, r = raw["frames"], raw["rows"]
    frame_cols: Mapping[str, Any] = fr  # indexed by the generated names
    row_cols: Mapping[str, Any] = r  # indexed by the generated names
    vins = binary_array(fr["vin"], pa.string())
    if len(fr["data_error"][0]):
        errors = binary_array(fr["data_error"], pa.string())
        data_error = pc.if_else(pc.equal(errors, ""), None, errors)
    else:  # the usual case
        data_error = pa.nulls(len(fr["cmd"]), pa.string())
    messages = pa.table(
        {
            "vin": vins,
            "time": _time(fr["time_us"]),
            **{f.name: generated_column(frame_cols[f.name], f) for f in _FRAME_GENERATED},
            "iccid": _empty_as_null(binary_array(fr["iccid"], pa.string())),
            "ress_codes": pa.array(fr["ress_codes"], pa.list_(pa.string())),
            "data": binary_array(fr["data"]),
            "data_error": data_error,
        },
        schema=MESSAGE_SCHEMA,
    )
    idx = pa.array(r["frame_index"].astype(np.int64))
    motors = r["motor"].reshape(-1, 8)
    motor_structs = pa.StructArray.from_arrays(
        [
            pa.array(motors[:, i]).cast(f.type)
            if f.type != pa.float64()
            else nullable(motors[:, i], None, f.type)
            for i, f in enumerate(MOTOR_TYPE)
        ],
        fields=list(MOTOR_TYPE),
    )
    cs = r["cellset"].reshape(-1, 6)
    cell_lists = pa.ListArray.from_arrays(
        _offsets(r["cellset_cells_start"]), nullable(r["cell_v"], None, pa.float64())
    )
    cell_structs = pa.StructArray.from_arrays(
        [
            pa.array(cs[:, 0]).cast(pa.uint8()),
            nullable(cs[:, 1], None, pa.float64()),
            nullable(cs[:, 2], None, pa.float64()),
            pa.array(cs[:, 3]).cast(pa.uint16()),
            pa.array(cs[:, 4]).cast(pa.uint16()),
            cell_lists,
        ],
        fields=list(CELLS_TYPE),
    )
    probe_lists = pa.ListArray.from_arrays(
        _offsets(r["probeset_temps_start"]), nullable(r["probe_c"], None, pa.float64())
    )
    probe_structs = pa.StructArray.from_arrays(
        [pa.array(r["probeset_no"], pa.uint8()), probe_lists], fields=list(PROBES_TYPE)
    )
    fault_structs = pa.StructArray.from_arrays(
        [
            pa.array([FAULT_CATEGORIES[c] for c in r["fault_category"].tolist()], pa.string()),
            pa.array(r["fault_code"], pa.uint32()),
        ],
        fields=list(FAULT_TYPE),
    )
    custom_structs = pa.StructArray.from_arrays(
        [
            pa.array(r["custom_id"], pa.uint8()),
            binary_array((r["custom_value"], r["custom_value_start"].astype(np.int64))),
        ],
        fields=list(CUSTOM_TYPE),
    )
    cells_per_row = pa.ListArray.from_arrays(_offsets(r["cellset_start"]), cell_structs)
    probes_per_row = pa.ListArray.from_arrays(_offsets(r["probeset_start"]), probe_structs)
    # Flat per-row lists: the frame's cells (probes) in order, all subsystems.
    cell_bounds = r["cellset_cells_start"][r["cellset_start"]]
    probe_bounds = r["probeset_temps_start"][r["probeset_start"]]
    scalars = r["scalars"]
    n = len(r["offset"])
    if r["units_error"].any():
        units_error = _UNITS_ERROR_NAMES.take(pa.array(r["units_error"].astype(np.int32)))
        error_offset = nullable(r["units_error_offset"], -1, pa.uint32())
        tail = binary_array((r["tail"], r["tail_start"].astype(np.int64)))
        units_tail = pc.if_else(pa.array(np.diff(r["tail_start"]) == 0), None, tail)
    else:  # the usual case: every unit decoded
        units_error = pa.nulls(n, pa.string())
        error_offset = pa.nulls(n, pa.uint32())
        units_tail = pa.nulls(n, pa.binary())
    columns: dict[str, Any] = {
        "vin": vins.take(idx),
        "time": _time(r["time_us"]),
        "reissue": pa.array(r["reissue"].astype(bool)),
        **{f.name: generated_column(scalars[i], f) for i, f in enumerate(_SCALAR_FIELDS)},
        "gear": nullable(r["gear"].astype(np.int32), 0xFF, pa.uint8()),
        **{f.name: generated_column(row_cols[f.name], f) for f in _ROW_GENERATED},
        "faults": pa.ListArray.from_arrays(_offsets(r["fault_start"]), fault_structs),
        "motors": pa.ListArray.from_arrays(_offsets(r["motor_start"]), motor_structs),
        "cells": cells_per_row,
        "cell_voltages_v": pa.ListArray.from_arrays(
            _offsets(cell_bounds), nullable(r["cell_v"], None, pa.float64())
        ),
        "probe_temps": probes_per_row,
        "probe_temps_c": pa.ListArray.from_arrays(
            _offsets(probe_bounds), nullable(r["probe_c"], None, pa.float64())
        ),
        "custom_units": pa.ListArray.from_arrays(_offsets(r["custom_start"]), custom_structs),
        "abnormal_fields": _flags(r["abnormal"]),
        "invalid_fields": _flags(r["invalid"]),
        "units_error": units_error,
        "units_error_offset": error_offset,
        "units_tail": units_tail,
        "offset": pa.array(r["offset"], pa.uint64()),
    }
    table = pa.table(columns, schema=EV_SCHEMA)
    return DecodeResult(
        table=table, rejects=rejects_table(raw["rejects"], REASONS), messages=messages
    )
