"""The types of what the compiled telemetry decoders return (``_core.decode_*``).

``_core.pyi`` types the decoders with these, so mypy checks every column a
Python decoder reads. tests/test_telemetry_docs.py checks them against the
compiled module: every key and dtype here against a decoded result, and the
columns generated from the C++ column lists against ``_core.column_types()``.
"""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Binary",
    "Gb32960Frames",
    "Gb32960Raw",
    "Gb32960Rows",
    "Jt808Locations",
    "Jt808Messages",
    "Jt808Raw",
    "NmeaFixes",
    "NmeaMessages",
    "NmeaRaw",
    "NmeaValidity",
    "ObdRaw",
    "ObdRows",
    "RawRejects",
]

# Strings or byte blobs, Arrow style: (data, int64 offsets, one more than rows).
Binary: TypeAlias = tuple[NDArray[np.uint8], NDArray[np.int64]]

U8: TypeAlias = NDArray[np.uint8]
U16: TypeAlias = NDArray[np.uint16]
U32: TypeAlias = NDArray[np.uint32]
U64: TypeAlias = NDArray[np.uint64]
I32: TypeAlias = NDArray[np.int32]
I64: TypeAlias = NDArray[np.int64]
F64: TypeAlias = NDArray[np.float64]


class RawRejects(TypedDict):
    offset: U64
    reason: U8
    message: list[str]
    raw: Binary


class Jt808Messages(TypedDict):
    offset: U64
    msg_id: U16
    serial: U16
    v2019: U8
    version_flag: U8
    protocol_version: U8
    encryption: U8
    pkg_total: U16
    pkg_index: U16
    terminal_id_bcd: U8
    terminal_id: Binary
    body_error: Binary
    body: Binary


class Jt808Locations(TypedDict):
    message_index: U32
    reissue: U8
    lat: F64
    lon: F64
    altitude_m: F64
    speed_kmh: F64
    heading_deg: F64
    time_us: I64
    mileage_km: F64
    fuel_l: F64
    alarm: U32
    status: U32
    recorder_speed_kmh: F64
    alarm_event_id: I64
    overspeed_type: I64
    overspeed_area_id: I64
    area_alarm_type: I64
    area_alarm_id: I64
    area_alarm_direction: I64
    route_id: I64
    route_time_s: I64
    route_result: I64
    ext_status: I64
    io_status: I64
    analog: I64
    signal_strength: I64
    satellites: I64
    items_error: U8
    items_error_offset: I32
    tail_start: U32
    tail: U8
    extra_start: U32
    extra_id: U8
    extra_value_start: U32
    extra_value: U8


class Jt808Raw(TypedDict):
    messages: Jt808Messages
    locations: Jt808Locations
    rejects: RawRejects


class Gb32960Frames(TypedDict):
    offset: U64
    cmd: U8
    ack: U8
    encryption: U8
    time_us: I64
    sequence: I32
    ress_codes: list[list[str]]
    vin: Binary
    iccid: Binary
    data_error: Binary
    data: Binary


class Gb32960Rows(TypedDict):
    offset: U64
    frame_index: U32
    time_us: I64
    reissue: U8
    scalars: list[F64]
    gear: U8
    lat: F64
    lon: F64
    location_status: I32
    max_v_subsys: I32
    max_v_cell: I32
    min_v_subsys: I32
    min_v_cell: I32
    max_t_subsys: I32
    max_t_probe: I32
    min_t_subsys: I32
    min_t_probe: I32
    alarm_level: I32
    alarm_flags: I64
    abnormal: U64
    invalid: U64
    units_error: U8
    units_error_offset: I32
    tail_start: U32
    tail: U8
    fault_start: U32
    fault_category: U8
    fault_code: U32
    motor_start: U32
    motor: F64
    cellset_start: U32
    cellset: F64
    cellset_cells_start: U32
    cell_v: F64
    probeset_start: U32
    probeset_no: U8
    probeset_temps_start: U32
    probe_c: F64
    custom_start: U32
    custom_id: U8
    custom_value_start: U32
    custom_value: U8


class Gb32960Raw(TypedDict):
    frames: Gb32960Frames
    rows: Gb32960Rows
    rejects: RawRejects


class ObdRows(TypedDict):
    offset: U64
    pid: U8
    value: F64
    ecu: Binary
    format: Binary
    data: Binary


class ObdRaw(TypedDict):
    rows: ObdRows
    rejects: RawRejects


class NmeaFixes(TypedDict):
    time_us: I64
    lat: F64
    lon: F64
    altitude_m: F64
    height_m: F64
    speed_kmh: F64
    heading_deg: F64
    quality: I32
    num_sats: I32
    hdop: F64
    pdop: F64
    sigma_n_m: F64
    sigma_e_m: F64
    sigma_u_m: F64
    diff_age_s: F64
    fix_type: I32
    carr_soln: I32
    rmc_status: U8
    rmc_mode: U8
    checksum_present: U8
    bad_fields: U32
    source: U8
    offset: U64


class NmeaMessages(TypedDict):
    offset: U64
    length: U32
    used: U8
    checksum_present: U8
    kind: Binary


# Arrow validity bitmaps (bit i of byte i // 8: row i present) of the fix
# columns that have an absent value, built by the decoder; empty when the
# column has no absent row.
class NmeaValidity(TypedDict):
    time_us: U8
    lat: U8
    lon: U8
    altitude_m: U8
    height_m: U8
    speed_kmh: U8
    heading_deg: U8
    quality: U8
    num_sats: U8
    hdop: U8
    pdop: U8
    sigma_n_m: U8
    sigma_e_m: U8
    sigma_u_m: U8
    diff_age_s: U8
    fix_type: U8
    carr_soln: U8


class NmeaRaw(TypedDict):
    fixes: NmeaFixes
    messages: NmeaMessages
    rejects: RawRejects
    validity: NmeaValidity
