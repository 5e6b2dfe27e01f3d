"""The write-ahead spool: every accepted frame is on disk before its ack.

Layout of the spool directory:

* ``seg-<n>.wal``: segments of records, appended in order. A record is
  ``u32 length | u32 crc32 | payload`` (big-endian; length and CRC cover the
  payload), and the payload is ``u8 protocol | i64 receive time (us) |
  u64 connection | u16 peer length | peer (utf-8) | frame bytes as sent``.
* ``stored.json``: the spool position (segment, offset) up to which every
  record is in the store, and the JT/T 808 multi-packet parts read before it
  whose message is not yet whole (``pending``). Written atomically
  (temporary file, fsync, rename) by the ingest side.
* ``secret``: the key the JT/T 808 authentication codes derive from.

Two sides, which may live in two processes: :class:`Spool` (the acceptor)
appends; :class:`SpoolReader` (the ingest process) tails the segments,
checkpoints and removes what is stored. Only the newest segment is ever
written, so a segment with a newer one beside it is finished.

Group commit: :meth:`Spool.write_batch` writes every record queued since the
last flush and fsyncs once. A crash can tear only the unacknowledged tail of
the newest segment; :class:`Spool` cuts a segment at its first record whose
length or CRC does not check when it opens, so a torn record is never
replayed, and the reader never reads past a record that does not check.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._fs import fsync_dir

__all__ = ["PROTOCOLS", "Record", "Spool", "SpoolFull", "SpoolReader", "encode_record"]

PROTOCOLS = {1: "jt808", 2: "gb32960"}
PROTOCOL_CODES = {v: k for k, v in PROTOCOLS.items()}
_HEAD = struct.Struct(">II")
_META = struct.Struct(">BqQH")


class SpoolFull(Exception):
    """The spool is at its disk limit: the frame is refused, not acknowledged."""


@dataclass(frozen=True, slots=True)
class Record:
    segment: int
    offset: int  # of the record in its segment
    end: int  # offset of the next record
    protocol: str
    received_us: int
    connection: int
    peer: str
    frame: bytes

    @property
    def frame_offset(self) -> int:
        """Where the frame's bytes start in the segment file."""
        return self.end - len(self.frame)


def encode_record(
    protocol: str, received_us: int, connection: int, peer: str, frame: bytes
) -> bytes:
    p = peer.encode()[:0xFFFF]
    payload = _META.pack(PROTOCOL_CODES[protocol], received_us, connection, len(p)) + p + frame
    return _HEAD.pack(len(payload), zlib.crc32(payload)) + payload


def _decode(segment: int, offset: int, payload: bytes) -> Record:
    code, t, conn, plen = _META.unpack_from(payload)
    peer = payload[_META.size : _META.size + plen].decode(errors="replace")
    frame = payload[_META.size + plen :]
    end = offset + _HEAD.size + len(payload)
    return Record(segment, offset, end, PROTOCOLS.get(code, "?"), t, conn, peer, frame)


def _seg_name(n: int) -> str:
    return f"seg-{n:012d}.wal"


