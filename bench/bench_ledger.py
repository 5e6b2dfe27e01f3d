"""Ledger kernel against its peers on the same data in one run, at three sizes.

* build: batch-building a log of n records of 100 bytes (n = 1e4, 1e5, 1e6);
* proofs: inclusion proofs per second on a log of n leaves;
* verify: inclusion proofs verified per second on a log of n leaves.

Peers: a pure-Python hashlib build (what one writes without us) and pymerkle 7
(bench extra only; GPLv3, never imported by the package). Each peer checks it
got our root or our proof, so a ratio never compares different work.
"""

from __future__ import annotations

import hashlib
import random
from functools import cache
from typing import Any

import numpy as np
import pytest

from autolien import _core
from autolien.ledger import MerkleLog, verify_inclusion
from conftest import require_module, size, sizes, tag

SIZES = sizes((10_000, 100_000, 1_000_000), (100, 1_000, 10_000))
N_PROOFS = size(20_000, 300)
RECORD = 100


@cache
def rows(n: int) -> np.ndarray:
    return np.random.default_rng(2024).integers(0, 256, size=(SIZES[-1], RECORD), dtype=np.uint8)[
        :n
    ]


@cache
def records(n: int) -> list[bytes]:
    return [r.tobytes() for r in rows(n)]


@cache
def built(n: int) -> MerkleLog:
    log = MerkleLog()
    log.extend(rows(n))
    return log


@cache
def hashlib_levels(n: int) -> list[list[bytes]]:
    return hashlib_build(records(n))


@cache
def pymerkle_tree(n: int) -> Any:
    pymerkle = require_module("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    tree.append_entries(records(n))
    return tree


def indices(n: int) -> list[int]:
    rnd = random.Random(7)
    return [rnd.randrange(n) for _ in range(N_PROOFS)]


# --- pure-Python hashlib reference --------------------------------------------


def hashlib_build(recs: list[bytes]) -> list[list[bytes]]:
    sha = hashlib.sha256
    level = [sha(b"\x00" + r).digest() for r in recs]
    levels = [level]
    while len(level) > 1:
        level = [
            sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        levels.append(level)
    return levels


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


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_list(benchmark: Any, n: int) -> None:
    # Expected results are built before tag() opens the peak-memory window.
    recs, want = records(n), hashlib_subtree(hashlib_levels(n), 0, n)
    tag(benchmark, "ours", f"MerkleLog.extend(list) {_core.sha256_backend()}", n, size=n)

    def run() -> bytes:
        log = MerkleLog()
        log.extend(recs)
        return log.root()

    root = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert root == want


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_array(benchmark: Any, n: int) -> None:
    arr = rows(n)
    tag(benchmark, "ours", f"MerkleLog.extend(ndarray) {_core.sha256_backend()}", n, size=n)

    def run() -> bytes:
        log = MerkleLog()
        log.extend(arr)
        return log.root()

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-build")
def test_build_ours_one_thread(benchmark: Any, n: int) -> None:
    recs = records(n)
    before = _core.get_num_threads()
    _core.set_num_threads(1)
    tag(benchmark, "ours", "MerkleLog.extend(list) 1 thread", n, size=n)
    try:

        def run() -> bytes:
            log = MerkleLog()
            log.extend(recs)
            return log.root()

        benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    finally:
        _core.set_num_threads(before)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-build")
def test_build_peer_hashlib(benchmark: Any, n: int) -> None:
    recs, want = records(n), built(n).root()
    tag(benchmark, "peer", "pure-Python hashlib", n, size=n)
    levels = benchmark.pedantic(hashlib_build, args=(recs,), rounds=1, iterations=1)
    assert hashlib_subtree(levels, 0, n) == want


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-build")
def test_build_peer_pymerkle(benchmark: Any, n: int) -> None:
    pymerkle = require_module("pymerkle")
    recs, want = records(n), built(n).root()
    tag(benchmark, "peer", "pymerkle 7 InmemoryTree", n, size=n)

    def run() -> Any:
        tree = pymerkle.InmemoryTree(algorithm="sha256")
        tree.append_entries(recs)
        return tree

    tree = benchmark.pedantic(run, rounds=1, iterations=1)
    assert tree.get_root() == want


# --- proofs ----------------------------------------------------------------------


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_ours(benchmark: Any, n: int) -> None:
    log, idx = built(n), indices(n)
    tag(benchmark, "ours", "MerkleLog.inclusion_proof", len(idx), size=n)
    prove = log.inclusion_proof
    benchmark.pedantic(lambda: [prove(i, n) for i in idx], rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_ours_batch(benchmark: Any, n: int) -> None:
    log, idx = built(n), np.asarray(indices(n), dtype=np.int64)
    tag(benchmark, "ours", "MerkleLog.inclusion_proofs (batch, Arrow)", len(idx), size=n)
    out = benchmark.pedantic(
        lambda: log.inclusion_proofs(idx, n), rounds=5, iterations=1, warmup_rounds=1
    )
    assert out[0].as_py() == log.inclusion_proof(int(idx[0]), n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_peer_hashlib(benchmark: Any, n: int) -> None:
    levels, idx = hashlib_levels(n), indices(n)
    tag(benchmark, "peer", "pure-Python hashlib", len(idx), size=n)
    proofs = benchmark.pedantic(
        lambda: [hashlib_proof(levels, i, n) for i in idx], rounds=1, iterations=1
    )
    assert proofs[0] == built(n).inclusion_proof(idx[0], n)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-proofs")
def test_proofs_peer_pymerkle(benchmark: Any, n: int) -> None:
    tree, idx = pymerkle_tree(n), indices(n)
    tag(benchmark, "peer", "pymerkle 7 prove_inclusion", len(idx), size=n)
    # pymerkle indices are 1-based.
    benchmark.pedantic(
        lambda: [tree.prove_inclusion(i + 1, n) for i in idx], rounds=1, iterations=1
    )


# --- verification --------------------------------------------------------------------


@cache
def proofs_for(n: int) -> list[tuple[bytes, int, list[bytes]]]:
    log = built(n)
    return [(log.leaf_hash(i), i, log.inclusion_proof(i, n)) for i in indices(n)]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-verify")
def test_verify_ours(benchmark: Any, n: int) -> None:
    ps, root = proofs_for(n), built(n).root()
    tag(benchmark, "ours", "verify_inclusion", len(ps), size=n)
    ok = benchmark.pedantic(
        lambda: all(verify_inclusion(leaf, i, n, p, root) for leaf, i, p in ps),
        rounds=5,
        iterations=1,
    )
    assert ok


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="ledger-verify")
def test_verify_peer_hashlib(benchmark: Any, n: int) -> None:
    ps, root = proofs_for(n), built(n).root()
    tag(benchmark, "peer", "pure-Python hashlib", len(ps), size=n)
    ok = benchmark.pedantic(
        lambda: all(hashlib_verify(leaf, i, n, p, root) for leaf, i, p in ps),
        rounds=1,
        iterations=1,
    )
    assert ok
