"""Cutting a JT/T 808 stream into pieces without cutting a split message.

Ingest decodes a big day file a piece at a time. A split (multi-packet)
message whose parts fell on both sides of a cut used to be rejected; pieces
now end after a frame past which no split message waits for parts
(``jt808.safe_cut``), so any piece size stores what one piece stores.

The stream is built here, frame by frame, as JT/T 808-2013 4.4.3 lays it out
(bit 13 of the message properties, then package count and index after the
serial): terminals sending single locations, 0x0704 batches sent in 2-4
parts that arrive late, out of order or twice, batches that lose a part
(rejected after the window), junk and a frame with a bad check code. What it
must decode to is counted by the generator, not by the decoder.
"""

from __future__ import annotations

import random
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien.telemetry import Store
from autolien.telemetry import ingest as ingest_mod
from autolien.telemetry._common import DecodeResult
from autolien.telemetry.ingest import ingest_files
from autolien.telemetry.jt808 import decode_jt808, safe_cut
from test_gateway import bxor, escape, gmt8, location_body


def _frame(
    msg_id: int,
    phone: str,
    serial: int,
    body: bytes,
    part: tuple[int, int] | None,
    bad_check: bool = False,
) -> bytes:
    props = len(body) | (0x2000 if part else 0)
    head = struct.pack(">HH", msg_id, props) + bytes.fromhex(phone) + struct.pack(">H", serial)
    if part:
        head += struct.pack(">HH", *part)
    payload = head + body
    return escape(payload + bytes([bxor(payload) ^ (0x55 if bad_check else 0)]))


def _location(t: float, k: int) -> bytes:
    # the mileage item is 1000 + k tenths of a km: each location's own k
    return location_body(31.2 + k * 1e-4, 121.4 + k * 1e-4, gmt8(t), 100 + k / 10)


@dataclass
class Batch:
    parts: list[bytes]  # the part frames sent
    items: range  # the k of its locations (mileage 100 + k / 10 km)
    lost: bool  # a part never sent


@dataclass
class Stream:
    data: bytes
    locations: int  # single ones plus the items of batches that complete
    batches: list[Batch] = field(default_factory=list)

    @property
    def lost_parts(self) -> list[bytes]:
        return [p for b in self.batches if b.lost for p in b.parts]


