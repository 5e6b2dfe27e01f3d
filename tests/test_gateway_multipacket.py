"""JT/T 808 multi-packet messages whose parts reach the gateway in different
decode batches, and on both sides of a kill -9, are stored whole; a message
that never completes lands in rejects with its raw bytes.

The expected rows are the file decoder's on the same frames in one input,
where it reassembles the parts itself (JT/T 808-2013 4.4.3: bit 13 of the
message properties, then package count and package index after the serial).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import time
from pathlib import Path

from autolien.telemetry import Store
from autolien.telemetry.ingest import ingest_files
from test_gateway import Client, bxor, escape, general, gmt8, location_body, register_and_auth
from test_gateway import write_book as _write_book
from test_gateway_crash import _start

PHONE = "013912345678"
T0 = 1_700_000_000.0


def jt_part(msg_id: int, serial: int, total: int, index: int, chunk: bytes) -> bytes:
    head = struct.pack(">HH", msg_id, len(chunk) | 0x2000) + bytes.fromhex(PHONE)
    payload = head + struct.pack(">HHH", serial, total, index) + chunk
    return escape(payload + bytes([bxor(payload)]))


def split_batch(n_items: int, parts: int, serial: int, t0: float) -> list[bytes]:
    """A 0x0704 blind-area batch of n_items locations, sent as ``parts`` packets."""
    items = [location_body(30 + k / 100, 120, gmt8(t0 + 60 * k), 100 + k) for k in range(n_items)]
    body = struct.pack(">HB", n_items, 1) + b"".join(struct.pack(">H", len(b)) + b for b in items)
    size = -(-len(body) // parts)
    chunks = [body[i * size : (i + 1) * size] for i in range(parts)]
    return [jt_part(0x0704, serial + i, parts, i + 1, c) for i, c in enumerate(chunks)]


def pending(spool: Path) -> list[bytes]:
    """The parts the ingest has read and holds (from its checkpoint)."""
    try:
        got = json.loads((spool / "stored.json").read_text())["pending"]
    except FileNotFoundError:
        return []
    return sorted(bytes.fromhex(p["frame"]) for p in got)


async def wait_pending(spool: Path, frames: list[bytes]) -> None:
    for _ in range(500):
        if pending(spool) == sorted(frames):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the ingest holds {len(pending(spool))} parts, not {len(frames)}")


def test_parts_split_across_batches_and_a_kill_9_are_stored_whole(tmp_path: Path) -> None:
    book = _write_book(tmp_path / "book.csv", [PHONE], [])
    spool = tmp_path / "spool"
    whole = split_batch(6, 3, 40, T0)  # parts 1 and 2 before the kill, 3 after
    lost = split_batch(2, 2, 60, T0 + 3600)  # part 2 never comes
    sent: list[bytes] = []

    async def send(c: Client, frame: bytes) -> None:
        _, _, body = await c.jt_call(frame)
        p = frame[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        assert general(body) == (struct.unpack_from(">H", p, 10)[0], 0x0704, 0)
        sent.append(frame)

    async def main() -> None:
        proc, port = await asyncio.to_thread(_start, tmp_path, book, "--subpackage-timeout", "5")
        c = await Client.open(port)
        await register_and_auth(c, PHONE, serial=1)
        await send(c, whole[0])
        await wait_pending(spool, whole[:1])  # part 1 read in one batch...
        await send(c, whole[1])
        await wait_pending(spool, whole[:2])  # ...part 2 in another
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        c.close()
        assert proc.stdout is not None
        proc.stdout.close()
        proc, port = await asyncio.to_thread(_start, tmp_path, book, "--subpackage-timeout", "5")
        c = await Client.open(port)
        await register_and_auth(c, PHONE, serial=10)
        await send(c, lost[0])
        await send(c, whole[2])
        await wait_pending(spool, lost[:1])  # the batch is whole; only lost[0] waits
        await asyncio.sleep(5.5)  # past the subpackage timeout: the next batch expires it
        late = split_batch(1, 2, 80, T0 + 7200)[:1]
        await send(c, late[0])
        await wait_pending(spool, late)
        c.close()
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        assert proc.stdout is not None
        proc.stdout.close()

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 120

    # the peer: the file decoder reassembles the same batch within one input
    (tmp_path / "whole.jt808").write_bytes(b"".join(whole))
    with Store(tmp_path / "file.duckdb") as fs:
        ingest_files([tmp_path / "whole.jt808"], fs)
    cols = "terminal_id, time, lat, lon, mileage_km, msg_id, reissue"
    q = f"SELECT {cols} FROM locations ORDER BY time"
    with (
        Store(tmp_path / "db.duckdb", read_only=True) as a,
        Store(tmp_path / "file.duckdb", read_only=True) as b,
    ):
        live, filed = a.query(q).to_pylist(), b.query(q).to_pylist()
        rejects = a.query("SELECT reason, raw FROM rejects").to_pylist()
    assert len(filed) == 6
    assert [r["mileage_km"] for r in filed] == [100.0 + k for k in range(6)]
    assert live == filed
    # the message that never completed: rejected with its raw bytes, nothing else
    assert [(r["reason"], r["raw"]) for r in rejects] == [("subpackage_timeout", lost[0])]
