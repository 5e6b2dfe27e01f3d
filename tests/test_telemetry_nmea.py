"""NMEA 0183 and UBX decoding against gpsd's expected output (.chk files)."""

from __future__ import annotations

import bisect
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien import _core
from autolien.telemetry import decode_nmea
from autolien.telemetry.nmea import FIX_SCHEMA
from conftest import DATA

GPSD = DATA / "gnss" / "gpsd"
# gpsd TPV status -> our GGA-style quality
STATUS_TO_QUALITY = {1: 1, 2: 2, 3: 4, 4: 5, 6: 6}


def gpsd_epochs(chk: Path) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(TPV with a time, the SKY report before it) in file order."""
    out = []
    sky = None
    for line in chk.read_text().splitlines():
        if line.startswith('{"class":"SKY"'):
            sky = json.loads(line)
        elif line.startswith('{"class":"TPV"'):
            tpv = json.loads(line)
            if "time" in tpv:
                out.append((tpv, sky))
    return out


def by_time(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Rows keyed by time in whole milliseconds (gpsd prints milliseconds)."""
    return {round(r["time"].timestamp() * 1000): r for r in rows if r["time"] is not None}


@pytest.mark.parametrize("name", ["nmea-rtk.log", "nmea-fuzzy-cases.log", "ublox-zed-f9p-rtk.log"])
def test_matches_gpsd(name: str) -> None:
    res = decode_nmea(GPSD / name)
    ours = by_time(res.table.to_pylist())
    expected = gpsd_epochs(GPSD / f"{name}.chk")
    assert expected
    matched = 0
    for tpv, sky in expected:
        t = datetime.fromisoformat(tpv["time"])
        row = ours.get(round(t.timestamp() * 1000))
        assert row is not None, tpv["time"]
        matched += 1
        assert row["lat"] == pytest.approx(tpv["lat"], abs=6e-10)
        assert row["lon"] == pytest.approx(tpv["lon"], abs=6e-10)
        assert row["altitude_m"] == pytest.approx(tpv["altMSL"], abs=6e-5)
        assert row["height_m"] == pytest.approx(tpv["altHAE"], abs=6e-5)
        assert row["quality"] == STATUS_TO_QUALITY[tpv["status"]]
        if "speed" in tpv:
            assert row["speed_kmh"] / 3.6 == pytest.approx(tpv["speed"], abs=6e-4)
        if "track" in tpv:
            assert row["heading_deg"] == pytest.approx(tpv["track"], abs=6e-5)
        if name.startswith("ublox"):
            # gpsd's eph/epv for NAV-PVT are hAcc/vAcc: our sigmas.
            assert row["sigma_n_m"] == pytest.approx(tpv["eph"], abs=6e-4)
            assert row["sigma_u_m"] == pytest.approx(tpv["epv"], abs=6e-4)
            assert row["source"] == "ubx"
        elif sky is not None:
            assert row["hdop"] == pytest.approx(sky["hdop"])
            assert row["num_sats"] == sky["uSat"]
    assert matched == len(expected)


def test_rmc_mode_letter_is_not_the_quality() -> None:
    # The Trimble log writes RMC mode 'D' on RTK-fixed epochs too; quality
    # must come from GGA (18 epochs of quality 4 there).
    t = decode_nmea(GPSD / "nmea-rtk.log").table
    fixed = [r for r in t.to_pylist() if r["quality"] == 4]
    assert len(fixed) == 18
    assert {r["rmc_mode"] for r in fixed} == {"D"}


def test_dead_reckoning_receiver() -> None:
    res = decode_nmea(GPSD / "ublox-neo-m8l.log")
    t = res.table.to_pylist()
    assert len(t) == 19  # NAV-PVT epochs
    assert {r["fix_type"] for r in t} == {4}  # GNSS + dead reckoning
    # gpsd prints two TPVs a second here: one from HNR-PVT (which we list but
    # do not decode) and one from NAV-PVT, whose position is exactly ours.
    ours = by_time(t)
    matched = 0
    for tpv, _ in gpsd_epochs(GPSD / "ublox-neo-m8l.log.chk"):
        ms = round(datetime.fromisoformat(tpv["time"]).timestamp() * 1000)
        row = ours.get(ms)
        if row is None or row["lat"] != pytest.approx(tpv["lat"], abs=6e-10):
            continue
        matched += 1
        assert row["lon"] == pytest.approx(tpv["lon"], abs=6e-10)
        assert row["altitude_m"] == pytest.approx(tpv["altMSL"], abs=6e-5)
        assert row["quality"] == STATUS_TO_QUALITY[tpv["status"]]
    assert matched >= 15
    kinds = res.messages.column("kind").to_pylist()
    assert kinds.count("UBX-10-02") == 612  # ESF-MEAS: listed, not used, not dropped


