"""JT/T 808 (2013 and 2019) terminal messages.

``decode_jt808(data)`` returns a :class:`DecodeResult`:

* ``table``: one row per location (0x0200, and each item of 0x0704), with the
  columns in :data:`LOCATION_SCHEMA`. Latitude and longitude are signed by the
  hemisphere bits of the status word; the BCD time (GMT+8) is converted to UTC
  and is null when the device sent an impossible time. Items 0x01 (mileage,
  0.1 km) and 0x02 (fuel, 0.1 L) become ``mileage_km`` and ``fuel_l``; the
  other standard items have their own columns. Vendor items (0xE0-0xFF),
  unknown ids, and items of an unexpected length are kept raw in ``extras``.
  Malformed trailing items never cost the position: the items before them
  decode, the rest is kept raw in ``items_tail``, and ``items_error``
  (:data:`ITEMS_ERRORS`) with ``items_error_offset`` say why and where.
  A terminal number with hex digits A-F (not BCD, as real devices send) is
  kept as its hex digits, with ``terminal_id_bcd`` false.
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
``bad_body`` (a location body under 28 bytes, a 0x0704 batch with no
location in it, or a bad package index; a batch that decodes in part keeps its
rows and says why in ``messages.body_error``), ``subpackage_timeout`` (a split message whose parts did not all
arrive within ``subpackage_window`` frames, or before the input ended), and
``truncated``. ``bad_bcd`` is no longer raised. docs/telemetry.md tabulates
what each reason keeps.
"""

from __future__ import annotations

import struct
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
from ._raw import Jt808Locations

__all__ = [
    "ITEMS_ERRORS",
    "LOCATION_SCHEMA",
    "MESSAGE_SCHEMA",
    "REASONS",
    "decode_jt808",
    "safe_cut",
]

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

# Why a location's additional items did not all decode (C++ ItemsError).
ITEMS_ERRORS = {1: "overrun", 2: "truncated_header", 3: "padding", 4: "short_item"}


_LOCATION_GENERATED = generated_fields("jt808.locations")
_MESSAGE_GENERATED = generated_fields("jt808.messages")

LOCATION_SCHEMA = pa.schema(
    [
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("time", TIME_TYPE),
        *_LOCATION_GENERATED,
        pa.field("source", pa.string(), nullable=False),
        pa.field("msg_id", pa.uint16(), nullable=False),
        pa.field("serial", pa.uint16(), nullable=False),
        pa.field("reissue", pa.bool_(), nullable=False),
        pa.field("extras", EXTRA_TYPE, nullable=False),
        # False: the terminal number had a nibble above 9 and is its hex digits.
        pa.field("terminal_id_bcd", pa.bool_(), nullable=False),
        # Null when every additional item decoded; else ITEMS_ERRORS, the byte
        # of the location body where it starts, and the undecoded rest, raw.
        pa.field("items_error", pa.string()),
        pa.field("items_error_offset", pa.uint32()),
        pa.field("items_tail", pa.binary()),
        pa.field("offset", pa.uint64(), nullable=False),
    ]
)

