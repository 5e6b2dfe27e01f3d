"""JT/T 808 decoding against the upstream vectors in tests/data/protocols/jt808.jsonl.

Expected values are the upstream ones (raw wire units), converted here to our
units. Where an upstream disagrees with the standard, the test follows the
standard and says so.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien.telemetry import decode_jt808
from autolien.telemetry.jt808 import LOCATION_SCHEMA
from conftest import DATA

VECTORS = {
    r["id"]: r
    for r in (
        json.loads(line) for line in (DATA / "protocols" / "jt808.jsonl").read_text().splitlines()
    )
}
GMT8 = timedelta(hours=8)


def vec(prefix: str) -> list[dict[str, Any]]:
    return [v for k, v in VECTORS.items() if k.startswith(prefix)]


def utc(gmt8: str) -> datetime:
    """An upstream GMT+8 wall time ('2018-07-15 10:10:10' or ISO) as UTC."""
    t = datetime.fromisoformat(gmt8.replace(" ", "T"))
    return (t - GMT8).replace(tzinfo=UTC)


# An encoder written from the standard, to wrap bare bodies and headers.
def frame(msg_id: int, body: bytes, *, phone: str = "013800000000", serial: int = 1) -> bytes:
    header = (
        msg_id.to_bytes(2, "big")
        + len(body).to_bytes(2, "big")
        + bytes.fromhex(phone)
        + serial.to_bytes(2, "big")
    )
    return wrap(header + body)


def wrap(content: bytes) -> bytes:
    x = 0
    for b in content:
        x ^= b
    raw = content + bytes([x])
    return b"\x7e" + raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def one(hexstr: str) -> Any:
    res = decode_jt808(bytes.fromhex(hexstr))
    assert res.rejects.num_rows == 0, res.rejects.to_pylist()
    return res


def check_location(row: dict[str, Any], exp: dict[str, Any], yzh: bool = False) -> None:
    k = (
        ("warnBit", "statusBit", "latitude", "longitude", "altitude", "speed", "direction")
        if yzh
        else (
            "alarm",
            "status",
            "lat_raw",
            "lon_raw",
            "altitude_m",
            "speed_raw_0.1kmh",
            "direction",
        )
    )
    if k[0] in exp:
        assert row["alarm"] == exp[k[0]]
    if k[1] in exp:
        assert row["status"] == exp[k[1]]
    # Upstream values are magnitudes; the sign comes from status bits 2 (S) and 3 (W).
    status = row["status"]
    assert row["lat"] == pytest.approx((-1 if status & 4 else 1) * exp[k[2]] / 1e6, abs=1e-9)
    assert row["lon"] == pytest.approx((-1 if status & 8 else 1) * exp[k[3]] / 1e6, abs=1e-9)
    if k[4] in exp:
        assert row["altitude_m"] == exp[k[4]]
    assert row["speed_kmh"] == pytest.approx(exp[k[5]] / 10)
    if k[6] in exp:
        assert row["heading_deg"] == exp[k[6]]
    t = exp.get("deviceTime") or exp.get("time_gmt8")
    if t:
        assert row["time"] == utc(t)


# --- yezhihao/jt808-server: encode/decode round trips -------------------------------------------


YZH_ATTRS = {
    "1": ("mileage_km", 0.1),
    "2": ("fuel_l", 0.1),
    "3": ("recorder_speed_kmh", 0.1),
    "4": ("alarm_event_id", 1),
    "37": ("ext_status", 1),
    "42": ("io_status", 1),
    "43": ("analog", 1),
    "48": ("signal_strength", 1),
    "49": ("satellites", 1),
}


def check_yzh_attributes(row: dict[str, Any], attrs: dict[str, Any]) -> None:
    extras = {e["id"]: e["value"] for e in row["extras"]}
    for key, value in attrs.items():
        if key in YZH_ATTRS:
            col, scale = YZH_ATTRS[key]
            assert row[col] == pytest.approx(value * scale), key
        elif key == "5":  # 2019 tire pressure: kept raw
            assert list(extras[0x05]) == value["value"]
        elif key == "6":  # 2019 carriage temperature (WORD): kept raw
            assert int.from_bytes(extras[0x06], "big") == value
        elif key == "17":
            assert (row["overspeed_type"], row["overspeed_area_id"]) == (
                value["areaType"],
                value["areaId"],
            )
        elif key == "18":
            assert (row["area_alarm_type"], row["area_alarm_id"], row["area_alarm_direction"]) == (
                value["areaType"],
                value["areaId"],
                value["direction"],
            )
        elif key == "19":
            assert (row["route_id"], row["route_time_s"], row["route_result"]) == (
                value["areaId"],
                value["driveTime"],
                value["result"],
            )
        elif key in ("100", "101", "102", "103"):
            # Active-safety alarm items (0x64-0x67) are outside JT/T 808: kept
            # raw, and they start with the alarm id as a DWORD.
            assert int.from_bytes(extras[int(key)][:4], "big") == value["id"]
        else:
            raise AssertionError(f"unmapped attribute {key}")


@pytest.mark.parametrize("v", vec("yzh-"), ids=lambda v: v["id"])
def test_jt808_server_vectors(v: dict[str, Any]) -> None:
    exp = v["expected"]
    res = one(v["hex"])
    (msg,) = res.messages.to_pylist()
    assert msg["msg_id"] == exp["messageId"]
    assert msg["serial"] == exp["serialNo"]
    assert msg["terminal_id"] == exp["clientId"].lstrip("0")
    is2019 = bool(exp["properties"] & 0x4000)
    assert msg["version"] == (2019 if is2019 else 2013)
    assert msg["protocol_version"] == exp["protocolVersion"]
    mid = exp["messageId"]
    if mid in (0x8001, 0x0001):
        assert (msg["reply_serial"], msg["reply_msg_id"], msg["result"]) == (
            exp["responseSerialNo"],
            exp["responseMessageId"],
            exp["resultCode"],
        )
    elif mid == 0x8100:
        assert (msg["reply_serial"], msg["result"], msg["token"]) == (
            exp["responseSerialNo"],
            exp["resultCode"],
            exp["token"],
        )
    elif mid == 0x0100:
        for ours, theirs in [
            ("province_id", "provinceId"),
            ("city_id", "cityId"),
            ("maker_id", "makerId"),
            ("device_model", "deviceModel"),
            ("device_id", "deviceId"),
            ("plate_color", "plateColor"),
            ("plate_no", "plateNo"),
        ]:
            assert msg[ours] == exp[theirs], ours
    elif mid == 0x0102:
        assert msg["token"] == exp["token"]
        if "imei" in exp:
            assert (msg["imei"], msg["software_version"]) == (exp["imei"], exp["softwareVersion"])
    elif mid == 0x0200:
        (row,) = res.table.to_pylist()
        check_location(row, exp, yzh=True)
        check_yzh_attributes(row, exp["attributes"])
    elif mid == 0x0704:
        rows = res.table.to_pylist()
        assert len(rows) == exp["total"] == len(exp["items"])
        for row, item in zip(rows, exp["items"], strict=True):
            check_location(row, item, yzh=True)
            assert row["reissue"] == (exp["type"] == 1)


# --- SmallChi/JT808 ----------------------------------------------------------------------------------


SMALLCHI_EXTRAS = {
    "0x01_mileage_0.1km": ("mileage_km", 0.1),
    "0x02_fuel_0.1L": ("fuel_l", 0.1),
    "0x03_speed_0.1kmh": ("recorder_speed_kmh", 0.1),
    "0x04_event_id": ("alarm_event_id", 1),
}


@pytest.mark.parametrize(
    "vid",
    [
        "smallchi-readme-escape",
        "smallchi-readme-create",
        "smallchi-0200-Test5",
        "smallchi-0200-all-attach-ids",
    ],
)
def test_smallchi_location_frames(vid: str) -> None:
    v = VECTORS[vid]
    exp = v["expected"]
    res = one(v["hex"])
    (row,) = res.table.to_pylist()
    (msg,) = res.messages.to_pylist()
    assert (msg["msg_id"], msg["serial"], msg["terminal_id"]) == (
        0x0200,
        exp["serial"],
        exp["phone"].lstrip("0"),
    )
    check_location(row, exp)
    for key, value in exp["extras_raw"].items():
        if key in SMALLCHI_EXTRAS:
            col, scale = SMALLCHI_EXTRAS[key]
            assert row[col] == pytest.approx(value * scale), key
    if "unescaped_hex" in exp:  # the body length is counted on unescaped bytes
        assert len(msg["body"]) == exp["body_len"]


@pytest.mark.parametrize(
    "v", vec("smallchi-0200-body-Test") + vec("gojt808-0200-escape"), ids=lambda v: v["id"]
)
def test_bodies_wrapped_in_frames(v: dict[str, Any]) -> None:
    exp = v["expected"]
    data = (
        frame(0x0200, bytes.fromhex(v["hex"]))
        if v["level"] == "body_0200"
        else bytes.fromhex(v["hex"])
    )
    (row,) = one(data.hex()).table.to_pylist()
    check_location(row, exp)
    if "custom_0x61" in exp:  # a user-defined item: kept raw, byte for byte
        (extra,) = [e for e in row["extras"] if e["id"] == 0x61]
        assert extra["value"].endswith(exp["custom_0x61"]["user_name"].encode())


@pytest.mark.parametrize("v", vec("smallchi-0200-body-L"), ids=lambda v: v["id"])
def test_smallchi_signed_coordinates_follow_the_standard(v: dict[str, Any]) -> None:
    # SmallChi reads latitude/longitude as signed int32 and asserts negative
    # values. JT/T 808 defines unsigned magnitudes with the hemisphere in status
    # bits 2 (south) and 3 (west): we follow the standard.
    body = bytes.fromhex(v["hex"])
    (row,) = one(frame(0x0200, body).hex()).table.to_pylist()
    status = int.from_bytes(body[4:8], "big")
    lat_mag, lon_mag = int.from_bytes(body[8:12], "big"), int.from_bytes(body[12:16], "big")
    assert row["lat"] == pytest.approx((-1 if status & 4 else 1) * lat_mag / 1e6)
    assert row["lon"] == pytest.approx((-1 if status & 8 else 1) * lon_mag / 1e6)
    for col, key in (("lat", "lat_signed_smallchi"), ("lon", "lon_signed_smallchi")):
        if v["expected"][key] < 0:
            assert row[col] != pytest.approx(v["expected"][key] / 1e6)
    assert row["time"] == utc(v["expected"]["time_gmt8"])


def test_2019_satellite_item_kept_raw() -> None:
    v = VECTORS["smallchi-0200-body-2019-0x07-satellites"]
    (row,) = one(frame(0x0200, bytes.fromhex(v["hex"])).hex()).table.to_pylist()
    (extra,) = [e for e in row["extras"] if e["id"] == 0x07]
    assert len(extra["value"]) == v["expected"]["0x07_len"]
    assert row["time"] == utc(v["expected"]["time_gmt8"])


def test_smallchi_0704_batch() -> None:
    v = VECTORS["smallchi-0704-Test1"]
    exp = v["expected"]
    res = one(v["hex"])
    rows = res.table.to_pylist()
    assert len(rows) == exp["count"]
    for row, item in zip(rows, exp["items"], strict=True):
        check_location(row, item)
        assert row["mileage_km"] == pytest.approx(item["extras_raw"]["0x01_mileage_0.1km"] / 10)
        assert not row["reissue"]


@pytest.mark.parametrize("vid", ["smallchi-header-2013", "smallchi-header-2019"])
def test_headers(vid: str) -> None:
    v = VECTORS[vid]
    exp = v["expected"]
    header = bytes.fromhex(v["hex"])
    data = wrap(header + bytes(exp["body_len"]))
    res = decode_jt808(data)
    if exp.get("subpackage"):
        # pkg total/index 0/0: no real split, so the message is whole.
        pass
    (msg,) = res.messages.to_pylist()
    assert msg["msg_id"] == int(exp["msg_id"], 16)
    assert (msg["terminal_id"], msg["serial"]) == (exp["phone"], exp["serial"])
    if vid.endswith("2019"):
        assert (msg["version"], msg["version_flag"], msg["protocol_version"]) == (
            2019,
            True,
            exp["protocol_version"],
        )
        assert msg["encryption"] == 1  # RSA: kept, not decoded
    else:
        assert msg["version"] == 2013


def test_subpackages_are_reassembled() -> None:
    p1, p2 = VECTORS["smallchi-subpkg-0x1205-part1"], VECTORS["smallchi-subpkg-0x1205-part2"]
    res = decode_jt808(bytes.fromhex(p1["hex"] + p2["hex"]))
    assert res.rejects.num_rows == 0
    (msg,) = res.messages.to_pylist()
    assert (msg["msg_id"], msg["pkg_total"]) == (0x1205, 2)
    bodies = [decode_jt808(bytes.fromhex(p["hex"])).rejects for p in (p1, p2)]
    assert all(b.column("reason").to_pylist() == ["subpackage_timeout"] for b in bodies)
    # Out of order and interleaved with other traffic still reassembles.
    other = VECTORS["yzh-0x0002-03"]["hex"]
    res2 = decode_jt808(bytes.fromhex(p2["hex"] + other + p1["hex"]))
    assert res2.rejects.num_rows == 0
    assert [m["msg_id"] for m in res2.messages.to_pylist()] == [0x0002, 0x1205]
    assert res2.messages.column("body")[1].as_py() == msg["body"]
    # Parts farther apart than the window are rejected with every part's bytes.
    filler = bytes.fromhex(other) * 3
    res3 = decode_jt808(
        bytes.fromhex(p1["hex"]) + filler + bytes.fromhex(p2["hex"]), subpackage_window=2
    )
    reasons = res3.rejects.column("reason").to_pylist()
    assert reasons == ["subpackage_timeout", "subpackage_timeout"]
    assert res3.rejects.column("raw")[0].as_py() == bytes.fromhex(p1["hex"])


def test_version_comes_from_length_not_bit_14() -> None:
    v = VECTORS["smallchi-issue26-ambiguous-header"]  # 2019 layout, bit 14 clear
    (msg,) = decode_jt808(bytes.fromhex(v["hex"])).messages.to_pylist()
    assert (msg["version"], msg["version_flag"]) == (2019, False)
    assert (
        msg["terminal_id"] == v["expected"]["intended_phone"] != v["expected"]["wrong_parse_phone"]
    )
    real = VECTORS["smallchi-0200-real-Test5_4"]  # bit 14 set, 2013 layout
    res = one(real["hex"])
    (msg,) = res.messages.to_pylist()
    assert (msg["version"], msg["version_flag"], msg["terminal_id"]) == (2013, True, "10030000681")


@pytest.mark.parametrize(
    "vid",
    [
        k
        for k in VECTORS
        if k.startswith(
            (
                "smallchi-0200-real-Test7",
                "smallchi-0200-real-Test8",
                "smallchi-0200-real-Test_Device",
                "smallchi-0704-real",
            )
        )
        and k != "smallchi-0200-real-Test8_2"
    ],
)
def test_real_device_frames_with_a_wrong_check_code_are_rejected(vid: str) -> None:
    # SmallChi decodes these without verifying the check code; the XOR over
    # the unescaped header and body (the standard), computed here, does not
    # match the frame's check byte, so they are rejected as bad_checksum.
    body, check = _unescaped(VECTORS[vid]["hex"])
    assert _xor(body) != check
    res = decode_jt808(bytes.fromhex(VECTORS[vid]["hex"]))
    assert res.rejects.column("reason").to_pylist() == ["bad_checksum"]
    assert res.rejects.column("raw")[0].as_py() == bytes.fromhex(VECTORS[vid]["hex"])


def _unescaped(hexstr: str) -> tuple[bytes, int]:
    """Header and body of one frame with 0x7D 0x02 / 0x7D 0x01 undone (JT/T
    808-2013 section 4.4.1), and its check byte."""
    raw = bytes.fromhex(hexstr)
    assert raw[0] == raw[-1] == 0x7E
    out = bytearray()
    i = 1
    while i < len(raw) - 1:
        if raw[i] == 0x7D:
            out.append({0x02: 0x7E, 0x01: 0x7D}[raw[i + 1]])
            i += 2
        else:
            out.append(raw[i])
            i += 1
    return bytes(out[:-1]), out[-1]


def _xor(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


def _ref_location(hexstr: str) -> dict[str, Any]:
    """A location report (0x0200, 2013 header) read by hand from its bytes:
    the 28-byte basic block (section 8.18, table 23) and the mileage item
    0x01 (DWORD, 1/10 km)."""
    body, check = _unescaped(hexstr)
    assert _xor(body) == check
    msg_id, props = struct.unpack(">HH", body[:4])
    assert msg_id == 0x0200
    assert not props & 0x6000  # no 2019 flag, no subpackage
    b = body[12 : 12 + (props & 0x3FF)]
    alarm, status, lat, lon, alt, speed, heading = struct.unpack(">IIIIHHH", b[:22])
    bcd = b[22:28].hex()
    local = datetime(2000 + int(bcd[0:2]), *(int(bcd[k : k + 2]) for k in range(2, 12, 2)))
    items: dict[int, bytes] = {}
    i = 28
    while i + 2 <= len(b) and i + 2 + b[i + 1] <= len(b):
        items.setdefault(b[i], b[i + 2 : i + 2 + b[i + 1]])
        i += 2 + b[i + 1]
    return {
        "time": (local - GMT8).replace(tzinfo=UTC),
        "lat": lat / 1e6 * (-1 if status & 0x4 else 1),
        "lon": lon / 1e6 * (-1 if status & 0x8 else 1),
        "altitude_m": float(alt),
        "speed_kmh": speed / 10,
        "heading_deg": float(heading),
        "alarm": alarm,
        "status": status,
        "mileage_km": int.from_bytes(items[0x01], "big") / 10 if 0x01 in items else None,
    }


@pytest.mark.parametrize(
    "vid",
    [
        "smallchi-0200-real-Test8_2",
        "smallchi-0200-real-Test_attcahid_0x2b",
        "issue-hylexus-jt-808-protocol-8",
        "issue-SmallChi-JTTools-4",
    ],
)
def test_real_device_frames_decode(vid: str) -> None:
    res = one(VECTORS[vid]["hex"])
    (row,) = res.table.to_pylist()
    ref = _ref_location(VECTORS[vid]["hex"])
    assert row["time"] == ref.pop("time")
    assert {k: row[k] for k in ref} == pytest.approx(ref)


def test_a_real_device_frame_by_hand() -> None:
    # hylexus/jt-808-protocol issue 8: lat 0x01DD1A6A, lon 0x07323960, heading
    # 0x014A, time bytes 19 05 16 03 32 45 (GMT+8), mileage item 01 04 00000000
    (row,) = one(VECTORS["issue-hylexus-jt-808-protocol-8"]["hex"]).table.to_pylist()
    assert (row["lat"], row["lon"]) == (31.267434, 120.732)
    assert row["heading_deg"] == 330.0
    assert row["time"] == datetime(2019, 5, 15, 19, 32, 45, tzinfo=UTC)
    assert (row["speed_kmh"], row["mileage_km"], row["status"]) == (0.0, 0.0, 2)


# --- cuteLittleDevil/go-jt808 ---------------------------------------------------------------------------

GO_ERRORS = {
    "ErrUnqualifiedData": {"truncated"},
    "ErrHeaderLength2Short": {"header_too_short"},
    "ErrCheckCode": {"bad_checksum"},
    "ErrBodyLengthInconsistency": {"body_length_mismatch", "bad_body"},
}


@pytest.mark.parametrize(
    "v",
    vec("gojt808-frame") + vec("gojt808-0704-len") + vec("gojt808-0200-addition-6"),
    ids=lambda v: v["id"],
)
def test_go_jt808_frames(v: dict[str, Any]) -> None:
    res = decode_jt808(bytes.fromhex(v["hex"]))
    reasons = set(res.rejects.column("reason").to_pylist())
    want = v["expected"].get("want_error")
    if v["id"] == "gojt808-frame-50":
        # go-jt808 tolerates an unescaped 0x7D check code; the standard does not.
        assert reasons == {"bad_escape"}
    elif v["id"] == "gojt808-frame-48":
        # A correct first part of a 26-part message: the frame is fine, the
        # message never completes in this input.
        assert reasons == {"subpackage_timeout"}
    elif want is None:
        assert reasons == set()
        assert res.messages.num_rows == 1
    elif v["ref"].get("checksum_ok") and v["hex"][2:6] in ("0200", "0704"):
        # go-jt808 rejects a location whose trailing items are malformed; we keep
        # the position and flag the items (see test_malformed_items_keep_the_position).
        assert reasons == set()
        assert res.table.num_rows >= 1
        assert res.table.column("items_error").null_count < res.table.num_rows
    else:
        assert reasons, want
        assert reasons <= GO_ERRORS[want], (want, reasons)
        assert res.table.num_rows == 0


def test_items_longer_than_defined_are_read_and_kept_raw() -> None:
    # A real device sends 0x2B (analog, a DWORD) with 8 bytes: the defined
    # prefix is read and the whole item is kept raw, so nothing is lost.
    v = VECTORS["smallchi-0200-real-Test_attcahid_0x2b"]
    (row,) = one(v["hex"]).table.to_pylist()
    (extra,) = [e for e in row["extras"] if e["id"] == 0x2B]
    assert len(extra["value"]) == 8
    assert row["analog"] == int.from_bytes(extra["value"][:4], "big")


def test_go_jt808_all_additional_items() -> None:
    v = VECTORS["gojt808-0200-addition-64"]
    exp = v["expected"]
    (row,) = one(v["hex"]).table.to_pylist()
    assert row["mileage_km"] == pytest.approx(exp["0x01_mileage_0.1km"] / 10)
    assert row["fuel_l"] == pytest.approx(exp["0x02_fuel_0.1L"] / 10)
    assert row["recorder_speed_kmh"] == pytest.approx(exp["0x03_speed_0.1kmh"] / 10)
    assert row["alarm_event_id"] == exp["0x04"]
    # go-jt808's golden file reads the 0x11 area id including the type byte
    # (1107296256); the standard's DWORD after the type byte is 66.
    assert (row["overspeed_type"], row["overspeed_area_id"]) == (
        exp["0x11"]["location_type"],
        exp["0x11"]["area_id_correct"],
    )
    assert (row["area_alarm_type"], row["area_alarm_id"], row["area_alarm_direction"]) == (
        exp["0x12"]["location_type"],
        exp["0x12"]["area_id"],
        exp["0x12"]["direction"],
    )
    assert (row["route_id"], row["route_time_s"], row["route_result"]) == (
        exp["0x13"]["route_id"],
        exp["0x13"]["time_s"],
        exp["0x13"]["result"],
    )
    for col, key in [
        ("ext_status", "0x25"),
        ("io_status", "0x2A"),
        ("analog", "0x2B"),
        ("signal_strength", "0x30"),
        ("satellites", "0x31"),
    ]:
        assert row[col] == exp[key], col
    extras = {e["id"]: e["value"] for e in row["extras"]}
    assert list(extras[0x05][:3]) == exp["0x05_tire_pressure_first3"]


def test_go_jt808_0704() -> None:
    v = VECTORS["gojt808-0704"]
    exp = v["expected"]
    rows = one(v["hex"]).table.to_pylist()
    assert len(rows) == exp["count"]
    for row, item in zip(rows, exp["items"], strict=True):
        check_location(row, item)


# --- stream behaviour, schema, fuzzing --------------------------------------------------------------


def test_stream_with_junk_and_every_byte_accounted() -> None:
    good = bytes.fromhex(VECTORS["smallchi-readme-escape"]["hex"])
    bad = bytes.fromhex(VECTORS["gojt808-frame-53"]["hex"])
    data = b"\x00junk" + good + bad + b"\r\n" + good + b"\x7e\x02\x00"
    res = decode_jt808(data)
    assert res.table.num_rows == 2
    assert res.rejects.column("reason").to_pylist() == ["junk", "bad_checksum", "junk", "truncated"]
    assert res.rejects.column("offset").to_pylist()[0] == 0
    rejected = sum(len(r) for r in res.rejects.column("raw").to_pylist())
    assert rejected + 2 * len(good) == len(data)
    assert res.table.column("offset").to_pylist() == [5, 5 + len(good) + len(bad) + 2]


def test_input_kinds_and_schema(tmp_path: Any) -> None:
    data = bytes.fromhex(VECTORS["smallchi-readme-escape"]["hex"])
    path = tmp_path / "capture.bin"
    path.write_bytes(data)
    a = decode_jt808(data).table
    b = decode_jt808(np.frombuffer(data, dtype=np.uint8)).table
    c = decode_jt808(path).table
    assert a.equals(b)
    assert a.equals(c)
    assert a.schema.equals(LOCATION_SCHEMA)
    with pytest.raises(TypeError, match="data must be"):
        decode_jt808(12)


VALID_FRAMES = [
    bytes.fromhex(v["hex"])
    for v in VECTORS.values()
    if v["level"] == "frame" and not v["ref"].get("error")
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    res = decode_jt808(data)
    assert res.table.num_rows <= res.messages.num_rows * 300  # no invented rows
    assert all(0 <= o < max(len(data), 1) for o in res.rejects.column("offset").to_pylist())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID_FRAMES), st.integers(0, 10_000), st.integers(0, 255), st.booleans())
def test_fuzz_mutated_frames(frame_bytes: bytes, pos: int, value: int, cut: bool) -> None:
    data = bytearray(frame_bytes)
    if cut:
        del data[pos % len(data) :]
    else:
        data[pos % len(data)] = value
    res = decode_jt808(bytes(data))
    assert res.rejects.num_rows + res.messages.num_rows >= 1 or not data.strip(b"\x7e")


# --- real devices are messier than the standard (issue 16) -------------------------------------------

TRACCAR = [
    json.loads(line)
    for line in (DATA / "protocols" / "jt808_traccar.jsonl").read_text().splitlines()
]


def escape(content: bytes) -> bytes:
    """A frame around unescaped header, body and check code, as sent on the wire."""
    return b"\x7e" + content.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def xor(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


def basic_block(body: bytes) -> dict[str, Any]:
    """The 28-byte location block read straight from the standard's layout."""
    alarm, status, lat, lon, alt, speed, heading = struct.unpack(">IIIIHHH", body[:22])
    t = body[22:28].hex()
    try:
        local = datetime(
            2000 + int(t[0:2]), int(t[2:4]), int(t[4:6]), *(int(t[i : i + 2]) for i in (6, 8, 10))
        )
        time: datetime | None = (local - GMT8).replace(tzinfo=UTC)
    except ValueError:
        time = None
    return {
        "alarm": alarm,
        "status": status,
        "lat": (-1 if status & 4 else 1) * lat / 1e6,
        "lon": (-1 if status & 8 else 1) * lon / 1e6,
        "altitude_m": alt,
        "speed_kmh": speed / 10,
        "heading_deg": heading,
        "time": time,
    }


