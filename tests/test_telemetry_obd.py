"""OBD-II mode 01 decoding against python-OBD's unit-test values and the
issue-quoted KWP lines (tests/data/protocols/obd2.jsonl)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien.telemetry import decode_obd, obd_value
from autolien.telemetry.obd import OBD_SCHEMA, PIDS
from conftest import DATA

VECTORS = [json.loads(x) for x in (DATA / "protocols" / "obd2.jsonl").read_text().splitlines()]


def expected_length_cases() -> list[tuple[dict[str, Any], int]]:
    out = []
    for v in VECTORS:
        if v["level"] != "decoder_data_bytes":
            continue
        pids = [int(p, 16) for p in (v.get("pids") or [])] or (
            [int(v["pid"], 16)] if v.get("pid") else []
        )
        out.extend((v, p) for p in pids)
    return out


@pytest.mark.parametrize(
    ("v", "pid"), expected_length_cases(), ids=lambda x: x["id"] if isinstance(x, dict) else hex(x)
)
def test_pid_formulas(v: dict[str, Any], pid: int) -> None:
    data = bytes.fromhex(v["hex"])
    want = v["expected"]["value"]
    try:
        got = obd_value(pid, data)
    except ValueError:
        # python-OBD's generic decoders take any length; a PID does not. The
        # vectors' 1-byte and 2-byte inputs match the PIDs they list.
        raise AssertionError((v["id"], hex(pid))) from None
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_no_silent_misread_of_wrong_lengths() -> None:
    # python-OBD's temp() turns 2 bytes (03 E8) into 960 degC; coolant is one byte.
    v = next(v for v in VECTORS if v["id"] == "pyobd-unit-05")
    assert v["expected"]["value"] == 960
    with pytest.raises(ValueError, match="coolant_temp needs 1 data bytes, got 2"):
        obd_value(0x05, bytes.fromhex(v["hex"]))
    with pytest.raises(ValueError, match="not decoded"):
        obd_value(0x99, b"\x00")


def test_kwp_lines_without_checksum() -> None:
    # python-OBD issue #132: the format byte 0x83 says 3 data bytes follow
    # (41 05 xx) and there is no checksum byte; the correct reading is xx - 40.
    lines = [v for v in VECTORS if v["level"] == "elm327_legacy_line"]
    res = decode_obd("\r\n".join(v["elm_line"] for v in lines).encode())
    assert res.rejects.num_rows == 0
    assert res.table.column("value").to_pylist() == [v["expected"]["value"] for v in lines]
    assert set(res.table.column("format").to_pylist()) == {"kwp"}
    # The same lines with a checksum byte read the same.
    with_cs = decode_obd(b"83F1104105868F\r\n")
    assert with_cs.table.column("value").to_pylist() == [lines[0]["expected"]["value"]]


def test_can_headers_multi_pid_and_status_lines() -> None:
    text = b"7E8 03 41 0D 32\r18 DA F1 10 04 41 0C 1A F8\r41 0C 1A F8 0D 32 05 7B\rNO DATA\rSEARCHING...\r41 0C 1A\r>"
    res = decode_obd(text, vehicle_id="V9")
    rows = res.table.to_pylist()
    assert [(r["name"], r["value"], r["ecu"], r["format"]) for r in rows] == [
        ("speed", 50.0, "7E8", "can11"),
        ("rpm", 1726.0, "10", "can29"),
        ("rpm", 1726.0, "", "plain"),
        ("speed", 50.0, "", "plain"),
        ("coolant_temp", 83.0, "", "plain"),
    ]
    assert rows[0]["vehicle_id"] == "V9"
    assert res.rejects.column("reason").to_pylist() == ["elm_status", "elm_status", "bad_length"]
    assert res.table.schema.equals(OBD_SCHEMA)
    assert {PIDS[r["pid"]][1] for r in rows} == {"km/h", "rpm", "degC"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    decode_obd(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="0123456789ABCDEF ", max_size=30), max_size=8))
def test_fuzz_hex_lines(lines: list[str]) -> None:
    res = decode_obd("\r".join(lines).encode())
    for value in res.table.column("value").to_pylist():
        assert not math.isnan(value)


def test_multi_pid_reply_keeps_the_pids_before_a_bad_one() -> None:
    # 0C = 1AF8 -> 1726 rpm and 0D = 0x32 -> 50 km/h by the SAE J1979 formulas
    # (python-OBD's decoders agree), then PID 0x99, which we do not decode: its
    # length is unknown, so the rest of the line cannot be framed.
    res = decode_obd(b"41 0C 1A F8 0D 32 99 01 02\r41 0D 32 0C 1A\r")
    assert res.table.column("pid").to_pylist() == [0x0C, 0x0D, 0x0D]
    assert res.table.column("value").to_pylist() == [1726.0, 50.0, 50.0]
    assert res.rejects.column("reason").to_pylist() == ["unknown_pid", "bad_length"]
    messages = res.rejects.column("message").to_pylist()
    assert "after 2 decoded PID(s)" in messages[0]
    assert "after 1 decoded PID(s)" in messages[1]
    assert res.rejects.column("offset").to_pylist() == [0, 27]
