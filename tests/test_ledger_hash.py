"""SHA-256 and Keccak-256 against published vectors, on every back end."""

from __future__ import annotations

import hashlib

import pytest
import sha3
from hypothesis import given
from hypothesis import strategies as st

from autolien import _core
from autolien.ledger import keccak256, sha256
from conftest import load_json

NIST = load_json("merkle/sha256_nist_cavp.json")
KAT = load_json("merkle/keccak256_kat.json")


def test_nist_cavp_short_and_long(sha256_backend: str) -> None:
    vectors = NIST["short_msg"] + NIST["long_msg"]
    assert len(vectors) == 129
    for v in vectors:
        assert sha256(bytes.fromhex(v["msg"])).hex() == v["md"], (sha256_backend, v["len_bits"])


def test_fips180_abc(sha256_backend: str) -> None:
    for v in NIST["fips180_examples"]:
        assert sha256(v["msg_ascii"].encode()).hex() == v["md"]


def test_backends_agree_on_every_length() -> None:
    if not _core.sha256_shani_supported():
        pytest.skip("CPU has no SHA extensions")
    data = bytes(range(256)) * 3
    before = _core.sha256_backend()
    try:
        out = {}
        for be in ("portable", "shani"):
            _core.sha256_set_backend(be)
            out[be] = [sha256(data[:n]) for n in range(len(data))]
        assert out["portable"] == out["shani"]
    finally:
        _core.sha256_set_backend(before)


@given(st.binary(max_size=600))
def test_sha256_matches_hashlib(data: bytes) -> None:
    assert sha256(data) == hashlib.sha256(data).digest()


def test_keccak_team_short_msg_kat() -> None:
    vectors = KAT["keccak_256_short_msg"]
    assert len(vectors) == 256
    for v in vectors:
        assert keccak256(bytes.fromhex(v["msg"])).hex() == v["md"], v["len_bits"]


def test_keccak_is_not_sha3() -> None:
    # Same messages, different padding: every SHA3-256 digest must differ.
    sha3_vectors = KAT["sha3_256_short_msg_same_messages"]
    for v in sha3_vectors:
        assert keccak256(bytes.fromhex(v["msg"])).hex() != v["md"]
    assert keccak256(b"").hex() == KAT["ethereum_empty"]["keccak256('')"]


@given(st.binary(max_size=700))
def test_keccak_matches_pysha3(data: bytes) -> None:
    assert keccak256(data) == sha3.keccak_256(data).digest()


def test_accepts_buffers_and_rejects_other_types() -> None:
    assert sha256(bytearray(b"abc")) == sha256(memoryview(b"abc")) == sha256(b"abc")
    with pytest.raises(TypeError, match="data must be bytes-like"):
        sha256("abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data must be bytes-like"):
        keccak256(None)  # type: ignore[arg-type]


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="backend must be"):
        _core.sha256_set_backend("gpu")
