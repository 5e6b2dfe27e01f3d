"""The simulator's wire encoders: bytes against published vectors, and every
frame decoded back by our decoders and pynmea2."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pynmea2
import pytest

from autolien.sim.frames import gb32960_realtime, jt808_batch, jt808_locations, nmea_sentences
from autolien.telemetry import decode_gb32960, decode_jt808, decode_nmea

VEC = Path(__file__).parent / "data" / "protocols"


def _vector(name: str, vid: str) -> dict:
    for line in (VEC / name).read_text().splitlines():
        rec = json.loads(line)
        if rec["id"] == vid:
            return rec
    raise KeyError(vid)


def test_jt808_location_matches_the_jt808_server_vector() -> None:
    # yezhihao/jt808-server 0x0200 bean: our body is its basic block and item
    # 0x01; the length field differs because the bean carries more items.
    ref = _vector("jt808.jsonl", "yzh-0x0200-09")["hex"]
    t = np.array([dt.datetime(2020, 7, 7, 11, 23, 59, tzinfo=dt.UTC).timestamp()])  # 19:23:59 GMT+8
    ours = jt808_locations(
        "123456789012",
        t,
        np.array([116.307629]),
        np.array([40.058359]),
        np.array([312.0]),
        np.array([0.3]),
        np.array([99.0]),
        np.array([1.1]),
        serial_start=1,
        alarm=1024,
        status=2048,
    ).hex()
    assert ours[:6] == ref[:6]  # flag, message id
    assert ours[10:94] == ref[10:94]  # terminal, serial, basic block, item 0x01


def test_jt808_round_trip_with_escapes_and_batches() -> None:
    rng = np.random.default_rng(0)
    n = 500
    t = 1.79e9 + np.cumsum(rng.integers(1, 60, n)).astype(float)
    lat = rng.uniform(-45, 53, n).round(6)
    lon = rng.uniform(-120, 135, n).round(6)
    alt = rng.integers(0, 3000, n).astype(float)
    spd = rng.integers(0, 1500, n) / 10
    hdg = rng.integers(0, 360, n).astype(float)
    km = rng.integers(0, 10**7, n) / 10
    km[:3] = [0x7E7E7E / 10, 0x7D7D7D / 10, 0x7E7D / 10]  # bytes that must be escaped
    wire = jt808_locations("013800138000", t, lat, lon, alt, spd, hdg, km, serial_start=65530)
    assert b"\x7d\x02" in wire
    assert b"\x7d\x01" in wire
    res = decode_jt808(wire)
    assert res.rejects.num_rows == 0
    rows = res.table
    assert rows.num_rows == n
    np.testing.assert_allclose(rows.column("lat").to_numpy(), lat, atol=5e-7)
    np.testing.assert_allclose(rows.column("lon").to_numpy(), lon, atol=5e-7)
    np.testing.assert_allclose(rows.column("mileage_km").to_numpy(), km, atol=0.05)
    np.testing.assert_allclose(rows.column("speed_kmh").to_numpy(), spd, atol=0.05)
    np.testing.assert_array_equal(rows.column("time").cast("int64").to_numpy() / 1e6, t)
    assert rows.column("serial").to_pylist()[:8] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1]
    batch = decode_jt808(jt808_batch("013800138000", t, lat, lon, alt, spd, hdg, km, per_frame=28))
    with pytest.raises(ValueError, match="per_frame"):
        jt808_batch("013800138000", t, lat, lon, alt, spd, hdg, km, per_frame=29)
    assert batch.rejects.num_rows == 0
    assert batch.table.num_rows == n
    assert all(batch.table.column("reissue").to_pylist())
    np.testing.assert_array_equal(
        batch.table.column("mileage_km").to_numpy(), rows.column("mileage_km").to_numpy()
    )
    with pytest.raises(ValueError, match="12 digits"):
        jt808_locations("1380", t, lat, lon, alt, spd, hdg, km)


def test_gb32960_vehicle_unit_matches_the_emqx_vector_and_round_trips() -> None:
    rec = _vector("gb32960.jsonl", "emqx-case02-vehicle")
    row = decode_gb32960(bytes.fromhex(rec["hex"])).table.to_pylist()[0]
    one = np.array([1.0])
    ours = gb32960_realtime(
        row["vin"],
        np.array([row["time"].timestamp()]),
        speed_kmh=row["speed_kmh"] * one,
        odometer_km=row["odometer_km"] * one,
        pack_voltage_v=row["pack_voltage_v"] * one,
        pack_current_a=row["pack_current_a"] * one,
        soc_pct=row["soc_pct"] * one,
        lat=31.2 * one,
        lon=121.4 * one,
        max_cell_v=3.9 * one,
        min_cell_v=3.85 * one,
        max_temp_c=30 * one,
        min_temp_c=25 * one,
        vehicle_status=1,
        charging_status=1,
        gear_raw=0x05,
        insulation_kohm=6000,
        accel_pedal_pct=90,
    ).hex()
    # header up to the length, time, and the whole vehicle unit (0x01, 20 bytes)
    assert ours[:44] == rec["hex"][:44]
    assert ours[48 : 48 + 12 + 42] == rec["hex"][48 : 48 + 12 + 42]
    rng = np.random.default_rng(1)
    n = 300
    t = 1.79e9 + np.arange(n) * 10.0
    soc = rng.uniform(5, 100, n).round()
    cur = rng.uniform(-200, 300, n).round(1)
    maxv = rng.uniform(3.3, 4.2, n).round(3)
    wire = gb32960_realtime(
        "LSVAU2180N2183294",
        t,
        speed_kmh=rng.uniform(0, 120, n).round(1),
        odometer_km=np.linspace(1000, 1300, n).round(1),
        pack_voltage_v=np.full(n, 355.5),
        pack_current_a=cur,
        soc_pct=soc,
        lat=np.full(n, 31.2),
        lon=np.full(n, -121.4),
        max_cell_v=maxv,
        min_cell_v=maxv - 0.05,
        max_temp_c=np.full(n, 31.0),
        min_temp_c=np.full(n, -5.0),
    )
    res = decode_gb32960(wire)
    assert res.rejects.num_rows == 0
    tab = res.table
    assert tab.num_rows == n
    np.testing.assert_allclose(tab.column("soc_pct").to_numpy(), soc)
    np.testing.assert_allclose(tab.column("pack_current_a").to_numpy(), cur, atol=0.05)
    np.testing.assert_allclose(tab.column("max_cell_v").to_numpy(), maxv, atol=5e-4)
    np.testing.assert_allclose(tab.column("lon").to_numpy(), -121.4)
    assert tab.column("min_temp_c").to_pylist() == [-5.0] * n


def test_nmea_sentences_parse_with_pynmea2_and_our_decoder() -> None:
    n = 200
    rng = np.random.default_rng(2)
    t = 1.79e9 + np.arange(n) * 0.25
    lat = 31.2 + rng.normal(0, 0.01, n)
    lon = -121.4 + rng.normal(0, 0.01, n)
    q = rng.choice([1, 2, 4, 5], n)
    sig = rng.uniform(0.01, 3, n)
    text = nmea_sentences(
        t,
        lat,
        lon,
        20 + rng.normal(0, 1, n),
        q,
        17,
        0.9,
        rng.uniform(0, 100, n),
        rng.uniform(0, 360, n),
        sig,
    )
    lines = text.splitlines()
    assert len(lines) == 3 * n
    parsed = [pynmea2.parse(line, check=True) for line in lines]
    gga = [p for p in parsed if p.sentence_type == "GGA"]
    np.testing.assert_allclose([p.latitude for p in gga], lat, atol=1e-8)
    np.testing.assert_allclose([p.longitude for p in gga], lon, atol=1e-8)
    assert [p.gps_qual for p in gga] == list(q)
    fixes = decode_nmea(text.encode()).table
    assert fixes.num_rows == n
    np.testing.assert_allclose(fixes.column("sigma_n_m").to_numpy(), sig, atol=5e-4)
    np.testing.assert_allclose(fixes.column("time").cast("int64").to_numpy() / 1e6, t)
