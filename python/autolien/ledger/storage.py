"""Durable append-only record files and the directory lock.

Record framing (big-endian)::

    u32 length | payload (length bytes) | u32 CRC-32 of (length || payload)

Appends are written, flushed and fsynced before they return, so an
acknowledged record survives a crash. On open the file is scanned:

* a bad record that runs to the end of the file, or is followed only by zero
  bytes, is a torn tail from an interrupted append. It is truncated (a
  writable open) or ignored (a read-only open), and reported;
* any other bad record is corruption in the middle of the file. Opening fails
  with LedgerCorruptError carrying the byte offset. Nothing is repaired.

The writer holds an exclusive ``flock`` on ``LOCK`` in the directory. A second
writer gets LedgerLockedError at once instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import LedgerCorruptError, LedgerLockedError

__all__ = ["DirLock", "RecordFile", "ScanResult", "fsync_dir", "scan_records"]

_HEADER = struct.Struct(">I")
MAX_RECORD = 64 << 20  # sanity bound on one record


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
    """Reads every record; LedgerCorruptError for corruption before the tail."""
    data = path.read_bytes() if path.exists() else b""
    records: list[bytes] = []
    offsets: list[int] = []
    pos = 0
    n = len(data)
    while pos < n:
        reason = None
        if pos + 4 > n:
            reason = "truncated length"
        else:
            (length,) = _HEADER.unpack_from(data, pos)
            end = pos + 4 + length + 4
            if length > MAX_RECORD:
                reason = f"record length {length} is implausible"
            elif end > n:
                reason = "truncated record"
            else:
                payload = data[pos + 4 : pos + 4 + length]
                (crc,) = _HEADER.unpack_from(data, pos + 4 + length)
                if crc != zlib.crc32(data[pos : pos + 4 + length]):
                    reason = "checksum mismatch"
        if reason is None:
            records.append(payload)
            offsets.append(pos)
            pos = end
            continue
        # A bad record is a torn tail only if nothing but zeros could follow it.
        rest = data[pos:]
        if reason.startswith("truncated") or not rest.strip(b"\x00") or _runs_to_end(data, pos):
            return ScanResult(records, offsets, pos, n - pos)
        raise LedgerCorruptError(
            f"{path.name}: {reason} at byte offset {pos} (record {len(records)}), followed by more data",
            path=str(path),
            offset=pos,
            index=len(records),
        )
    return ScanResult(records, offsets, pos, 0)


def _runs_to_end(data: bytes, pos: int) -> bool:
    # The bad record's own length field says it ends exactly at EOF.
    length: int = _HEADER.unpack_from(data, pos)[0]
    return pos + 4 + length + 4 == len(data)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
