"""The live T-Box gateway: JT/T 808 and GB/T 32960 over TCP.

Two processes. The acceptor (this module, one asyncio loop, uvloop when
installed) frames each connection (:mod:`.protocol`), checks the check code
and the session's authentication, appends data frames to the write-ahead
spool (:mod:`.spool`) and acknowledges them once the spool's group commit
has fsynced them; nothing else is on the acknowledgement path. The ingest
process (:mod:`.ingest`, started by the acceptor) tails the spool, decodes it
with the C++ decoders into the store, feeds the monitor and writes the
alerts it opens or escalates as JSON lines; a slow batch there never holds
an acknowledgement.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import gc
import hashlib
import hmac
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Any, cast

from .config import GatewayConfig, LoanBook, Log, norm_terminal
from .protocol import (
    Frame,
    FramingError,
    Gb32960Framer,
    Jt808Framer,
    Jt808Header,
    bcd_time_gmt8,
    gb32960_frame,
    jt808_frame,
    parse_jt808_header,
)
from .spool import Spool, encode_record

__all__ = ["Gateway", "GatewayConfig", "LoanBook", "auth_code", "serve"]

# JT/T 808 message ids and results
REGISTER, REGISTER_REPLY, AUTH, HEARTBEAT, DEREGISTER = 0x0100, 0x8100, 0x0102, 0x0002, 0x0003
LOCATION, BATCH, TERMINAL_REPLY, PLATFORM_REPLY = 0x0200, 0x0704, 0x0001, 0x8001
OK, FAILED, MSG_ERROR, UNSUPPORTED = 0, 1, 2, 3
REG_NO_TERMINAL = 4  # 0x8100 result: no such terminal in the database
# GB/T 32960 commands and response flags
LOGIN, REALTIME, REISSUE, LOGOUT, HEART, CALIBRATE = 0x01, 0x02, 0x03, 0x04, 0x07, 0x08
SUCCESS, ERROR, COMMAND = 0x01, 0x02, 0xFE
_SPOOLED_JT808 = frozenset((LOCATION, BATCH))
# Frames of one connection waiting for the spool at once: past it the
# connection's further frames wait unread, so a flooding terminal holds a
# bounded share of each group commit and the others' frames join it.
MAX_IN_FLIGHT = 64


def auth_code(secret: bytes, terminal_id: str) -> str:
    """The authentication code of a terminal: stable across restarts and
    across instances that share the spool's ``secret``."""
    return hmac.new(secret, norm_terminal(terminal_id).encode(), hashlib.sha256).hexdigest()[:16]


_Queued = tuple["_Session", bytes, Callable[[], bytes] | None]


