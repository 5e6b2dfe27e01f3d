"""Property tests of the log against the independent reference (tests/reference_merkle.py).

For random sizes up to 2,000 leaves, every inclusion proof and every
consistency proof must equal the reference's, verify, and every mutation of it
must be rejected by our verifier exactly when the reference rejects it.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from autolien.ledger import MerkleLog, verify_consistency, verify_inclusion
from reference_merkle import RefTree, ref_verify_consistency, ref_verify_inclusion


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8 % 32] ^= 1 << (bit % 8)
    return bytes(b)


def _proof_mutations(proof: list[bytes], rnd: random.Random) -> list[list[bytes]]:
    out: list[list[bytes]] = [
        [*proof[:i], _flip(proof[i], rnd.randrange(256)), *proof[i + 1 :]]
        for i in range(len(proof))
    ]
    if proof:
        out.append(proof[:-1])
        out.append(proof[1:])
        out.append(
            list(reversed(proof)) if len(proof) > 1 and proof[0] != proof[-1] else proof[:-1]
        )
    out.append([*proof, proof[0] if proof else bytes(32)])
    out.append([bytes(32), *proof])
    return out


def _check_inclusion(
    log: MerkleLog, ref: RefTree, hash_name: str, size: int, rnd: random.Random
) -> None:
    root = log.root(size)
    assert root == ref.root(size)
    for index in range(size):
        proof = log.inclusion_proof(index, size)
        assert proof == ref.inclusion_proof(index, size)
        leaf = log.leaf_hash(index)
        assert verify_inclusion(leaf, index, size, proof, root, hash=hash_name)
        for bad in _proof_mutations(proof, rnd):
            assert not verify_inclusion(leaf, index, size, bad, root, hash=hash_name)
        assert not verify_inclusion(
            _flip(leaf, rnd.randrange(256)), index, size, proof, root, hash=hash_name
        )
        assert not verify_inclusion(
            leaf, index, size, proof, _flip(root, rnd.randrange(256)), hash=hash_name
        )
        # Other indices and sizes: must agree with the reference's verdict
        # (false unless the reference proves the tree shape is the same).
        for idx2, size2 in (
            (index + 1, size),
            (index - 1, size),
            (index, size + 1),
            (index, size - 1),
        ):
            want = ref_verify_inclusion(leaf, idx2, size2, proof, root, hash_name)
            assert verify_inclusion(leaf, idx2, size2, proof, root, hash=hash_name) == want


def _check_consistency(
    log: MerkleLog, ref: RefTree, hash_name: str, size2: int, rnd: random.Random
) -> None:
    root2 = log.root(size2)
    for size1 in range(1, size2 + 1):
        proof = log.consistency_proof(size1, size2)
        assert proof == ref.consistency_proof(size1, size2)
        root1 = log.root(size1)
        assert verify_consistency(size1, size2, proof, root1, root2, hash=hash_name)
        assert ref_verify_consistency(size1, size2, proof, root1, root2, hash_name)
        for bad in _proof_mutations(proof, rnd):
            want = ref_verify_consistency(size1, size2, bad, root1, root2, hash_name)
            assert verify_consistency(size1, size2, bad, root1, root2, hash=hash_name) == want
            assert not want or bad == proof
        assert not verify_consistency(size1, size2, proof, _flip(root1, 3), root2, hash=hash_name)
        assert not verify_consistency(size1, size2, proof, root1, _flip(root2, 5), hash=hash_name)
        for s1, s2 in (
            (size1 + 1, size2),
            (size1 - 1, size2),
            (size1, size2 + 1),
            (size1, size2 - 1),
        ):
            want = ref_verify_consistency(s1, s2, proof, root1, root2, hash_name)
            assert verify_consistency(s1, s2, proof, root1, root2, hash=hash_name) == want


@pytest.mark.parametrize("hash_name", ["sha256", "keccak256"])
def test_every_proof_for_all_small_sizes(hash_name: str) -> None:
    rnd = random.Random(1)
    records = [rnd.randbytes(rnd.randrange(0, 120)) for _ in range(70)]
    log = MerkleLog(hash_name)  # type: ignore[arg-type]
    ref = RefTree(records, hash_name)
    for d in records:
        log.append(d)
    for size in range(1, 70):
        _check_inclusion(log, ref, hash_name, size, rnd)
        _check_consistency(log, ref, hash_name, size, rnd)


@settings(max_examples=12)
@example(size=2000, seed=0, batches=[700, 1, 299])
@given(
    size=st.integers(min_value=1, max_value=2000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    batches=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=4),
)
def test_random_sizes_every_proof(size: int, seed: int, batches: list[int]) -> None:
    rnd = random.Random(seed)
    records = [rnd.randbytes(rnd.randrange(0, 200)) for _ in range(size)]
    # Grow the log in random batches, mixing extend and append.
    log = MerkleLog()
    pos = 0
    for b in batches:
        chunk = records[pos : pos + b]
        if len(chunk) == 1:
            log.append(chunk[0])
        else:
            log.extend(chunk)
        pos += len(chunk)
    log.extend(records[pos:])
    ref = RefTree(records)
    _check_inclusion(log, ref, "sha256", size, rnd)
    _check_consistency(log, ref, "sha256", size, rnd)