class Spool:
    """A directory of write-ahead segments (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = 64 << 20,
        max_bytes: int = 1 << 30,
    ) -> None:
        if max_bytes < 2 * segment_bytes:
            raise ValueError("the spool limit must hold at least two segments")
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stored = _read_checkpoint(self.dir)[0]
        self.truncated_bytes = 0  # torn tail cut at open
        segs = self.segments()
        for n in segs:
            if n < self.stored[0]:
                (self.dir / _seg_name(n)).unlink()
        segs = [n for n in segs if n >= self.stored[0]]
        if segs:
            self.truncated_bytes = self._repair(segs[-1])
        # each run appends to a fresh segment: the old ones are only read
        self.active = max([*segs, self.stored[0]]) + 1
        self._file = open(self.dir / _seg_name(self.active), "ab")  # noqa: SIM115 - held open
        fsync_dir(self.dir)
        self.committed = (self.active, 0)  # durable up to here
        self._recount()

    # --- state on disk ---------------------------------------------------
    def segments(self) -> list[int]:
        return sorted(int(p.name[4:-4]) for p in self.dir.glob("seg-*.wal"))

    def _size(self, n: int) -> int:
        try:
            return (self.dir / _seg_name(n)).stat().st_size
        except FileNotFoundError:
            return 0

    def _repair(self, n: int) -> int:
        """Cuts segment n after its last whole record; returns the bytes cut."""
        path = self.dir / _seg_name(n)
        data = path.read_bytes()
        good = 0
        for rec in self._scan(n, data, 0):
            good = rec.end
        if good < len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
                f.flush()
                os.fsync(f.fileno())
        return len(data) - good

    @staticmethod
    def _scan(n: int, data: bytes, pos: int, limit: int | None = None) -> Iterator[Record]:
        end = len(data) if limit is None else min(limit, len(data))
        while pos + _HEAD.size <= end:
            length, crc = _HEAD.unpack_from(data, pos)
            start = pos + _HEAD.size
            if start + length > end:
                return
            payload = data[start : start + length]
            if zlib.crc32(payload) != crc or length < _META.size:
                return
            rec = _decode(n, pos, payload)
            yield rec
            pos = rec.end

    def secret(self) -> bytes:
        path = self.dir / "secret"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(os.urandom(32))
            os.replace(tmp, path)
        return path.read_bytes()

    # --- writing (group commit) -----------------------------------------
    def _recount(self) -> None:
        self.disk_bytes = sum(self._size(n) for n in self.segments())
        self._counted = time.monotonic()

    def room(self, nbytes: int) -> bool:
        if self.disk_bytes + nbytes <= self.max_bytes:
            return True
        # the reader (another process) removes stored segments: look again,
        # at most ten times a second while full
        if time.monotonic() - self._counted > 0.1:
            self._recount()
        return self.disk_bytes + nbytes <= self.max_bytes

    def write_batch(self, records: list[bytes]) -> None:
        """Appends records and fsyncs once; on return they are durable."""
        if self.committed[1] >= self.segment_bytes:
            self._roll()
        data = b"".join(records)
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.disk_bytes += len(data)
        self.committed = (self.active, self.committed[1] + len(data))

    def _roll(self) -> None:
        self._recount()
        self._file.close()
        self.active += 1
        self._file = open(self.dir / _seg_name(self.active), "ab")  # noqa: SIM115 - held open
        fsync_dir(self.dir)
        self.committed = (self.active, 0)

    def close(self) -> None:
        self._file.close()


def _read_checkpoint(d: Path) -> tuple[tuple[int, int], list[Record]]:
    try:
        c = json.loads((d / "stored.json").read_text())
    except FileNotFoundError:
        return (0, 0), []
    pending = [
        Record(
            int(p["segment"]),
            int(p["offset"]),
            int(p["end"]),
            str(p["protocol"]),
            int(p["received_us"]),
            int(p["connection"]),
            str(p["peer"]),
            bytes.fromhex(p["frame"]),
        )
        for p in c.get("pending", [])
    ]
    return (int(c["segment"]), int(c["offset"])), pending


class SpoolReader:
    """The ingest side: reads whole records from the checkpoint on, records
    how far they are stored, and removes the segments that are."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        self.stored, self.pending = _read_checkpoint(self.dir)
        self.skipped_bytes = 0  # unreadable bytes in finished segments

    def segments(self) -> list[int]:
        return sorted(int(p.name[4:-4]) for p in self.dir.glob("seg-*.wal"))

    def read(self, start: tuple[int, int], max_bytes: int = 8 << 20) -> list[Record]:
        """Whole records from ``start``, within one segment (its next records,
        or the first of the next segment when it is finished)."""
        seg, off = start
        while True:
            segs = self.segments()  # before reading: a newer segment means this one is finished
            if not segs or seg > segs[-1]:
                return []
            if seg not in segs:
                seg, off = min(n for n in segs if n > seg), 0
                continue
            finished = seg < segs[-1]
            with open(self.dir / _seg_name(seg), "rb") as f:
                f.seek(off)
                data = f.read(max_bytes)
            recs = [
                Record(r.segment, r.offset + off, r.end + off, *_tail(r))
                for r in Spool._scan(seg, data, 0)
            ]
            if recs:
                return recs
            if len(data) >= _HEAD.size:
                length = _HEAD.unpack_from(data, 0)[0]
                if _HEAD.size + length > max_bytes:  # a record larger than max_bytes
                    return self.read((seg, off), _HEAD.size + length)
            if not finished:
                return []  # nothing whole yet
            # A finished segment was cut after its last whole record when the
            # acceptor opened it; what still does not check is damage: skip it.
            self.skipped_bytes += len(data)
            seg, off = seg + 1, 0

    def checkpoint(self, pos: tuple[int, int], pending: Iterable[Record] = ()) -> None:
        """Everything before ``pos`` is stored except ``pending`` (parts of
        messages not yet whole, kept here): record it, drop stored segments."""
        tmp = self.dir / "stored.json.tmp"
        body = {
            "segment": pos[0],
            "offset": pos[1],
            "pending": [
                {
                    "segment": r.segment,
                    "offset": r.offset,
                    "end": r.end,
                    "protocol": r.protocol,
                    "received_us": r.received_us,
                    "connection": r.connection,
                    "peer": r.peer,
                    "frame": r.frame.hex(),
                }
                for r in pending
            ],
        }
        with open(tmp, "w") as f:
            json.dump(body, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "stored.json")
        fsync_dir(self.dir)
        self.stored = pos
        segs = self.segments()
        for n in segs[:-1]:  # never the newest: the acceptor may be writing it
            path = self.dir / _seg_name(n)
            # a finished segment goes once the checkpoint has reached its end
            if n < pos[0] or (n == pos[0] and pos[1] >= path.stat().st_size):
                path.unlink()


def _tail(r: Record) -> tuple[str, int, int, str, bytes]:
    return r.protocol, r.received_us, r.connection, r.peer, r.frame
