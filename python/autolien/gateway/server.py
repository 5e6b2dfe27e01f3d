"""The live T-Box gateway: JT/T 808 and GB/T 32960 over TCP.

One asyncio process. Each connection is framed (:mod:`.protocol`), its data
frames are appended to the write-ahead spool (:mod:`.spool`) and acknowledged
only once the spool's group commit has fsynced them. An ingest task reads the
spool in batches, decodes them with the C++ decoders into the store and feeds
the monitor; the alerts it opens or escalates go out as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import os
import signal
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from .config import GatewayConfig, LoanBook, Log, norm_terminal
from .ingest import Ingestor
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
from .spool import Spool, SpoolFull, encode_record

__all__ = ["Gateway", "GatewayConfig", "LoanBook", "auth_code", "serve"]

# JT/T 808 message ids and results
REGISTER, REGISTER_REPLY, AUTH, HEARTBEAT, DEREGISTER = 0x0100, 0x8100, 0x0102, 0x0002, 0x0003
LOCATION, BATCH, TERMINAL_REPLY, PLATFORM_REPLY = 0x0200, 0x0704, 0x0001, 0x8001
OK, FAILED, MSG_ERROR, UNSUPPORTED = 0, 1, 2, 3
REG_NO_TERMINAL = 4  # 0x8100 result: no such terminal in the database
# GB/T 32960 commands and response flags
LOGIN, REALTIME, REISSUE, LOGOUT, HEART, CALIBRATE = 0x01, 0x02, 0x03, 0x04, 0x07, 0x08
SUCCESS, ERROR, COMMAND = 0x01, 0x02, 0xFE


def auth_code(secret: bytes, terminal_id: str) -> str:
    """The authentication code of a terminal: stable across restarts and
    across instances that share the spool's ``secret``."""
    return hmac.new(secret, norm_terminal(terminal_id).encode(), hashlib.sha256).hexdigest()[:16]


