"""Truncated proofs whose partial fold matches a real subtree root.

A verifier that forgets the final ``sn == 0`` check (RFC 9162 2.1.3.2 and
2.1.4.2) accepts these: the fold stops at an inner node and that node's hash
is passed as the root. The reference verifier (tests/reference_merkle.py,
from the RFC's recursive definition) rejects them, and so must ours."""

from __future__ import annotations

import pytest

from autolien.ledger import MerkleLog, leaf_hash, node_hash, verify_consistency, verify_inclusion
from reference_merkle import RefTree, ref_verify_consistency, ref_verify_inclusion

LEAVES = [f"leaf {i}".encode() for i in range(40)]
TREE = RefTree(LEAVES)


def test_inclusion_with_a_proof_one_level_short() -> None:
    # tree of 4: leaf 0's proof is [h1, h(2,3)]; without the last element the
    # fold ends at node(h0, h1), which is a real node but not the root
    h0, h1 = leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])
    inner = node_hash(h0, h1)
    assert inner == TREE.mth(0, 2)
    assert not ref_verify_inclusion(h0, 0, 4, [h1], inner)
    assert not verify_inclusion(h0, 0, 4, [h1], inner)
    # the whole proof does verify
    assert verify_inclusion(h0, 0, 4, [h1, TREE.mth(2, 4)], TREE.root(4))


def test_inclusion_with_an_empty_proof_and_the_leaf_as_root() -> None:
    h0 = leaf_hash(LEAVES[0])
    assert not ref_verify_inclusion(h0, 0, 2, [], h0)
    assert not verify_inclusion(h0, 0, 2, [], h0)
    assert verify_inclusion(h0, 0, 1, [], h0)  # size 1: the leaf is the root


@pytest.mark.parametrize("size", range(2, 17))
def test_every_truncated_inclusion_proof_is_rejected(size: int) -> None:
    rejected = 0
    for m in range(size):
        proof = TREE.inclusion_proof(m, size)
        for t in range(len(proof)):
            lo = m - m % (1 << t)
            if lo + (1 << t) > size:
                continue  # no aligned subtree of that height holds m
            inner = TREE.mth(lo, lo + (1 << t))
            lh = TREE.leaf_hashes[m]
            assert not ref_verify_inclusion(lh, m, size, proof[:t], inner)
            assert not verify_inclusion(lh, m, size, proof[:t], inner), (m, size, t)
            rejected += 1
    assert rejected >= size  # at least the empty proof of every leaf


def test_consistency_with_a_proof_one_level_short() -> None:
    # 1 -> 4: the proof is [h1, h(2,3)]; cut after h1 the new-tree fold is
    # node(h0, h1): a real node of the new tree, not its root
    h0, h1 = leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])
    inner = node_hash(h0, h1)
    assert not ref_verify_consistency(1, 4, [h1], h0, inner)
    assert not verify_consistency(1, 4, [h1], h0, inner)
    assert verify_consistency(1, 4, [h1, TREE.mth(2, 4)], h0, TREE.root(4))


@pytest.mark.parametrize("size1", [1, 2, 4, 8])
def test_every_truncated_consistency_proof_is_rejected(size1: int) -> None:
    rejected = 0
    for size2 in range(size1 + 1, 41):
        proof = TREE.consistency_proof(size1, size2)
        assert verify_consistency(size1, size2, proof, TREE.root(size1), TREE.root(size2))
        for t in range(1, len(proof)):
            top = size1 << t
            if top > size2:
                continue
            inner = TREE.mth(0, top)  # the old tree grown t levels: a node of the new one
            args = (size1, size2, proof[:t], TREE.root(size1), inner)
            assert not ref_verify_consistency(*args)
            assert not verify_consistency(*args), (size1, size2, t)
            rejected += 1
    assert rejected >= 1


def test_the_hash_choice_reaches_both_verifiers() -> None:
    # a Keccak-256 log's proofs verify only under Keccak-256
    log = MerkleLog("keccak256")
    for d in LEAVES[:7]:
        log.append(d)
    ref = RefTree(LEAVES[:7], "keccak256")
    assert log.root() == ref.root(7)
    proof = log.consistency_proof(3, 7)
    assert verify_consistency(3, 7, proof, ref.root(3), ref.root(7), hash="keccak256")
    assert not verify_consistency(3, 7, proof, ref.root(3), ref.root(7))
    inc = log.inclusion_proof(5)
    lh = ref.leaf_hashes[5]
    assert verify_inclusion(lh, 5, 7, inc, ref.root(7), hash="keccak256")
    assert not verify_inclusion(lh, 5, 7, inc, ref.root(7))


def test_the_hash_choice_reaches_node_hash() -> None:
    # RFC 6962 interior node H(0x01 || left || right), against an independent
    # Keccak-256 (safe-pysha3) and hashlib's SHA-256
    import hashlib

    import sha3

    left, right = leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])
    want_k = sha3.keccak_256(b"\x01" + left + right).digest()
    assert node_hash(left, right, hash="keccak256") == want_k
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert want_k != node_hash(left, right)


def test_extend_input_checks_and_the_cpu_fallback() -> None:
    import hashlib

    import numpy as np
    import pyarrow as pa

    from autolien.gpu import available

    want = MerkleLog()
    want.extend([b"", b""])
    # empty records from Arrow (a data buffer of size 0)
    log = MerkleLog()
    assert log.extend(pa.array([b"", b""], pa.binary())) == (0, 2)
    assert log.root() == want.root()
    assert (
        want.root() == hashlib.sha256(b"\x01" + leaf_hash(b"") + leaf_hash(b"")).digest()
    )  # RFC 6962 by hand
    with pytest.raises(ValueError, match=r"^items must not contain nulls: a null record"):
        MerkleLog().extend(pa.array([b"a", None], pa.binary()))
    for one in (b"ab", "ab"):
        with pytest.raises(TypeError, match=f"got a single {type(one).__name__}$"):
            MerkleLog().extend(one)
    for bad in (np.zeros(5, np.uint8), np.zeros((2, 3), np.float64)):
        with pytest.raises(ValueError, match="must be 2-D uint8"):
            MerkleLog().extend(bad)
    with pytest.raises(TypeError, match=r"^size must be int"):
        want.root("1")  # type: ignore[arg-type]
    if not available().usable:
        # "auto" without a device is the CPU path, bit for bit
        log = MerkleLog()
        assert log.extend([b"a", b"bc"], backend="auto") == (0, 2)
        ref = MerkleLog()
        ref.extend([b"a", b"bc"])
        assert log.root() == ref.root()
