"""Telemetry decoders against their peers on the same data in one run, at three sizes.

* NMEA GGA+RMC to an Arrow table: ours against pynmea2 (parse each line, then
  build the same columns);
* JT/T 808 0x0200 with additional items, frames/s: ours against a plain
  struct-based Python decoder (the best published figure we know, about 1M/s
  for a C# library, cannot run here);
* OBD-II ELM327 lines to values: ours against python-OBD's protocol parser and
  decoders (GPL-2.0, bench extra only).
"""

from __future__ import annotations

import struct
from functools import cache, reduce
from typing import Any

import pyarrow as pa
import pytest

from autolien.telemetry import decode_jt808, decode_nmea, decode_obd
from conftest import require_module, sizes, tag

HERE = __import__("pathlib").Path(__file__).parent
NMEA_LOG = (HERE.parent / "tests" / "data" / "gnss" / "gpsd" / "nmea-rtk.log").read_bytes()
NMEA_LINES = [
    ln.strip() for ln in NMEA_LOG.split(b"\n") if ln.startswith(b"$")
]  # 122 GGA + 122 RMC
JT808_FRAME = bytes.fromhex(
    "7e020000800123456789017fff000004000000080006eeb6ad02633df701380003006320070719235901040000000b"
    "02020016030200210402002c051e373737000000000000000000000000000000000000000000000000000000"
    "0602000211054200000042120642000000424d130758000000580058250400000063"
    "2a02000a2b04000000143001"
)
OBD_LINES = [b"7E8 03 41 0D 32", b"7E8 04 41 0C 1A F8", b"7E8 03 41 05 7B", b"7E8 03 41 2F 80"]

NMEA_SIZES = sizes((1_000, 10_000, 100_000), (50, 500, 5_000))
JT_SIZES = sizes((1_000, 10_000, 100_000), (50, 500, 5_000))
OBD_SIZES = sizes((1_000, 10_000, 100_000), (50, 500, 5_000))


def _fix_frame(frame: bytes) -> bytes:
    """Recomputes the check code (the sample above is built by hand)."""
    body = frame[1:-2]
    x = reduce(lambda a, b: a ^ b, body, 0)
    header = struct.unpack(">HH", body[:4])
    body = body[:2] + struct.pack(">H", (header[1] & ~0x3FF) | (len(body) - 12)) + body[4:]
    x = reduce(lambda a, b: a ^ b, body, 0)
    raw = body + bytes([x])
    return b"\x7e" + raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


