"""Crash safety: kill -9 the gateway while 50 terminals stream, restart it,
and check that every frame a terminal saw acknowledged is stored once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from autolien.telemetry import Store
from test_gateway import Client, general, gmt8, jt, location_body, register_and_auth, write_book

N_TERMINALS = 50
FRAMES_EACH = 30
T0 = 1_700_000_000.0


def _start(tmp: Path, book: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable, "-c", "import sys; from autolien.cli import main; sys.exit(main())",
        "serve", "--db", str(tmp / "db.duckdb"), "--spool", str(tmp / "spool"),
        "--jt808", "127.0.0.1:0", "--gb32960", "off", "--loan-book", str(book),
        "--ingest-interval", "0.1", *extra,
    ]  # fmt: skip
    with open(tmp / "server.log", "a") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    assert line["event"] == "listening"
    return proc, int(line["jt808"])


def test_kill_9_mid_stream_loses_no_acknowledged_frame(tmp_path: Path) -> None:
    terminals = [f"0139{i:08d}" for i in range(N_TERMINALS)]
    book = write_book(tmp_path / "book.csv", terminals, [])
    state = {"port": 0, "acked": 0}
    acked: set[tuple[str, float]] = set()

    async def terminal(phone: str) -> int:
        k, reconnects, serial = 0, 0, 1
        while k < FRAMES_EACH:
            c = None
            try:
                c = await Client.open(state["port"])
                await register_and_auth(c, phone, serial=serial)
                serial += 2
                while k < FRAMES_EACH:
                    when = T0 + 10 * k
                    frame = jt(
                        0x0200, phone, serial, location_body(30 + k / 1000, 120, gmt8(when), k)
                    )
                    _, _, body = await c.jt_call(frame)
                    if general(body) == (serial, 0x0200, 0):
                        acked.add((phone.lstrip("0"), when))  # stored without leading zeros
                        state["acked"] += 1
                        k += 1
                    serial += 1
            except (OSError, asyncio.IncompleteReadError, TimeoutError, AssertionError):
                reconnects += 1  # the server went away: reconnect and go on
                await asyncio.sleep(0.05)
            finally:
                if c is not None:
                    c.close()
        return reconnects

    async def main() -> list[int]:
        proc, state["port"] = await asyncio.to_thread(_start, tmp_path, book)
        clients = asyncio.gather(*(terminal(p) for p in terminals))
        while state["acked"] < N_TERMINALS * FRAMES_EACH // 3:
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream, without warning
        proc.wait()
        killed_at = state["acked"]
        assert proc.stdout is not None
        proc.stdout.close()
        proc, state["port"] = await asyncio.to_thread(_start, tmp_path, book)
        reconnects = await asyncio.wait_for(clients, 120)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)
        assert proc.stdout is not None
        proc.stdout.close()
        assert 0 < killed_at < N_TERMINALS * FRAMES_EACH  # the kill came mid-stream
        return reconnects

    reconnects = asyncio.run(main())
    assert sum(reconnects) >= N_TERMINALS  # every terminal lived through the crash
    assert len(acked) == N_TERMINALS * FRAMES_EACH
    with Store(tmp_path / "db.duckdb", read_only=True) as s:
        rows = s.query("SELECT terminal_id, time FROM locations").to_pylist()
    stored = [(r["terminal_id"], r["time"].timestamp()) for r in rows]
    assert len(stored) == len(set(stored))  # none stored twice
    assert acked <= set(stored)  # none acknowledged and lost
    log = (tmp_path / "server.log").read_text()
    assert '"spool_replayed"' in log or '"event": "stopped"' in log
