"""The C++ load generator of bench/bench_gateway.py sends what it says.

Correctness only, no timing: 20 terminals x 5 reports against `autolien serve`
on loopback. Every frame it logged is decoded here with the independent byte
loops of test_gateway.py (escape, check code) and a struct decode written from
JT/T 808-2013 table 23, checked against the values the generator documents
(bench/loadgen/loadgen.cpp), and the store must then hold exactly those 100
locations. The longitude is chosen so that its low byte walks through 0x7D
and 0x7E: the generator's in-place patch must escape those frames again.
"""

from __future__ import annotations

import calendar
import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from autolien.telemetry import Store
from test_gateway import unescape, write_book

ROOT = Path(__file__).resolve().parent.parent
N_TERMINALS, REPORTS = 20, 5
PHONE_BASE = 13800000000
T0 = 1_700_000_000
LAT0 = 30.5
LON0 = 121.000060  # 121000060 = 0x0736457C: + k gives low bytes 7C, 7D, 7E, 7F, 80


def _bench() -> object:
    spec = importlib.util.spec_from_file_location(
        "bench_gateway", ROOT / "bench" / "bench_gateway.py"
    )
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bcd_epoch(b: bytes) -> int:
    """BCD YYMMDDhhmmss in GMT+8 -> epoch seconds."""
    y, mo, d, h, mi, s = (int(f"{x:02x}") for x in b)
    return calendar.timegm((2000 + y, mo, d, h, mi, s)) - 8 * 3600


def _decode(frame: bytes) -> tuple[str, int, int, float, float, float, float]:
    p = unescape(frame)  # asserts the check code
    msg_id, props = struct.unpack_from(">HH", p)
    assert msg_id == 0x0200
    assert props & 0x3FF == len(p) - 12
    phone = p[4:10].hex()
    (serial,) = struct.unpack_from(">H", p, 10)
    body = p[12:]
    alarm, status, lat, lon, _alt, speed, _course = struct.unpack_from(">IIIIHHH", body)
    assert (alarm, status) == (0, 3)
    when = _bcd_epoch(body[22:28])
    item, length, mileage = struct.unpack_from(">BBI", body, 28)
    assert (item, length) == (0x01, 4)
    return phone, serial, when, lat / 1e6, lon / 1e6, speed / 10, mileage / 10


def test_loadgen_frames_are_stored_exactly(tmp_path: Path) -> None:
    loadgen = _bench().build_loadgen()  # type: ignore[attr-defined]
    if loadgen is None:
        pytest.fail("no C++ compiler: the package itself needs one")
    phones = [f"{PHONE_BASE + i:012d}" for i in range(N_TERMINALS)]
    book = write_book(tmp_path / "book.csv", phones, [])
    cmd = [
        sys.executable, "-c", "import sys; from autolien.cli import main; sys.exit(main())",
        "serve", "--db", str(tmp_path / "db.duckdb"), "--spool", str(tmp_path / "spool"),
        "--jt808", "127.0.0.1:0", "--gb32960", "off", "--loan-book", str(book),
        "--ingest-interval", "0.1",
    ]  # fmt: skip
    with open(tmp_path / "server.log", "w") as err:
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert server.stdout is not None
        port = json.loads(server.stdout.readline())["jt808"]
        gen_cmd = [
            str(loadgen), "--port", str(port), "--terminals", str(N_TERMINALS),
            "--interval", "0.05", "--reports", str(REPORTS), "--phone-base", str(PHONE_BASE),
            "--time-base", str(T0), "--lat0", str(LAT0), "--lon0", str(LON0),
            "--log", str(tmp_path / "frames.log"),
        ]  # fmt: skip
        gen = subprocess.run(
            gen_cmd,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        server.terminate()  # SIGTERM: the server stores what is spooled, then exits
        server.wait(60)
        if server.stdout is not None:
            server.stdout.close()
    lines = gen.stdout.strip().splitlines()
    assert json.loads(lines[0]) == {"event": "reporting", "authenticated": N_TERMINALS}
    out = json.loads(lines[-1])
    total = N_TERMINALS * REPORTS
    assert (out["authenticated"], out["sent"], out["acked"]) == (N_TERMINALS, total, total)
    assert (out["nacked"], out["unacked"], out["unmatched"], out["dropped"]) == (0, 0, 0, 0)

    # the frames as logged, decoded independently
    sent = []
    escaped = 0
    for line in (tmp_path / "frames.log").read_text().splitlines():
        i_s, hexed = line.split()
        frame = bytes.fromhex(hexed)
        escaped += b"\x7d" in frame
        sent.append((int(i_s), *_decode(frame)))
    assert len(sent) == total
    assert escaped >= N_TERMINALS  # the 0x7D and 0x7E longitudes at least
    expected = {
        (str(PHONE_BASE + i), T0 + k): (
            round(LAT0 + i * 1e-4, 6),
            round(LON0 + k * 1e-6, 6),
            30.0,
            (1000 + k) / 10,
        )
        for i in range(N_TERMINALS)
        for k in range(REPORTS)
    }
    decoded = {}
    serials: dict[str, list[int]] = {}
    for i, phone, serial, when, lat, lon, speed, km in sent:
        assert phone == phones[i]
        decoded[(phone.lstrip("0"), when)] = (round(lat, 6), round(lon, 6), speed, km)
        serials.setdefault(phone, []).append(serial)
    assert decoded == expected
    # registration and authentication took serials 1 and 2
    assert all(s == list(range(3, 3 + REPORTS)) for s in serials.values())

    with Store(tmp_path / "db.duckdb", read_only=True) as s:
        rows = s.query(
            "SELECT terminal_id, time, lat, lon, speed_kmh, mileage_km FROM locations"
        ).to_pylist()
    assert len(rows) == total
    stored = {
        (r["terminal_id"], round(r["time"].timestamp())): (
            round(r["lat"], 6),
            round(r["lon"], 6),
            round(r["speed_kmh"], 3),
            round(r["mileage_km"], 3),
        )
        for r in rows
    }
    assert stored == expected