MESSAGE_SCHEMA = pa.schema(
    [
        pa.field("terminal_id", pa.string(), nullable=False),
        pa.field("terminal_id_bcd", pa.bool_(), nullable=False),
        *_MESSAGE_GENERATED,
        pa.field("version", pa.uint16(), nullable=False),  # 2013 or 2019, from the length check
        pa.field("version_flag", pa.bool_(), nullable=False),  # bit 14 as sent
        pa.field("body", pa.binary(), nullable=False),
        # A 0x0704 batch that decoded only in part: why, and from which byte.
        pa.field("body_error", pa.string()),
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

_CONTROL_FIELDS = MESSAGE_SCHEMA.names[MESSAGE_SCHEMA.get_field_index("reply_serial") :]
_ITEMS_ERROR_NAMES = pa.array(
    [ITEMS_ERRORS.get(i) for i in range(max(ITEMS_ERRORS) + 1)], pa.string()
)
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


def _extras(loc: Jt808Locations) -> pa.Array:
    ids = pa.array(loc["extra_id"], pa.uint8())
    values = binary_array((loc["extra_value"], loc["extra_value_start"].astype(np.int64)))
    structs = pa.StructArray.from_arrays([ids, values], fields=list(EXTRA_TYPE.value_type))
    return pa.ListArray.from_arrays(
        pa.array(loc["extra_start"], pa.int32()), structs, type=EXTRA_TYPE
    )


def safe_cut(data: Any, target: int, *, subpackage_window: int = 1024) -> int | None:
    """Where a stream of frames can be cut at or past ``target`` so that its
    two sides decode apart as it decodes whole: the end of the first frame
    there after which no split (multi-packet) message waits for parts.

    ``data`` must start where no split message waits either (the stream's
    start, or an earlier safe cut). ``None`` when no such frame ends before
    ``data`` does. Only frames whose properties may carry the split bit are
    read beyond their flags, so this costs a small part of a decode."""
    return _core.jt808_safe_cut(read_input(data), target, subpackage_window)


def decode_jt808(data: Any, *, subpackage_window: int = 1024) -> DecodeResult:
    """Decodes a stream of JT/T 808 frames (bytes, a uint8 array or a file path)."""
    raw = _core.decode_jt808(read_input(data), subpackage_window)
    msg, loc, rej = raw["messages"], raw["locations"], raw["rejects"]
    msg_cols: Mapping[str, Any] = msg  # indexed by the generated names
    loc_cols: Mapping[str, Any] = loc  # indexed by the generated names

    terminal = binary_array(msg["terminal_id"], pa.string())
    bodies = binary_array(msg["body"])
    v2019 = msg["v2019"].astype(bool)
    n_msg = len(msg["msg_id"])
    # Only the few control messages have fields to read; location bodies do
    # not. Their values are gathered for those rows alone and spread out by
    # one take: columns of a million Python Nones cost 0.2 s a 64 MiB piece.
    ctrl = np.flatnonzero(np.isin(msg["msg_id"], list(_CONTROL_IDS)))
    control: dict[str, list[Any]] = {k: [None] * ctrl.size for k in _CONTROL_FIELDS}
    for j, i in enumerate(ctrl.tolist()):
        fields = _control_fields(int(msg["msg_id"][i]), bool(v2019[i]), bodies[i].as_py())
        for k, value in fields.items():
            control[k][j] = value
    slot = np.full(n_msg, -1, np.int64)
    slot[ctrl] = np.arange(ctrl.size)
    spread = pa.array(slot, mask=slot < 0)
    if len(msg["body_error"][0]):
        errors = binary_array(msg["body_error"], pa.string())
        body_error = pc.if_else(pc.equal(errors, ""), None, errors)
    else:  # the usual case: every body decoded cleanly
        body_error = pa.nulls(n_msg, pa.string())
    messages = pa.table(
        {
            "terminal_id": terminal,
            "terminal_id_bcd": pa.array(msg["terminal_id_bcd"].astype(bool)),
            **{f.name: generated_column(msg_cols[f.name], f) for f in _MESSAGE_GENERATED},
            "version": pa.array(np.where(v2019, 2019, 2013), pa.uint16()),
            "version_flag": pa.array(msg["version_flag"].astype(bool)),
            "body": bodies,
            "body_error": body_error,
            **{
                k: pa.array(control[k], MESSAGE_SCHEMA.field(k).type).take(spread)
                for k in _CONTROL_FIELDS
            },
        },
        schema=MESSAGE_SCHEMA,
    )

    idx = loc["message_index"].astype(np.int64)
    take = pa.array(idx)
    time_us = loc["time_us"]
    n = len(idx)
    error = loc["items_error"]
    if error.any():
        items_error = _ITEMS_ERROR_NAMES.take(pa.array(error.astype(np.int32)))
        error_offset = nullable(loc["items_error_offset"], -1, pa.uint32())
        tail = binary_array((loc["tail"], loc["tail_start"].astype(np.int64)))
        items_tail = pc.if_else(pa.array(np.diff(loc["tail_start"]) == 0), None, tail)
    else:  # the usual case: every item decoded
        items_error = pa.nulls(n, pa.string())
        error_offset = pa.nulls(n, pa.uint32())
        items_tail = pa.nulls(n, pa.binary())
    table = pa.table(
        {
            "terminal_id": terminal.take(take),
            "time": pa.array(time_us, mask=time_us == np.iinfo(np.int64).min).cast(TIME_TYPE),
            **{f.name: generated_column(loc_cols[f.name], f) for f in _LOCATION_GENERATED},
            "source": pa.repeat(pa.scalar("jt808"), n),
            "msg_id": pa.array(msg["msg_id"][idx], pa.uint16()),
            "serial": pa.array(msg["serial"][idx], pa.uint16()),
            "reissue": pa.array(loc["reissue"].astype(bool)),
            "extras": _extras(loc),
            "terminal_id_bcd": pa.array(msg["terminal_id_bcd"][idx].astype(bool)),
            "items_error": items_error,
            "items_error_offset": error_offset,
            "items_tail": items_tail,
            "offset": pa.array(msg["offset"][idx], pa.uint64()),
        },
        schema=LOCATION_SCHEMA,
    )
    return DecodeResult(table=table, rejects=rejects_table(rej, REASONS), messages=messages)