def sentence(body: str) -> bytes:
    x = 0
    for ch in body:
        x ^= ord(ch)
    return f"${body}*{x:02X}\r\n".encode()


def test_talkers_gst_gsa_vtg_and_rollover() -> None:
    data = b"".join(
        [
            sentence("BDGGA,235959.50,3001.0000,N,12001.0000,E,4,20,0.7,10.0,M,5.0,M,1.0,0001"),
            sentence("GBGST,235959.50,0.01,0.02,0.01,10.0,0.012,0.015,0.030"),
            sentence("GAGSA,A,3,01,02,03,,,,,,,,,,1.5,0.7,1.3"),
            sentence("GLVTG,45.0,T,,M,1.0,N,1.852,K,A"),
            sentence("GNRMC,235959.50,A,3001.0000,N,12001.0000,E,1.0,45.0,311226,,,R"),
            sentence("GPGGA,000000.50,3001.0000,S,12001.0000,W,5,12,0.9,11.0,M,5.0,M,,"),
        ]
    )
    res = decode_nmea(data, vehicle_id="V1")
    assert res.rejects.num_rows == 0
    a, b = res.table.to_pylist()
    assert a["time"].isoformat() == "2026-12-31T23:59:59.500000+00:00"
    assert (a["quality"], a["sigma_n_m"], a["sigma_e_m"], a["sigma_u_m"]) == (
        4,
        0.012,
        0.015,
        0.030,
    )
    assert (a["pdop"], a["hdop"], a["rmc_mode"]) == (1.5, 0.7, "R")
    assert a["lat"] == pytest.approx(30 + 1 / 60)
    # The next epoch has no RMC: the date rolls over from the last one.
    assert b["time"].isoformat() == "2027-01-01T00:00:00.500000+00:00"
    assert (b["lat"], b["lon"], b["quality"]) == (
        pytest.approx(-(30 + 1 / 60)),
        pytest.approx(-(120 + 1 / 60)),
        5,
    )
    assert b["vehicle_id"] == "V1"
    assert res.table.schema.equals(FIX_SCHEMA)


def test_rejects_checksums_missing_checksums_junk_and_truncation() -> None:
    good = sentence("GPGGA,120000.00,3001.0000,N,12001.0000,E,1,08,1.0,10.0,M,5.0,M,,")
    bad = bytearray(good)
    bad[10] = ord("9")
    # A sentence cut short by the next '$' before any checksum, then input
    # that ends inside a sentence.
    data = b"\x00\x01garbage" + good + bytes(bad) + b"$GPGGA,120001.00,3001.0000,N" + good[:30]
    res = decode_nmea(data)
    assert res.rejects.column("reason").to_pylist() == [
        "junk",
        "bad_checksum",
        "no_checksum",
        "truncated",
    ]
    assert res.table.num_rows == 1
    # Every byte but the two CR/LF pairs is in the decoded sentence or a reject.
    rejected = sum(len(r) for r in res.rejects.column("raw").to_pylist())
    assert rejected + (len(good) - 2) == len(data) - 4
    # A UBX message with a corrupt checksum resyncs just after its sync bytes.
    ubx = bytes([0xB5, 0x62, 0x01, 0x07, 0x02, 0x00, 0xAA, 0xBB, 0x00, 0x00])
    res2 = decode_nmea(ubx + good)
    assert res2.rejects.column("reason").to_pylist()[0] == "bad_checksum"
    assert res2.table.num_rows == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    res = decode_nmea(data)
    assert all(0 <= o < max(len(data), 1) for o in res.rejects.column("offset").to_pylist())


LOG = (GPSD / "ublox-zed-f9p-rtk.log").read_bytes()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(LOG) - 1), st.integers(0, 255), st.integers(1, len(LOG)))
def test_fuzz_mutated_capture(pos: int, value: int, cut: int) -> None:
    data = bytearray(LOG[:cut])
    if pos < len(data):
        data[pos] = value
    res = decode_nmea(bytes(data))
    assert res.table.num_rows <= 10
    assert all(0 <= o < len(data) for o in res.rejects.column("offset").to_pylist())


