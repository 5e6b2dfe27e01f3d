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
* Values sent as 0xFE.. (abnormal) or 0xFF.. (invalid) are null, and the field
  names go into ``abnormal_fields`` / ``invalid_fields``.
* ``messages``: every frame with its header, VIN, command and data, and the
  login fields (serial, ICCID, subsystem codes) and logout serial.
* ``rejects``: junk, BCC mismatches, bad data and truncated input.

Times are the data collection time (binary, GMT+8) converted to UTC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ._common import TIME_TYPE, DecodeResult, binary_array, nullable, read_input, rejects_table

__all__ = ["EV_SCHEMA", "REASONS", "decode_gb32960"]

REASONS = {1: "junk", 2: "bad_checksum", 3: "bad_body", 4: "truncated"}

# The order of the C++ Field enum.
SCALARS = [
    ("vehicle_status", pa.uint8()),
    ("charging_status", pa.uint8()),
    ("run_mode", pa.uint8()),
    ("speed_kmh", pa.float64()),
    ("odometer_km", pa.float64()),
    ("pack_voltage_v", pa.float64()),
    ("pack_current_a", pa.float64()),
    ("soc_pct", pa.float64()),
    ("dcdc_status", pa.uint8()),
    ("insulation_kohm", pa.float64()),
    ("accel_pedal_pct", pa.float64()),
    ("brake_pedal", pa.float64()),
    ("max_cell_v", pa.float64()),
    ("min_cell_v", pa.float64()),
    ("max_temp_c", pa.float64()),
    ("min_temp_c", pa.float64()),
    ("engine_status", pa.uint8()),
    ("crankshaft_rpm", pa.float64()),
    ("fuel_rate_l_per_100km", pa.float64()),
]
INTS = [
    "max_v_subsys",
    "max_v_cell",
    "min_v_subsys",
    "min_v_cell",
    "max_t_subsys",
    "max_t_probe",
    "min_t_subsys",
    "min_t_probe",
]
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
        *(pa.field(name, typ) for name, typ in SCALARS),
        pa.field("gear", pa.uint8()),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("location_status", pa.uint8()),
        *(pa.field(name, pa.uint8()) for name in INTS),
        pa.field("alarm_level", pa.uint8()),
        pa.field("alarm_flags", pa.uint32()),
        pa.field("faults", pa.list_(FAULT_TYPE), nullable=False),
        pa.field("motors", pa.list_(MOTOR_TYPE), nullable=False),
        pa.field("cells", pa.list_(CELLS_TYPE), nullable=False),
        pa.field("cell_voltages_v", pa.list_(pa.float64()), nullable=False),
        pa.field("probe_temps", pa.list_(PROBES_TYPE), nullable=False),
        pa.field("probe_temps_c", pa.list_(pa.float64()), nullable=False),
        pa.field("custom_units", pa.list_(CUSTOM_TYPE), nullable=False),
        pa.field("abnormal_fields", pa.list_(pa.string()), nullable=False),
        pa.field("invalid_fields", pa.list_(pa.string()), nullable=False),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.uint64(), nullable=False),
        pa.field("vin", pa.string(), nullable=False),
        pa.field("cmd", pa.uint8(), nullable=False),
        pa.field("ack", pa.uint8(), nullable=False),
        pa.field("encryption", pa.uint8(), nullable=False),
        pa.field("time", TIME_TYPE),
        pa.field("sequence", pa.uint16()),
        pa.field("iccid", pa.string()),
        pa.field("ress_codes", pa.list_(pa.string()), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
    ]
)


def _offsets(a: np.ndarray) -> pa.Array:
    return pa.array(a.astype(np.int32), pa.int32())


def _time(t: np.ndarray) -> pa.Array:
    return pa.array(t, mask=t == np.iinfo(np.int64).min).cast(TIME_TYPE)


def _flags(masks: np.ndarray) -> pa.Array:
    names = [name for name, _ in SCALARS]
    return pa.array(
        [[names[i] for i in range(len(names)) if (m >> i) & 1] for m in masks.tolist()],
        pa.list_(pa.string()),
    )


def decode_gb32960(data: Any) -> DecodeResult:
    """Decodes a stream of GB/T 32960 frames (bytes, a uint8 array or a file path)."""
    raw = _core.decode_gb32960(read_input(data))
    fr, r = raw["frames"], raw["rows"]
    vins = binary_array(fr["vin"], pa.string())
    messages = pa.table(
        {
            "offset": pa.array(fr["offset"], pa.uint64()),
            "vin": vins,
            "cmd": pa.array(fr["cmd"], pa.uint8()),
            "ack": pa.array(fr["ack"], pa.uint8()),
            "encryption": pa.array(fr["encryption"], pa.uint8()),
            "time": _time(fr["time_us"]),
            "sequence": nullable(fr["sequence"], -1, pa.uint16()),
            "iccid": pa.array(
                [s or None for s in binary_array(fr["iccid"], pa.string()).to_pylist()], pa.string()
            ),
            "ress_codes": pa.array(fr["ress_codes"], pa.list_(pa.string())),
            "data": binary_array(fr["data"]),
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
    columns: dict[str, Any] = {
        "vin": vins.take(idx),
        "time": _time(r["time_us"]),
        "reissue": pa.array(r["reissue"].astype(bool)),
        **{name: nullable(scalars[i], None, typ) for i, (name, typ) in enumerate(SCALARS)},
        "gear": nullable(r["gear"].astype(np.int32), 0xFF, pa.uint8()),
        "lat": nullable(r["lat"], None, pa.float64()),
        "lon": nullable(r["lon"], None, pa.float64()),
        "location_status": nullable(r["location_status"], -1, pa.uint8()),
        **{name: nullable(r[name], -1, pa.uint8()) for name in INTS},
        "alarm_level": nullable(r["alarm_level"], -1, pa.uint8()),
        "alarm_flags": nullable(r["alarm_flags"], -1, pa.uint32()),
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
        "offset": pa.array(r["offset"], pa.uint64()),
    }
    table = pa.table(columns, schema=EV_SCHEMA)
    return DecodeResult(
        table=table, rejects=rejects_table(raw["rejects"], REASONS), messages=messages
    )
