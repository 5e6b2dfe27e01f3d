"""C2SP signed notes, checkpoints and cosignatures against the published examples."""

from __future__ import annotations

import base64

import pytest

from autolien.errors import SignatureError
from autolien.ledger.note import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign_checkpoint,
    cosignature_message,
    key_id,
    open_note,
    sign_note,
)
from conftest import load_json

V = load_json("merkle/c2sp_signed_notes_checkpoints.json")


def _note(entry: dict[str, object]) -> str:
    if "note" in entry:
        return str(entry["note"])
    lines = "".join(f"{line}\n" for line in entry["signature_lines"])  # type: ignore[attr-defined]
    return f"{entry['text']}\n{lines}"


@pytest.mark.parametrize("entry", V["verifiable_notes"], ids=lambda e: e["source"][:40])
def test_published_notes_verify(entry: dict[str, object]) -> None:
    vkey = str(entry.get("vkey") or entry["vkey_derived_here"])
    verifier = NoteVerifier.from_vkey(vkey)
    note = open_note(_note(entry), [verifier])
    assert note.text == entry["text"]
    assert [s.verified for s in note.signatures] == [True]
    # One flipped bit in the text breaks it.
    text = str(entry["text"])
    tampered = _note(entry).replace(text, text[:-2] + chr(ord(text[-2]) ^ 1) + "\n", 1)
    with pytest.raises(SignatureError, match="does not verify"):
        open_note(tampered, [verifier])


def test_sum_golang_org_checkpoint_parses() -> None:
    entry = next(e for e in V["verifiable_notes"] if e["vkey"].startswith("sum.golang.org"))
    cp = Checkpoint.parse(entry["text"])
    assert (cp.origin, cp.size) == ("go.sum database tree", 6476701)
    assert cp.text() == entry["text"]
    assert len(cp.root) == 32


@pytest.mark.parametrize("entry", V["key_encoding_vectors"], ids=lambda e: e["label"])
def test_key_encodings(entry: dict[str, str]) -> None:
    signer = NoteSigner.from_skey(entry["skey"])
    assert signer.skey == entry["skey"]
    assert signer.vkey == entry["vkey"]
    assert NoteVerifier.from_vkey(entry["vkey"]).vkey == entry["vkey"]


def test_sign_and_open_round_trip_with_unknown_signers() -> None:
    a, b = NoteSigner.generate("a.example"), NoteSigner.generate("b.example")
    note = sign_note("hello\n", [a, b])
    opened = open_note(note, [a.verifier])
    assert [(s.name, s.verified) for s in opened.signatures] == [
        ("a.example", True),
        ("b.example", False),
    ]
    with pytest.raises(SignatureError, match="no signature from a known key"):
        open_note(note, [NoteSigner.generate("c.example").verifier])
    # A verifier with the right name but another key: not known, so not used.
    imposter = NoteSigner.generate("a.example").verifier
    with pytest.raises(SignatureError, match="no signature from a known key"):
        open_note(note, [imposter])


def test_malformed_notes_and_keys() -> None:
    with pytest.raises(SignatureError):
        open_note("no signatures here\n", [])
    with pytest.raises(ValueError, match="newline"):
        sign_note("no newline", [NoteSigner.generate("x")])
    name, _, rest = V["key_encoding_vectors"][0]["vkey"].split("+", 2)
    with pytest.raises(ValueError, match="key ID"):
        NoteVerifier.from_vkey(f"{name}+00000000+{rest}")
    with pytest.raises(ValueError, match="checkpoint size"):
        Checkpoint.parse("origin\n012\nAAAA\n")


def test_unverifiable_example_parses_into_its_fields() -> None:
    ex = V["unverifiable_examples"][0]
    cp = Checkpoint.parse(ex["text"])
    assert cp.size == 20852163
    log_line, witness_line = ex["signature_lines"]
    log_blob = base64.b64decode(log_line.split(" ")[2])
    wit_blob = base64.b64decode(witness_line.split(" ")[2])
    assert log_blob[:4].hex() == ex["parsed"]["log_sig_key_id_hex"]
    assert len(log_blob) - 4 == ex["parsed"]["log_sig_len"]
    assert wit_blob[:4].hex() == ex["parsed"]["witness_key_id_hex"]
    assert int.from_bytes(wit_blob[4:12], "big") == ex["parsed"]["witness_timestamp_u64_be"]


def test_cosignature_message_format_and_verification() -> None:
    ex = V["cosignature_v1_message_example"]
    body = ex["signed_message"].split("\n", 2)[2]
    assert cosignature_message(body, 1679315147).decode() == ex["signed_message"]

    log = NoteSigner.generate("example.com/log")
    witness = NoteSigner.generate("witness.example/w1", alg=ALG_COSIGNATURE_V1)
    assert witness.key_id == key_id(witness.name, 0x04, witness.public_key)
    note = sign_note(body, [log])
    cosigned = note + cosign_checkpoint(body, witness, 1679315147)
    opened = open_note(cosigned, [log.verifier, witness.verifier])
    assert all(s.verified for s in opened.signatures)
    # The timestamp is signed: changing it breaks the cosignature.
    line = cosign_checkpoint(body, witness, 1679315147)
    blob = bytearray(base64.b64decode(line.split(" ")[2]))
    blob[11] ^= 1
    bad = note + f"\u2014 {witness.name} {base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(SignatureError):
        open_note(bad, [log.verifier, witness.verifier])