def test_time_is_utc_with_microseconds() -> None:
    t = decode_nmea(GPSD / "nmea-rtk.log").table.column("time")
    assert str(t.type) == "timestamp[us, tz=UTC]"
    first = t[1].as_py()
    assert first - first.replace(microsecond=0) == timedelta(microseconds=700_000)


def test_real_ubx_walk_with_interleaved_nmea() -> None:
    res = decode_nmea(DATA / "gnss" / "gnss_imu" / "walk_0827_gnss_1730.ubx")
    assert res.rejects.num_rows == 0
    rows = res.table.to_pylist()
    ubx = [r for r in rows if r["source"] == "ubx"]
    nmea = [r for r in rows if r["source"] == "nmea"]
    # The data set's notes: 536 NAV-PVT, carrSoln 2 (fixed) in 349 and 1 (float) in 187.
    assert len(ubx) == 536
    assert sum(r["quality"] == 4 for r in ubx) == 349
    assert sum(r["quality"] == 5 for r in ubx) == 187
    # The receiver's own GGA says the same, epoch by epoch.
    by_ms = {round(r["time"].timestamp() * 1000): r for r in nmea}
    agree = 0
    for r in ubx:
        n = by_ms.get(round(r["time"].timestamp() * 1000))
        if n is not None:
            agree += 1
            assert n["quality"] == r["quality"]
            assert n["lat"] == pytest.approx(r["lat"], abs=2e-7)
            assert n["lon"] == pytest.approx(r["lon"], abs=2e-7)
    assert agree >= 530


def with_checksum(body: str) -> bytes:
    x = 0
    for ch in body.encode():
        x ^= ch
    return f"${body}*{x:02X}\r\n".encode()


@settings(max_examples=400)
@given(
    sign=st.sampled_from(["", "-", "+"]),
    whole=st.text("0123456789", max_size=20),
    point=st.booleans(),
    frac=st.text("0123456789", max_size=25),
    exponent=st.sampled_from(["", "", "", "e3", "E-2"]),
)
def test_numbers_parse_in_place_as_python_float_does(
    sign: str, whole: str, point: bool, frac: str, exponent: str
) -> None:
    """The in-place decimal parser (integer mantissa over a power of ten, with
    from_chars for anything longer or odder) rounds exactly as Python's
    correctly rounded float() does; what float() refuses is a null."""
    text = sign + whole + ("." if point else "") + (frac if point else "") + exponent
    data = with_checksum(f"GPGGA,123519,4807.038,N,01131.000,E,1,08,{text},545.4,M,46.9,M,,")
    hdop = decode_nmea(data).table.column("hdop")[0].as_py()
    try:
        want: float | None = float(text)
    except ValueError:
        want = None
    assert hdop == want
    # A malformed number is null and named, not silently absent.
    bad = decode_nmea(data).table.column("bad_fields")[0].as_py()
    assert bad == ("hdop" if want is None and text else None)
    if want is not None and want == 0:
        assert str(hdop).startswith("-") == str(want).startswith("-")


# --- What a bad field costs (docs/telemetry.md, "What is kept when the input is bad") ---------


def _pynmea2() -> Any:
    return pytest.importorskip("pynmea2")


def test_a_rejected_sentence_changes_no_epoch() -> None:
    """GGA and RMC are checked whole before any field reaches the epoch: a
    sentence rejected on a late field neither closes the open epoch nor
    starts one, nor leaves a field behind."""
    good_gga = "GPGGA,120000.00,3001.0000,N,12001.0000,E,1,08,1.0,10.0,M,5.0,M,,"
    # A new time and quality 4, then a position that is not one.
    bad_gga = "GPGGA,120001.00,3001.0000,N,120x1.0000,E,4,08,1.0,10.0,M,5.0,M,,"
    # The open epoch's time and a status, then a date that is not one.
    bad_rmc = "GPRMC,120000.00,V,3001.0000,N,12001.0000,E,1.0,45.0,321326,,,A"
    good_rmc = "GPRMC,120000.00,A,3001.0000,N,12001.0000,E,1.0,45.0,311226,,,A"
    data = b"".join(sentence(x) for x in (good_gga, bad_gga, bad_rmc, good_rmc))
    res = decode_nmea(data)
    assert res.rejects.column("reason").to_pylist() == ["bad_field", "bad_field"]
    assert [m.split(":")[0] for m in res.rejects.column("message").to_pylist()] == [
        "GPGGA",
        "GPRMC",
    ]
    (row,) = res.table.to_pylist()  # one epoch: the bad GGA did not close it
    assert row["time"].isoformat() == "2026-12-31T12:00:00+00:00"
    assert (row["quality"], row["rmc_status"], row["speed_kmh"]) == (1, "A", pytest.approx(1.852))
    assert row["lat"] == pytest.approx(30 + 1 / 60)
    assert row["bad_fields"] is None
    assert res.messages.column("kind").to_pylist() == ["GPGGA", "GPRMC"]
    # pynmea2 reads the same good sentences the same way, and cannot make a
    # longitude or a date of the bad ones either
    pynmea2 = _pynmea2()
    g = pynmea2.parse(sentence(good_gga).decode().strip(), check=True)
    assert (g.latitude, g.longitude, int(g.gps_qual)) == (
        pytest.approx(row["lat"]),
        pytest.approx(row["lon"]),
        row["quality"],
    )
    with pytest.raises(ValueError, match="is not valid"):
        _ = pynmea2.parse(sentence(bad_gga).decode().strip(), check=True).longitude
    # (pynmea2 hands back the raw text of a field it cannot convert.)
    assert pynmea2.parse(sentence(bad_rmc).decode().strip(), check=True).datestamp == "321326"