def location_bodies(content: bytes) -> tuple[bytes, list[bytes]]:
    """(terminal number bytes, location bodies) of an unescaped 0x0200/0x0704 frame."""
    msg_id, props = struct.unpack(">HH", content[:4])
    body_len = props & 0x3FF
    v2019 = len(content) - 1 == 17 + body_len  # the version follows from the length
    terminal = content[5:15] if v2019 else content[4:10]
    body = content[len(content) - 1 - body_len : -1]
    if msg_id == 0x0200:
        return terminal, [body]
    count, p, items = struct.unpack(">H", body[:2])[0], 3, []
    for _ in range(count):
        (n,) = struct.unpack(">H", body[p : p + 2])
        items.append(body[p + 2 : p + 2 + n])
        p += 2 + n
    return terminal, items


@pytest.mark.parametrize("v", TRACCAR, ids=lambda v: v["id"])
def test_traccar_real_device_locations(v: dict[str, Any]) -> None:
    # traccar decodes all of these frames; we decode every one whose check code
    # is the XOR of header and body (traccar does not check it).
    content = bytes.fromhex(v["hex"])[1:-1]
    escaped = content.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    if xor(content[:-1]) != content[-1] and xor(escaped[:-1]) == escaped[-1]:
        content = escaped  # the one frame traccar's test keeps escaped
    res = decode_jt808(escape(content))
    if xor(content[:-1]) != content[-1]:
        assert res.rejects.column("reason").to_pylist() == ["bad_checksum"]
        return
    assert res.rejects.num_rows == 0, res.rejects.to_pylist()
    terminal, bodies = location_bodies(content)
    digits = terminal.hex().upper()
    rows = res.table.to_pylist()
    assert len(rows) == len(bodies) >= 1
    for row, body in zip(rows, bodies, strict=True):
        assert row["terminal_id"] == (digits.lstrip("0") or "0")
        assert row["terminal_id_bcd"] == digits.isdigit()
        exp = basic_block(body)
        for key, value in exp.items():
            assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key
        if row["items_tail"] is not None:  # the undecoded rest of the body, raw
            assert body.endswith(row["items_tail"])
            assert row["items_error_offset"] == len(body) - len(row["items_tail"])


