"""JT/T 808 (2013 and 2019) terminal messages.

``decode_jt808(data)`` returns a :class:`DecodeResult`:

* ``table``: one row per location (0x0200, and each item of 0x0704), with the
  columns in :data:`LOCATION_SCHEMA`. Latitude and longitude are signed by the
  hemisphere bits of the status word; the BCD time (GMT+8) is converted to UTC
  and is null when the device sent an impossible time. Items 0x01 (mileage,
  0.1 km) and 0x02 (fuel, 0.1 L) become ``mileage_km`` and ``fuel_l``; the
  other standard items have their own columns. Vendor items (0xE0-0xFF),
  unknown ids, and items of an unexpected length are kept raw in ``extras``.
* ``messages``: every decoded frame, whatever its message id, with its header,
  its (reassembled) body, and the fields of 0x0001/0x8001 (general response),
  0x0100 (register), 0x0102 (authenticate) and 0x8100 (register response).
  0x0002 (heartbeat) has no body.
* ``rejects``: offset, reason, message and raw bytes of everything that did not
  decode. Nothing is dropped silently.

Reasons: ``junk`` (bytes outside 0x7E frames), ``bad_escape``, ``bad_checksum``
(XOR over the unescaped header and body), ``header_too_short``,
``body_length_mismatch`` (the declared length fits neither the 2013 header nor
the 2019 one; the version comes from this check, not from bit 14 alone),
``bad_bcd``, ``bad_body`` (a body too short for its message, or an item that
overruns it), ``subpackage_timeout`` (a split message whose parts did not all
arrive within ``subpackage_window`` frames, or before the input ended), and
``truncated``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from ._common import TIME_TYPE, DecodeResult, binary_array, nullable, read_input, rejects_table

__all__ = ["LOCATION_SCHEMA", "MESSAGE_SCHEMA", "REASONS", "decode_jt808"]

REASONS = {
    1: "junk",
    2: "bad_escape",
    3: "bad_checksum",
    4: "header_too_short",
    5: "body_length_mismatch",
    6: "bad_bcd",
    7: "bad_body",
    8: "subpackage_timeout",
    9: "encrypted",
    10: "truncated",
}

EXTRA_TYPE = pa.list_(
    pa.struct([pa.field("id", pa.uint8(), nullable=False), pa.field("value", pa.binary())])
)

LOCATION_SCHEMA = pa.schema(
    [
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("time", TIME_TYPE),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("altitude_m", pa.float64(), nullable=False),
        pa.field("speed_kmh", pa.float64(), nullable=False),
        pa.field("heading_deg", pa.float64(), nullable=False),
        pa.field("mileage_km", pa.float64()),
        pa.field("fuel_l", pa.float64()),
        pa.field("alarm", pa.uint32(), nullable=False),
        pa.field("status", pa.uint32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("msg_id", pa.uint16(), nullable=False),
        pa.field("serial", pa.uint16(), nullable=False),
        pa.field("reissue", pa.bool_(), nullable=False),
        pa.field("recorder_speed_kmh", pa.float64()),
        pa.field("alarm_event_id", pa.uint16()),
        pa.field("overspeed_type", pa.uint8()),
        pa.field("overspeed_area_id", pa.uint32()),
        pa.field("area_alarm_type", pa.uint8()),
        pa.field("area_alarm_id", pa.uint32()),
        pa.field("area_alarm_direction", pa.uint8()),
        pa.field("route_id", pa.uint32()),
        pa.field("route_time_s", pa.uint16()),
        pa.field("route_result", pa.uint8()),
        pa.field("ext_status", pa.uint32()),
        pa.field("io_status", pa.uint16()),
        pa.field("analog", pa.uint32()),
        pa.field("signal_strength", pa.uint8()),
        pa.field("satellites", pa.uint8()),
        pa.field("extras", EXTRA_TYPE, nullable=False),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.uint64(), nullable=False),
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("msg_id", pa.uint16(), nullable=False),
        pa.field("serial", pa.uint16(), nullable=False),
        pa.field("version", pa.uint16(), nullable=False),  # 2013 or 2019, from the length check
        pa.field("version_flag", pa.bool_(), nullable=False),  # bit 14 as sent
        pa.field("protocol_version", pa.uint8(), nullable=False),
        pa.field("encryption", pa.uint8(), nullable=False),
        pa.field("pkg_total", pa.uint16(), nullable=False),
        pa.field("pkg_index", pa.uint16(), nullable=False),
        pa.field("body", pa.binary(), nullable=False),
        pa.field("reply_serial", pa.uint16()),
        pa.field("reply_msg_id", pa.uint16()),
        pa.field("result", pa.uint8()),
        pa.field("token", pa.string()),
        pa.field("province_id", pa.uint16()),
        pa.field("city_id", pa.uint16()),
        pa.field("maker_id", pa.string()),
        pa.field("device_model", pa.string()),
        pa.field("device_id", pa.string()),
        pa.field("plate_color", pa.uint8()),
        pa.field("plate_no", pa.string()),
        pa.field("imei", pa.string()),
        pa.field("software_version", pa.string()),
    ]
)

_CONTROL_FIELDS = [f.name for f in MESSAGE_SCHEMA][11:]
_CONTROL_IDS = (0x0001, 0x8001, 0x8100, 0x0100, 0x0102)


def _text(b: bytes) -> str:
    # Fixed-width fields are padded with NUL (or spaces); plates are GBK.
    return b.split(b"\x00", 1)[0].strip().decode("gbk", errors="replace")


def _control_fields(msg_id: int, v2019: bool, body: bytes) -> dict[str, Any]:
    """Fields of the small control messages; {} when the body does not fit."""
    try:
        if msg_id in (0x0001, 0x8001):
            serial, mid, result = struct.unpack(">HHB", body[:5])
            return {"reply_serial": serial, "reply_msg_id": mid, "result": result}
        if msg_id == 0x8100:
            serial, result = struct.unpack(">HB", body[:3])
            return {
                "reply_serial": serial,
                "result": result,
                "token": _text(body[3:]) if result == 0 else None,
            }
        if msg_id == 0x0100:
            maker, model, dev = (11, 30, 30) if v2019 else (5, 20, 7)
            prov, city = struct.unpack(">HH", body[:4])
            p = 4
            out = {"province_id": prov, "city_id": city, "maker_id": _text(body[p : p + maker])}
            p += maker
            out["device_model"] = _text(body[p : p + model])
            p += model
            out["device_id"] = _text(body[p : p + dev])
            p += dev
            out["plate_color"] = body[p]
            out["plate_no"] = _text(body[p + 1 :])
            return out
        if msg_id == 0x0102:
            if not v2019:
                return {"token": _text(body)}
            n = body[0]
            return {
                "token": _text(body[1 : 1 + n]),
                "imei": _text(body[1 + n : 16 + n]),
                "software_version": _text(body[16 + n : 36 + n]),
            }
    except (struct.error, IndexError):
        return {}
    return {}


def _extras(loc: dict[str, Any]) -> pa.Array:
    ids = pa.array(loc["extra_id"], pa.uint8())
    values = binary_array((loc["extra_value"], loc["extra_value_start"].astype(np.int64)))
    structs = pa.StructArray.from_arrays([ids, values], fields=list(EXTRA_TYPE.value_type))
    return pa.ListArray.from_arrays(
        pa.array(loc["extra_start"], pa.int32()), structs, type=EXTRA_TYPE
    )


def decode_jt808(data: Any, *, subpackage_window: int = 1024) -> DecodeResult:
    """Decodes a stream of JT/T 808 frames (bytes, a uint8 array or a file path)."""
    raw = _core.decode_jt808(read_input(data), subpackage_window)
    msg, loc, rej = raw["messages"], raw["locations"], raw["rejects"]

    terminal = binary_array(msg["terminal_id"], pa.string())
    bodies = binary_array(msg["body"])
    v2019 = msg["v2019"].astype(bool)
    n_msg = len(msg["msg_id"])
    control: dict[str, list[Any]] = {k: [None] * n_msg for k in _CONTROL_FIELDS}
    # Only the few control messages have fields to read; location bodies do not.
    for i in np.flatnonzero(np.isin(msg["msg_id"], list(_CONTROL_IDS))).tolist():
        fields = _control_fields(int(msg["msg_id"][i]), bool(v2019[i]), bodies[i].as_py())
        for k, value in fields.items():
            control[k][i] = value
    messages = pa.table(
        {
            "offset": pa.array(msg["offset"], pa.uint64()),
            "terminal_id": terminal,
            "msg_id": pa.array(msg["msg_id"], pa.uint16()),
            "serial": pa.array(msg["serial"], pa.uint16()),
            "version": pa.array(np.where(v2019, 2019, 2013), pa.uint16()),
            "version_flag": pa.array(msg["version_flag"].astype(bool)),
            "protocol_version": pa.array(msg["protocol_version"], pa.uint8()),
            "encryption": pa.array(msg["encryption"], pa.uint8()),
            "pkg_total": pa.array(msg["pkg_total"], pa.uint16()),
            "pkg_index": pa.array(msg["pkg_index"], pa.uint16()),
            "body": bodies,
            **{k: pa.array(control[k], MESSAGE_SCHEMA.field(k).type) for k in _CONTROL_FIELDS},
        },
        schema=MESSAGE_SCHEMA,
    )

    idx = loc["message_index"].astype(np.int64)
    time_us = loc["time_us"]
    table = pa.table(
        {
            "terminal_id": terminal.take(pa.array(idx)),
            "time": pa.array(time_us, mask=time_us == np.iinfo(np.int64).min).cast(TIME_TYPE),
            "lat": loc["lat"],
            "lon": loc["lon"],
            "altitude_m": loc["altitude_m"],
            "speed_kmh": loc["speed_kmh"],
            "heading_deg": loc["heading_deg"],
            "mileage_km": nullable(loc["mileage_km"], None, pa.float64()),
            "fuel_l": nullable(loc["fuel_l"], None, pa.float64()),
            "alarm": pa.array(loc["alarm"], pa.uint32()),
            "status": pa.array(loc["status"], pa.uint32()),
            "source": pa.repeat(pa.scalar("jt808"), len(idx)),
            "msg_id": pa.array(msg["msg_id"][idx], pa.uint16()),
            "serial": pa.array(msg["serial"][idx], pa.uint16()),
            "reissue": pa.array(loc["reissue"].astype(bool)),
            "recorder_speed_kmh": nullable(loc["recorder_speed_kmh"], None, pa.float64()),
            **{
                name: nullable(loc[name], -1, LOCATION_SCHEMA.field(name).type)
                for name in (
                    "alarm_event_id",
                    "overspeed_type",
                    "overspeed_area_id",
                    "area_alarm_type",
                    "area_alarm_id",
                    "area_alarm_direction",
                    "route_id",
                    "route_time_s",
                    "route_result",
                    "ext_status",
                    "io_status",
                    "analog",
                    "signal_strength",
                    "satellites",
                )
            },
            "extras": _extras(loc),
            "offset": pa.array(msg["offset"][idx], pa.uint64()),
        },
        schema=LOCATION_SCHEMA,
    )
    return DecodeResult(table=table, rejects=rejects_table(rej, REASONS), messages=messages)
