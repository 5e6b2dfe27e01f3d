"""Fuzzing the ledger's parsers of outside bytes: notes, checkpoints, keys,
framed records and entries. Each either parses or raises its documented typed
error; nothing else escapes, and nothing hangs."""

from __future__ import annotations

import base64
import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien.errors import LedgerCorruptError, SignatureError
from autolien.ledger.note import Checkpoint, NoteSigner, NoteVerifier, open_note, sign_note
from autolien.ledger.storage import frame, scan_records

SIGNER = NoteSigner.generate("fuzz.example")
GOOD_NOTE = sign_note(
    "fuzz.example/log\n5\n" + base64.b64encode(bytes(32)).decode() + "\n", [SIGNER]
)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_open_note_on_any_text(text: str) -> None:
    with contextlib.suppress(SignatureError):
        open_note(text, [SIGNER.verifier])


@settings(max_examples=300)
@given(st.integers(0, len(GOOD_NOTE) - 1), st.characters())
def test_open_note_on_a_mutated_note(pos: int, ch: str) -> None:
    mutated = GOOD_NOTE[:pos] + ch + GOOD_NOTE[pos + 1 :]
    try:
        note = open_note(mutated, [SIGNER.verifier])
    except SignatureError:
        return
    # A mutation that still verifies can only have touched nothing signed.
    assert note.text == GOOD_NOTE.split("\n\n")[0] + "\n"


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_checkpoint_parse(text: str) -> None:
    try:
        cp = Checkpoint.parse(text)
    except ValueError:
        return
    assert Checkpoint.parse(cp.text()) == cp


@settings(max_examples=300)
@given(st.text(max_size=120))
def test_key_parsers(text: str) -> None:
    for parse in (NoteVerifier.from_vkey, NoteSigner.from_skey):
        with contextlib.suppress(ValueError):
            parse(text)


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=64), max_size=6), st.binary(max_size=40), st.integers(0, 10_000))
def test_scan_records_on_damaged_files(payloads: list[bytes], junk: bytes, flip: int) -> None:
    import tempfile

    data = bytearray(b"".join(frame(p) for p in payloads) + junk)
    if data:
        data[flip % len(data)] ^= 0x5A
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "entries.dat"
        path.write_bytes(bytes(data))
        try:
            scan = scan_records(path)
        except LedgerCorruptError as e:
            err: LedgerCorruptError | None = e
        else:
            err = None
    if err is not None:
        assert err.offset is not None
        assert 0 <= err.offset < len(data)
        return
    # What was read is a prefix of the valid records; the rest is a torn tail.
    assert scan.end + scan.torn_bytes == len(data)
    assert all(r == p for r, p in zip(scan.records, payloads, strict=False))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"[]",
        b'{"v":1}',
        b"\xff\xfe",
        b'{"actor":"a","asset":null,"data":{},"seq":1,"sig":"!","time":"x","type":"consortium","v":1}',
    ],
)
def test_bad_entries_fail_audit_cleanly(tmp_path: Path, payload: bytes) -> None:
    from datetime import UTC, datetime

    from autolien.ledger.assets import AssetLedger, Member, audit

    op = NoteSigner.generate("op.fuzz")
    led = AssetLedger.create(
        tmp_path / "l",
        origin="fuzz",
        operator=op,
        members=[Member(SIGNER.name, SIGNER.vkey)],
        threshold=1,
        time=datetime(2026, 1, 1, tzinfo=UTC),
    )
    led.close()
    with open(tmp_path / "l" / "entries.dat", "ab") as f:
        f.write(frame(payload))
    rep = audit(tmp_path / "l")
    assert not rep.ok
    assert rep.first_bad is not None
    assert rep.first_bad["index"] == 1
    with pytest.raises(LedgerCorruptError):
        AssetLedger.open(tmp_path / "l")


@settings(max_examples=300)
@given(
    st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=5),
    st.binary(min_size=1, max_size=64),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 7),
)
def test_a_flip_in_a_complete_record_is_never_taken_for_a_torn_tail(
    payloads: list[bytes], torn_payload: bytes, cut: int, where: int, bit: int
) -> None:
    """What a crash leaves (complete records, then a prefix of one more),
    with one bit flipped in a complete record: the scan must name that
    record's offset, whatever the flip hit (length, payload or CRC)."""
    import tempfile

    frames = [frame(p) for p in payloads]
    written = b"".join(frames)
    torn = frame(torn_payload)
    tail = torn[: cut % len(torn)]  # possibly empty: no torn tail
    data = bytearray(written + tail)
    pos = where % len(written)
    data[pos] ^= 1 << bit
    starts = [sum(len(f) for f in frames[:i]) for i in range(len(frames))]
    expected = max(s for s in starts if s <= pos)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "entries.dat"
        path.write_bytes(bytes(data))
        with pytest.raises(LedgerCorruptError) as info:
            scan_records(path)
    assert info.value.offset == expected


def test_open_note_with_a_lone_surrogate_is_a_signature_error() -> None:
    # Found by hypothesis: a surrogate cannot be encoded, so nothing signed it.
    mutated = GOOD_NOTE[:3] + "\ud800" + GOOD_NOTE[4:]
    with pytest.raises(SignatureError, match="not UTF-8"):
        open_note(mutated, [SIGNER.verifier])