def test_traccar_losses_before_issue_16_are_recovered() -> None:
    # The frames main used to reject: non-BCD terminal numbers (bad_bcd) and a
    # zero-id padded tail (bad_body). Their positions are kept and flagged.
    recovered = {"traccar-013": 6, "traccar-105": 1, "traccar-106": 1, "traccar-107": 1}
    for vid, n in recovered.items():
        (v,) = [r for r in TRACCAR if r["id"] == vid]
        res = decode_jt808(escape(bytes.fromhex(v["hex"])[1:-1]))
        assert res.table.num_rows == n
        assert res.table.column("terminal_id_bcd").to_pylist() == [False] * n
        assert res.messages.column("terminal_id").to_pylist()[0].startswith("4EB6FB4A")
    (pad,) = [r for r in TRACCAR if r["hex"].startswith("7e0200002e2020001297")]
    (row,) = decode_jt808(escape(bytes.fromhex(pad["hex"])[1:-1])).table.to_pylist()
    body = bytes.fromhex(pad["hex"])[13:-2]
    assert (row["items_error"], row["items_error_offset"]) == ("padding", 28)
    assert row["items_tail"] == body[28:]
    assert row["lat"] == pytest.approx(basic_block(body)["lat"])


BASIC = bytes.fromhex("000004000008000601a2f0a8091f0bf0003201f4005a201103031733")


