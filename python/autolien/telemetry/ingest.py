"""File ingest: detect each file's protocol, decode it, store the rows.

Formats: ``jt808`` (0x7E frames), ``gb32960`` (``##`` frames), ``nmea``
(NMEA 0183 and/or UBX) and ``obd`` (ELM327 response lines). A file's format is
taken from a ``--format`` override or its extension (.jt808, .gb32960, .nmea,
.ubx, .obd, .elm), else from which protocol's signatures dominate its first
64 KiB.

A file is recognised by its content, not its path: its SHA-256 goes into the
store's ``ingested_files`` in the transaction that commits its last rows, and a file
whose digest is there already (the same portfolio reached through a copy, a
symlink or another spelling of the path) is skipped without being decoded.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import re
import stat
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .._memory import release_memory
from ._common import DecodeResult
from .gb32960 import decode_gb32960
from .jt808 import decode_jt808, safe_cut
from .nmea import decode_nmea
from .obd import decode_obd
from .store import Store

__all__ = [
    "FORMATS",
    "DecodeMap",
    "IngestSummary",
    "decode_here",
    "decode_piece",
    "detect_format",
    "file_digest",
    "ingest_files",
]

DECODERS: dict[str, Callable[[Any], DecodeResult]] = {
    "jt808": decode_jt808,
    "gb32960": decode_gb32960,
    "nmea": decode_nmea,
    "obd": decode_obd,
}
FORMATS = tuple(DECODERS)
TABLE_OF = {"jt808": "locations", "gb32960": "ev", "nmea": "fixes", "obd": "obd"}
EXTENSIONS = {
    ".jt808": "jt808",
    ".gb32960": "gb32960",
    ".nmea": "nmea",
    ".ubx": "nmea",
    ".obd": "obd",
    ".elm": "obd",
}
# JT/T 808 files above this size are decoded a piece at a time, so memory
# follows the piece, not the file: a 1.3 GB day file of 100,000 terminals
# peaked at 17 GB decoded whole. A piece ends after a frame past which no
# split (multi-packet) message waits for parts (jt808.safe_cut), so the
# pieces decode to what the whole file decodes to. 16 MiB, not 64: the
# decoder's transient is 0.26 GB a piece instead of 0.83-0.93 GB, and a
# 30,000-vehicle day's ingest peaked at 1.32-1.34 GB instead of 2.03-2.10 GB,
# in the same time (25.6-29.7 s against 28.6-31.9 s).
CHUNK_BYTES = 16 << 20
# How far past a piece's size its cut may move to find such a frame: a split
# message completes or expires within subpackage_window frames of its first
# part; a stream that never settles is cut between two frames as before.
CUT_SLACK_BYTES = 8 << 20
FLUSH_ROWS = 1_000_000
# A file changed within a timestamp tick of being stat'ed keeps its stat (a
# coarse clock, or a file system that keeps seconds): one whose mtime or
# ctime is this close to the run's start is not cached, so the next run
# hashes it again (git's "racy" entries)
RACY_NS = 2_000_000_000


def _cut(data: Any, start: int, target: int, n: int, chunk: int) -> int:
    """The end of a JT/T 808 piece that starts at ``start``: the first safe
    cut at or past ``target``, else the last frame boundary before it."""
    limit = min(n, target + max(chunk, CUT_SLACK_BYTES))
    with memoryview(data) as whole, whole[start:limit] as view:
        cut = safe_cut(view, target - start)
    if cut is not None:
        return start + cut
    if limit == n:  # no safe cut before the file ends: the rest is one piece
        return n
    # No frame within reach settles every split message: cut between two
    # frames (0x7E 0x7E; 0x7E is escaped inside frames), and the parts on
    # both sides of it are rejected as incomplete.
    at = data.rfind(b"\x7e\x7e", start, target)
    return at + 1 if at > start else n  # no boundary: the rest in one piece


def _pieces(data: Any, kind: str, chunk: int) -> Iterator[tuple[int, bytes, bool]]:
    """(byte offset, bytes, whether it is the last) pieces of a file's contents."""
    n = len(data)
    if kind != "jt808" or n <= chunk:
        yield 0, data if isinstance(data, bytes) else data[:], True  # an mmap slice is bytes
        return
    start = 0
    while start < n:
        end = min(start + chunk, n)
        if end < n:
            end = _cut(data, start, end, n, chunk)
        yield start, data[start:end], end >= n
        if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            # the piece is decoded: let its pages go, or the mapping stays
            # resident and memory grows with the file after all
            a = start - start % mmap.PAGESIZE
            data.madvise(mmap.MADV_DONTNEED, a, end - a)
        start = end