@cache
def nmea_data(n: int) -> bytes:
    reps = -(-2 * n // len(NMEA_LINES))
    return b"\r\n".join((NMEA_LINES * reps)[: 2 * n]) + b"\r\n"


@cache
def jt_data(n: int) -> bytes:
    return _fix_frame(JT808_FRAME) * n


@cache
def obd_data(n: int) -> bytes:
    return b"\r".join((OBD_LINES * (n // len(OBD_LINES) + 1))[:n]) + b"\r"


# --- NMEA -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", NMEA_SIZES)
@pytest.mark.benchmark(group="telemetry-nmea")
def test_nmea_ours(benchmark: Any, n: int) -> None:
    data = nmea_data(n)
    tag(benchmark, "ours", "decode_nmea (GGA+RMC -> Arrow)", n, size=n)
    table = benchmark.pedantic(
        lambda: decode_nmea(data).table, rounds=5, iterations=1, warmup_rounds=1
    )
    assert table.num_rows == n


def pynmea2_table(data: bytes) -> pa.Table:
    import pynmea2

    cols: dict[str, list[Any]] = {
        "time": [],
        "lat": [],
        "lon": [],
        "alt": [],
        "quality": [],
        "speed_kmh": [],
    }
    for line in data.decode().splitlines():
        msg = pynmea2.parse(line, check=True)
        if msg.sentence_type == "GGA":
            cols["time"].append(msg.timestamp)
            cols["lat"].append(msg.latitude)
            cols["lon"].append(msg.longitude)
            cols["alt"].append(float(msg.altitude))
            cols["quality"].append(int(msg.gps_qual))
        elif msg.sentence_type == "RMC":
            cols["speed_kmh"].append(float(msg.spd_over_grnd) * 1.852)
    return pa.table({k: pa.array(v) for k, v in cols.items()})


@pytest.mark.parametrize("n", NMEA_SIZES)
@pytest.mark.benchmark(group="telemetry-nmea")
def test_nmea_peer_pynmea2(benchmark: Any, n: int) -> None:
    require_module("pynmea2")
    data = nmea_data(n)
    want = decode_nmea(data).table
    tag(benchmark, "peer", "pynmea2 parse + Arrow", n, size=n)
    table = benchmark.pedantic(pynmea2_table, args=(data,), rounds=1, iterations=1)
    assert table.num_rows == n
    assert table.column("lat").to_pylist()[:50] == pytest.approx(
        want.column("lat").to_pylist()[:50], abs=1e-9
    )
    assert table.column("quality").to_pylist() == want.column("quality").to_pylist()


# --- JT/T 808 -------------------------------------------------------------------------------


def python_jt808(data: bytes) -> list[tuple[Any, ...]]:
    """What one writes in plain Python: split, unescape, XOR, unpack, walk items."""
    out = []
    for chunk in data.split(b"\x7e"):
        if not chunk:
            continue
        raw = chunk.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        if reduce(lambda a, b: a ^ b, raw[:-1], 0) != raw[-1]:
            continue
        msg_id, props = struct.unpack_from(">HH", raw, 0)
        body = raw[12 + (props & 0x3FF) * 0 : -1][0:]
        body = raw[12:-1]
        alarm, status, lat, lon, alt, speed, heading = struct.unpack_from(">IIIIHHH", body, 0)
        items = {}
        p = 28
        while p + 2 <= len(body):
            tid, ln = body[p], body[p + 1]
            items[tid] = body[p + 2 : p + 2 + ln]
            p += 2 + ln
        mileage = struct.unpack(">I", items[1])[0] / 10 if 1 in items else None
        out.append((msg_id, alarm, status, lat / 1e6, lon / 1e6, alt, speed / 10, heading, mileage))
    return out


@pytest.mark.parametrize("n", JT_SIZES)
@pytest.mark.benchmark(group="telemetry-jt808")
def test_jt808_ours(benchmark: Any, n: int) -> None:
    data = jt_data(n)
    tag(benchmark, "ours", "decode_jt808 (0x0200 + items -> Arrow)", n, size=n)
    res = benchmark.pedantic(lambda: decode_jt808(data), rounds=5, iterations=1, warmup_rounds=1)
    assert res.table.num_rows == n
    assert res.rejects.num_rows == 0


@pytest.mark.parametrize("n", JT_SIZES)
@pytest.mark.benchmark(group="telemetry-jt808")
def test_jt808_peer_python(benchmark: Any, n: int) -> None:
    data = jt_data(n)
    want = decode_jt808(data).table.slice(0, 1).to_pylist()[0]
    tag(benchmark, "peer", "plain Python struct decoder", n, size=n)
    rows = benchmark.pedantic(python_jt808, args=(data,), rounds=1, iterations=1)
    assert len(rows) == n
    assert rows[0][3] == pytest.approx(want["lat"])
    assert rows[0][8] == pytest.approx(want["mileage_km"])


# --- OBD-II ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", OBD_SIZES)
@pytest.mark.benchmark(group="telemetry-obd")
def test_obd_ours(benchmark: Any, n: int) -> None:
    data = obd_data(n)
    tag(benchmark, "ours", "decode_obd (ELM327 lines -> Arrow)", n, size=n)
    res = benchmark.pedantic(lambda: decode_obd(data), rounds=5, iterations=1, warmup_rounds=1)
    assert res.table.num_rows == n


@pytest.mark.parametrize("n", OBD_SIZES)
@pytest.mark.benchmark(group="telemetry-obd")
def test_obd_peer_python_obd(benchmark: Any, n: int) -> None:
    obd = require_module("obd")
    from obd.protocols import ISO_15765_4_11bit_500k

    protocol = ISO_15765_4_11bit_500k([])
    lines = obd_data(n).decode().split("\r")[:-1]
    want = decode_obd(obd_data(n)).table.column("value").to_pylist()

    def run() -> list[float]:
        out = []
        for line in lines:
            msgs = protocol([line])
            pid = msgs[0].data[1]
            out.append(obd.commands[1][pid].decode(msgs).magnitude)
        return out

    tag(benchmark, "peer", "python-OBD protocol + decoders", n, size=n)
    values = benchmark.pedantic(run, rounds=1, iterations=1)
    assert values == pytest.approx(want)