@pytest.mark.parametrize(
    ("items", "error", "at", "tail", "columns"),
    [
        # an item declares more bytes than remain: the items before it decode
        (("010400000064e11001020304"), "overrun", 34, "e11001020304", {"mileage_km": 10.0}),
        # vendor padding of zero ids after a good item
        (("300117000000000000"), "padding", 31, "000000000000", {"signal_strength": 23}),
        # zero ids then garbage (the traccar capture's shape)
        (("00000078000000"), "padding", 28, "00000078000000", {}),
        # one byte left: no room for an id and a length
        (("31010c2a"), "truncated_header", 31, "2a", {"satellites": 12}),
        # a standard item shorter than defined: kept raw, the items after it decode
        (("0102006431010c"), "short_item", 28, None, {"mileage_km": None, "satellites": 12}),
        # clean items: nothing flagged
        (("01040000006431010c"), None, None, None, {"mileage_km": 10.0, "satellites": 12}),
    ],
)
def test_malformed_items_keep_the_position(
    items: str, error: str | None, at: int | None, tail: str | None, columns: dict[str, Any]
) -> None:
    body = BASIC + bytes.fromhex(items)
    res = decode_jt808(frame(0x0200, body))
    assert res.rejects.num_rows == 0
    (row,) = res.table.to_pylist()
    for key, value in basic_block(body).items():
        assert row[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert (row["items_error"], row["items_error_offset"]) == (error, at)
    assert row["items_tail"] == (None if tail is None else bytes.fromhex(tail))
    for col, value in columns.items():
        assert row[col] == (pytest.approx(value) if isinstance(value, float) else value), col
    if error == "short_item":
        assert {e["id"]: e["value"] for e in row["extras"]}[0x01] == b"\x00\x64"


@pytest.mark.parametrize(
    "vid",
    [
        "gojt808-0200-addition-66",
        "gojt808-0200-addition-67",
        "gojt808-0200-addition-68",
        "gojt808-0704-len-inconsistent",
    ],
)
def test_go_jt808_malformed_items_against_its_reference_decoder(vid: str) -> None:
    # go-jt808 rejects these frames; the vectors' independent reference decoder
    # reads the items and leaves the trailing bytes unparsed. We keep every
    # position, and the undecoded rest is that reference's trailing bytes.
    v = VECTORS[vid]
    res = decode_jt808(bytes.fromhex(v["hex"]))
    assert res.rejects.num_rows == 0
    ref = v["ref"]["body"]
    items = ref.get("items", [ref])
    rows = res.table.to_pylist()
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        assert row["lat"] == pytest.approx(item["lat_raw_u32"] / 1e6)
        assert row["time"] == utc(item["time_gmt8"])
        trailing = item.get("extras_trailing_unparsed_hex")
        if trailing:
            assert row["items_tail"] == bytes.fromhex(trailing)
            assert row["items_error"] in ("overrun", "truncated_header")
        elif any(e["id"] == "0x11" and e["len"] == 0 for e in item["extras"]):
            # 0x11 with no bytes: shorter than its 1 byte, the rest still decodes
            assert (row["items_error"], row["overspeed_type"]) == ("short_item", None)
            assert row["area_alarm_id"] == int(item["extras"][6]["hex"][2:10], 16)
        else:
            assert row["items_error"] is None


def batch(items: list[bytes], *, count: int | None = None, extra: bytes = b"") -> bytes:
    body = (len(items) if count is None else count).to_bytes(2, "big") + b"\x01"
    body += b"".join(len(i).to_bytes(2, "big") + i for i in items) + extra
    return frame(0x0704, body)


def test_0704_batch_keeps_the_items_it_can_frame() -> None:
    good = BASIC + bytes.fromhex("010400000064")
    # The third item declares 200 bytes, 30 remain: two positions kept, flagged.
    data = batch([good, good], count=3, extra=b"\x00\xc8" + BASIC[:30])
    res = decode_jt808(data)
    assert res.rejects.num_rows == 0
    assert res.table.num_rows == 2
    assert res.table.column("reissue").to_pylist() == [True, True]
    (msg,) = res.messages.to_pylist()
    assert "item 2" in msg["body_error"]
    assert "200" in msg["body_error"]
    # A bad item in the middle: the items after it still decode.
    res = decode_jt808(batch([good, b"\x00" * 10, good]))
    assert res.table.num_rows == 2
    assert "item 1" in res.messages.column("body_error")[0].as_py()
    # Clean batches have no body_error; a batch with no position is rejected.
    assert decode_jt808(batch([good])).messages.column("body_error").to_pylist() == [None]
    res = decode_jt808(batch([b"\x00" * 10]))
    assert res.rejects.column("reason").to_pylist() == ["bad_body"]
    assert res.messages.num_rows == 0


def header_2019(msg_id: int, body: bytes, terminal: bytes) -> bytes:
    props = 0x4000 | len(body)
    return wrap(struct.pack(">HHB", msg_id, props, 1) + terminal + b"\x00\x07" + body)


def test_non_bcd_terminal_numbers_are_kept_as_hex_and_flagged() -> None:
    body = BASIC + bytes.fromhex("31010c")
    data = (
        frame(0x0200, body, phone="4eb6fb4ad628")
        + frame(0x0200, body, phone="013800000000")
        + header_2019(0x0200, body, bytes.fromhex("00000000000a12b4c5d6"))
        + frame(0x0002, b"", phone="00000000ffff")
    )
    res = decode_jt808(data)
    assert res.rejects.num_rows == 0
    assert res.messages.column("terminal_id").to_pylist() == [
        "4EB6FB4AD628",
        "13800000000",
        "A12B4C5D6",
        "FFFF",
    ]
    assert res.messages.column("terminal_id_bcd").to_pylist() == [False, True, False, False]
    assert res.table.column("terminal_id_bcd").to_pylist() == [False, True, False]
    assert res.table.column("satellites").to_pylist() == [12, 12, 12]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60))
