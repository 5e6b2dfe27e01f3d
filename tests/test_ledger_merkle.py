"""The RFC 6962 log against transparency-dev/merkle's reference tree and proofs."""

from __future__ import annotations

import base64
import hashlib
import threading

import numpy as np
import pytest

from autolien import _core
from autolien.ledger import (
    MerkleLog,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from conftest import load_json
from reference_merkle import RefTree

REF = load_json("merkle/rfc6962_sha256_reference_tree.json")
# Every probe of transparency-dev/merkle's testdata/{inclusion,consistency},
# with the outcome its reference verifier gives (proof/verify_test.go).
PROBES = load_json("merkle/transparency_dev_proof_probes.json")
LEAVES = [bytes.fromhex(h) for h in REF["leaf_inputs_hex"]]
X = bytes.fromhex


def _log(n: int, hash: str = "sha256") -> MerkleLog:
    log = MerkleLog(hash)  # type: ignore[arg-type]
    for d in LEAVES[:n]:
        log.append(d)
    return log


def test_hasher_vectors(sha256_backend: str) -> None:
    empty, empty_leaf, leaf, node = REF["hasher_vectors"]
    assert MerkleLog().root().hex() == empty["want"]
    assert leaf_hash(b"").hex() == empty_leaf["want"]
    assert leaf_hash(leaf["leaf_ascii"].encode()).hex() == leaf["want"]
    got = node_hash(node["left_ascii"].encode(), node["right_ascii"].encode())
    assert got.hex() == node["want"]


def test_roots_for_every_size(sha256_backend: str) -> None:
    log = _log(8)
    for size, want in REF["root_by_tree_size_hex"].items():
        assert log.root(int(size)).hex() == want, size
    # The same roots when the log is grown one leaf at a time.
    for n in range(9):
        assert _log(n).root().hex() == REF["root_by_tree_size_hex"][str(n)]


def test_node_hashes_by_level() -> None:
    log = _log(8)
    for i, want in enumerate(REF["node_hashes_by_level_hex"][0]):
        assert log.leaf_hash(i).hex() == want
    # Perfect subtrees at higher levels are the roots of aligned ranges.
    for level, row in enumerate(REF["node_hashes_by_level_hex"][1:], start=1):
        for i, want in enumerate(row):
            width = 1 << level
            sub = MerkleLog()
            sub.extend(LEAVES[i * width : (i + 1) * width])
            assert sub.root().hex() == want


def test_upstream_inclusion_proofs(sha256_backend: str) -> None:
    log = _log(8)
    for v in REF["inclusion_proofs"]:
        proof = [X(p) for p in v["proof"]]
        assert log.inclusion_proof(v["leaf_index"], v["tree_size"]) == proof
        assert verify_inclusion(
            X(v["leaf_hash"]), v["leaf_index"], v["tree_size"], proof, X(v["root"])
        )


def test_upstream_consistency_proofs(sha256_backend: str) -> None:
    log = _log(8)
    for v in REF["consistency_proofs"]:
        proof = [X(p) for p in v["proof"]]
        assert log.consistency_proof(v["size1"], v["size2"]) == proof
        assert verify_consistency(v["size1"], v["size2"], proof, X(v["root1"]), X(v["root2"]))


def test_consistency_from_zero_is_never_valid() -> None:
    empty = MerkleLog().root()
    assert not verify_consistency(0, 0, [], empty, empty)
    assert not verify_consistency(0, 1, [], empty, _log(1).root())
    with pytest.raises(ValueError, match="size1"):
        _log(3).consistency_proof(0, 3)


def test_equal_sizes_need_an_empty_proof() -> None:
    r = _log(5).root()
    assert verify_consistency(5, 5, [], r, r)
    assert not verify_consistency(5, 5, [r], r, r)
    assert not verify_consistency(5, 5, [], r, _log(4).root())


def _b64(s: str | None) -> bytes:
    return base64.b64decode(s) if s else b""


def test_consistency_matches_the_reference_on_its_whole_probe_suite() -> None:
    probes = PROBES["consistency"]
    assert len(probes) == 98
    assert sum("/additional/" in k for k in probes) == 14
    wrong = []
    for path, p in probes.items():
        got = verify_consistency(
            p["size1"],
            p["size2"],
            [_b64(h) for h in p["proof"] or []],
            _b64(p["root1"]),
            _b64(p["root2"]),
        )
        if got != (not p["wantErr"]):
            wrong.append(f"{path}: {p['desc']}: got {got}")
    assert wrong == []


def test_inclusion_matches_the_reference_on_its_whole_probe_suite() -> None:
    probes = PROBES["inclusion"]
    assert len(probes) == 98
    assert sum("/additional/" in k or "/single-entry/" in k for k in probes) == 16
    wrong = []
    for path, p in probes.items():
        got = verify_inclusion(
            _b64(p["leafHash"]),
            p["leafIdx"],
            p["treeSize"],
            [_b64(h) for h in p["proof"] or []],
            _b64(p["root"]),
        )
        if got != (not p["wantErr"]):
            wrong.append(f"{path}: {p['desc']}: got {got}")
    assert wrong == []


def test_equal_sizes_compare_roots_of_any_length_as_the_reference() -> None:
    # The probe the issue found: sizes 1 and 1, equal 16-byte roots, no proof.
    p = PROBES["consistency"][
        "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"
    ]
    root = _b64(p["root1"])
    assert root == b"don't care 2"
    assert verify_consistency(1, 1, [], root, root)
    assert verify_consistency(7, 7, [], b"", b"")
    assert not verify_consistency(1, 1, [], root, root + b"!")
    assert not verify_consistency(0, 0, [], root, root)


def test_deliberate_differences_from_the_reference() -> None:
    """Hashes of the wrong length are refused where the reference would hash them.

    The reference's HashChildren concatenates byte strings of any length, so a
    proof built on a 3-byte "root" or a 31-byte sibling verifies there when its
    other side was computed the same way (hand-computed below with hashlib).
    No honest RFC 6962 tree has such nodes; we return False.
    """
    sib = hashlib.sha256(b"sibling").digest()
    odd_root1 = b"abc"
    root2 = hashlib.sha256(b"\x01" + odd_root1 + sib).digest()
    # Reference: size1 = 1 is a power of two, so root2 = H(0x01 || root1 || proof[0]).
    assert not verify_consistency(1, 2, [sib], odd_root1, root2)
    leaf = hashlib.sha256(b"\x00x").digest()
    short = sib[:31]
    root = hashlib.sha256(b"\x01" + leaf + short).digest()
    # Reference: leaf 0 of 2, root = H(0x01 || leaf || proof[0]) whatever its length.
    assert not verify_inclusion(leaf, 0, 2, [short], root)
    # With 32-byte nodes the same shapes verify.
    good_root1 = hashlib.sha256(b"r").digest()
    assert verify_consistency(
        1, 2, [sib], good_root1, hashlib.sha256(b"\x01" + good_root1 + sib).digest()
    )
    assert verify_inclusion(leaf, 0, 2, [sib], hashlib.sha256(b"\x01" + leaf + sib).digest())


def test_verifiers_reject_instead_of_raising() -> None:
    log = _log(8)
    lh, root = log.leaf_hash(5), log.root()
    proof = log.inclusion_proof(5)
    assert verify_inclusion(lh, 5, 8, proof, root)
    bad_args = [
        (lh, 8, 8, proof, root),  # index == size
        (lh, -1, 8, proof, root),  # negative index
        (lh, 5, -8, proof, root),
        (lh, 5, 2**64, proof, root),  # beyond uint64
        (lh, 2**70, 8, proof, root),
        (lh[:31], 5, 8, proof, root),  # short leaf hash
        (lh, 5, 8, proof, root + b"\x00"),  # long root
        (lh, 5, 8, [*proof[:-1], proof[-1][:16]], root),  # short proof element
        (lh, 5, 8, proof[:-1], root),
        (lh, 5, 8, [*proof, proof[0]], root),
        (lh, 5, 0, [], root),
    ]
    for args in bad_args:
        assert verify_inclusion(*args) is False, args
    c = log.consistency_proof(3, 8)
    r3 = log.root(3)
    assert verify_consistency(3, 8, c, r3, root)
    for args in [
        (8, 3, c, r3, root),
        (-3, 8, c, r3, root),
        (3, 8, [], r3, root),
        (3, 2**65, c, r3, root),
    ]:
        assert verify_consistency(*args) is False, args


def test_verifiers_raise_type_error_for_wrong_types() -> None:
    log = _log(4)
    lh, root, proof = log.leaf_hash(1), log.root(), log.inclusion_proof(1)
    with pytest.raises(TypeError, match="leaf_hash"):
        verify_inclusion("00" * 32, 1, 4, proof, root)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index"):
        verify_inclusion(lh, 1.0, 4, proof, root)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="index"):
        verify_inclusion(lh, True, 4, proof, root)
    with pytest.raises(TypeError, match="proof"):
        verify_inclusion(lh, 1, 4, b"".join(proof), root)
    with pytest.raises(TypeError, match=r"proof\[1\]"):
        verify_inclusion(lh, 1, 4, [proof[0], proof[1].hex()], root)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="root2"):
        verify_consistency(1, 4, [], root, None)  # type: ignore[arg-type]
    # A generator is a sequence of bytes too.
    assert verify_inclusion(lh, 1, 4, (p for p in proof), root)  # type: ignore[arg-type]