def _repeat(value: str, n: int) -> pa.Array:
    # a column of one string without an n-long Python list (2.7 s a million rows)
    return pa.repeat(pa.scalar(value, pa.string()), n)


def _shift(table: pa.Table, base: int) -> pa.Table:
    if base == 0 or "offset" not in table.column_names:
        return table
    i = table.column_names.index("offset")
    return table.set_column(
        i, "offset", pc.add(table.column("offset"), pa.scalar(base, pa.uint64()))
    )


@dataclass(frozen=True)
class _File:
    digest: str
    size: int
    kind: str
    name: str
    vehicle: str | None


@dataclass(frozen=True)
class _Piece:
    file: _File
    base: int  # byte offset of the piece in its file
    size: int
    last: bool  # the file's last piece: the file is done when its result is in


T = TypeVar("T")


class DecodeMap(Protocol):
    """Decodes ``(tag, format, bytes)`` pieces, yielding ``(tag, result)`` in
    the order they came."""

    def __call__(
        self, items: Iterator[tuple[T, str, bytes]], /
    ) -> Iterator[tuple[T, DecodeResult]]: ...


def decode_piece(kind: str, piece: bytes) -> DecodeResult:
    """One piece of a capture through its format's decoder."""
    return DECODERS[kind](piece)


def decode_here(items: Iterator[tuple[T, str, bytes]]) -> Iterator[tuple[T, DecodeResult]]:
    """The default ``decode_map``: each piece in turn, in this process (a
    piece is decoded before the next is read, so memory follows the piece)."""
    for tag, kind, piece in items:
        yield tag, decode_piece(kind, piece)


_ELM = re.compile(rb"(?:[0-9A-F]{3} ?)?(?:[0-9A-F]{2} ?){2,}|NO DATA|SEARCHING\.\.\.|>")


def detect_format(data: bytes, name: str = "") -> str:
    """The protocol of a capture; ValueError when nothing matches."""
    ext = Path(name).suffix.lower()
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    head = data[: 64 * 1024]
    scores = {
        "jt808": head.count(b"\x7e\x02\x00")
        + head.count(b"\x7e\x07\x04")
        + head.count(b"\x7e\x01\x00"),
        "gb32960": head.count(b"##\x02") + head.count(b"##\x03") + head.count(b"##\x01"),
        "nmea": len(re.findall(rb"\$[A-Z]{2}(GGA|RMC|GST|GSA|VTG)", head))
        + head.count(b"\xb5\x62\x01\x07"),
        "obd": sum(
            1 for line in re.split(rb"[\r\n]+", head) if line and _ELM.fullmatch(line.strip())
        ),
    }
    best = max(scores, key=lambda k: scores[k])
    if scores[best] == 0:
        msg = f"cannot tell the format of {name or 'the data'}: no JT/T 808, GB/T 32960, NMEA/UBX or ELM327 content"
        raise ValueError(msg)
    return best


@dataclass
class IngestSummary:
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rows: Counter[str] = field(default_factory=Counter)  # by store table
    new_rows: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)  # by decoder:reason
    formats: Counter[str] = field(default_factory=Counter)
    skipped_files: int = 0  # content already in the store (or twice in this call)
    hashed_files: int = 0  # files read to hash them (the others matched the stat cache)

    def to_json(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.bytes / 1e6 / self.seconds, 1) if self.seconds else None,
            "rows_per_s": round(sum(self.rows.values()) / self.seconds) if self.seconds else None,
            "formats": dict(self.formats),
            "rows": dict(self.rows),
            "new_rows": dict(self.new_rows),
            # decoded rows the store already held, or held twice in this call
            # (true duplicates: the same reading; see Store.append)
            "duplicate_rows": {k: n - self.new_rows.get(k, 0) for k, n in self.rows.items()},
            "skipped_files": self.skipped_files,
            "hashed_files": self.hashed_files,
            "rejects": dict(self.rejects),
        }