def test_malformed_optional_numbers_are_null_and_named() -> None:
    """A number that is not one costs only its column, which says why it is null."""
    gga = "GNGGA,120000.00,3001.0000,N,12001.0000,E,4,300,0.x9,1O.5,M,5.0,M,1.0,0001"
    gst = "GNGST,120000.00,0.01,0.02,0.01,10.0,abc,0.015,0.030"
    rmc = "GNRMC,120000.00,A,3001.0000,N,12001.0000,E,1.2.3,45.0,311226,,,RTK"
    res = decode_nmea(b"".join(sentence(x) for x in (gga, gst, rmc)))
    assert res.rejects.num_rows == 0
    (row,) = res.table.to_pylist()
    assert row["bad_fields"] == "altitude_m,height_m,speed_kmh,num_sats,hdop,sigma_n_m,rmc_mode"
    for col in ("altitude_m", "height_m", "speed_kmh", "num_sats", "hdop", "sigma_n_m", "rmc_mode"):
        assert row[col] is None, col
    # The good fields of the same sentences are kept.
    assert (row["quality"], row["diff_age_s"], row["sigma_e_m"], row["heading_deg"]) == (
        4,
        1.0,
        0.015,
        45.0,
    )
    assert row["lat"] == pytest.approx(30 + 1 / 60)
    assert row["rmc_status"] == "A"
    # pynmea2 parses these sentences too and has no number for these fields:
    # it hands back the raw text (or, for the satellite count, a count that
    # no receiver tracks and no uint8 holds).
    pynmea2 = _pynmea2()
    g = pynmea2.parse(sentence(gga).decode().strip(), check=True)
    for text in (g.altitude, g.horizontal_dil):
        with pytest.raises(ValueError, match="could not convert"):
            float(text)
    assert int(g.num_sats) == 300
    r = pynmea2.parse(sentence(rmc).decode().strip(), check=True)
    with pytest.raises(ValueError, match="could not convert"):
        float(r.spd_over_grnd)
    assert r.true_course == 45.0


def test_sentences_without_checksum_are_kept_and_flagged() -> None:
    """As pynmea2 and gpsd do, a sentence without *hh ended by CR/LF is decoded;
    the epoch and the message say that it could not be checked."""
    gga = "$GPGGA,120000.00,3001.0000,N,12001.0000,W,2,08,1.0,10.0,M,5.0,M,,"
    rmc = sentence("GPRMC,120000.00,A,3001.0000,N,12001.0000,W,1.0,45.0,311226,,,D")
    nxt = sentence("GPGGA,120001.00,3001.0000,N,12001.0000,W,2,08,1.0,10.0,M,5.0,M,,")
    res = decode_nmea(gga.encode() + b"\r\n" + rmc + nxt)
    assert res.rejects.num_rows == 0
    a, b = res.table.to_pylist()
    assert (a["checksum_present"], b["checksum_present"]) == (False, True)
    assert res.messages.column("checksum_present").to_pylist() == [False, True, True]
    msg = _pynmea2().parse(gga)  # pynmea2's default: no checksum is no error
    assert (a["lat"], a["lon"], a["altitude_m"], a["quality"]) == (
        pytest.approx(msg.latitude),
        pytest.approx(msg.longitude),
        msg.altitude,
        int(msg.gps_qual),
    )
    # Without CR/LF it is cut short (by the next '$') or cut off (by the end).
    res = decode_nmea(gga.encode() + nxt + gga.encode())
    assert res.rejects.column("reason").to_pylist() == ["no_checksum", "truncated"]
    assert res.table.column("checksum_present").to_pylist() == [True]