class _Committer:
    """Group commit: records queued while one fsync runs go out in the next."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self.batches = 0
        self.records = 0

    def submit(self, record: bytes) -> asyncio.Future[None]:
        if not self.spool.room(self._queued_bytes + len(record)):
            raise SpoolFull
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((record, fut))
        self._queued_bytes += len(record)
        self._wake.set()
        return fut

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._queue, self._queued_bytes = self._queue, [], 0
            if not batch:
                continue
            try:
                await asyncio.to_thread(self.spool.write_batch, [r for r, _ in batch])
            except OSError as e:
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.batches += 1
            self.records += len(batch)
            for _, f in batch:
                if not f.done():
                    f.set_result(None)


@dataclass
class _Conn:
    id: int
    peer: str
    protocol: str
    malformed: int = 0
    terminal: str | None = None  # the authenticated JT/T 808 terminal
    vins: set[str] = field(default_factory=set)  # GB/T 32960 vehicles logged in
    serial: int = 0

    def next_serial(self) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial


# A response is bytes, or a spool future and the two answers (durable / refused).
_Reply = bytes | tuple[asyncio.Future[None] | None, bytes, bytes]


class Gateway:
    """The server: listeners, the spool committer, and the ingest task."""

    def __init__(self, config: GatewayConfig, *, log: IO[str] | None = None) -> None:
        self.cfg = config
        self.log = Log(log or sys.stderr)
        self.book = LoanBook(config.loan_book)
        self.spool = Spool(
            config.spool, segment_bytes=config.segment_bytes, max_bytes=config.spool_bytes
        )
        self.secret = self.spool.secret()
        self.committer: _Committer | None = None
        self.per_peer: Counter[str] = Counter()
        self.conn_ids = 0
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._ingest_lock = threading.Lock()
        self._wake_ingest: asyncio.Event | None = None
        self.stats: Counter[str] = Counter()

    # --- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        if self.spool.truncated_bytes:
            self.log("spool_repaired", cut_bytes=self.spool.truncated_bytes)
        self.ingestor = Ingestor(self.cfg, self.log)
        self.monitor = self.ingestor.monitor
        # replay first: whatever a crash left unstored goes in before new data
        replayed = await asyncio.to_thread(self._ingest_all)
        if replayed:
            self.log("spool_replayed", records=replayed)
        self.committer = _Committer(self.spool)
        self._wake_ingest = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self.committer.run()),
            asyncio.create_task(self._ingest_loop()),
        ]
        for proto, addr in (("jt808", self.cfg.jt808), ("gb32960", self.cfg.gb32960)):
            if addr is None:
                continue
            server = await asyncio.start_server(
                functools.partial(self._handle, protocol=proto),
                addr[0],
                addr[1],
                limit=self.cfg.read_size,
            )
            self._servers.append(server)
            self.ports[proto] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._ingest_all)
        self.stats.update(self.ingestor.stats)
        self.ingestor.close()
        self.spool.close()

    # --- connections -------------------------------------------------------
    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str
    ) -> None:
        proto = protocol
        peername = writer.get_extra_info("peername") or ("?", 0)
        host = str(peername[0])
        self.conn_ids += 1
        conn = _Conn(self.conn_ids, f"{host}:{peername[1]}", proto)
        if self.per_peer[host] >= self.cfg.max_per_peer:
            self.log("refused_connection", reason="connections_per_peer", peer=conn.peer)
            writer.close()
            return
        self.per_peer[host] += 1
        framer: Jt808Framer | Gb32960Framer = (
            Jt808Framer(self.cfg.max_frame)
            if proto == "jt808"
            else Gb32960Framer(self.cfg.max_frame)
        )
        reason = "eof"
        try:
            while True:
                try:
                    data = await asyncio.wait_for(
                        reader.read(self.cfg.read_size), self.cfg.idle_timeout
                    )
                except TimeoutError:
                    reason = "idle_timeout"
                    break
                if not data:
                    break
                replies: list[_Reply] = []
                for item in framer.feed(data):
                    if isinstance(item, FramingError):
                        conn.malformed += 1
                        self.log(
                            "malformed",
                            protocol=proto,
                            conn=conn.id,
                            peer=conn.peer,
                            reason=item.reason,
                            raw=item.raw[:64],
                        )
                        if proto == "jt808" and item.reason == "bad_checksum":
                            replies.append(self._jt808_bad_frame(conn, item.raw))
                    elif proto == "jt808":
                        replies.append(self._jt808(conn, item))
                    else:
                        replies.append(self._gb32960(conn, item))
                for rep in replies:
                    if isinstance(rep, bytes):
                        if rep:
                            writer.write(rep)
                        continue
                    fut, good, bad = rep
                    try:
                        if fut is None:
                            raise SpoolFull
                        await fut
                        writer.write(good)
                    except (SpoolFull, OSError) as e:
                        self.log(
                            "refused_frame",
                            reason="spool_full" if isinstance(e, SpoolFull) else "spool_error",
                            conn=conn.id,
                            peer=conn.peer,
                        )
                        writer.write(bad)
                if self._wake_ingest is not None:
                    self._wake_ingest.set()
                if conn.malformed >= self.cfg.max_malformed:
                    reason = "malformed_frames"
                    break
                if writer.transport.get_write_buffer_size() > self.cfg.max_write_buffer:
                    reason = "slow_reader"
                    break
                try:
                    await asyncio.wait_for(writer.drain(), self.cfg.idle_timeout)
                except TimeoutError:
                    reason = "slow_reader"
                    break
        except (ConnectionError, OSError):
            reason = "reset"
        finally:
            self.per_peer[host] -= 1
            if self.per_peer[host] <= 0:
                del self.per_peer[host]
            if reason != "eof":
                self.log(
                    "closed",
                    reason=reason,
                    protocol=proto,
                    conn=conn.id,
                    peer=conn.peer,
                    malformed=conn.malformed,
                    write_buffer=writer.transport.get_write_buffer_size(),
                )
            if reason == "slow_reader":
                # close() would wait to flush answers the peer never reads
                writer.transport.abort()
            else:
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    def _spool(self, conn: _Conn, frame: Frame) -> asyncio.Future[None] | None:
        assert self.committer is not None
        rec = encode_record(conn.protocol, time.time_ns() // 1000, conn.id, conn.peer, frame.raw)
        try:
            return self.committer.submit(rec)
        except SpoolFull:
            return None

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
        if h.msg_id not in (HEARTBEAT, DEREGISTER, LOCATION, BATCH):
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
            self._spool(conn, frame),
            self._general(conn, h, OK),
            self._general(conn, h, FAILED),
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
        return (self._spool(conn, frame), reply(SUCCESS), reply(ERROR))

    # --- ingest: spool -> store -> monitor -> alerts -----------------------
    async def _ingest_loop(self) -> None:
        assert self._wake_ingest is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_ingest.wait(), self.cfg.ingest_interval)
            self._wake_ingest.clear()
            await asyncio.sleep(self.cfg.ingest_interval)  # let a batch gather
            try:
                await asyncio.to_thread(self._ingest_all)
            except Exception as e:  # noqa: BLE001 - the server must outlive a bad batch
                self.log("ingest_error", error=type(e).__name__, message=str(e))

    def _ingest_all(self) -> int:
        # a cancelled ingest task's thread may still run when stop() drains
        with self._ingest_lock:
            return self._ingest_pending()

    def _ingest_pending(self) -> int:
        return self.ingestor.ingest_pending()


def serve(config: GatewayConfig, *, ready: Callable[[dict[str, int]], None] | None = None) -> int:
    """Runs the gateway until SIGTERM or SIGINT; prints one JSON line with the
    bound ports once it listens."""
    try:
        import uvloop  # type: ignore[import-not-found]  # noqa: PLC0415

        runner: Any = uvloop.run
        loop_name = "uvloop"
    except ImportError:
        runner = asyncio.run
        loop_name = "asyncio"

    async def main() -> None:
        gw = Gateway(config)
        await gw.start()
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
        gw.log(
            "stopped",
            **dict(gw.stats.items()),
            **(
                {"records": gw.committer.records, "fsyncs": gw.committer.batches}
                if gw.committer
                else {}
            ),
        )

    runner(main())
    return 0
