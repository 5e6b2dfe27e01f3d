"""Loopback load test of `autolien serve` (a script, not in `make test`).

    make bench-gateway                      # the runs of docs/gateway.md
    python bench/bench_gateway.py --terminals 10000 --interval 1 --seconds 30
    python bench/bench_gateway.py --terminals 10000 --sweep 2000,5000,10000,20000

Starts the gateway as a subprocess (JT/T 808 on an ephemeral loopback port, a
loan book of the generated terminals, a fresh spool and store in a temporary
directory) and drives it with the C++ load generator bench/loadgen/loadgen.cpp
(one thread, epoll; compiled into build/loadgen on first use). Each of
``--terminals`` connections registers, authenticates, then sends a 0x0200
location every ``--interval`` seconds (phases spread evenly) for
``--seconds``. Reports the sustained acknowledged frames/s, the
acknowledgement latency p50/p99/p99.9 (send to the 0x8001 of that serial; the
spool fsync is inside it), the same p99 from each report's due time (which
counts any lag of the generator), the server's CPU per process (acceptor,
ingest) and peak RSS, the generator's own CPU, and the load average over the
timed phase. ``--sweep`` steps the offered rate (frames/s, by shortening the
interval) with a fresh server each step and names the saturation point.

Without a C++ compiler it falls back to the asyncio load generator below
(``--python`` forces it), and says so in its output: that one costs far more
CPU than the server and shares its cores, so its figures bound the client,
not the server.

pytest collects this file (bench_*.py) but finds no test in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_SRC = ROOT / "bench" / "loadgen" / "loadgen.cpp"
LOADGEN_BIN = ROOT / "build" / "loadgen"
PHONE_BASE = 13900000000  # terminal i is phone PHONE_BASE + i (12 BCD digits)


def build_loadgen() -> Path | None:
    """The compiled load generator (built when missing or older than its
    source); None when there is no C++ compiler."""
    if LOADGEN_BIN.exists() and LOADGEN_BIN.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return LOADGEN_BIN
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        return None
    LOADGEN_BIN.parent.mkdir(parents=True, exist_ok=True)
    tmp = LOADGEN_BIN.with_suffix(f".tmp{os.getpid()}")
    subprocess.run(
        [cxx, "-O2", "-std=c++20", "-Wall", "-Wextra", "-o", str(tmp), str(LOADGEN_SRC)],
        check=True,
    )
    os.replace(tmp, LOADGEN_BIN)  # atomic: a concurrent build never sees half a binary
    return LOADGEN_BIN


def write_loan_book(path: Path, terminals: int, phone_base: int = PHONE_BASE) -> Path:
    rows = ["vehicle_id,terminal_id"]
    rows += [f"car{i},{phone_base + i}" for i in range(terminals)]
    path.write_text("\n".join(rows) + "\n")
    return path


def start_server(
    d: Path, terminals: int, *extra: str, ingest_interval: float = 1.0
) -> tuple[subprocess.Popen[str], int]:
    """`autolien serve` on an ephemeral loopback port; returns (process, port)."""
    book = write_loan_book(d / "book.csv", terminals)
    cmd = [
        sys.executable, "-c", "import sys; from autolien.cli import main; sys.exit(main())",
        "serve", "--db", str(d / "db.duckdb"), "--spool", str(d / "spool"),
        "--jt808", "127.0.0.1:0", "--gb32960", "off", "--loan-book", str(book),
        "--ingest-interval", str(ingest_interval),
        "--max-per-peer", str(terminals + 10), *extra,
    ]  # fmt: skip
    with open(d / "server.log", "a") as err:
        # its own session, as a daemon: with the kernel's autogroup scheduling
        # each session shares the CPU as one, so the load generator's work is
        # not taken from the server's share (see _autogroup)
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
    assert proc.stdout is not None
    line = json.loads(proc.stdout.readline())
    return proc, int(line["jt808"])


def stop_server(proc: subprocess.Popen[str], d: Path) -> dict | None:
    """SIGTERM (the server stores what is spooled), then its `stopped` line."""
    proc.terminate()
    proc.wait(120)
    if proc.stdout is not None:
        proc.stdout.close()
    for line in reversed((d / "server.log").read_text().splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            ev = json.loads(line)
            if ev.get("event") == "stopped":
                return ev
    return None


# --- server resources ---------------------------------------------------------
def _one_proc(pid: int) -> tuple[float, int, float]:
    """CPU seconds (all threads), peak RSS, and the seconds its threads spent
    runnable but waiting for a CPU (schedstat): on a shared machine that is
    the time other work took from it."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) * 1024
    wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            wait += int((task / "schedstat").read_text().split()[1])
    return cpu, rss, wait / 1e9


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def _proc_stats(pid: int) -> dict[str, tuple[float, int, float]]:
    """CPU seconds (all threads) and peak RSS of the acceptor and of its ingest process."""
    out = {"acceptor": _one_proc(pid)}
    for c in _children(pid):
        with contextlib.suppress(OSError):
            out["ingest"] = _one_proc(c)
    return out