def file_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a file's contents: how ingest recognises a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stat(
    path: Path, real_dirs: dict[str, str] | None = None
) -> tuple[str, tuple[int, int, int, int, int]]:
    """A file's real path and the stat fields the cache compares.
    ``real_dirs`` caches the real path of each parent directory: a run
    stats every file of the book's history, and ``os.path.realpath``
    walks each path component by component (0.1 ms a file; 7,500 files a
    run at 10,000 vehicles). A file that is not itself a link is its real
    directory plus its name."""
    st = os.lstat(path)
    name = os.path.basename(path)
    if real_dirs is None or stat.S_ISLNK(st.st_mode) or name in ("", ".", ".."):
        real = os.path.realpath(path)
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(path)
    else:
        parent = os.path.dirname(path)
        if parent not in real_dirs:
            real_dirs[parent] = os.path.realpath(parent or ".")
        real = os.path.join(real_dirs[parent], name)
    return real, (
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
    )


def ingest_files(
    paths: Sequence[str | Path],
    store: Store,
    *,
    fmt: str | None = None,
    progress: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    names: Sequence[str] | None = None,
    vehicle_ids: Sequence[str | None] | None = None,
    decode_map: DecodeMap | None = None,
    rehash: bool = False,
) -> IngestSummary:
    """Decodes each file and appends its rows and rejects to the store
    (JT/T 808 files over ``chunk_bytes`` a piece at a time).

    ``names`` are what ``source_file`` records per file (default: the path as
    given); ``vehicle_ids`` name the vehicle of a log that carries none (an
    NMEA/UBX log), filled into its rows' null ``vehicle_id`` here, once. Files
    whose content the store holds already are skipped (``skipped_files``).
    A file is known by the SHA-256 of its content; one whose real path, size,
    mtime, ctime, inode and device match those it had when an earlier run
    hashed it is not read again (the store's stat cache, ``hashed_files``
    counts the others); ``rehash`` hashes every file.
    The rows are committed each time FLUSH_ROWS of one table are waiting,
    with the files finished by then in the manifest: the store holds (and
    DuckDB keeps in memory) at most that much uncommitted. A process killed
    part way keeps what it committed; the next run skips the files in the
    manifest and reads the rest again, and the rows of a file cut short that
    were committed are not stored twice (the append's de-duplication), so it
    ends with the store of one clean run.

    ``decode_map`` decodes the pieces: it takes an iterator of
    ``(tag, format, bytes)`` and yields ``(tag, DecodeResult)`` in the same
    order (default :func:`decode_here`, one at a time in this process; the
    Dask engine's runs them as tasks on its workers). Reading, the store and
    its manifest stay here, so the rows go in in file order either way."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    if names is not None and len(names) != len(paths):
        raise ValueError("names must give one name per path")
    if vehicle_ids is not None and len(vehicle_ids) != len(paths):
        raise ValueError("vehicle_ids must give one id (or None) per path")
    summary = IngestSummary()
    # Decoded rows wait here and go to the store FLUSH_ROWS at a time: each
    # append de-duplicates against the whole table, so one per file made
    # ingest grow with files x rows (8.7 of 11.6 s on 360 files).
    pending: dict[str, list[pa.Table]] = {}
    waiting = Counter[str]()
    # files whose rows are all decoded, noted in the manifest once flushed
    done: list[tuple[str, int, str, str, int]] = []

    def flush(kind: str) -> None:
        tables = pending.pop(kind, [])
        waiting[kind] = 0
        if not tables:
            return
        try:
            batches = [pa.concat_tables(tables)]
        except pa.ArrowInvalid:  # schemas differ (a decoder's optional columns): one at a time
            batches = tables
        for t in batches:
            new = store.append(t, kind=kind)
            if kind != "rejects":
                summary.new_rows[kind] += new
        del tables, batches
        # the batch's decoded tables and the append's work space are freed:
        # give them back, or ingest's memory grows with the day's files
        release_memory()

    def hold(kind: str, t: pa.Table, source: str, vehicle: str | None) -> None:
        if vehicle is not None and "vehicle_id" in t.column_names:
            i = t.column_names.index("vehicle_id")
            t = t.set_column(
                i,
                t.schema.field(i),
                pc.coalesce(t.column(i), pa.scalar(vehicle, t.schema.field(i).type)),
            )
        held = pending.setdefault(kind, [])
        if t.num_rows == 0 and held:
            # An empty table still holds the decoder's buffers of its piece
            # (shared with the piece's rows): kept one per piece, they grew
            # memory with the day file (0.4 MB a 256 KiB piece). One carries
            # the schema; the rest add nothing.
            return
        held.append(t.append_column("source_file", _repeat(source, t.num_rows)))
        waiting[kind] += t.num_rows
        if waiting[kind] >= FLUSH_ROWS:
            checkpoint()

    recorded = 0  # the entries of ``done`` in the manifest

    def commit() -> None:
        # every table flushed, then the files finished so far, in one commit
        nonlocal recorded
        for kind in list(pending):
            flush(kind)
        store.record_files(done[recorded:])
        recorded = len(done)
        store.commit()

    def checkpoint() -> None:
        # one transaction held the whole ingest before: DuckDB keeps each
        # appended batch (and the Arrow tables registered for it) until the
        # commit, and a 10,000-vehicle fortnight peaked at 9.5 GB
        commit()
        store.begin()

    known = dict(store.ingested())
    stats = store.file_stats()
    racy_before = time.time_ns() - RACY_NS
    seen: dict[str, tuple[int, int, int, int, int, str]] = {}
    # each file's stat, once: the progress total and the cache check read it
    real_dirs: dict[str, str] = {}
    stat_of = [_stat(Path(p), real_dirs) for p in paths]
    total = sum(st[0] for _, st in stat_of)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="ingest", disable=not progress)

    def pieces() -> Iterator[tuple[_Piece, str, bytes]]:
        # read and cut in file order; the pieces are decoded by decode_map
        for n, p in enumerate(paths):
            path = Path(p)
            name = names[n] if names is not None else str(path)
            real, st = stat_of[n]
            size = st[0]
            hit = stats.get(real)
            if not rehash and hit is not None and hit[:5] == st and hit[5] in known:
                digest = hit[5]
            else:
                digest = file_digest(path)
                summary.hashed_files += 1
            if max(st[1], st[2]) < racy_before:
                seen[real] = (*st, digest)
            if digest in known:
                summary.skipped_files += 1
                bar.update(size)
                continue
            known[digest] = name
            with open(path, "rb") as f:
                data: Any = (
                    mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                    if size > chunk_bytes
                    else f.read()
                )
            try:
                kind = fmt or detect_format(bytes(data[:65536]), path.name)
                if kind not in DECODERS:
                    msg = f"format must be one of {FORMATS}, got {kind!r}"
                    raise ValueError(msg)
                file = _File(digest, size, kind, name, vehicle_ids[n] if vehicle_ids else None)
                for base, piece, last in _pieces(data, kind, chunk_bytes):
                    yield _Piece(file, base, len(piece), last), kind, piece
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()

    start = time.perf_counter()
    store.begin()
    try:
        decoded = 0
        for tag, result in (decode_map or decode_here)(pieces()):
            file, table = tag.file, TABLE_OF[tag.file.kind]
            rows = _shift(result.table, tag.base)
            summary.rows[table] += rows.num_rows
            decoded += rows.num_rows
            hold(table, rows, file.name, file.vehicle)
            rejects = _shift(result.rejects, tag.base).append_column(
                "decoder", _repeat(file.kind, result.rejects.num_rows)
            )
            hold("rejects", rejects, file.name, None)
            for reason in rejects.column("reason").to_pylist():
                summary.rejects[f"{file.kind}:{reason}"] += 1
            bar.update(tag.size)
            if tag.last:
                done.append((file.digest, file.size, file.kind, file.name, decoded))
                decoded = 0
                summary.formats[file.kind] += 1
                summary.files += 1
                summary.bytes += file.size
    finally:
        # what decoded before an error is stored all the same (a file cut
        # short by the error is not noted, so a later run reads it again)
        try:
            commit()
        except BaseException:
            store.rollback()
            # Parquet parts written for the rolled-back rows: no view shows them
            store.discard_uncommitted()
            raise
    bar.close()
    # after the commit: an entry names a content the manifest holds
    if seen:
        stats.update(seen)
        try:
            store.save_file_stats(stats)
        except OSError as e:
            warnings.warn(
                f"the stat cache of {store.path} was not written ({e}); "
                "the next run hashes these files again",
                RuntimeWarning,
                stacklevel=2,
            )
    summary.seconds = time.perf_counter() - start
    return summary