def make_stream(
    frames: int,
    seed: int,
    *,
    max_delay: int = 40,
    batches: float = 0.06,
    lost: float = 0.004,
    twice: float = 0.004,
) -> Stream:
    """``frames`` frames; per frame a batch starts with probability
    ``batches``; a batch loses a part with probability ``lost`` and sends one
    twice with ``twice`` (the copy never completes: both wait out the window),
    its parts arriving up to ``max_delay`` frames late."""
    rng = random.Random(seed)
    phones = [f"0139{i:08d}" for i in range(12)]
    serial = dict.fromkeys(phones, 0)
    due: list[tuple[int, int, bytes]] = []  # (frame number, tie-break, frame)
    out: list[bytes] = []
    stream = Stream(b"", 0)
    t0 = 1.79e9
    k = 0
    step = 0
    while len(out) < frames or due:
        ready = sorted(d for d in due if d[0] <= step)
        for d in ready:
            due.remove(d)
            out.append(d[2])
        step += 1
        if len(out) >= frames:
            continue
        phone = rng.choice(phones)
        r = rng.random()
        if r < batches:  # a 0x0704 batch of 3-12 locations in 2-4 parts
            n = rng.randint(3, 12)
            items = [_location(t0 + 30 * (k + i), k + i) for i in range(n)]
            k += n
            body = struct.pack(">HB", n, 1) + b"".join(struct.pack(">H", len(b)) + b for b in items)
            total = rng.randint(2, 4)
            size = -(-len(body) // total)
            base = serial[phone]
            serial[phone] = (base + total) & 0xFFFF
            parts = [
                _frame(
                    0x0704,
                    phone,
                    (base + i) & 0xFFFF,
                    body[i * size : (i + 1) * size],
                    (total, i + 1),
                )
                for i in range(total)
            ]
            gone = rng.random() < lost
            if gone:  # one part never arrives: rejected once the window passes
                parts.pop(rng.randrange(total))
            else:
                stream.locations += n
            stream.batches.append(Batch(parts, range(k - n, k), gone))
            for p in parts:
                due.append((step + rng.randint(0, max_delay), len(due) + len(out) * 100, p))
            if not gone and rng.random() < twice:  # a part sent twice
                due.append((step + rng.randint(0, max_delay), len(due) + len(out) * 100, parts[0]))
        elif r < batches + 0.005:
            out.append(b"\x00junk\x01")
        elif r < batches + 0.01:
            out.append(_frame(0x0200, phone, serial[phone], _location(t0 + 30 * k, k), None, True))
        else:
            out.append(_frame(0x0200, phone, serial[phone], _location(t0 + 30 * k, k), None))
            serial[phone] = (serial[phone] + 1) & 0xFFFF
            k += 1
            stream.locations += 1
    stream.data = b"".join(out)
    return stream


def _rows(result: DecodeResult, base: int = 0) -> tuple[pa.Table, pa.Table]:
    """The locations and rejects of a decode, offsets moved by ``base``."""
    out = []
    for t, cols in (
        (result.table, ["offset", "terminal_id", "time", "lat", "lon", "mileage_km"]),
        (result.rejects, ["offset", "reason", "raw"]),
    ):
        sel = t.select(cols)
        out.append(sel.set_column(0, "offset", pc.add(sel.column(0), pa.scalar(base, pa.uint64()))))
    return out[0], out[1]


def _joined(*parts: tuple[pa.Table, pa.Table]) -> tuple[pa.Table, pa.Table]:
    return (
        pa.concat_tables([p[0] for p in parts]).combine_chunks(),
        pa.concat_tables([p[1] for p in parts]).combine_chunks(),
    )


@pytest.fixture(scope="module")
def stream() -> Stream:
    return make_stream(20_000, seed=808)


def test_the_whole_stream_decodes_to_what_was_sent(stream: Stream) -> None:
    locs, rejects = _rows(decode_jt808(stream.data))
    assert locs.num_rows == stream.locations
    reasons = rejects.column("reason").to_pylist()
    assert sorted(set(reasons)) == ["bad_checksum", "junk", "subpackage_timeout"]
    timeouts = b"".join(
        r
        for r, why in zip(rejects.column("raw").to_pylist(), reasons, strict=True)
        if why == "subpackage_timeout"
    )
    assert all(p in timeouts for p in stream.lost_parts)


def test_a_safe_cut_splits_the_stream_into_two_that_decode_as_the_whole(stream: Stream) -> None:
    data = stream.data
    whole = _joined(_rows(decode_jt808(data)))
    rng = np.random.default_rng(3)
    straddled = 0
    found = 0
    for target in sorted(rng.integers(1, len(data) - 1, 40).tolist()):
        cut = safe_cut(data, target)
        if cut is None:  # a part still waiting at the end of the stream
            assert target > len(data) // 2
            continue
        found += 1
        assert target <= cut <= len(data)
        assert data[cut - 1] == 0x7E
        two = _joined(_rows(decode_jt808(data[:cut])), _rows(decode_jt808(data[cut:]), cut))
        assert two[0].equals(whole[0])
        assert two[1].equals(whole[1])
        # a cut at the frame boundary just before the target would have cut a split message
        at = data.rfind(b"\x7e\x7e", 0, target) + 1
        if 0 < at < cut:
            naive = _joined(_rows(decode_jt808(data[:at])), _rows(decode_jt808(data[at:]), at))
            straddled += not naive[0].equals(whole[0])
    assert found >= 30
    assert straddled > 5  # the stream does straddle plain cuts


def test_a_message_that_never_completes_holds_the_cut_until_its_window_passes() -> None:
    phone = "013900000001"
    loc = _location(1.79e9, 0)
    first = _frame(0x0704, phone, 7, b"\x00\x01\x01" + loc[:10], (2, 1))
    plain = [_frame(0x0200, phone, 10 + i, loc, None) for i in range(20)]
    data = first + b"".join(plain)
    ends = np.cumsum([len(first)] + [len(p) for p in plain]).tolist()
    # window 5: the part expires at the 7th frame, when the decoder counts 6 since it
    assert safe_cut(data, 1, subpackage_window=5) == ends[6]
    assert safe_cut(data, ends[10], subpackage_window=5) == ends[10]
    assert safe_cut(data, 1, subpackage_window=50) is None
    with pytest.raises(ValueError, match="subpackage_window"):
        safe_cut(data, 1, subpackage_window=0)
    with pytest.raises(ValueError, match="target"):
        safe_cut(data, -1)


@pytest.mark.parametrize("chunk", [1499, 4096, 30_000])
def test_any_piece_size_stores_what_one_piece_stores(
    tmp_path: Path, stream: Stream, chunk: int
) -> None:
    path = tmp_path / "day.jt808"
    path.write_bytes(stream.data)
    got = {}
    for size in (1 << 30, chunk):
        with Store(tmp_path / f"{size}.duckdb") as store:
            ingest_files([path], store, chunk_bytes=size)
            got[size] = {
                k: store.query(f'SELECT * EXCLUDE (source_file) FROM {k} ORDER BY "offset"')
                for k in ("locations", "rejects")
            }
    assert got[1 << 30]["locations"].num_rows == stream.locations
    for k in ("locations", "rejects"):
        assert got[chunk][k].equals(got[1 << 30][k]), k


def test_a_stream_that_never_settles_is_cut_between_frames_and_loses_nothing_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # parts up to 400 frames late: with no slack past the piece, some cut
    # falls inside a split message, whose parts are then rejected with their bytes
    s = make_stream(3000, seed=5, max_delay=400, lost=0.3)
    path = tmp_path / "day.jt808"
    path.write_bytes(s.data)
    monkeypatch.setattr(ingest_mod, "CUT_SLACK_BYTES", 0)
    with Store(tmp_path / "cut.duckdb") as store:
        summary = ingest_files([path], store, chunk_bytes=2000)
        locs = store.query("SELECT mileage_km FROM locations")
        raw = store.query("SELECT raw FROM rejects WHERE reason = 'subpackage_timeout'")
    assert summary.bytes == len(s.data)
    stored = {round(x * 10) - 1000 for x in locs.column("mileage_km").to_pylist()}
    assert len(stored) == locs.num_rows
    kept = b"".join(raw.column("raw").to_pylist())
    cut = [b for b in s.batches if not b.lost and not set(b.items) <= stored]
    assert cut  # some batches were cut ...
    # ... each of them is in the rejects, every part with its bytes, and
    # nothing else is missing
    assert all(p in kept for b in cut for p in b.parts)
    assert locs.num_rows == s.locations - sum(len(b.items) for b in cut)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 200), st.binary(min_size=1, max_size=12)), min_size=1, max_size=60
    ),
    st.integers(0, 4000),
    st.integers(1, 40),
)
def test_fuzz_a_safe_cut_of_frames_and_noise_decodes_as_the_whole(
    pieces: list[int | bytes], target: int, window: int
) -> None:
    # frames of a small stream (split parts among them) and random bytes,
    # in any order; the invariant holds whatever the window
    frames = _FUZZ_FRAMES
    data = b"".join(frames[p % len(frames)] if isinstance(p, int) else p for p in pieces)
    cut = safe_cut(data, target, subpackage_window=window)
    if cut is None:
        return
    assert target <= cut <= len(data)

    def rows(d: bytes, base: int = 0) -> tuple[pa.Table, pa.Table]:
        return _rows(decode_jt808(d, subpackage_window=window), base)

    whole = _joined(rows(data))
    two = _joined(rows(data[:cut]), rows(data[cut:], cut))
    assert two[0].equals(whole[0])
    assert two[1].equals(whole[1])


_FUZZ_FRAMES = re.findall(
    rb"\x7e[^\x7e]+\x7e", make_stream(120, seed=9, batches=0.3, lost=0.2, twice=0.2).data
)
