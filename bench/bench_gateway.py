"""Loopback load generator for `autolien serve` (a script, not in `make test`).

    python bench/bench_gateway.py --terminals 10000 --interval 10 --seconds 60

Starts the gateway as a subprocess (JT/T 808 on an ephemeral loopback port,
a fresh spool and store in a temporary directory), opens ``--terminals``
connections that register and authenticate, then has each send a 0x0200
location every ``--interval`` seconds (phases spread evenly) for
``--seconds``. Reports the sustained acknowledged frames/s, the
acknowledgement latency p50/p99 (send to 0x8001 received; the spool fsync
is inside it), the server's CPU share and peak RSS, and how many frames were
refused or missed. The load generator runs in ``--client-procs`` processes
(2; uvloop when installed) and shares the machine's cores with the server,
so the figures are a lower bound for the server alone; the server's CPU is
given per process (acceptor, ingest), and the load average beside it.

pytest collects this file (bench_*.py) but finds no test in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _xor(data: bytes) -> int:
    # fold the bytes as one integer: the load generator must stay cheap
    v, n = int.from_bytes(data, "big"), len(data)
    while n > 1:
        h = n // 2
        v, n = (v >> (8 * h)) ^ (v & ((1 << (8 * h)) - 1)), n - h
    return v & 0xFF


_WHEN: dict[int, bytes] = {}


def _now_bcd() -> bytes:
    sec = int(time.time())
    if sec not in _WHEN:
        _WHEN.clear()
        _WHEN[sec] = bytes.fromhex(time.strftime("%y%m%d%H%M%S", time.gmtime(sec + 8 * 3600)))
    return _WHEN[sec]


def _frame(msg_id: int, phone: str, serial: int, body: bytes) -> bytes:
    payload = (
        struct.pack(">HH", msg_id, len(body))
        + bytes.fromhex(phone)
        + struct.pack(">H", serial)
        + body
    )
    payload += bytes([_xor(payload)])
    return b"\x7e" + payload.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def _location(k: int) -> bytes:
    body = struct.pack(">IIIIHHH", 0, 3, 31_000_000 + k, 121_000_000, 10, 300, 90) + _now_bcd()
    return body + struct.pack(">BBI", 1, 4, 1000 + k)


def _unescape(raw: bytes) -> bytes:
    """A frame read up to its end flag: header, body and check code."""
    return raw[:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


async def _read_frame(r: asyncio.StreamReader) -> bytes:
    await r.readuntil(b"\x7e")
    return await r.readuntil(b"\x7e")


async def _terminal(
    i: int, port: int, args: argparse.Namespace, st: dict, lat: list[float], start: float
) -> None:
    phone = f"{13900000000 + i:012d}"
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        st["connect_failed"] += 1
        return
    try:
        w.write(_frame(0x0100, phone, 1, b"\x00" * 37))
        raw = await _read_frame(r)
        body = _unescape(raw)[12:-1]
        code = body[3:]
        w.write(_frame(0x0102, phone, 2, code))
        await _read_frame(r)
        st["authenticated"] += 1
        phase = start + (i / args.terminals) * args.interval
        serial, k = 3, 0
        while True:
            due = phase + k * args.interval
            if due > start + args.seconds:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            t0 = time.perf_counter()
            w.write(_frame(0x0200, phone, serial, _location(k)))
            raw = await asyncio.wait_for(_read_frame(r), 30)
            dt = time.perf_counter() - t0
            if _unescape(raw)[-2] == 0:  # 0x8001 result, before the check code
                lat.append(dt)
                st["acked"] += 1
            serial, k = (serial + 1) & 0xFFFF, k + 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        st["dropped"] += 1
    finally:
        w.close()


def _one_proc(pid: int) -> tuple[float, int]:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    return cpu, rss


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _proc_stats(pid: int) -> dict[str, tuple[float, int]]:
    """CPU seconds and peak RSS of the acceptor and of its ingest process."""
    out = {"acceptor": _one_proc(pid)}
    for c in _children(pid):
        with contextlib.suppress(OSError):
            out["ingest"] = _one_proc(c)
    return out


async def _clients(
    args: argparse.Namespace, port: int, lo: int, hi: int, start_wall: float
) -> tuple[dict[str, int], list[float]]:
    """Terminals lo..hi-1 of one client process."""
    st = {"authenticated": 0, "acked": 0, "dropped": 0, "connect_failed": 0}
    lat: list[float] = []
    start = time.monotonic() + (start_wall - time.time())
    tasks = []
    for i in range(lo, hi):
        tasks.append(asyncio.create_task(_terminal(i, port, args, st, lat, start)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    await asyncio.gather(*tasks)
    return st, lat


def _client_proc(
    args: argparse.Namespace, port: int, lo: int, hi: int, start_wall: float
) -> tuple[dict[str, int], list[float]]:
    try:
        import uvloop  # the load generator is Python too: give it the fast loop

        return uvloop.run(_clients(args, port, lo, hi, start_wall))
    except ImportError:
        return asyncio.run(_clients(args, port, lo, hi, start_wall))


def _run(args: argparse.Namespace, port: int, pid: int) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    n = args.client_procs
    start_wall = time.time() + 2 + args.terminals / 2000 / n  # time to connect everyone
    cpu0 = _proc_stats(pid)
    wall0 = time.monotonic()
    cuts = [args.terminals * j // n for j in range(n + 1)]
    with ProcessPoolExecutor(n) as pool:
        futs = [
            pool.submit(_client_proc, args, port, cuts[j], cuts[j + 1], start_wall)
            for j in range(n)
        ]
        time.sleep(max(0.0, start_wall - time.time()))
        cpu_s = _proc_stats(pid)
        load_s = os.getloadavg()
        t_s = time.monotonic()
        results = [f.result() for f in futs]
    t_e = time.monotonic()
    cpu_e = _proc_stats(pid)
    load_e = os.getloadavg()
    st: dict[str, int] = {}
    lat: list[float] = []
    for one, ls in results:
        for k, v in one.items():
            st[k] = st.get(k, 0) + v
        lat += ls
    lat.sort()
    q = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 2) if lat else None
    return {
        "terminals": args.terminals,
        "interval_s": args.interval,
        "seconds": args.seconds,
        **st,
        "offered_frames_per_s": round(args.terminals / args.interval, 1),
        "acked_frames_per_s": round(st["acked"] / (t_e - t_s), 1),
        "ack_p50_ms": q(0.50),
        "ack_p99_ms": q(0.99),
        "ack_max_ms": round(1000 * lat[-1], 2) if lat else None,
        # CPU seconds per second (1.0 = one core busy), per process
        "server_cpu_share": {
            k: round((cpu_e[k][0] - cpu_s.get(k, (0.0, 0))[0]) / (t_e - t_s), 3) for k in cpu_e
        },
        "server_cpu_connect_s": round(cpu_s["acceptor"][0] - cpu0["acceptor"][0], 2),
        "server_peak_rss_mb": {k: round(v[1] / 2**20, 1) for k, v in cpu_e.items()},
        "connect_phase_s": round(t_s - wall0, 1),
        "client_procs": n,
        # the machine is shared: the 1-minute load average at start and end
        "loadavg_1m": [round(load_s[0], 2), round(load_e[0], 2)],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--terminals", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument(
        "--client-procs", type=int, default=2, help="load generator processes (uvloop each)"
    )
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the child inherits it
    with tempfile.TemporaryDirectory() as d:
        cmd = [
            sys.executable, "-c", "import sys; from autolien.cli import main; sys.exit(main())",
            "serve", "--db", str(Path(d) / "db.duckdb"), "--spool", str(Path(d) / "spool"),
            "--jt808", "127.0.0.1:0", "--gb32960", "off", "--ingest-interval", "1",
            "--max-per-peer", str(args.terminals + 10),
        ]  # fmt: skip
        with open(Path(d) / "server.log", "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        assert proc.stdout is not None
        port = int(json.loads(proc.stdout.readline())["jt808"])
        try:
            out = _run(args, port, proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
            proc.stdout.close()
        tail = (Path(d) / "server.log").read_text().splitlines()[-1:]
        out["server_stopped"] = json.loads(tail[0]) if tail else None
        out["uptime"] = subprocess.run(
            ["uptime"], check=False, capture_output=True, text=True
        ).stdout.strip()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
