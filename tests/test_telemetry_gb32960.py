"""GB/T 32960.3 decoding against the upstream vectors (SmallChi/JTNewEnergy, EMQX).

Upstream values are raw wire units; the tests apply the standard's scales and
offsets. Where an upstream disagrees with the standard the test follows the
standard and says so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien.telemetry import decode_gb32960
from autolien.telemetry.gb32960 import EV_SCHEMA
from conftest import DATA

VECTORS = {
    r["id"]: r
    for r in (
        json.loads(x) for x in (DATA / "protocols" / "gb32960.jsonl").read_text().splitlines()
    )
}
VIN = b"LSVAU218XN2183294"


def frame(cmd: int, data: bytes, vin: bytes = VIN) -> bytes:
    """An encoder written from the standard: ## cmd ack VIN enc len data BCC."""
    body = (
        bytes([cmd, 0xFE]) + vin.ljust(17, b"\x00") + b"\x01" + len(data).to_bytes(2, "big") + data
    )
    x = 0
    for b in body:
        x ^= b
    return b"##" + body + bytes([x])


TIME = bytes([26, 11, 28, 16, 30, 5])  # 2026-11-28 16:30:05 GMT+8


def units(hexstr: str) -> dict[str, Any]:
    res = decode_gb32960(frame(0x02, TIME + bytes.fromhex(hexstr)))
    assert res.rejects.num_rows == 0, res.rejects.to_pylist()
    (row,) = res.table.to_pylist()
    assert row["time"] == datetime(2026, 11, 28, 8, 30, 5, tzinfo=UTC)
    return row