# --- The fast paths of the in-place parse (docs/telemetry.md) -----------------------------------


@settings(max_examples=300)
@given(
    sign=st.sampled_from(["", "", "-", "+"]),
    whole=st.text("0123456789", max_size=5),
    point=st.booleans(),
    frac=st.text("0123456789", max_size=3),
)
def test_counts_and_quality_read_as_python_float_does(
    sign: str, whole: str, point: bool, frac: str
) -> None:
    """Plain digits take a short path; anything else ("+4", "4.0", "010")
    the general rule. Both agree with float(): a whole number in range is the
    value, anything else a null (num_sats, named) or a rejected sentence (the
    quality, which every GGA needs)."""
    text = sign + whole + ("." + frac if point else "")
    try:
        value: float | None = float(text)
    except ValueError:
        value = None

    def whole_in(hi: int) -> int | None:
        ok = value is not None and value == int(value) and 0 <= value <= hi
        return int(value) if ok and value is not None else None

    sats = with_checksum(f"GPGGA,123519,4807.038,N,01131.000,E,1,{text},0.9,545.4,M,46.9,M,,")
    row = decode_nmea(sats).table.to_pylist()[0]
    assert row["num_sats"] == whole_in(255)
    assert row["bad_fields"] == ("num_sats" if text and whole_in(255) is None else None)
    quality = with_checksum(f"GPGGA,123519,4807.038,N,01131.000,E,{text},08,0.9,545.4,M,46.9,M,,")
    res = decode_nmea(quality)
    if whole_in(9) is None:
        assert res.table.num_rows == 0
        assert res.rejects.column("reason").to_pylist() == ["bad_field"]
    else:
        assert res.table.column("quality").to_pylist() == [whole_in(9)]


@pytest.mark.parametrize(
    "path", [GPSD / "nmea-rtk.log", DATA / "gnss" / "gnss_imu" / "walk_0827_gnss_1730.ubx"]
)
def test_positions_and_numbers_equal_pynmea2_exactly(path: Path) -> None:
    """Every GGA's position (eight fraction digits of minutes in nmea-rtk.log,
    read a word at a time), altitude and quality, and every RMC's speed, equal
    pynmea2's float() arithmetic to the last bit."""
    pynmea2 = _pynmea2()
    data = path.read_bytes()
    res = decode_nmea(data)
    fixes = {r["offset"]: r for r in res.table.to_pylist()}
    starts = sorted(fixes)
    msgs = res.messages.to_pylist()
    checked = 0
    for m in msgs:
        kind = m["kind"]
        if kind[2:] not in ("GGA", "RMC") or not m["used"]:
            continue
        line = data[m["offset"] : m["offset"] + m["length"]].decode()
        p = pynmea2.parse(line, check=True)
        # The epoch's row starts at its first sentence: the latest at or before.
        row = fixes[starts[bisect.bisect_right(starts, m["offset"]) - 1]]
        if kind[2:] == "GGA" and p.lat:
            assert (row["lat"], row["lon"]) == (p.latitude, p.longitude)
            assert row["altitude_m"] == (float(p.altitude) if p.altitude is not None else None)
            assert row["quality"] == int(p.gps_qual)
            checked += 1
        elif kind[2:] == "RMC" and p.spd_over_grnd is not None:
            assert row["speed_kmh"] == pytest.approx(float(p.spd_over_grnd) * 1.852, rel=1e-15)
    assert checked > 0


def test_reused_column_buffers_never_change_a_live_result() -> None:
    """The decoder keeps freed output buffers for the next call
    (nmea.hpp, PoolAllocator): a result still referenced keeps its memory, and
    a buffer taken back is rewritten whole. Inputs large enough (10k epochs)
    that every column buffer goes through the cache."""
    lines = [ln for ln in (GPSD / "nmea-rtk.log").read_bytes().splitlines() if ln.startswith(b"$")]
    a = b"\r\n".join(lines * 82) + b"\r\n"  # about 10k epochs
    b = b"\r\n".join(lines[::-1] * 82) + b"\r\n"  # another order: other values row by row
    first = decode_nmea(a)
    want_a = first.table.to_pylist()
    for _ in range(3):
        other = decode_nmea(b)
        assert first.table.to_pylist() == want_a  # untouched by the decodes after it
    want_b = other.table.to_pylist()
    del first, other
    for _ in range(2):  # buffers taken back from freed results: same outputs
        assert decode_nmea(b).table.to_pylist() == want_b
        assert decode_nmea(a).table.to_pylist() == want_a


