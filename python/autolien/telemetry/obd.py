"""OBD-II mode 01 responses.

``decode_obd(data)`` reads ELM327 response lines (one per line, CR or LF):
CAN 11-bit (``7E8 03 41 0D 32``) and 29-bit (``18 DA F1 10 03 41 0D 32``)
with headers, lines without headers (``41 0D 32``, several PIDs in one reply
are all read), and KWP2000 / ISO 9141 with headers (``83 F1 10 41 05 86``),
where the data length comes from the format byte, so a line without its
checksum byte still decodes. ELM327 status words (NO DATA, SEARCHING...,
errors) and malformed lines go to ``rejects`` with their bytes; a PID never
gets fewer data bytes than it returns, and nothing is padded.

``obd_value(pid, data)`` decodes raw data bytes of one PID.

PIDs: 04 engine load %, 05 coolant °C, 0C rpm, 0D km/h, 0F intake air °C,
10 MAF g/s, 11 throttle %, 1F run time s, 2F fuel level %, 31 km since codes
cleared, 42 control module V, 5C oil °C, A6 odometer km (unsigned 32-bit / 10).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from .. import _core
from .._typing import Buffer
from ._common import DecodeResult, binary_array, read_input, rejects_table

__all__ = ["OBD_SCHEMA", "PIDS", "REASONS", "decode_obd", "obd_value"]

REASONS = {1: "not_hex", 2: "elm_status", 3: "not_mode01", 4: "unknown_pid", 5: "bad_length"}

PIDS = {
    0x04: ("engine_load", "percent"),
    0x05: ("coolant_temp", "degC"),
    0x0C: ("rpm", "rpm"),
    0x0D: ("speed", "km/h"),
    0x0F: ("intake_temp", "degC"),
    0x10: ("maf", "g/s"),
    0x11: ("throttle_pos", "percent"),
    0x1F: ("run_time", "s"),
    0x2F: ("fuel_level", "percent"),
    0x31: ("distance_since_dtc_clear", "km"),
    0x42: ("control_module_voltage", "V"),
    0x5C: ("oil_temp", "degC"),
    0xA6: ("odometer", "km"),
}

# Lookup arrays indexed by PID, so names and units need no Python loop.
_NAMES = pa.array([PIDS.get(i, ("", ""))[0] for i in range(256)], pa.string())
_UNITS = pa.array([PIDS.get(i, ("", ""))[1] for i in range(256)], pa.string())

OBD_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("pid", pa.uint8(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("ecu", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("data", pa.binary(), nullable=False),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)


def obd_value(pid: int, data: Buffer) -> float:
    """The value of mode 01 ``pid`` from its data bytes; ValueError on a wrong length."""
    return _core.obd_value(pid, data)


def decode_obd(data: Any, *, vehicle_id: str | None = None) -> DecodeResult:
    """Decodes ELM327 response lines (bytes, a uint8 array or a file path)."""
    raw = _core.decode_obd(read_input(data))
    r = raw["rows"]
    n = len(r["pid"])
    pid = pa.array(r["pid"], pa.uint8())
    table = pa.table(
        {
            "vehicle_id": pa.repeat(pa.scalar(vehicle_id, pa.string()), n),
            "pid": pid,
            "name": _NAMES.take(pid),
            "value": pa.array(r["value"], pa.float64()),
            "unit": _UNITS.take(pid),
            "ecu": binary_array(r["ecu"], pa.string()),
            "format": binary_array(r["format"], pa.string()),
            "data": binary_array(r["data"]),
            "offset": pa.array(r["offset"], pa.uint64()),
        },
        schema=OBD_SCHEMA,
    )
    return DecodeResult(table=table, rejects=rejects_table(raw["rejects"], REASONS))