def test_vehicle_unit() -> None:
    exp = VECTORS["smallchi-unit-0x02_0x01"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x01"]["hex"])
    assert (row["vehicle_status"], row["charging_status"], row["run_mode"]) == (
        exp["vehicle_status"],
        exp["charging_status"],
        exp["run_mode"],
    )
    assert row["speed_kmh"] == pytest.approx(exp["speed_raw"] / 10)
    assert row["odometer_km"] == pytest.approx(exp["odometer_raw"] / 10)
    assert row["pack_voltage_v"] == pytest.approx(exp["total_voltage_raw"] / 10)
    assert row["pack_current_a"] == pytest.approx(exp["total_current_raw"] / 10 - 1000)
    assert (row["soc_pct"], row["dcdc_status"], row["gear"]) == (
        exp["soc"],
        exp["dcdc"],
        exp["gear_raw"],
    )
    assert row["insulation_kohm"] == exp["insulation_kohm"]
    assert (row["accel_pedal_pct"], row["brake_pedal"]) == (exp["accel_pedal"], exp["brake_pedal"])


def test_drive_motor_unit() -> None:
    v = VECTORS["smallchi-unit-0x02_0x02"]
    motors = units(v["hex"])["motors"]
    assert len(motors) == v["expected"]["count"]
    for m, e in zip(motors, v["expected"]["motors"], strict=True):
        assert (m["no"], m["status"]) == (e["no"], e["status"])
        assert m["controller_temp_c"] == e["ctrl_temp_raw"] - 40
        assert m["speed_rpm"] == e["speed_raw"] - 20000
        assert m["torque_nm"] == pytest.approx(e["torque_raw"] / 10 - 2000)
        assert m["temp_c"] == e["motor_temp_raw"] - 40
        assert m["voltage_v"] == pytest.approx(e["voltage_raw"] / 10)
        assert m["current_a"] == pytest.approx(e["current_raw"] / 10 - 1000)


def test_fuel_cell_unit_is_kept_raw_and_skipped_by_length() -> None:
    v = VECTORS["smallchi-unit-0x02_0x03"]
    row = units(v["hex"] + "0401" + "00cb0066")  # followed by an engine unit
    (custom,) = row["custom_units"]
    assert custom["id"] == 0x03
    assert custom["value"] == bytes.fromhex(v["hex"])[1:]
    assert row["crankshaft_rpm"] == 203


def test_engine_and_location_units() -> None:
    e = VECTORS["smallchi-unit-0x02_0x04"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x04"]["hex"])
    assert (row["engine_status"], row["crankshaft_rpm"]) == (
        e["engine_status"],
        e["crankshaft_rpm"],
    )
    assert row["fuel_rate_l_per_100km"] == pytest.approx(e["fuel_rate_raw"] / 100)
    # SmallChi's location has status 1: bit 0 set means the fix is invalid, so
    # the standard leaves the position out.
    loc = units(VECTORS["smallchi-unit-0x02_0x05"]["hex"])
    assert loc["location_status"] == VECTORS["smallchi-unit-0x02_0x05"]["expected"]["status"] == 1
    assert loc["lat"] is None
    assert loc["lon"] is None
    # With a valid fix, longitude comes first and the status bits sign it.
    valid = units(
        "05" + "06" + (3255555).to_bytes(4, "big").hex() + (1233355).to_bytes(4, "big").hex()
    )
    assert (valid["lat"], valid["lon"]) == (pytest.approx(-1.233355), pytest.approx(-3.255555))


def test_extremes_unit() -> None:
    e = VECTORS["smallchi-unit-0x02_0x06"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x06"]["hex"])
    assert (row["max_v_subsys"], row["max_v_cell"]) == (e["max_v_subsys"], e["max_v_cell"])
    assert row["max_cell_v"] == pytest.approx(e["max_cell_v_raw"] / 1000)
    assert row["min_cell_v"] == pytest.approx(e["min_cell_v_raw"] / 1000)
    assert row["max_temp_c"] == e["max_t_raw"] - 40
    assert row["min_temp_c"] == e["min_t_raw"] - 40
    # SmallChi reads the temperature probe number before the subsystem number;
    # the standard (and EMQX, below) has the subsystem first.
    assert (row["max_t_subsys"], row["max_t_probe"]) == (e["max_t_probe"], e["max_t_subsys"])
    assert (row["min_t_subsys"], row["min_t_probe"]) == (e["min_t_probe"], e["min_t_subsys"])
    v = VECTORS["emqx-case07-extreme"]
    (emqx,) = decode_gb32960(bytes.fromhex(v["hex"])).table.to_pylist()
    info = v["expected"]["Infos"][0]
    assert (emqx["max_t_subsys"], emqx["max_t_probe"], emqx["max_temp_c"]) == (
        info["MaxTempSubsysNo"],
        info["MaxTempProbeNo"],
        info["MaxTemp"] - 40,
    )
    assert (emqx["min_v_subsys"], emqx["min_v_cell"]) == (
        info["MinVoltageBatterySubsysNo"],
        info["MinVoltageBatteryCode"],
    )
    assert emqx["max_cell_v"] == pytest.approx(info["MaxBatteryVoltage"] / 1000)


def test_alarm_unit() -> None:
    e = VECTORS["smallchi-unit-0x02_0x07"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x07"]["hex"])
    assert (row["alarm_level"], row["alarm_flags"]) == (e["max_alarm_level"], e["general_flags"])
    got = {
        c: [f["code"] for f in row["faults"] if f["category"] == c]
        for c in ("ress", "drive_motor", "engine", "other")
    }
    assert got == {
        "ress": e["ress"],
        "drive_motor": e["motor"],
        "engine": e["engine"],
        "other": e["other"],
    }


def test_cell_voltage_unit_keeps_the_frame_start() -> None:
    e = VECTORS["smallchi-unit-0x02_0x08"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x08"]["hex"])
    assert len(row["cells"]) == e["count"]
    for got, want in zip(row["cells"], e["subsystems"], strict=True):
        assert got["subsystem"] == want["no"]
        assert got["voltage_v"] == pytest.approx(want["voltage_raw"] / 10)
        assert got["current_a"] == pytest.approx(want["current_raw"] / 10 - 1000)
        assert (got["total_cells"], got["start_cell"]) == (want["cells_total"], want["frame_start"])
        assert got["voltages_v"] == pytest.approx([c / 1000 for c in want["cells_raw"]])
    assert row["cell_voltages_v"] == pytest.approx(
        [c / 1000 for s in e["subsystems"] for c in s["cells_raw"]]
    )


def test_probe_temperature_unit() -> None:
    e = VECTORS["smallchi-unit-0x02_0x09"]["expected"]
    row = units(VECTORS["smallchi-unit-0x02_0x09"]["hex"])
    assert [(p["subsystem"], p["temps_c"]) for p in row["probe_temps"]] == [
        (s["no"], [t - 40 for t in s["temps_raw"]]) for s in e["subsystems"]
    ]


def test_custom_units_with_length_words() -> None:
    v = VECTORS["smallchi-unit-custom-A1-A2"]
    row = units(v["hex"])
    got = {c["id"]: len(c["value"]) for c in row["custom_units"]}
    assert got == {0xA1: v["expected"]["A1_len"], 0xA2: v["expected"]["A2_len"]}


def test_markers_become_nulls_with_flags() -> None:
    vehicle = (
        bytes([1, 3, 1])
        + b"\xff\xfe"
        + b"\xff\xff\xff\xff"
        + b"\x13\x88"
        + b"\xff\xfe"
        + bytes([0xFE, 1, 0x0E])
        + b"\x17\x70"
        + bytes([0, 0])
    )
    row = units("01" + vehicle.hex())
    assert row["speed_kmh"] is None
    assert row["odometer_km"] is None
    assert row["pack_current_a"] is None
    assert row["soc_pct"] is None
    assert row["pack_voltage_v"] == pytest.approx(500.0)
    assert set(row["abnormal_fields"]) == {"speed_kmh", "pack_current_a", "soc_pct"}
    assert row["invalid_fields"] == ["odometer_km"]


def test_emqx_frames() -> None:
    v = VECTORS["emqx-case02-vehicle"]
    (row,) = decode_gb32960(bytes.fromhex(v["hex"])).table.to_pylist()
    info = v["expected"]["Infos"][0]
    # The notes' scaled values: 200.0 km/h, 99999.9 km, 500.0 V, 500.0 A, 6000 kOhm.
    assert (row["speed_kmh"], row["odometer_km"], row["pack_voltage_v"], row["pack_current_a"]) == (
        pytest.approx(200.0),
        pytest.approx(99999.9),
        pytest.approx(500.0),
        pytest.approx(500.0),
    )
    assert (row["soc_pct"], row["insulation_kohm"], row["accel_pedal_pct"]) == (
        info["SOC"],
        6000,
        90,
    )
    assert row["vin"] == "1G1BL52P7TR115520"
    # 2016-01-01 02:59:00 in GMT+8 is 2015-12-31 18:59:00 UTC.
    assert v["expected"]["Time"] == {
        "Year": 16,
        "Month": 1,
        "Day": 1,
        "Hour": 2,
        "Minute": 59,
        "Second": 0,
    }
    assert row["time"] == datetime(2015, 12, 31, 18, 59, tzinfo=UTC)
    loc = decode_gb32960(bytes.fromhex(VECTORS["emqx-case06-location"]["hex"])).table.to_pylist()[0]
    assert (loc["lon"], loc["lat"]) == (pytest.approx(10 / 1e6), pytest.approx(100 / 1e6))
    alarm = decode_gb32960(bytes.fromhex(VECTORS["emqx-case08-alarm"]["hex"])).table.to_pylist()[0]
    exp = VECTORS["emqx-case08-alarm"]["expected"]["Infos"][0]
    assert alarm["alarm_level"] == exp["MaxAlarmLevel"]
    assert [f["code"] for f in alarm["faults"] if f["category"] == "drive_motor"] == [
        int(c, 16) for c in exp["FaultDriveMotorList"]
    ]
    reissue = decode_gb32960(
        bytes.fromhex(VECTORS["emqx-case08-alarm-reissue"]["hex"])
    ).table.to_pylist()[0]
    assert reissue["reissue"]
    temps = decode_gb32960(
        bytes.fromhex(VECTORS["emqx-case10-ress-temp"]["hex"])
    ).table.to_pylist()[0]
    want = VECTORS["emqx-case10-ress-temp"]["expected"]["Infos"][0]["SubSystems"]
    assert [p["temps_c"] for p in temps["probe_temps"]] == [
        [t - 40 for t in s["ProbesTemp"]] for s in want
    ]
    volts = decode_gb32960(
        bytes.fromhex(VECTORS["emqx-case09-ress-voltage"]["hex"])
    ).table.to_pylist()[0]
    want = VECTORS["emqx-case09-ress-voltage"]["expected"]["Infos"][0]["SubSystems"]
    assert [c["start_cell"] for c in volts["cells"]] == [s["FrameCellsIndex"] for s in want]
    assert volts["cell_voltages_v"] == pytest.approx([s["CellsVoltage"][0] / 1000 for s in want])


def test_login_logout_heartbeat() -> None:
    login = decode_gb32960(
        bytes.fromhex(VECTORS["smallchi-frame-login"]["hex"])
    ).messages.to_pylist()[0]
    e = VECTORS["smallchi-frame-login"]["expected"]
    assert (login["cmd"], login["vin"], login["sequence"], login["iccid"]) == (
        1,
        e["vin"],
        e["login_seq"],
        e["iccid"],
    )
    assert login["ress_codes"] == e["ress_codes"]
    # Binary (not BCD) time, GMT+8: 2019-01-22 23:55:56 is 15:55:56 UTC.
    assert login["time"] == datetime(2019, 1, 22, 15, 55, 56, tzinfo=UTC)
    logout = decode_gb32960(
        bytes.fromhex(VECTORS["smallchi-frame-logout"]["hex"])
    ).messages.to_pylist()[0]
    assert (logout["cmd"], logout["sequence"]) == (4, 1)
    for vid in (
        "smallchi-frame-0x07",
        "smallchi-frame-0x08",
        "emqx-case11-heartbeat",
        "emqx-case12-timecal",
    ):
        (m,) = decode_gb32960(bytes.fromhex(VECTORS[vid]["hex"])).messages.to_pylist()
        assert m["data"] == b""


def test_nonstandard_realtime_frame_is_rejected() -> None:
    # SmallChi's device-side 0x02 body has no 6-byte collection time; read per
    # the standard, its units do not line up and the frame is rejected.
    res = decode_gb32960(bytes.fromhex(VECTORS["smallchi-frame-realtime-NONSTANDARD"]["hex"]))
    assert res.rejects.column("reason").to_pylist() == ["bad_body"]
    assert res.table.num_rows == 0


def test_stream_bcc_junk_truncation() -> None:
    good = frame(0x02, TIME + bytes.fromhex(VECTORS["smallchi-unit-0x02_0x04"]["hex"]))
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    data = b"xx" + good + bytes(bad) + good + good[:20]
    res = decode_gb32960(data)
    assert res.table.num_rows == 2
    assert res.rejects.column("reason").to_pylist() == ["junk", "bad_checksum", "junk", "truncated"]
    assert res.table.schema.equals(EV_SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random(data: bytes) -> None:
    decode_gb32960(data)
    decode_gb32960(b"##" + data)


FRAMES = [bytes.fromhex(v["hex"]) for v in VECTORS.values() if v["level"] == "frame"]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FRAMES), st.integers(0, 1000), st.integers(0, 255))
def test_fuzz_mutated(f: bytes, pos: int, value: int) -> None:
    data = bytearray(f)
    data[pos % len(data)] = value
    # Recompute the BCC so the mutation reaches the unit parser.
    x = 0
    for b in data[2:-1]:
        x ^= b
    data[-1] = x
    res = decode_gb32960(bytes(data))
    assert res.table.num_rows + res.rejects.num_rows + res.messages.num_rows >= 1


# --- a bad unit costs only itself and what follows it (issue 16) -------------------------------------

VEHICLE = VECTORS["smallchi-unit-0x02_0x01"]
LOCATION = "0006c6f42e0250a4c2"  # valid fix, 113.701934 E, 38.839490 N


@pytest.mark.parametrize(
    ("rest", "error"),
    [
        (("0a0102030405"), "unknown_unit"),  # 0x0A: no layout, no length to skip it by
        ("0202" + "01" * 12, "cut_short"),  # two drive motors declared, one sent
        (("8100100102"), "cut_short"),  # a custom unit declares 16 bytes, 2 remain
        ("06" + "01" * 10, "cut_short"),  # extremes need 14 bytes
    ],
)
def test_bad_unit_keeps_the_units_before_it(rest: str, error: str) -> None:
    good = bytes.fromhex(VEHICLE["hex"]) + bytes.fromhex("05" + LOCATION)
    data = TIME + good + bytes.fromhex(rest)
    res = decode_gb32960(frame(0x02, data))
    assert res.rejects.num_rows == 0
    (row,) = res.table.to_pylist()
    assert row["soc_pct"] == VEHICLE["expected"]["soc"]
    assert (row["lat"], row["lon"]) == (pytest.approx(38.83949), pytest.approx(113.701934))
    assert (row["units_error"], row["units_error_offset"]) == (error, 6 + len(good))
    assert row["units_tail"] == bytes.fromhex(rest)
    assert row["motors"] == []  # a unit cut short leaves nothing half-read


def test_clean_frames_have_no_units_error() -> None:
    row = units(VEHICLE["hex"])
    assert (row["units_error"], row["units_error_offset"], row["units_tail"]) == (None, None, None)


def test_a_frame_whose_first_unit_is_bad_is_rejected() -> None:
    # No unit decodes, so there is no good data to keep (a device that leaves
    # out the collection time looks like this: see the SmallChi vector).
    res = decode_gb32960(frame(0x02, TIME + bytes.fromhex("0a0102")))
    assert res.rejects.column("reason").to_pylist() == ["bad_body"]
    assert "first unit" in res.rejects.column("message")[0].as_py()


def test_short_login_keeps_its_time_and_serial() -> None:
    login = bytes([19, 1, 22, 23, 55, 56]) + (7).to_bytes(2, "big") + b"8986"  # ICCID cut short
    (msg,) = decode_gb32960(frame(0x01, login)).messages.to_pylist()
    assert (msg["time"], msg["sequence"], msg["iccid"]) == (
        datetime(2019, 1, 22, 15, 55, 56, tzinfo=UTC),
        7,
        None,
    )
    assert "ICCID" in msg["data_error"]
    full = VECTORS["smallchi-frame-login"]["hex"]
    assert decode_gb32960(bytes.fromhex(full)).messages.column("data_error").to_pylist() == [None]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_units_never_cost_the_vehicle_unit(rest: bytes) -> None:
    data = TIME + bytes.fromhex(VEHICLE["hex"]) + rest
    res = decode_gb32960(frame(0x02, data))
    assert res.rejects.num_rows == 0
    (row,) = res.table.to_pylist()
    tail = row["units_tail"] or b""
    assert data.endswith(tail)
    if tail:
        assert row["units_error_offset"] == len(data) - len(tail)
        assert row["units_error"] in ("unknown_unit", "cut_short")


def test_flag_names_follow_the_mask_bits() -> None:
    # the vectorised flag lists against a plain reading of each mask's bits
    from autolien.telemetry.gb32960 import SCALARS, _flags

    names = [name for name, _ in SCALARS]
    rng = np.random.default_rng(7)
    masks = rng.integers(0, 1 << len(names), size=500, dtype=np.uint64)
    masks[:3] = [0, (1 << len(names)) - 1, 1 << (len(names) - 1)]
    masks[3] |= np.uint64(1) << np.uint64(63)  # a bit past the last field names nothing
    want = [[names[i] for i in range(len(names)) if (int(m) >> i) & 1] for m in masks]
    got = _flags(masks)
    assert got.type == pa.list_(pa.string())
    assert got.to_pylist() == want
    assert _flags(np.zeros(0, np.uint64)).to_pylist() == []