class _LoadSampler:
    """The 1-minute load average every second while the timed phase runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(1.0)

    def __enter__(self) -> Self:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def summary(self) -> dict[str, float]:
        s = self.samples or [os.getloadavg()[0]]
        return {"min": round(min(s), 2), "mean": round(sum(s) / len(s), 2), "max": round(max(s), 2)}


def _taskset(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


# --- one run with the C++ generator ---------------------------------------------
def run_cpp(
    loadgen: Path,
    terminals: int,
    interval: float,
    seconds: float,
    *,
    server_cpu: str | None = None,
    client_cpu: str | None = None,
    server_args: tuple[str, ...] = (),
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proc, port = start_server(d, terminals, *server_args)
        if server_cpu and shutil.which("taskset"):
            subprocess.run(["taskset", "-a", "-p", "-c", server_cpu, str(proc.pid)], check=False,
                           capture_output=True)  # fmt: skip
        cmd = [
            str(loadgen), "--port", str(port), "--terminals", str(terminals),
            "--interval", str(interval), "--seconds", str(seconds),
            "--phone-base", str(PHONE_BASE),
        ]  # fmt: skip
        if client_cpu:
            cmd += ["--cpu", client_cpu]
        gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert gen.stdout is not None
        try:
            first = json.loads(gen.stdout.readline())  # {"event": "reporting"}
            assert first.get("event") == "reporting", first
            cpu_s = _proc_stats(proc.pid)
            t_s = time.monotonic()
            with _LoadSampler() as load:
                out = json.loads(gen.stdout.readline())
                t_e = time.monotonic()
                cpu_e = _proc_stats(proc.pid)
            gen.wait(30)
        finally:
            if gen.poll() is None:
                gen.kill()
            stopped = stop_server(proc, d)
    span = t_e - t_s
    out.update(
        {
            # CPU seconds per second (1.0 = one core busy), per process, over
            # the reports and the wait for their last acknowledgements
            "server_cpu_share": {
                k: round((cpu_e[k][0] - cpu_s.get(k, (0.0, 0, 0.0))[0]) / span, 3) for k in cpu_e
            },
            "server_us_per_frame": round(
                1e6
                * sum(cpu_e[k][0] - cpu_s.get(k, (0.0, 0, 0.0))[0] for k in cpu_e)
                / max(1, out["acked"]),
                1,
            ),
            "server_peak_rss_mb": {k: round(v[1] / 2**20, 1) for k, v in cpu_e.items()},
            # seconds per second each server process was ready to run but
            # waited for a CPU that other work held
            "server_cpu_wait_share": {
                k: round((cpu_e[k][2] - cpu_s.get(k, (0.0, 0, 0.0))[2]) / span, 3) for k in cpu_e
            },
            "loadavg_1m": load.summary(),
            "server_stopped": stopped,
        }
    )
    return out


# --- the asyncio fallback (no compiler) -------------------------------------------
def _xor(data: bytes) -> int:
    # fold the bytes as one integer: the load generator must stay cheap
    v, n = int.from_bytes(data, "big"), len(data)
    while n > 1:
        h = n // 2
        v, n = (v >> (8 * h)) ^ (v & ((1 << (8 * h)) - 1)), n - h
    return v & 0xFF


def _bcd_time(sec: int) -> bytes:
    return bytes.fromhex(time.strftime("%y%m%d%H%M%S", time.gmtime(sec + 8 * 3600)))


def _frame(msg_id: int, phone: str, serial: int, body: bytes) -> bytes:
    payload = (
        struct.pack(">HH", msg_id, len(body))
        + bytes.fromhex(phone)
        + struct.pack(">H", serial)
        + body
    )
    payload += bytes([_xor(payload)])
    return b"\x7e" + payload.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def _location(i: int, k: int, t0: int) -> bytes:
    # the values loadgen.cpp sends (its header comment)
    body = struct.pack(
        ">IIIIHHH", 0, 3, 31_000_000 + 100 * i, 121_000_000 + k, 10, 300, 90
    ) + _bcd_time(t0 + k)
    return body + struct.pack(">BBI", 1, 4, 1000 + k)


def _unescape(raw: bytes) -> bytes:
    """A frame read up to its end flag: header, body and check code."""
    return raw[:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


async def _read_frame(r: asyncio.StreamReader) -> bytes:
    await r.readuntil(b"\x7e")
    return await r.readuntil(b"\x7e")


async def _terminal(
    i: int, port: int, args: argparse.Namespace, st: dict, lat: list[float], start: float, t0: int
) -> None:
    phone = f"{PHONE_BASE + i:012d}"
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
            t_send = time.perf_counter()
            w.write(_frame(0x0200, phone, serial, _location(i, k, t0)))
            raw = await asyncio.wait_for(_read_frame(r), 30)
            dt = time.perf_counter() - t_send
            if _unescape(raw)[-2] == 0:  # 0x8001 result, before the check code
                lat.append(dt)
                st["acked"] += 1
            serial, k = (serial + 1) & 0xFFFF, k + 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        st["dropped"] += 1
    finally:
        w.close()


async def _clients(
    args: argparse.Namespace, port: int, lo: int, hi: int, start_wall: float
) -> tuple[dict[str, int], list[float]]:
    """Terminals lo..hi-1 of one client process."""
    st = {"authenticated": 0, "acked": 0, "dropped": 0, "connect_failed": 0}
    lat: list[float] = []
    start = time.monotonic() + (start_wall - time.time())
    tasks = []
    for i in range(lo, hi):
        tasks.append(asyncio.create_task(_terminal(i, port, args, st, lat, start, int(start_wall))))
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


def run_python(args: argparse.Namespace, terminals: int, interval: float) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    args = argparse.Namespace(**{**vars(args), "terminals": terminals, "interval": interval})
    n = args.client_procs
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        proc, port = start_server(d, terminals)
        try:
            start_wall = time.time() + 2 + terminals / 2000 / n  # time to connect everyone
            cuts = [terminals * j // n for j in range(n + 1)]
            with ProcessPoolExecutor(n) as pool:
                futs = [
                    pool.submit(_client_proc, args, port, cuts[j], cuts[j + 1], start_wall)
                    for j in range(n)
                ]
                time.sleep(max(0.0, start_wall - time.time()))
                cpu_s = _proc_stats(proc.pid)
                t_s = time.monotonic()
                with _LoadSampler() as load:
                    results = [f.result() for f in futs]
                t_e = time.monotonic()
                cpu_e = _proc_stats(proc.pid)
        finally:
            stopped = stop_server(proc, d)
    st: dict[str, int] = {}
    lat: list[float] = []
    for one, ls in results:
        for k, v in one.items():
            st[k] = st.get(k, 0) + v
        lat += ls
    lat.sort()

    def q(p: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

    return {
        "generator": f"python asyncio x{n} processes (no C++ compiler, or --python)",
        "terminals": terminals,
        "interval_s": interval,
        **st,
        "offered_frames_per_s": round(terminals / interval, 1),
        "acked_frames_per_s": round(st["acked"] / (t_e - t_s), 1),
        "ack_p50_ms": q(0.50),
        "ack_p99_ms": q(0.99),
        "ack_p999_ms": q(0.999),
        "server_cpu_share": {
            k: round((cpu_e[k][0] - cpu_s.get(k, (0.0, 0, 0.0))[0]) / (t_e - t_s), 3) for k in cpu_e
        },
        "server_peak_rss_mb": {k: round(v[1] / 2**20, 1) for k, v in cpu_e.items()},
        "loadavg_1m": load.summary(),
        "server_stopped": stopped,
    }


# --- main -------------------------------------------------------------------------
def _one(args: argparse.Namespace, loadgen: Path | None, terminals: int, interval: float) -> dict:
    if loadgen is None:
        return run_python(args, terminals, interval)
    return run_cpp(
        loadgen,
        terminals,
        interval,
        args.seconds,
        server_cpu=args.server_cpu,
        client_cpu=args.client_cpu,
    )


def _brief(r: dict) -> str:
    keys = (
        "terminals", "interval_s", "offered_frames_per_s", "acked_frames_per_s", "ack_p50_ms",
        "ack_p99_ms", "ack_p999_ms", "ack_from_due_p99_ms", "server_cpu_share", "server_cpu_wait_share",
        "generator_cpu_share", "loadavg_1m", "acked", "unacked", "dropped",
    )  # fmt: skip
    return json.dumps({k: r[k] for k in keys if k in r})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--terminals", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=1, help="repeat each configuration")
    ap.add_argument(
        "--sweep",
        help="offered rates in frames/s, comma-separated: step the rate (interval = "
        "terminals / rate) and report the saturation point",
    )
    ap.add_argument("--server-cpu", help="taskset the server (acceptor and ingest) to these CPUs")
    ap.add_argument("--client-cpu", help="pin the load generator to these CPUs")
    ap.add_argument("--python", action="store_true", help="use the asyncio load generator")
    ap.add_argument(
        "--client-procs", type=int, default=3, help="asyncio generator processes (fallback)"
    )
    ap.add_argument("--out", help="append every run's JSON line to this file")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    loadgen = None if args.python else build_loadgen()
    if loadgen is None:
        why = "--python" if args.python else "no C++ compiler found"
        print(f"bench_gateway: using the asyncio load generator ({why})", file=sys.stderr)
    rates = (
        [float(x) for x in args.sweep.split(",")]
        if args.sweep
        else [args.terminals / args.interval]
    )
    results = []
    for rate in rates:
        for _ in range(args.runs):
            r = _one(args, loadgen, args.terminals, args.terminals / rate)
            r["uptime"] = subprocess.run(
                ["uptime"], check=False, capture_output=True, text=True
            ).stdout.strip()
            results.append(r)
            print(json.dumps(r), flush=True)
            print("#", _brief(r), file=sys.stderr, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    if args.sweep:
        # sustained: at least 99% of the offered frames acknowledged within the run
        ok = [r for r in results if r["acked_frames_per_s"] >= 0.99 * r["offered_frames_per_s"]]
        fast = [r for r in ok if (r["ack_p99_ms"] or 1e9) < 50]
        print(
            json.dumps(
                {
                    "saturation": {
                        "highest_sustained_frames_per_s": max(
                            (r["offered_frames_per_s"] for r in ok), default=None
                        ),
                        "highest_with_p99_under_50ms": max(
                            (r["offered_frames_per_s"] for r in fast), default=None
                        ),
                        "most_acked_frames_per_s": max(r["acked_frames_per_s"] for r in results),
                    }
                }
            )
        )


if __name__ == "__main__":
    main()