def test_bad_arguments_name_the_argument() -> None:
    log = _log(4)
    with pytest.raises(IndexError, match="index"):
        log.inclusion_proof(4, 4)
    with pytest.raises(IndexError, match="index"):
        log.leaf_hash(4)
    with pytest.raises(IndexError, match="index"):
        log.leaf_hash(-1)
    with pytest.raises(ValueError, match="size"):
        log.root(5)
    with pytest.raises(ValueError, match="size"):
        log.inclusion_proof(0, 9)
    with pytest.raises(ValueError, match="size1"):
        log.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="size2"):
        log.consistency_proof(1, 9)
    with pytest.raises(TypeError, match="index"):
        log.leaf_hash("0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hash"):
        MerkleLog("md5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"items\[1\]"):
        log.extend([b"ok", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single"):
        log.extend(b"abc")
    assert log.size == 4  # nothing was appended by the failed calls


def test_extend_matches_append_for_every_input_kind(sha256_backend: str) -> None:
    rng = np.random.default_rng(7)
    rows = rng.integers(0, 256, size=(3000, 100), dtype=np.uint8)
    records = [r.tobytes() for r in rows]
    one_by_one = MerkleLog()
    for r in records:
        one_by_one.append(r)
    from_list = MerkleLog()
    assert from_list.extend(records) == (0, 3000)
    from_rows = MerkleLog()
    from_rows.extend(rows)
    mixed = MerkleLog()
    mixed.extend([bytearray(records[0]), memoryview(records[1])])
    mixed.extend(iter(records[2:1234]))
    assert mixed.extend(records[1234:]) == (1234, 3000)
    assert one_by_one.root() == from_list.root() == from_rows.root() == mixed.root()
    ref = RefTree(records)
    assert from_list.root() == ref.root(3000)
    assert from_list.root(1500) == ref.root(1500)


def test_extend_arrow_binary() -> None:
    pa = pytest.importorskip("pyarrow")
    records = [bytes([i % 256]) * (i % 37) for i in range(500)]
    want = MerkleLog()
    want.extend(records)
    for typ in (pa.binary(), pa.large_binary()):
        arr = pa.array(records, type=typ)
        log = MerkleLog()
        assert log.extend(arr.slice(0, 100)) == (0, 100)
        log.extend(pa.chunked_array([arr.slice(100, 250), arr.slice(350)]))
        assert log.root() == want.root()
    with pytest.raises(ValueError, match="null"):
        MerkleLog().extend(pa.array([b"a", None]))
    with pytest.raises(TypeError, match="binary"):
        MerkleLog().extend(pa.array([1, 2]))


def test_hot_array_argument_is_not_silently_copied() -> None:
    rows = np.zeros((10, 8), dtype=np.uint8, order="F")
    log = _core.MerkleLog()
    with pytest.raises(TypeError):
        log.extend_rows(rows)
    with pytest.raises(TypeError):
        log.extend_rows(np.zeros((10, 8), dtype=np.int16))
    # The public wrapper makes the copy explicit instead.
    pub = MerkleLog()
    pub.extend(rows)
    assert pub.size == 10


def test_batch_inclusion_proofs_equal_single_proofs() -> None:
    log = MerkleLog()
    log.extend([i.to_bytes(3, "big") for i in range(1000)])
    idx = [0, 999, 500, 511, 512, 3, 3]
    for size in (1000, 513, 4):
        want = [log.inclusion_proof(i, size) for i in idx if i < size]
        got = log.inclusion_proofs([i for i in idx if i < size], size)
        assert got.to_pylist() == want
    assert log.inclusion_proofs([], 10).to_pylist() == []
    with pytest.raises(IndexError, match=r"indices\[1\]"):
        log.inclusion_proofs([1, 1000])
    with pytest.raises(IndexError, match=r"indices\[0\]"):
        log.inclusion_proofs([-1])
    with pytest.raises(ValueError, match="size"):
        log.inclusion_proofs([1], 1001)


def test_keccak_log_matches_reference() -> None:
    records = [i.to_bytes(4, "big") for i in range(300)]
    log = MerkleLog("keccak256")
    log.extend(records)
    ref = RefTree(records, "keccak256")
    for size in (0, 1, 2, 3, 255, 256, 257, 300):
        assert log.root(size) == ref.root(size)
    assert log.inclusion_proof(123, 300) == ref.inclusion_proof(123, 300)
    assert log.consistency_proof(77, 300) == ref.consistency_proof(77, 300)
    assert verify_inclusion(
        log.leaf_hash(123), 123, 300, log.inclusion_proof(123), log.root(), hash="keccak256"
    )
    # A SHA-256 verifier must not accept a Keccak proof.
    assert not verify_inclusion(log.leaf_hash(123), 123, 300, log.inclusion_proof(123), log.root())


def test_leaf_hash_function_matches_the_log() -> None:
    log = MerkleLog("keccak256")
    log.append(b"x")
    assert log.leaf_hash(0) == leaf_hash(b"x", hash="keccak256")
    log2 = MerkleLog()
    log2.extend_leaf_hashes([leaf_hash(d) for d in LEAVES])
    assert log2.root().hex() == REF["root_by_tree_size_hex"]["8"]


def test_parallel_extend_is_deterministic_across_thread_counts() -> None:
    records = [i.to_bytes(8, "little") * 12 for i in range(20_000)]
    roots = []
    before = _core.get_num_threads()
    try:
        for n in (1, 2, 3):
            _core.set_num_threads(n)
            log = MerkleLog()
            log.extend(records[:7001])
            log.extend(records[7001:])
            roots.append(log.root())
    finally:
        _core.set_num_threads(before)
    assert len(set(roots)) == 1
    assert roots[0] == RefTree(records).root(len(records))


def test_concurrent_readers_and_writer() -> None:
    log = MerkleLog()
    log.extend([b"seed"] * 1000)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(50):
                log.extend([i.to_bytes(2, "big")] * 200)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader() -> None:
        try:
            for _ in range(200):
                size = log.size
                idx = size // 2
                proof = log.inclusion_proof(idx, size)
                assert verify_inclusion(log.leaf_hash(idx), idx, size, proof, log.root(size))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [
        threading.Thread(target=writer),
        *(threading.Thread(target=reader) for _ in range(3)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert log.size == 1000 + 50 * 200


def test_set_num_threads_while_a_kernel_runs() -> None:
    records = [i.to_bytes(4, "big") * 25 for i in range(50_000)]
    want = RefTree(records[:20_000]).root(20_000)
    roots: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(6):
                log = MerkleLog()
                log.extend(records[:20_000])
                roots.append(log.root())
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    before = _core.get_num_threads()
    t = threading.Thread(target=work)
    t.start()
    try:
        for n in (1, 3, 2, 1, 4, 2) * 5:
            _core.set_num_threads(n)
    finally:
        t.join()
        _core.set_num_threads(before)
    assert not errors
    assert roots == [want] * 6
    with pytest.raises(ValueError, match="n must be"):
        _core.set_num_threads(-1)
