"""Live detection: a simulated portfolio streamed through the gateway raises
the alerts that the same data ingested from files raises."""

from __future__ import annotations

import asyncio
import calendar
import json
import re
import struct
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from autolien.gateway import Gateway
from autolien.gateway.ingest import saved_monitor
from autolien.monitor.cli import monitor_store
from autolien.sim.portfolio import write_portfolio
from autolien.telemetry import Store
from autolien.telemetry.ingest import ingest_files
from test_gateway import Client, register_and_auth, run_gateway

SLICE = 600  # seconds: slices inside one hour, sent in time order across vehicles


def _bcd_epoch(b: bytes) -> int:
    y, mo, d, h, mi, s = (int(f"{x:02x}") for x in b)
    return calendar.timegm((2000 + y, mo, d, h, mi, s)) - 8 * 3600  # GMT+8


def _gb_epoch(b: bytes) -> int:
    return calendar.timegm((2000 + b[0], b[1], b[2], b[3], b[4], b[5])) - 8 * 3600


def _slices(root: Path) -> tuple[dict[int, dict[str, list[bytes]]], dict[str, str]]:
    """{slice: {client key: [frame, ...]}}, and the VIN of each GB client."""
    out: dict[int, dict[str, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    vins: dict[str, str] = {}
    for f in sorted((root / "telemetry").glob("*.jt808")):
        for fr in re.findall(rb"\x7e[^\x7e]+\x7e", f.read_bytes()):
            inner = fr[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
            assert struct.unpack_from(">H", inner)[0] in (0x0200, 0x0704)
            phone = inner[4:10].hex()
            t = _bcd_epoch(inner[12 + 22 : 12 + 28]) if inner[0:2] == b"\x02\x00" else None
            assert t is not None
            out[t // SLICE]["jt:" + phone].append(fr)
    for f in sorted((root / "telemetry").glob("*.gb32960")):
        data, pos = f.read_bytes(), 0
        while pos < len(data):
            n = 24 + struct.unpack_from(">H", data, pos + 22)[0] + 1
            fr = data[pos : pos + n]
            vin = fr[4:21].decode()
            vins["gb:" + vin] = vin
            out[_gb_epoch(fr[24:30]) // SLICE]["gb:" + vin].append(fr)
            pos += n
    return out, vins


def test_streamed_portfolio_alerts_equal_file_ingest(tmp_path: Path) -> None:
    root = tmp_path / "pf"
    write_portfolio(root, 4, 8, seed=1, anomaly_share=1.0, rtk_every=1000)
    slices, vins = _slices(root)
    book = root / "loan_book.parquet"

    async def scenario(gw: Gateway) -> None:
        keys = sorted({k for s in slices.values() for k in s})
        clients: dict[str, Client] = {}
        for k in keys:
            if k.startswith("jt:"):
                c = await Client.open(gw.ports["jt808"])
                await register_and_auth(c, k[3:])
            else:
                c = await Client.open(gw.ports["gb32960"])
                login = bytes(6) + b"\x00\x01" + b"8" * 20 + b"\x00\x00"
                body = (
                    bytes([1, 0xFE]) + vins[k].encode() + struct.pack(">BH", 1, len(login)) + login
                )
                x = 0
                for b in body:
                    x ^= b
                assert (await c.gb_call(b"##" + body + bytes([x])))[3] == 0x01
            clients[k] = c

        async def send(k: str, frames: list[bytes]) -> None:
            c = clients[k]
            c.w.write(b"".join(frames))
            for _ in frames:  # every frame acknowledged as accepted
                if k.startswith("jt:"):
                    _, _, body = await c.jt_read()
                    assert body[4] == 0
                else:
                    head = await c.r.readexactly(24)
                    await c.r.readexactly(struct.unpack(">H", head[22:24])[0] + 1)
                    assert head[3] == 0x01

        for s in sorted(slices):
            await asyncio.gather(*(send(k, fr) for k, fr in slices[s].items()))
        for c in clients.values():
            c.close()

    alerts_file = tmp_path / "alerts.jsonl"
    run_gateway(tmp_path, scenario, loan_book=str(book), alerts=str(alerts_file), monitor_skew=None)
    # the ingest process leaves its monitor state at its clean exit
    monitor = saved_monitor(str(tmp_path / "spool"))
    assert monitor is not None
    live = monitor.alerts()

    with Store(tmp_path / "file.duckdb") as fs:
        ingest_files(sorted((root / "telemetry").glob("*")), fs)
        fs.con.register("_book", pq.read_table(book))
        fs.con.execute("CREATE TABLE loan_book AS SELECT * FROM _book").fetchall()
        fs.con.unregister("_book")
    monitor_store(str(tmp_path / "file.duckdb"))
    with Store(tmp_path / "file.duckdb", read_only=True) as fs:
        filed = fs.query("SELECT * FROM alerts")

    def key(t: object) -> list[tuple[object, ...]]:
        rows = t.to_pylist()  # type: ignore[attr-defined]
        return sorted((r["vehicle_id"], r["kind"], r["level"], r["opened"]) for r in rows)

    assert len(key(filed)) >= 2  # the injected anomalies raise alerts
    assert key(live) == key(filed)
    lines = [json.loads(x) for x in alerts_file.read_text().splitlines()]
    opened = {(x["vehicle_id"], x["kind"]) for x in lines if x["event"] == "opened"}
    assert opened == {(v, k) for v, k, _, _ in key(filed)}
    assert all(isinstance(x["evidence"], dict) and x["evidence"] for x in lines)


def test_monitor_state_resumes_only_on_its_own_store(tmp_path: Path) -> None:
    """The ingest process saves the monitor at its clean exit beside the
    spool, stamped with the store's id and the checkpoint: the next start
    resumes it; a deleted (new) database or a store that moved on refuses it."""
    from test_gateway import TERMINALS, events, gmt8, jt, location_body

    async def stream(gw: Gateway) -> None:
        c = await Client.open(gw.ports["jt808"])
        await register_and_auth(c, TERMINALS[9])
        for k in range(3):
            frame = jt(0x0200, TERMINALS[9], 10 + k, location_body(30, 120, gmt8(1.7e9 + k), k))
            _, _, body = await c.jt_call(frame)
            assert body[4] == 0
        c.close()

    async def idle(gw: Gateway) -> None:
        pass

    outcomes = []
    for scenario, drop_db in ((stream, False), (idle, False), (idle, True)):
        if drop_db:
            (tmp_path / "db.duckdb").unlink()
        log: list[str] = []
        run_gateway(tmp_path, scenario, log)
        outcomes.append([e["outcome"] for e in events(log) if e["event"] == "monitor_state"])
    assert outcomes == [[], ["resumed"], ["other_store"]]
    assert saved_monitor(str(tmp_path / "spool")) is not None
