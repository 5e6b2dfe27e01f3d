"""Ledger kernel against its peers on the same data in one run.

* build: batch-building a log of N records of 100 bytes (1e6 by default);
* proofs: inclusion proofs generated per second on that log;
* verify: inclusion proofs verified per second.

Peers: a pure-Python hashlib build (the natural thing to write without us) and
pymerkle 7 (bench extra only; GPLv3, never imported by the package).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import pytest

from autolien import _core
from autolien.ledger import MerkleLog, verify_inclusion
from conftest import size, tag

N = size(1_000_000, 10_000)
N_PROOFS = size(20_000, 500)
RECORD = 100


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(2024).integers(0, 256, size=(N, RECORD), dtype=np.uint8)


@pytest.fixture(scope="module")
def records(rows: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in rows]


@pytest.fixture(scope="module")
def built(records: list[bytes]) -> MerkleLog:
    log = MerkleLog()
    log.extend(records)
    return log


@pytest.fixture(scope="module")
def indices() -> list[int]:
    rnd = random.Random(7)
    return [rnd.randrange(N) for _ in range(N_PROOFS)]


# --- pure-Python hashlib reference --------------------------------------------


def hashlib_build(records: list[bytes]) -> list[list[bytes]]:
    sha = hashlib.sha256
    level = [sha(b"\x00" + r).digest() for r in records]
    levels = [level]
    while len(level) > 1:
        level = [
            sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        levels.append(level)
    return levels


def hashlib_root(levels: list[list[bytes]], n: int) -> bytes:
    return hashlib_subtree(levels, 0, n)


def hashlib_subtree(levels: list[list[bytes]], lo: int, hi: int) -> bytes:
    parts = []
    pos = lo
    while pos < hi:
        width = 1 << ((hi - pos).bit_length() - 1)
        k = width.bit_length() - 1
        parts.append(levels[k][pos >> k])
        pos += width
    acc = parts[-1]
    for p in reversed(parts[:-1]):
        acc = hashlib.sha256(b"\x01" + p + acc).digest()
    return acc


def hashlib_proof(levels: list[list[bytes]], index: int, n: int) -> list[bytes]:
    proof = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if index < lo + k:
            proof.append(hashlib_subtree(levels, lo + k, hi))
            hi = lo + k
        else:
            proof.append(hashlib_subtree(levels, lo, lo + k))
            lo += k
    return proof[::-1]


def hashlib_verify(leaf: bytes, index: int, n: int, proof: list[bytes], root: bytes) -> bool:
    fn, sn, r = index, n - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- build ----------------------------------------------------------------------


@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_list(benchmark: Any, records: list[bytes]) -> None:
    tag(benchmark, "ours", f"MerkleLog.extend(list) {_core.sha256_backend()}", N)

    def run() -> bytes:
        log = MerkleLog()
        log.extend(records)
        return log.root()

    root = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert root == hashlib_root(hashlib_build(records[:N]), N) if N <= 20_000 else len(root) == 32


@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_array(benchmark: Any, rows: np.ndarray) -> None:
    tag(benchmark, "ours", f"MerkleLog.extend(ndarray) {_core.sha256_backend()}", N)

    def run() -> bytes:
        log = MerkleLog()
        log.extend(rows)
        return log.root()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_one_thread(benchmark: Any, records: list[bytes]) -> None:
    tag(benchmark, "ours", "MerkleLog.extend(list) 1 thread", N)
    before = _core.get_num_threads()
    _core.set_num_threads(1)
    try:

        def run() -> bytes:
            log = MerkleLog()
            log.extend(records)
            return log.root()

        benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    finally:
        _core.set_num_threads(before)


@pytest.mark.benchmark(group="ledger-build")
def test_build_peer_hashlib(benchmark: Any, records: list[bytes], built: MerkleLog) -> None:
    tag(benchmark, "peer", "pure-Python hashlib", N)
    levels = benchmark.pedantic(hashlib_build, args=(records,), rounds=1, iterations=1)
    assert hashlib_root(levels, N) == built.root()


@pytest.mark.benchmark(group="ledger-build")
def test_build_peer_pymerkle(benchmark: Any, records: list[bytes], built: MerkleLog) -> None:
    pymerkle = pytest.importorskip("pymerkle")
    tag(benchmark, "peer", "pymerkle 7 InmemoryTree", N)

    def run() -> Any:
        tree = pymerkle.InmemoryTree(algorithm="sha256")
        tree.append_entries(records)
        return tree

    tree = benchmark.pedantic(run, rounds=1, iterations=1)
    assert tree.get_root() == built.root()


# --- proofs -------------------------------------------------------------------------


@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_ours(benchmark: Any, built: MerkleLog, indices: list[int]) -> None:
    tag(benchmark, "ours", "MerkleLog.inclusion_proof", len(indices))
    prove = built.inclusion_proof
    benchmark.pedantic(
        lambda: [prove(i, N) for i in indices], rounds=5, iterations=1, warmup_rounds=1
    )


@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_ours_batch(benchmark: Any, built: MerkleLog, indices: list[int]) -> None:
    tag(benchmark, "ours", "MerkleLog.inclusion_proofs (batch, Arrow)", len(indices))
    idx = np.asarray(indices, dtype=np.int64)
    out = benchmark.pedantic(
        lambda: built.inclusion_proofs(idx, N), rounds=5, iterations=1, warmup_rounds=1
    )
    assert out[0].as_py() == built.inclusion_proof(indices[0], N)


@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_peer_hashlib(
    benchmark: Any, records: list[bytes], built: MerkleLog, indices: list[int]
) -> None:
    tag(benchmark, "peer", "pure-Python hashlib", len(indices))
    levels = hashlib_build(records)
    proofs = benchmark.pedantic(
        lambda: [hashlib_proof(levels, i, N) for i in indices], rounds=1, iterations=1
    )
    assert proofs[0] == built.inclusion_proof(indices[0], N)


@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_peer_pymerkle(benchmark: Any, records: list[bytes], indices: list[int]) -> None:
    pymerkle = pytest.importorskip("pymerkle")
    tag(benchmark, "peer", "pymerkle 7 prove_inclusion", len(indices))
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    tree.append_entries(records)
    # pymerkle indices are 1-based.
    benchmark.pedantic(
        lambda: [tree.prove_inclusion(i + 1, N) for i in indices], rounds=1, iterations=1
    )


# --- verification ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def proofs(built: MerkleLog, indices: list[int]) -> list[tuple[bytes, int, list[bytes]]]:
    return [(built.leaf_hash(i), i, built.inclusion_proof(i, N)) for i in indices]


@pytest.mark.benchmark(group="ledger-verify")
def test_verify_ours(
    benchmark: Any, built: MerkleLog, proofs: list[tuple[bytes, int, list[bytes]]]
) -> None:
    tag(benchmark, "ours", "verify_inclusion", len(proofs))
    root = built.root()
    ok = benchmark.pedantic(
        lambda: all(verify_inclusion(leaf, i, N, p, root) for leaf, i, p in proofs),
        rounds=5,
        iterations=1,
    )
    assert ok


@pytest.mark.benchmark(group="ledger-verify")
def test_verify_peer_hashlib(
    benchmark: Any, built: MerkleLog, proofs: list[tuple[bytes, int, list[bytes]]]
) -> None:
    tag(benchmark, "peer", "pure-Python hashlib", len(proofs))
    root = built.root()
    ok = benchmark.pedantic(
        lambda: all(hashlib_verify(leaf, i, N, p, root) for leaf, i, p in proofs),
        rounds=1,
        iterations=1,
    )
    assert ok
