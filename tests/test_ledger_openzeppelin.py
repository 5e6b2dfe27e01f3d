"""OpenZeppelin merkle-tree compatibility.

External references: the upstream dumps (tests/data/merkle), eth-abi for ABI
encoding, and a port of OpenZeppelin's MerkleProof.sol verification written
here on safe-pysha3, standing in for the on-chain verifier.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections.abc import Callable

import eth_abi
import pytest
import sha3
from hypothesis import given
from hypothesis import strategies as st

from autolien.ledger import MultiProof, SimpleMerkleTree, StandardMerkleTree, abi
from conftest import load_json

DUMPS = load_json("merkle/openzeppelin_merkle_tree_dumps.json")["dumps"]
STANDARD = DUMPS["test/dumps/standard-v1.sorted.1_0_6.json"]
SIMPLE = DUMPS["test/dumps/simple-v1.sorted.1_0_6.json"]


def keccak(data: bytes) -> bytes:
    return sha3.keccak_256(data).digest()


# --- MerkleProof.sol (OpenZeppelin Contracts 5.x), ported for the tests -------


def sol_commutative(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def sol_process_proof(proof: list[bytes], leaf: bytes) -> bytes:
    h = leaf
    for p in proof:
        h = sol_commutative(h, p)
    return h


def sol_process_multi_proof(
    proof: list[bytes],
    flags: list[bool],
    leaves: list[bytes],
    hasher: Callable[[bytes, bytes], bytes] = sol_commutative,
) -> bytes:
    """MerkleProof.processMultiProof; ValueError where Solidity reverts or panics."""
    if len(leaves) + len(proof) != len(flags) + 1:
        raise ValueError("MerkleProofInvalidMultiproof")
    # Solidity's `hashes` is a zero-filled memory array: reading a slot not yet
    # written gives bytes32(0), not an error.
    hashes = [bytes(32)] * len(flags)
    leaf_pos = hash_pos = proof_pos = 0
    for i, flag in enumerate(flags):
        if leaf_pos < len(leaves):
            a = leaves[leaf_pos]
            leaf_pos += 1
        else:
            a = hashes[hash_pos]
            hash_pos += 1
        if flag:
            if leaf_pos < len(leaves):
                b = leaves[leaf_pos]
                leaf_pos += 1
            else:
                b = hashes[hash_pos]
                hash_pos += 1
        else:
            if proof_pos >= len(proof):
                raise ValueError("panic 0x32: array access out of bounds")
            b = proof[proof_pos]
            proof_pos += 1
        hashes[i] = hasher(a, b)
    if flags:
        if proof_pos != len(proof):
            raise ValueError("MerkleProofInvalidMultiproof")
        return hashes[-1]
    return leaves[0] if leaves else proof[0]


def sol_standard_leaf(types: list[str], value: list[object]) -> bytes:
    # keccak256(bytes.concat(keccak256(abi.encode(...)))) as the OZ docs write it.
    return keccak(keccak(eth_abi.encode(types, value)))


def X(h: str) -> bytes:
    return bytes.fromhex(h[2:])


# --- upstream dumps -----------------------------------------------------------


def test_standard_dump_loads_and_round_trips() -> None:
    tree = StandardMerkleTree.load(STANDARD)
    assert tree.root == STANDARD["tree"][0]
    assert tree.dump() == STANDARD
    # Rebuilding from the values gives the same sorted tree.
    rebuilt = StandardMerkleTree.of([v["value"] for v in STANDARD["values"]], ["string"])
    assert rebuilt.dump() == STANDARD


def test_simple_dump_loads_and_round_trips() -> None:
    tree = SimpleMerkleTree.load(SIMPLE)
    assert tree.root == SIMPLE["tree"][0]
    assert tree.dump() == SIMPLE
    rebuilt = SimpleMerkleTree.of([v["value"] for v in SIMPLE["values"]])
    assert rebuilt.dump() == SIMPLE


def test_dump_proofs_verify_on_the_solidity_port() -> None:
    tree = StandardMerkleTree.load(STANDARD)
    root = X(tree.root)
    for i, (_, value) in enumerate(tree.entries()):
        proof = [X(p) for p in tree.get_proof(i)]
        assert sol_process_proof(proof, sol_standard_leaf(["string"], value)) == root
        assert StandardMerkleTree.verify(tree.root, ["string"], value, tree.get_proof(value))
        assert tree.verify(i, tree.get_proof(i))
    simple = SimpleMerkleTree.load(SIMPLE)
    for _, value in simple.entries():
        proof = [X(p) for p in simple.get_proof(value)]
        assert sol_process_proof(proof, X(value)) == X(simple.root)
        assert SimpleMerkleTree.verify(simple.root, value, simple.get_proof(value))


def test_tampered_dumps_are_rejected() -> None:
    bad = copy.deepcopy(STANDARD)
    bad["values"][0]["value"] = ["z"]
    with pytest.raises(ValueError, match="expected value"):
        StandardMerkleTree.load(bad)
    bad = copy.deepcopy(STANDARD)
    bad["tree"][1] = "0x" + "00" * 32
    with pytest.raises(ValueError, match="invalid"):
        StandardMerkleTree.load(bad)
    bad = copy.deepcopy(SIMPLE)
    bad["format"] = "standard-v1"
    with pytest.raises(ValueError, match="Unknown format"):
        SimpleMerkleTree.load(bad)
    bad = copy.deepcopy(STANDARD)
    del bad["leafEncoding"]
    with pytest.raises(ValueError, match="leaf encoding"):
        StandardMerkleTree.load(bad)


# --- trees of our own, checked by the Solidity port ---------------------------

AIRDROP_TYPES = ["address", "uint256"]


def _airdrop(n: int, seed: int) -> list[list[object]]:
    rnd = random.Random(seed)
    return [["0x" + rnd.randbytes(20).hex(), rnd.randrange(2**256)] for _ in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 101])
@pytest.mark.parametrize("sort_leaves", [True, False])
def test_standard_tree_proofs_and_multiproofs(n: int, sort_leaves: bool) -> None:
    values = _airdrop(n, n)
    tree = StandardMerkleTree.of(values, AIRDROP_TYPES, sort_leaves=sort_leaves)
    root = X(tree.root)
    leaves = [sol_standard_leaf(AIRDROP_TYPES, v) for v in values]
    if not sort_leaves:
        # Without sorting, leaf i sits at the end of the heap in insertion order.
        assert [X(h) for h in tree.tree[len(tree.tree) - n :]] == list(reversed(leaves))
    for i, v in enumerate(values):
        proof = tree.get_proof(i)
        assert sol_process_proof([X(p) for p in proof], leaves[i]) == root
        assert tree.get_proof(v) == proof
        assert StandardMerkleTree.verify(tree.root, AIRDROP_TYPES, v, proof)
    rnd = random.Random(n)
    for _ in range(5):
        pick = rnd.sample(range(n), rnd.randrange(0, n + 1))
        mp = tree.get_multi_proof(pick)
        mp_leaves = [sol_standard_leaf(AIRDROP_TYPES, v) for v in mp.leaves]
        got = sol_process_multi_proof([X(p) for p in mp.proof], mp.proof_flags, mp_leaves)
        assert got == root
        assert StandardMerkleTree.verify_multi_proof(tree.root, AIRDROP_TYPES, mp)
        assert StandardMerkleTree.verify_multi_proof(tree.root, AIRDROP_TYPES, mp.to_json())
        assert tree.verify_multi_proof(mp)


def test_mutated_proofs_are_rejected() -> None:
    values = _airdrop(40, 3)
    tree = StandardMerkleTree.of(values, AIRDROP_TYPES)
    for i in range(40):
        proof = tree.get_proof(i)
        for j in range(len(proof)):
            flipped = proof[j][:-1] + ("0" if proof[j][-1] != "0" else "1")
            bad = [*proof[:j], flipped, *proof[j + 1 :]]
            assert not tree.verify(i, bad)
            assert not StandardMerkleTree.verify(tree.root, AIRDROP_TYPES, values[i], bad)
        assert not tree.verify(i, proof[:-1])
        other = [values[i][0], values[i][1] + 1]  # type: ignore[operator]
        assert not StandardMerkleTree.verify(tree.root, AIRDROP_TYPES, other, proof)
    mp = tree.get_multi_proof([0, 5, 9])
    assert not StandardMerkleTree.verify_multi_proof(
        tree.root, AIRDROP_TYPES, MultiProof(mp.leaves, mp.proof[:-1], mp.proof_flags)
    )
    flags = [not f for f in mp.proof_flags]
    assert not StandardMerkleTree.verify_multi_proof(
        tree.root, AIRDROP_TYPES, MultiProof(mp.leaves, mp.proof, flags)
    )
    # Malformed hex is "not valid", wrong types are errors.
    assert not StandardMerkleTree.verify(tree.root, AIRDROP_TYPES, values[0], ["0x1234"])
    with pytest.raises(TypeError):
        StandardMerkleTree.verify(tree.root, AIRDROP_TYPES, values[0], 5)  # type: ignore[arg-type]


def test_interior_node_is_not_accepted_as_a_leaf() -> None:
    # A known pitfall: with unhashed leaves an interior node plus a shorter
    # proof reproduces the root. The stateless check (like MerkleProof.sol)
    # cannot tell; the tree's own verify refuses values that are not its leaves.
    vals = ["0x" + bytes([i]).hex() * 32 for i in range(8)]
    tree = SimpleMerkleTree.of(vals)
    interior = tree.tree[1]
    proof = [tree.tree[2]]
    assert sol_process_proof([X(p) for p in proof], X(interior)) == X(tree.root)
    assert SimpleMerkleTree.verify(tree.root, interior, proof)
    assert not tree.verify(interior, proof)


def test_get_proof_errors() -> None:
    tree = StandardMerkleTree.of(_airdrop(4, 1), AIRDROP_TYPES)
    with pytest.raises(ValueError, match="not in tree"):
        tree.get_proof(["0x" + "00" * 20, 1])
    with pytest.raises(IndexError):
        tree.get_proof(10)
    with pytest.raises(ValueError, match="duplicated"):
        tree.get_multi_proof([1, 1])
    with pytest.raises(ValueError, match="non-zero"):
        StandardMerkleTree.of([], AIRDROP_TYPES)
    with pytest.raises(ValueError, match="unsupported ABI type"):
        StandardMerkleTree.of([[1]], ["uint257x"])


def test_custom_node_hash_dump() -> None:
    def node(a: bytes, b: bytes) -> bytes:
        return keccak(b"custom" + min(a, b) + max(a, b))

    vals = ["0x" + bytes([i]).hex() * 32 for i in range(5)]
    tree = SimpleMerkleTree.of(vals, node_hash=node)
    data = tree.dump()
    assert data["hash"] == "custom"
    with pytest.raises(ValueError, match="expects a custom"):
        SimpleMerkleTree.load(data)
    again = SimpleMerkleTree.load(data, node_hash=node)
    assert again.root == tree.root
    assert SimpleMerkleTree.verify(tree.root, vals[2], tree.get_proof(vals[2]), node)


# --- MerkleProof.test.js (OpenZeppelin Contracts), multiProofVerify ----------
# The cases of test/utils/cryptography/MerkleProof.test.js, with the outcome
# that test expects (true, false, or a revert). A revert is a False here: our
# verifiers never raise on a malformed proof.


def _to_leaves(text: str) -> list[bytes]:
    return [keccak(c.encode()) for c in text]  # ethers.keccak256(toUtf8Bytes(c))


def _sha256_sorted(a: bytes, b: bytes) -> bytes:  # the test's "custom hash"
    return hashlib.sha256(min(a, b) + max(a, b)).digest()


def _cases(
    node: Callable[[bytes, bytes], bytes],
) -> list[tuple[str, bytes, list[bytes], list[bool], list[bytes], str]]:
    custom = None if node is sol_commutative else node

    def make(text: str) -> SimpleMerkleTree:
        return SimpleMerkleTree.of(_to_leaves(text), node_hash=custom)

    out = []
    t = make("abcdef")
    mp = t.get_multi_proof(["0x" + h.hex() for h in _to_leaves("bdf")])
    out.append(
        (
            "valid",
            X(t.root),
            [X(p) for p in mp.proof],
            mp.proof_flags,
            [X(v) for v in mp.leaves],
            "true",
        )
    )
    o = make("ghi")
    mp = o.get_multi_proof(["0x" + h.hex() for h in _to_leaves("ghi")])
    out.append(
        (
            "other tree",
            X(t.root),
            [X(p) for p in mp.proof],
            mp.proof_flags,
            [X(v) for v in mp.leaves],
            "false",
        )
    )
    t4 = make("abcd")
    values = [X(v) for _, v in t4.entries()]  # merkleTree.at(i): insertion order
    hash_a, hash_b = values[0], values[1]
    hash_cd = node(values[2], values[3])
    rnd = random.Random(1)
    hash_e, fill = rnd.randbytes(32), rnd.randbytes(32)
    out.append(
        ("invalid #1", X(t4.root), [hash_b, fill, hash_cd], [False] * 3, [hash_a, hash_e], "revert")
    )
    out.append(
        ("invalid #2", X(t4.root), [hash_b, fill, hash_cd], [False] * 4, [hash_e, hash_a], "revert")
    )
    t1 = make("a")
    mp = t1.get_multi_proof(["0x" + h.hex() for h in _to_leaves("a")])
    out.append(
        (
            "single leaf",
            X(t1.root),
            [X(p) for p in mp.proof],
            mp.proof_flags,
            [X(v) for v in mp.leaves],
            "true",
        )
    )
    out.append(("empty leaves", X(t4.root), [X(t4.root)], [], [], "true"))
    leave = keccak(b"real leaf")
    root = node(leave, bytes(32))
    malicious = sorted(keccak(w) for w in (b"malicious", b"leaves"))
    out.append(
        ("zero node at depth 1", root, [leave, leave], [True, True, False], malicious, "revert")
    )
    return out


@pytest.mark.parametrize("node", [sol_commutative, _sha256_sorted], ids=["keccak", "sha256"])
def test_multiproof_cases_of_openzeppelin_contracts(node: Callable[[bytes, bytes], bytes]) -> None:
    custom = None if node is sol_commutative else node
    for name, root, proof, flags, leaves, want in _cases(node):
        try:
            sol = "true" if sol_process_multi_proof(proof, flags, leaves, node) == root else "false"
        except ValueError:
            sol = "revert"
        assert sol == want, name  # the port reproduces the contract's test
        mp = MultiProof(["0x" + h.hex() for h in leaves], ["0x" + h.hex() for h in proof], flags)
        got = SimpleMerkleTree.verify_multi_proof("0x" + root.hex(), mp, custom)
        assert got is (want == "true"), name


def test_multiproof_invariant_case_of_merkle_tree_js() -> None:
    # core.test.ts "multiproof invariants": processMultiProof throws InvariantError.
    zero = "0x" + "00" * 32
    mp = MultiProof([zero, zero], [zero, zero], [True, True, False])
    assert not SimpleMerkleTree.verify_multi_proof(zero, mp)
    with pytest.raises(ValueError, match="MerkleProofInvalidMultiproof"):
        sol_process_multi_proof([bytes(32)] * 2, [True, True, False], [bytes(32)] * 2)


# --- ABI encoding against eth-abi ---------------------------------------------


def _int_type(draw: st.DrawFn) -> tuple[str, object]:
    bits = draw(st.integers(1, 32)) * 8
    if draw(st.booleans()):
        return f"uint{bits}", draw(st.integers(0, 2**bits - 1))
    return f"int{bits}", draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))


@st.composite
def abi_value(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    kind = draw(
        st.sampled_from(["int", "address", "bool", "bytesN", "bytes", "string", "array", "tuple"])
    )
    if depth >= 2 and kind in ("array", "tuple"):
        kind = "string"
    if kind == "int":
        return _int_type(draw)
    if kind == "address":
        return "address", "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    if kind == "bool":
        return "bool", draw(st.booleans())
    if kind == "bytesN":
        n = draw(st.integers(1, 32))
        return f"bytes{n}", draw(st.binary(min_size=n, max_size=n))
    if kind == "bytes":
        return "bytes", draw(st.binary(max_size=80))
    if kind == "string":
        return "string", draw(st.text(max_size=40))
    if kind == "array":
        t, _ = draw(abi_value(depth + 1))
        # Same element type for every item: draw values of type t.
        if draw(st.booleans()):
            n = draw(st.integers(1, 3))
            return f"{t}[{n}]", [_value_of(draw, t) for _ in range(n)]
        n = draw(st.integers(0, 3))
        return f"{t}[]", [_value_of(draw, t) for _ in range(n)]
    parts = [draw(abi_value(depth + 1)) for _ in range(draw(st.integers(1, 3)))]
    return "(" + ",".join(t for t, _ in parts) + ")", tuple(v for _, v in parts)


def _value_of(draw: st.DrawFn, t: str) -> object:
    # Values for an already chosen type (used for array items).
    parsed = abi.parse_type(t)
    if parsed.kind == "uint":
        return draw(st.integers(0, 2**parsed.bits - 1))
    if parsed.kind == "int":
        return draw(st.integers(-(2 ** (parsed.bits - 1)), 2 ** (parsed.bits - 1) - 1))
    if parsed.kind == "address":
        return "0x" + draw(st.binary(min_size=20, max_size=20)).hex()
    if parsed.kind == "bool":
        return draw(st.booleans())
    if parsed.kind == "fixedbytes":
        return draw(st.binary(min_size=parsed.bits, max_size=parsed.bits))
    if parsed.kind == "bytes":
        return draw(st.binary(max_size=40))
    if parsed.kind == "string":
        return draw(st.text(max_size=20))
    if parsed.kind == "array":
        n = parsed.length if parsed.length is not None else draw(st.integers(0, 2))
        inner = t[: t.rindex("[")]
        return [_value_of(draw, inner) for _ in range(n)]
    comps = abi._split_top_level(t[1:-1])
    return tuple(_value_of(draw, c) for c in comps)


@given(st.lists(abi_value(), min_size=1, max_size=4))
def test_abi_encode_matches_eth_abi(pairs: list[tuple[str, object]]) -> None:
    types = [t for t, _ in pairs]
    values = [v for _, v in pairs]
    assert abi.encode(types, values) == eth_abi.encode(types, values)


def test_abi_value_forms_and_errors() -> None:
    # ethers-style inputs: numeric strings and hex.
    assert abi.encode(["uint256"], ["5000000000000000000"]) == eth_abi.encode(
        ["uint256"], [5 * 10**18]
    )
    assert abi.encode(["uint256"], ["0xff"]) == eth_abi.encode(["uint256"], [255])
    assert abi.encode(["bytes32"], ["0x" + "ab" * 32]) == eth_abi.encode(
        ["bytes32"], [b"\xab" * 32]
    )
    checksummed = abi.checksum_address(bytes.fromhex("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"))
    assert checksummed == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55 example
    with pytest.raises(ValueError, match="checksum"):
        abi.encode(["address"], ["0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"])
    with pytest.raises(ValueError, match="out of range"):
        abi.encode(["uint8"], [256])
    with pytest.raises(ValueError, match="out of range"):
        abi.encode(["int8"], [-129])
    with pytest.raises(ValueError, match="exactly 32"):
        abi.encode(["bytes32"], [b"\x00" * 31])
    with pytest.raises(TypeError, match="bool"):
        abi.encode(["uint256"], [True])
    with pytest.raises(ValueError, match="bad array length"):
        abi.encode(["uint8[0]"], [[]])
    with pytest.raises(ValueError, match="expected 2 values"):
        abi.encode(["uint256", "bool"], [1])