class _Committer:
    """Group commit on the loop, without a future per frame: records and the
    answers that wait on them queue while the loop reads, and once per loop
    iteration, after the reads it found ready, one write+fsync covers them
    all and their answers go out (as Redis's appendfsync always does before
    it replies). The fsync blocks the loop, briefly: frames that arrive
    meanwhile wait in the socket buffers and join the next commit. A thread
    would let the loop read during the fsync, but each commit would then
    cross threads twice, and on a busy machine each crossing waits for the
    scheduler: measured back to back (bench/bench_gateway.py), the thread
    cost more acceptor CPU (0.24 against 0.17 of a core at 1,000 frames/s,
    0.51 against 0.38 at 10,000) and more latency (p99 35 against 21 ms at
    10,000) than the 0.2-1 ms fsync it overlapped. Answers are written in
    queue order, so a connection's answers keep the order of its frames."""

    def __init__(self, spool: Spool, loop: asyncio.AbstractEventLoop, log: Log) -> None:
        self.spool = spool
        self.loop = loop
        self.log = log
        self._records: list[bytes] = []
        # (session, answer once durable, the answer if the write failed: built
        # only then, None for an answer that waits on no record)
        self._answers: list[_Queued] = []
        self._queued = 0  # bytes queued
        self._scheduled = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.on_commit: Callable[[], None] = lambda: None
        self.batches = 0
        self.records = 0

    def submit(self, record: bytes, sess: _Session, good: bytes, bad: Callable[[], bytes]) -> bool:
        """Queues a record; False (nothing queued) when the spool is full."""
        if not self.spool.room(self._queued + len(record)):
            return False
        self._records.append(record)
        self._queued += len(record)
        self._answers.append((sess, good, bad))
        self._kick()
        return True

    def after(self, sess: _Session, answer: bytes) -> None:
        """An answer that needs no record, behind the session's queued ones."""
        self._answers.append((sess, answer, None))
        self._kick()

    def _kick(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.idle.clear()
            self.loop.call_soon(self._commit)

    def _commit(self) -> None:
        self._scheduled = False
        records, answers = self._records, self._answers
        self._records, self._answers = [], []
        ok = True
        if records:
            try:
                self.spool.write_batch(records)
            except Exception as e:  # noqa: BLE001 - a refused batch, answered as such
                ok = False
                self.log("spool_error", error=repr(e), records=len(records))
            self._queued -= sum(len(r) for r in records)
            if ok:
                self.batches += 1
                self.records += len(records)
                self.on_commit()
        self._deliver(answers, ok)  # may queue more: they go in the next commit
        if not self._scheduled:
            self.idle.set()

    def _deliver(self, answers: list[_Queued], ok: bool) -> None:
        for sess, good, bad in answers:
            if bad is None:
                sess.write(good)
                continue
            sess.waiting -= 1
            if ok:
                sess.write(good)
            else:
                sess.refused("spool_error")
                sess.write(bad())
            if sess.backlog and sess.waiting <= MAX_IN_FLIGHT // 2:
                sess.pump()


@dataclasses.dataclass
class _Conn:
    id: int
    peer: str
    protocol: str
    malformed: int = 0
    terminal: str | None = None  # the authenticated JT/T 808 terminal
    vins: set[str] = dataclasses.field(default_factory=set)  # GB/T 32960 vehicles logged in
    serial: int = 0

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial


# An answer is bytes (sent at once, in order), or a frame to spool, the
# answer once durable, and how to build the one if it is refused (rarely).
_Reply = bytes | tuple[Frame, bytes, Callable[[], bytes]]


class _Session(asyncio.Protocol):
    """One connection. Reads are handled in ``data_received`` with no task
    or timer per read; the idle timeout and the slow-reader guard are checked
    by the gateway's sweep."""

    def __init__(self, gw: Gateway, protocol: str) -> None:
        self.gw = gw
        self.proto = protocol
        self.transport: asyncio.Transport | None = None
        self.host = ""
        self.reason = "eof"
        self.closing = False
        self.waiting = 0  # answers queued behind the spool
        self.backlog: collections.deque[Frame | FramingError] = collections.deque()
        self.last = 0.0  # loop time of the last read
        self.paused_at: float | None = None  # when the peer stopped reading
        self.buffered_at_close = 0
        self.framer: Jt808Framer | Gb32960Framer = (
            Jt808Framer(gw.cfg.max_frame)
            if protocol == "jt808"
            else Gb32960Framer(gw.cfg.max_frame)
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gw = self.gw
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("?", 0)
        self.host = str(peer[0])
        gw.conn_ids += 1
        self.conn = _Conn(gw.conn_ids, f"{self.host}:{peer[1]}", self.proto)
        if gw.per_peer[self.host] >= gw.cfg.max_per_peer:
            gw.log("refused_connection", reason="connections_per_peer", peer=self.conn.peer)
            self.closing = True
            self.host = ""
            transport.abort()
            return
        gw.per_peer[self.host] += 1
        gw.sessions.add(self)
        self.last = gw.loop.time()
        # the limit above which pause_writing is called: the slow-reader guard
        transport.set_write_buffer_limits(high=gw.cfg.max_write_buffer // 2)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last = self.gw.loop.time()
        self.backlog.extend(self.framer.feed(data))
        self.pump()

    def pump(self) -> None:
        """Handles the frames read, up to MAX_IN_FLIGHT waiting on the spool;
        reading stops while some are left, and resumes once they are done."""
        gw, conn = self.gw, self.conn
        now_us = time.time_ns() // 1000
        backlog = self.backlog
        while backlog and not self.closing:
            if self.waiting >= MAX_IN_FLIGHT:
                if self.transport is not None:
                    self.transport.pause_reading()
                return
            item = backlog.popleft()
            if isinstance(item, FramingError):
                conn.malformed += 1
                gw.log(
                    "malformed",
                    protocol=self.proto,
                    conn=conn.id,
                    peer=conn.peer,
                    reason=item.reason,
                    raw=item.raw[:64],
                )
                if self.proto == "jt808" and item.reason == "bad_checksum":
                    self._answer(gw._jt808_bad_frame(conn, item.raw), now_us)
            elif self.proto == "jt808":
                self._answer(gw._jt808(conn, item), now_us)
            else:
                self._answer(gw._gb32960(conn, item), now_us)
            if conn.malformed >= gw.cfg.max_malformed:
                self.close("malformed_frames")
        if not self.closing and self.paused_at is None and self.transport is not None:
            self.transport.resume_reading()

    def _answer(self, rep: _Reply, now_us: int) -> None:
        gw = self.gw
        assert gw.committer is not None
        if isinstance(rep, bytes):
            if not rep:
                return
            if self.waiting:
                gw.committer.after(self, rep)
            else:
                self.write(rep)
            return
        frame, good, bad = rep
        rec = encode_record(self.proto, now_us, self.conn.id, self.conn.peer, frame.raw)
        if gw.committer.submit(rec, self, good, bad):
            self.waiting += 1
            return
        self.refused("spool_full")
        if self.waiting:
            gw.committer.after(self, bad())
        else:
            self.write(bad())

    def refused(self, reason: str) -> None:
        self.gw.log("refused_frame", reason=reason, conn=self.conn.id, peer=self.conn.peer)

    def write(self, data: bytes) -> None:
        if self.closing or self.transport is None:
            return
        self.transport.write(data)
        if self.transport.get_write_buffer_size() > self.gw.cfg.max_write_buffer:
            self.close("slow_reader")

    def pause_writing(self) -> None:
        # the peer does not read its answers: stop reading its frames until it does
        if self.transport is not None and not self.closing:
            self.transport.pause_reading()
        self.paused_at = self.gw.loop.time()

    def resume_writing(self) -> None:
        self.paused_at = None
        if self.transport is not None and not self.closing and not self.backlog:
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        if self.closing or self.transport is None:
            return
        self.closing = True
        self.reason = reason
        self.buffered_at_close = self.transport.get_write_buffer_size()
        if reason == "slow_reader":
            self.transport.abort()  # its unread answers are not worth holding
        else:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        gw = self.gw
        if not self.host:
            return  # refused at connection
        if exc is not None and self.reason == "eof":
            self.reason = "reset"
        gw.sessions.discard(self)
        gw.per_peer[self.host] -= 1
        if gw.per_peer[self.host] <= 0:
            del gw.per_peer[self.host]
        if self.reason != "eof":
            gw.log(
                "closed",
                reason=self.reason,
                protocol=self.proto,
                conn=self.conn.id,
                peer=self.conn.peer,
                malformed=self.conn.malformed,
                write_buffer=self.buffered_at_close,
            )
        self.closing = True
        self.transport = None


class Gateway:
    """The acceptor: listeners, sessions, the spool's group commit, and the
    ingest process it starts and stops."""

    def __init__(self, config: GatewayConfig, *, log: IO[str] | None = None) -> None:
        self.cfg = config
        self._log_out = log
        self.log = Log(log or sys.stderr)
        self.book = LoanBook(config.loan_book)
        self.spool = Spool(
            config.spool, segment_bytes=config.segment_bytes, max_bytes=config.spool_bytes
        )
        self.secret = self.spool.secret()
        self.committer: _Committer | None = None
        self.per_peer: Counter[str] = Counter()
        self.sessions: set[_Session] = set()
        self.conn_ids = 0
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._ingest: subprocess.Popen[bytes] | None = None
        self._ingest_log: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats: Counter[str] = Counter()

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.spool.truncated_bytes:
            self.log("spool_repaired", cut_bytes=self.spool.truncated_bytes)
        # The ingest process replays what a crash left unstored, then tails
        # the spool; new frames go to a newer segment, so the order holds.
        await self._start_ingest()
        self.committer = _Committer(self.spool, self.loop, self.log)
        self.committer.on_commit = self._wake_ingest
        self._sweeper = asyncio.create_task(self._sweep())
        for proto, addr in (("jt808", self.cfg.jt808), ("gb32960", self.cfg.gb32960)):
            if addr is None:
                continue
            server = await self.loop.create_server(
                functools.partial(_Session, self, proto), addr[0], addr[1], backlog=4096
            )
            self._servers.append(server)
            self.ports[proto] = server.sockets[0].getsockname()[1]

    async def _start_ingest(self) -> None:
        cfg = json.dumps(dataclasses.asdict(self.cfg))
        cmd = [sys.executable, "-m", "autolien.gateway.ingest", cfg]
        # Its log lines come back through a pipe into this log (a file or a
        # test's sink); its alerts go to the configured file or our stdout.
        self._ingest = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=None
        )
        assert self._ingest.stdin is not None
        os.set_blocking(self._ingest.stdin.fileno(), False)
        self._ingest_log = asyncio.create_task(self._relay_ingest_log())

    async def _relay_ingest_log(self) -> None:
        assert self._ingest is not None
        assert self._ingest.stderr is not None
        reader = asyncio.StreamReader(limit=1 << 20)
        await self.loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), self._ingest.stderr
        )
        out = self._log_out or sys.stderr
        while line := await reader.readline():
            text = line.decode(errors="replace")
            with contextlib.suppress(json.JSONDecodeError, AttributeError):
                ev = json.loads(text)
                self.log.counts[ev["event"]] += 1
                if ev["event"] == "ingest_stopped":
                    self.stats.update({k: v for k, v in ev.items() if isinstance(v, int)})
            out.write(text)
            out.flush()
        if self._stopping:
            return
        # The ingest process died under us (its log ended): what it had not
        # stored is still in the spool, so a new one picks up from the
        # checkpoint. Frames are acknowledged meanwhile; the spool limit
        # bounds how long that can go on.
        proc = self._ingest
        code = await asyncio.to_thread(proc.wait)
        self.log("ingest_exited", returncode=code, restarting=True)
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        await asyncio.sleep(1.0)
        if not self._stopping:
            await self._start_ingest()

    def _wake_ingest(self) -> None:
        if self._ingest is None or self._ingest.stdin is None:
            return
        # one byte per commit; a full pipe already says "wake up"
        with contextlib.suppress(BlockingIOError, BrokenPipeError, ValueError):
            os.write(self._ingest.stdin.fileno(), b"\n")

    async def _sweep(self) -> None:
        """Idle connections and peers that have stopped reading their answers."""
        period = max(0.05, min(1.0, self.cfg.idle_timeout / 4, self.cfg.slow_reader_timeout / 4))
        while True:
            await asyncio.sleep(period)
            now = self.loop.time()
            for s in list(self.sessions):
                if s.paused_at is not None:  # not reading our answers: not idle
                    if now - s.paused_at > self.cfg.slow_reader_timeout:
                        s.close("slow_reader")
                elif now - s.last > self.cfg.idle_timeout and not s.backlog:
                    s.close("idle_timeout")

    async def stop(self) -> None:
        self._stopping = True
        for s in self._servers:
            s.close()
        self._sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sweeper
        for sess in list(self.sessions):
            sess.close("stopping")
        if self.committer is not None:
            await self.committer.idle.wait()  # what was accepted is durable and answered
        await asyncio.sleep(0)
        # the ingest process stores the rest of the spool, then exits
        if self._ingest is not None:
            assert self._ingest.stdin is not None
            with contextlib.suppress(OSError):
                self._ingest.stdin.close()
            await asyncio.to_thread(self._ingest.wait)
            if self._ingest_log is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._ingest_log, 10)
            if self._ingest.returncode:
                self.log("ingest_exited", returncode=self._ingest.returncode, restarting=False)
        self.spool.close()
        if self.committer is not None:
            self.stats.update(records=self.committer.records, fsyncs=self.committer.batches)

    # --- JT/T 808 ----------------------------------------------------------
    def _general(self, conn: _Conn, h: Jt808Header, result: int) -> bytes:
        body = struct.pack(">HHB", h.serial, h.msg_id, result)
        return jt808_frame(h, PLATFORM_REPLY, conn.next_serial(), body)

    def _jt808_bad_frame(self, conn: _Conn, raw: bytes) -> bytes:
        # a bad check code: answer "message error" when the header can be read
        inner = raw[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        h = parse_jt808_header(inner[:-1]) if len(inner) >= 13 else None
        return self._general(conn, h, MSG_ERROR) if h is not None else b""

    def _jt808(self, conn: _Conn, frame: Frame) -> _Reply:
        h = parse_jt808_header(frame.payload)
        if h is None:
            conn.malformed += 1
            self.log(
                "malformed",
                protocol="jt808",
                conn=conn.id,
                peer=conn.peer,
                reason="body_length_mismatch",
                raw=frame.raw[:64],
            )
            return b""
        tid = h.terminal_id
        if h.msg_id == REGISTER:
            if self.book.terminal(tid) is None:
                self.log(
                    "refused",
                    protocol="jt808",
                    reason="unknown_terminal",
                    terminal=tid,
                    peer=conn.peer,
                )
                body = struct.pack(">HB", h.serial, REG_NO_TERMINAL)
            else:
                body = struct.pack(">HB", h.serial, OK) + auth_code(self.secret, tid).encode()
            return jt808_frame(h, REGISTER_REPLY, conn.next_serial(), body)
        if h.msg_id == AUTH:
            token = h.body[1 : 1 + h.body[0]] if h.v2019 and h.body else h.body
            code = token.split(b"\x00", 1)[0].decode(errors="replace").strip()
            known = self.book.terminal(tid) is not None
            if known and hmac.compare_digest(code, auth_code(self.secret, tid)):
                conn.terminal = tid
                return self._general(conn, h, OK)
            reason = "wrong_auth_code" if known else "unknown_terminal"
            self.log("refused", protocol="jt808", reason=reason, terminal=tid, peer=conn.peer)
            return self._general(conn, h, FAILED)
        if h.msg_id == TERMINAL_REPLY:
            return b""  # the terminal answering the platform: nothing to say
        if h.msg_id not in _SPOOLED_JT808 and h.msg_id not in (HEARTBEAT, DEREGISTER):
            return self._general(conn, h, UNSUPPORTED)
        if conn.terminal != tid:
            self.log(
                "refused",
                protocol="jt808",
                reason="not_authenticated",
                terminal=tid,
                msg_id=h.msg_id,
                peer=conn.peer,
            )
            return self._general(conn, h, FAILED)
        if h.msg_id == HEARTBEAT:
            return self._general(conn, h, OK)
        if h.msg_id == DEREGISTER:
            conn.terminal = None
            return self._general(conn, h, OK)
        return (
            frame,
            self._general(conn, h, OK),
            functools.partial(self._general, conn, h, FAILED),
        )

    # --- GB/T 32960 --------------------------------------------------------
    def _gb32960(self, conn: _Conn, frame: Frame) -> _Reply:
        raw = frame.raw
        cmd, flag, vin_b = raw[2], raw[3], raw[4:21]
        data = raw[24:-1]
        vin = vin_b.decode(errors="replace")
        if flag != COMMAND:
            return b""  # a response from the vehicle: nothing to answer

        def reply(result: int, payload: bytes | None = None) -> bytes:
            return gb32960_frame(cmd, result, vin_b, data[:6] if payload is None else payload)

        if cmd == LOGIN:
            if self.book.vin(vin) is None:
                self.log(
                    "refused", protocol="gb32960", reason="unknown_vin", vin=vin, peer=conn.peer
                )
                return reply(ERROR)
            conn.vins.add(vin)
            return reply(SUCCESS)
        if cmd == HEART:
            return reply(SUCCESS, b"")
        if cmd == CALIBRATE:
            return reply(SUCCESS, bcd_time_gmt8())
        if cmd not in (REALTIME, REISSUE, LOGOUT):
            self.log(
                "refused",
                protocol="gb32960",
                reason="unsupported_command",
                cmd=cmd,
                vin=vin,
                peer=conn.peer,
            )
            return reply(ERROR)
        if vin not in conn.vins:
            self.log(
                "refused",
                protocol="gb32960",
                reason="not_logged_in",
                vin=vin,
                cmd=cmd,
                peer=conn.peer,
            )
            return reply(ERROR)
        if cmd == LOGOUT:
            conn.vins.discard(vin)
            return reply(SUCCESS)
        return (frame, reply(SUCCESS), functools.partial(reply, ERROR))


# Cyclic GC thresholds for the acceptor process. With the defaults (700, 10,
# 10) the answers waiting on a group commit (a few objects per frame) survive
# young collections and are promoted, so full collections, which walk every
# session of every connected terminal, ran often: 14% of the acceptor's
# samples at 10,000 terminals x 1 report/s (py-spy --native). Transient
# per-frame objects are freed by reference counting and never reach the
# collector, so rarer young collections cost little memory.
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_gc() -> dict[str, float]:
    """Freezes what start-up allocated (modules, the loan book: it lives as
    long as the process, and no collection need walk it again), raises the
    thresholds, and returns counters of the collections made from now on
    (count and milliseconds per generation), for the `stopped` log line."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    out: dict[str, float] = {}
    started = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        g = info["generation"]
        out[f"gc{g}_count"] = out.get(f"gc{g}_count", 0) + 1
        ms = out.get(f"gc{g}_ms", 0.0) + 1000 * (time.perf_counter() - started[0])
        out[f"gc{g}_ms"] = round(ms, 1)

    gc.callbacks.append(timer)
    return out


def serve(config: GatewayConfig, *, ready: Callable[[dict[str, int]], None] | None = None) -> int:
    """Runs the gateway until SIGTERM or SIGINT; prints one JSON line with the
    bound ports once it listens."""
    try:
        import uvloop  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

        runner: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner = asyncio.run
        loop_name = "asyncio"

    async def main() -> None:
        gw = Gateway(config)
        await gw.start()
        gc_time = _tune_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        line = {
            "event": "listening",
            "loop": loop_name,
            **dict(gw.ports.items()),
            "pid": os.getpid(),
        }
        print(json.dumps(line), flush=True)
        if ready is not None:
            ready(gw.ports)
        await stop.wait()
        await gw.stop()
        gw.log("stopped", **dict(gw.stats.items()), **gc_time)

    runner(main())
    return 0