def _sentence(body: str) -> bytes:
    x = 0
    for ch in body.encode():
        x ^= ch
    return f"${body}*{x:02X}\r\n".encode()


# The columns that are null where the decoder has no value (the string
# columns rmc_status, rmc_mode and bad_fields are built otherwise).
NULLABLE = [
    "time",
    *(f.name for f in FIX_SCHEMA if f.nullable and f.type in (pa.float64(), pa.uint8())),
]


def _absent_rows(data: bytes) -> dict[str, list[bool]]:
    """Each nullable column's absent rows read from the decoder's raw values
    (NaN, -1, INT64_MIN), independently of the validity bitmaps it builds."""
    raw = _core.decode_nmea(data)["fixes"]
    out = {}
    for name in NULLABLE:
        values = raw["time_us" if name == "time" else name]  # type: ignore[literal-required]
        if values.dtype == np.float64:
            out[name] = np.isnan(values).tolist()
        elif name == "time":
            out[name] = (values == np.iinfo(np.int64).min).tolist()
        else:
            out[name] = (values == -1).tolist()
    return out


@pytest.mark.parametrize("rows", [1, 7, 8, 255, 256, 257, 1000, 1031])
def test_nulls_are_the_absent_values_across_row_blocks(rows: int) -> None:
    """The decoder builds each column's validity bitmap 256 rows at a time
    (nmea.hpp, Fixes::validity): a null, and only a null, wherever an epoch
    had no value, at block edges and in the last partial byte too."""
    rng = np.random.default_rng(rows)
    out = []
    for i in range(rows):
        t = f"{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}.00"
        hdop = "" if rng.random() < 0.3 or i in (0, 255, 256, rows - 1) else "0.9"
        alt = "" if rng.random() < 0.5 else "12.5"
        sats = "" if i % 9 == 4 else "10"
        out.append(_sentence(f"GPGGA,{t},4807.038,N,01131.000,E,1,{sats},{hdop},{alt},M,47.9,M,,"))
        if i % 5:  # RMC (date, speed) in four epochs of five
            out.append(_sentence(f"GPRMC,{t},A,4807.038,N,01131.000,E,0.1,,230394,,,A"))
    data = b"".join(out)
    table = decode_nmea(data).table
    assert table.num_rows == rows
    for name, absent in _absent_rows(data).items():
        assert table.column(name).is_null().to_pylist() == absent, name


@pytest.mark.parametrize("path", sorted(GPSD.glob("*.log")), ids=lambda p: p.name)
def test_nulls_are_the_absent_values_on_the_gpsd_logs(path: Path) -> None:
    data = path.read_bytes()
    table = decode_nmea(data).table
    for name, absent in _absent_rows(data).items():
        assert table.column(name).is_null().to_pylist() == absent, name


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(LOG) - 1), st.integers(0, 255), st.integers(1, len(LOG)))
def test_nulls_are_the_absent_values_on_mutated_captures(pos: int, value: int, cut: int) -> None:
    data = bytearray(LOG[:cut])
    if pos < len(data):
        data[pos] = value
    table = decode_nmea(bytes(data)).table
    for name, absent in _absent_rows(bytes(data)).items():
        assert table.column(name).is_null().to_pylist() == absent, name


@pytest.mark.parametrize("extra", [25, 31, 32, 33, 64, 100])  # within 200 bytes
def test_a_long_run_of_empty_fields_changes_nothing_else(extra: int) -> None:
    """The scan records a 32-byte block's commas before it caps the field
    count (kMaxFields): a run of empty fields longer than that stays within
    the sentence (the sanitizer build checks the bounds) and the fields
    before it decode as without it."""
    gga = "GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,"
    rmc = _sentence("GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A")
    plain = decode_nmea(_sentence(gga) + rmc).table.to_pylist()
    padded = decode_nmea(_sentence(gga + "," * extra) + rmc).table.to_pylist()
    assert padded == plain
    assert plain[0]["quality"] == 1
    assert plain[0]["num_sats"] == 8
