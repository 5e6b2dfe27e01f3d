"""Issue 15: every single-byte flip of every file of a small ledger, and every
bit of every record's length field, in turn.

For each flip, either the audit reports it (ok False, the damaged file, and the
byte offset of the damaged record, which the test computes from the documented
framing), or the flip is provably harmless: it lies in an unacknowledged torn
tail, and the audit still reports the four entries and the root that an
independent RFC 6962 implementation (tests/reference_merkle.py) computes from
the payloads the test wrote. In no case does a write-open then drop an entry:
it either refuses with a typed error and leaves every byte as it was, or opens
all four entries and cuts no more than the torn tail.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autolien.errors import AutolienError
from autolien.ledger.assets import AssetLedger, Member, Witness, audit
from autolien.ledger.identity import vin_check_digit
from autolien.ledger.note import ALG_COSIGNATURE_V1, NoteSigner
from reference_merkle import RefTree

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FILES = ("entries.dat", "checkpoints.dat", "LEDGER.json")
N_ENTRIES = 4  # consortium, pledge, two valuations


def vin(seed: int) -> str:
    body = f"LSVAU2180N{seed:07d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def layout(data: bytes) -> tuple[list[tuple[int, int]], int]:
    """Complete records (start, end) by the documented framing, and where they end."""
    out = []
    pos = 0
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 8 + length
        if end > len(data):
            break
        assert struct.unpack_from(">I", data, end - 4)[0] == zlib.crc32(data[pos : end - 4])
        out.append((pos, end))
        pos = end
    return out, pos


@dataclass
class Variant:
    name: str
    files: dict[str, bytes]
    other: dict[str, bytes]  # operator.skey: read by writers, not audited
    root: bytes  # from the reference implementation


def build(tmp: Path, *, torn: bool) -> Variant:
    op = NoteSigner.generate("ledger.example")
    bank = NoteSigner.generate("bank0.example")
    wit = NoteSigner.generate("bank0.example/w", alg=ALG_COSIGNATURE_V1)
    path = tmp / "template"
    led = AssetLedger.create(
        path,
        origin="autolien.example/flips",
        operator=op,
        members=[Member(bank.name, bank.vkey, wit.vkey)],
        threshold=1,
        time=T0,
    )
    code = led.register_pledge(vin(1), "P-1", actor=bank, time=T0, loan_amount_minor=1_000).event[
        "asset"
    ]
    led.record("valuation_updated", code, {"value_minor": 10}, actor=bank, time=T0 + timedelta(1))
    note = led.checkpoint()  # covers 3 of the 4 entries
    w = Witness(wit, op.vkey, led.origin)
    led.add_cosignature(note, w.cosign(note, [], timestamp=1_700_000_000))
    led.record("valuation_updated", code, {"value_minor": 11}, actor=bank, time=T0 + timedelta(2))
    led.close()
    files = {f: (path / f).read_bytes() for f in FILES}
    records, end = layout(files["entries.dat"])
    assert len(records) == N_ENTRIES
    assert end == len(files["entries.dat"])
    cps, end = layout(files["checkpoints.dat"])
    assert len(cps) == 2
    assert end == len(files["checkpoints.dat"])
    payloads = [files["entries.dat"][s + 4 : e - 4] for s, e in records]
    if torn:
        # What a writer killed mid-append leaves: a prefix of the next record.
        nxt = payloads[-1].replace(b'"seq":3', b'"seq":4')
        files["entries.dat"] += (struct.pack(">I", len(nxt)) + nxt)[:45]
        cp = files["checkpoints.dat"]
        files["checkpoints.dat"] += cp[cps[0][0] : cps[0][1]][:30]
    shutil.rmtree(path)
    return Variant(
        "torn" if torn else "clean",
        files,
        {"operator.skey": op.skey.encode() + b"\n"},
        RefTree(payloads).root(N_ENTRIES),
    )


def flips(v: Variant) -> list[tuple[str, int, int]]:
    """(file, byte offset, xor mask): every byte, then every length-field bit."""
    out = [(f, i, 0xFF) for f in FILES for i in range(len(v.files[f]))]
    for f in ("entries.dat", "checkpoints.dat"):
        data = v.files[f]
        records, end = layout(data)
        starts = [s for s, _ in records] + ([end] if end + 4 <= len(data) else [])
        out += [(f, s + byte, 1 << bit) for s in starts for byte in range(4) for bit in range(8)]
    return out


def expected_record(v: Variant, file: str, offset: int) -> tuple[int, bool]:
    """The start of the record holding ``offset``, and whether it is in the torn tail."""
    records, end = layout(v.files[file])
    for s, e in records:
        if s <= offset < e:
            return s, False
    assert offset >= end
    return end, True


def check_flip(v: Variant, d: Path, file: str, offset: int, mask: int) -> str:
    for f, b in (v.files | v.other).items():
        (d / f).write_bytes(b)
    damaged = bytearray(v.files[file])
    damaged[offset] ^= mask
    (d / file).write_bytes(bytes(damaged))
    before = {f: (d / f).read_bytes() for f in FILES}
    where = f"{v.name}: {file} byte {offset} ^ {mask:#04x}"

    rep = audit(d)
    detected = not rep.ok
    if detected:
        assert rep.first_bad is not None, where
        assert rep.reason, where
        assert rep.first_bad["file"] == file, (where, rep.first_bad)
    if file == "LEDGER.json":
        try:
            same = json.loads(damaged) == json.loads(v.files[file])
        except ValueError:
            same = False
        assert detected or same, (where, "silent pass")
        harmless = not detected
    else:
        start, in_tail = expected_record(v, file, offset)
        if detected:
            assert rep.first_bad["offset"] == start, (where, rep.first_bad)  # type: ignore[index]
        else:
            assert in_tail, (where, "silent pass outside a torn tail")
        harmless = not detected
    if harmless:
        assert rep.entries == N_ENTRIES, where
        assert bytes.fromhex(rep.root) == v.root, where
        assert rep.checkpoints == 2, where

    # A writer either refuses and leaves every byte, or keeps every entry.
    try:
        led = AssetLedger.open(d)
    except (AutolienError, ValueError) as e:
        refusal: BaseException | None = e
    else:
        refusal = None
    if refusal is not None:
        assert detected, (where, "the writer refused what the audit passed", refusal)
        assert {f: (d / f).read_bytes() for f in FILES} == before, (where, "refusal changed bytes")
        return "detected"
    with led:
        assert led.size == N_ENTRIES, where
        assert led.root() == v.root, where
    assert harmless, (where, "a writer opened what the audit failed")
    for f in ("entries.dat", "checkpoints.dat"):
        _, end = layout(v.files[f])
        assert (d / f).read_bytes() == v.files[f][:end], (where, "more than the torn tail was cut")
    return "harmless"


@pytest.mark.parametrize("torn", [False, True], ids=["clean", "torn-tail"])
def test_every_flip_is_detected_or_provably_harmless(tmp_path: Path, torn: bool) -> None:
    v = build(tmp_path, torn=torn)
    d = tmp_path / "ledger"
    d.mkdir()
    outcomes: dict[str, int] = {}
    cases = flips(v)
    for file, offset, mask in cases:
        o = check_flip(v, d, file, offset, mask)
        outcomes[f"{file}:{o}"] = outcomes.get(f"{file}:{o}", 0) + 1
    # Outside a torn tail nothing is harmless; inside one, a flip of the torn
    # record's payload is (its length bits may also make it look complete).
    assert outcomes.get("LEDGER.json:harmless", 0) == 0
    n_torn = sum(
        len(v.files[f]) - layout(v.files[f])[1] for f in ("entries.dat", "checkpoints.dat")
    )
    harmless = outcomes.get("entries.dat:harmless", 0) + outcomes.get("checkpoints.dat:harmless", 0)
    assert harmless <= n_torn + 2 * 32
    if not torn:
        assert harmless == 0
    else:
        assert harmless > 0
    assert sum(outcomes.values()) == len(cases)


def test_flip_cases_cover_every_byte_and_length_bit(tmp_path: Path) -> None:
    v = build(tmp_path, torn=False)
    cases = flips(v)
    total = sum(len(b) for b in v.files.values())
    assert len([c for c in cases if c[2] == 0xFF]) == total
    assert len([c for c in cases if c[2] != 0xFF]) == (N_ENTRIES + 2) * 32
    # The template really holds a witness cosignature.
    assert b"bank0.example/w" in v.files["checkpoints.dat"]
