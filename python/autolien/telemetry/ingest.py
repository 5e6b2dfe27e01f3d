"""File ingest: detect each file's protocol, decode it, store the rows.

Formats: ``jt808`` (0x7E frames), ``gb32960`` (``##`` frames), ``nmea``
(NMEA 0183 and/or UBX) and ``obd`` (ELM327 response lines). A file's format is
taken from a ``--format`` override or its extension (.jt808, .gb32960, .nmea,
.ubx, .obd, .elm), else from which protocol's signatures dominate its first
64 KiB.
"""

from __future__ import annotations

import mmap
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ._common import DecodeResult
from .gb32960 import decode_gb32960
from .jt808 import decode_jt808
from .nmea import decode_nmea
from .obd import decode_obd
from .store import Store

__all__ = ["FORMATS", "IngestSummary", "detect_format", "ingest_files"]

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
# JT/T 808 files above this size are decoded a piece at a time, cut between
# two frames (0x7E 0x7E: one frame's end flag, the next one's start; 0x7E is
# escaped inside frames), so memory follows the piece, not the file: a 1.3 GB
# day file of 100,000 terminals peaked at 17 GB decoded whole.
CHUNK_BYTES = 64 << 20
FLUSH_ROWS = 1_000_000


def _pieces(data: Any, kind: str, chunk: int) -> Iterator[tuple[int, bytes]]:
    """(byte offset, bytes) pieces of a file's contents."""
    n = len(data)
    if kind != "jt808" or n <= chunk:
        yield 0, data if isinstance(data, bytes) else data[:]  # an mmap slice is bytes
        return
    start = 0
    while start < n:
        end = min(start + chunk, n)
        if end < n:
            cut = data.rfind(b"\x7e\x7e", start, end)
            end = cut + 1 if cut > start else n  # no boundary: the rest in one piece
        yield start, data[start:end]
        start = end


def _shift(table: pa.Table, base: int) -> pa.Table:
    if base == 0 or "offset" not in table.column_names:
        return table
    i = table.column_names.index("offset")
    return table.set_column(
        i, "offset", pc.add(table.column("offset"), pa.scalar(base, pa.uint64()))
    )


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
            "rejects": dict(self.rejects),
        }


def ingest_files(
    paths: Sequence[str | Path],
    store: Store,
    *,
    fmt: str | None = None,
    progress: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> IngestSummary:
    """Decodes each file and appends its rows and rejects to the store
    (JT/T 808 files over ``chunk_bytes`` a piece at a time)."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    summary = IngestSummary()
    # Decoded rows wait here and go to the store FLUSH_ROWS at a time: each
    # append de-duplicates against the whole table, so one per file made
    # ingest grow with files x rows (8.7 of 11.6 s on 360 files).
    pending: dict[str, list[pa.Table]] = {}
    waiting = Counter[str]()

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

    def hold(kind: str, t: pa.Table, source: str) -> None:
        pending.setdefault(kind, []).append(
            t.append_column("source_file", pa.array([source] * t.num_rows, pa.string()))
        )
        waiting[kind] += t.num_rows
        if waiting[kind] >= FLUSH_ROWS:
            flush(kind)

    total = sum(Path(p).stat().st_size for p in paths)
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="ingest", disable=not progress)
    start = time.perf_counter()
    try:
        for p in paths:
            path = Path(p)
            size = path.stat().st_size
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
                table = TABLE_OF[kind]
                for base, piece in _pieces(data, kind, chunk_bytes):
                    result = DECODERS[kind](piece)
                    rows = _shift(result.table, base)
                    summary.rows[table] += rows.num_rows
                    hold(table, rows, str(path))
                    rejects = _shift(result.rejects, base).append_column(
                        "decoder", pa.array([kind] * result.rejects.num_rows, pa.string())
                    )
                    hold("rejects", rejects, str(path))
                    for reason in rejects.column("reason").to_pylist():
                        summary.rejects[f"{kind}:{reason}"] += 1
                    bar.update(len(piece))
            finally:
                if isinstance(data, mmap.mmap):
                    data.close()
            summary.formats[kind] += 1
            summary.files += 1
            summary.bytes += size
    finally:
        # what decoded before an error is stored all the same
        for kind in list(pending):
            flush(kind)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary
