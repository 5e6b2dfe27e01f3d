"""Durable append-only record files and the directory lock.

Record framing (big-endian)::

    u32 length | payload (length bytes) | u32 CRC-32 of (length || payload)

Appends are written, flushed and fsynced before they return, so an
acknowledged record survives a crash. A killed writer leaves a prefix of what
it was writing; a torn tail is exactly that, and nothing else. Scanning stops
at the first bad record; it is a torn tail only if all of these hold:

* the record is incomplete (the file ends inside its header, or before the
  end its length declares), or everything from it to the end is zero bytes
  (a file grown by a crash whose data never reached the disk);
* its length is at most MAX_RECORD (no writer ever wrote a longer one);
* no complete, checksummed record starts anywhere after it (an acknowledged
  record could be there, so what looks torn is a damaged length field);
* it is not a complete record whose length field alone is damaged (the bytes
  from it to the start of a torn record after it, or to the end of the file,
  checksum as one record).

The last two checks look only where a header can start and checksum at most
SEARCH_BUDGET bytes; a tail that needs more is corruption, not torn.

Any other bad record is corruption: LedgerCorruptError with the file and the
byte offset. Scanning never modifies a file; the caller decides, after
checking the signed checkpoints, whether a torn tail may be cut.

The writer holds an exclusive ``flock`` on ``LOCK`` in the directory. A second
writer gets LedgerLockedError at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .._fs import fsync_dir
from ..errors import LedgerCorruptError, LedgerLockedError

__all__ = [
    "MAX_RECORD",
    "DirLock",
    "RecordFile",
    "ScanResult",
    "frame",
    "fsync_dir",
    "scan_bytes",
    "scan_records",
]

_HEADER = struct.Struct(">I")
MAX_RECORD = 64 << 20  # sanity bound on one record; appends refuse longer ones
# Bytes a scan may checksum while deciding whether a tail is torn; past it,
# the tail is reported as corruption rather than cut.
SEARCH_BUDGET = 256 << 20
# A header's first byte is at most MAX_RECORD >> 24: only there can a record start.
_HEADER_START = re.compile(b"[\x00-%c]" % (MAX_RECORD >> 24))


def frame(payload: bytes) -> bytes:
    head = _HEADER.pack(len(payload))
    return head + payload + _HEADER.pack(zlib.crc32(head + payload))


@dataclass
class ScanResult:
    records: list[bytes]
    offsets: list[int]
    end: int  # bytes of valid records
    torn_bytes: int  # bytes after `end` that belong to a torn tail


def scan_records(path: Path) -> ScanResult:
    """Reads every record; LedgerCorruptError for anything but a torn tail."""
    data = path.read_bytes() if path.exists() else b""
    return scan_bytes(data, path.name, str(path))


def scan_bytes(data: bytes, name: str = "records", path: str = "") -> ScanResult:
    """:func:`scan_records` over bytes already read; ``name`` labels errors."""
    records: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    n = len(data)
    while pos < n:
        reason = _bad_record(data, pos)
        if reason is None:
            (length,) = _HEADER.unpack_from(data, pos)
            records.append(data[pos + 4 : pos + 4 + length])
            offsets.append(pos)
            pos += 8 + length
            continue
        if reason == "torn":
            return ScanResult(records, offsets, pos, n - pos)
        raise LedgerCorruptError(
            f"{name}: bad record {len(records)} at byte offset {pos}: {reason}",
            path=path,
            offset=pos,
            index=len(records),
        )
    return ScanResult(records, offsets, pos, 0)


def _valid_at(data: bytes, pos: int) -> bool:
    if pos + 8 > len(data):
        return False
    (length,) = _HEADER.unpack_from(data, pos)
    end = pos + 8 + length
    if length > MAX_RECORD or end > len(data):
        return False
    return bool(_HEADER.unpack_from(data, end - 4)[0] == zlib.crc32(data[pos : end - 4]))


def _bad_record(data: bytes, pos: int) -> str | None:
    """None for a good record at ``pos``, "torn" for a torn tail, else why it is corrupt."""
    n = len(data)
    if pos + 4 > n:
        return "torn"  # a partial header is the end of the file by definition
    (length,) = _HEADER.unpack_from(data, pos)
    if length > MAX_RECORD:
        return f"record length {length} is implausible (more than {MAX_RECORD})"
    end = pos + 8 + length
    if end <= n:
        if _HEADER.unpack_from(data, end - 4)[0] == zlib.crc32(data[pos : end - 4]):
            return None
        if not data[pos:].strip(b"\x00"):
            return "torn"
        return "checksum mismatch"
    # It runs past the end of the file. That is a torn tail unless an
    # acknowledged record may lie in what follows: a complete record starts
    # there, or this one is complete and only its length field is damaged
    # (then its true end is the start of the torn record after it, or EOF).
    # A header's first byte is at most MAX_RECORD >> 24, so only offsets
    # holding such a byte, and the last four, can start a record.
    budget = SEARCH_BUDGET
    for q in _header_candidates(data, pos + 1):
        if _valid_at(data, q):
            return (
                f"record length {length} runs past the end of the file, but a complete "
                f"record starts at byte offset {q}: a damaged length field"
            )
        if q < pos + 8:
            continue
        if q + 4 <= n:
            (lq,) = _HEADER.unpack_from(data, q)
            if lq > MAX_RECORD or q + 8 + lq <= n:
                continue  # not the start of a torn record
        budget -= q - pos
        if budget < 0:
            return (
                f"record length {length} runs past the end of the file, and {n - pos} bytes "
                "follow: too many to rule out a complete record among them"
            )
        true_len = q - pos - 8
        crc = zlib.crc32(data[pos + 4 : q - 4], zlib.crc32(_HEADER.pack(true_len)))
        if _HEADER.unpack_from(data, q - 4)[0] == crc:
            return (
                f"record length {length} runs past the end of the file, but the record is "
                f"complete with length {true_len}: a damaged length field"
            )
    return "torn"


def _header_candidates(data: bytes, start: int) -> Iterator[int]:
    n = len(data)
    for m in _HEADER_START.finditer(data, start):
        q = m.start()
        if q >= n - 3:
            break
        yield q
    yield from range(max(start, n - 3), n + 1)


class RecordFile:
    """An append-only framed record file opened for writing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        created = not path.exists()
        self._f = open(path, "ab")  # noqa: SIM115 - held open for the ledger's lifetime
        if created:
            os.fsync(self._f.fileno())
            fsync_dir(path.parent)
        self.size = self._f.seek(0, os.SEEK_END)

    def truncate(self, size: int) -> None:
        os.truncate(self.path, size)
        os.fsync(self._f.fileno())
        self.size = self._f.seek(0, os.SEEK_END)

    def append(self, payloads: Iterable[bytes]) -> list[int]:
        """Appends records and fsyncs once; returns their offsets."""
        payloads = list(payloads)
        for p in payloads:
            if len(p) > MAX_RECORD:
                msg = f"a record of {len(p)} bytes is over the {MAX_RECORD}-byte limit"
                raise ValueError(msg)
        offsets = []
        chunks = []
        pos = self.size
        for p in payloads:
            offsets.append(pos)
            fr = frame(p)
            chunks.append(fr)
            pos += len(fr)
        if not chunks:
            return []
        try:
            self._f.write(b"".join(chunks))
            self._f.flush()
            os.fsync(self._f.fileno())
        except BaseException:
            # Leave no partial record behind that a later append would bury.
            with contextlib.suppress(OSError):
                self._f.flush()
                os.truncate(self.path, self.size)
            raise
        self.size = pos
        return offsets

    def close(self) -> None:
        self._f.close()


class DirLock:
    """An exclusive, non-blocking flock on ``<dir>/LOCK``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "LOCK"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            msg = f"ledger directory {directory} is locked by another writer (pid {holder})"
            raise LedgerLockedError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