def test_fuzz_items_never_cost_the_position(items: bytes) -> None:
    body = BASIC + items
    res = decode_jt808(frame(0x0200, body))
    assert res.rejects.num_rows == 0
    (row,) = res.table.to_pylist()
    assert (row["lat"], row["lon"]) == (
        pytest.approx(basic_block(body)["lat"]),
        pytest.approx(basic_block(body)["lon"]),
    )
    # Every byte after the block is an extra, a decoded item or the raw tail.
    tail = row["items_tail"] or b""
    assert body.endswith(tail)
    if tail:
        assert row["items_error"] in ("overrun", "truncated_header", "padding")
        assert row["items_error_offset"] == len(body) - len(tail)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=6, max_size=6))
def test_fuzz_terminal_numbers(terminal: bytes) -> None:
    res = decode_jt808(frame(0x0002, b"", phone=terminal.hex()))
    (msg,) = res.messages.to_pylist()
    digits = terminal.hex().upper()
    assert (msg["terminal_id"], msg["terminal_id_bcd"]) == (
        digits.lstrip("0") or "0",
        digits.isdigit(),
    )


def test_control_fields_stay_on_their_rows_in_a_mixed_stream() -> None:
    # the server vectors back to back, twice: control replies among location
    # reports; each message row carries the fields its own frame decoded alone
    vs = vec("yzh-") * 2
    stream = b"".join(bytes.fromhex(v["hex"]) for v in vs)
    got = decode_jt808(stream).messages.to_pylist()
    want = [one(v["hex"]).messages.to_pylist()[0] for v in vs]
    assert len(got) == len(want)
    control = [k for k in want[0] if k.startswith(("reply_", "token", "plate_", "imei"))]
    assert control
    for g, w in zip(got, want, strict=True):
        assert {k: g[k] for k in control} == {k: w[k] for k in control}
    assert any(w["reply_serial"] is not None for w in want)
    assert any(w["msg_id"] == 0x0200 for w in want)
