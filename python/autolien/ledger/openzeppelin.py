"""OpenZeppelin merkle-tree 1.x compatible trees.

``StandardMerkleTree`` hashes each leaf as ``keccak256(keccak256(abi.encode(
types, value)))``; ``SimpleMerkleTree`` takes 32-byte leaves as they are. Nodes
are ``keccak256`` of the sorted pair, the tree is a heap array with leaf ``i``
at ``len - 1 - i`` (leaves sorted by hash unless ``sort_leaves=False``), so
proofs produced here verify in OpenZeppelin's ``MerkleProof.sol`` and dumps
round-trip with the JavaScript library's ``standard-v1`` / ``simple-v1``
formats. Hashes are returned as 0x-prefixed lowercase hex, as there.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from .. import _core
from . import abi

__all__ = ["MultiProof", "SimpleMerkleTree", "StandardMerkleTree"]

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound=Callable[..., Any])
Self_ = TypeVar("Self_")

NodeHash = Callable[[bytes, bytes], bytes]


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _as_hash(v: Any, name: str) -> bytes:
    """A 32-byte node from bytes or 0x-hex; ValueError/TypeError otherwise."""
    if isinstance(v, bytes | bytearray | memoryview):
        b = bytes(v)
    elif isinstance(v, str):
        if not v.startswith(("0x", "0X")) or len(v) != 66:
            msg = f"{name} must be a 0x-prefixed 32-byte hex string, got {v!r}"
            raise ValueError(msg)
        try:
            b = bytes.fromhex(v[2:])
        except ValueError:
            msg = f"{name} is not hex: {v!r}"
            raise ValueError(msg) from None
    else:
        msg = f"{name} must be bytes or a hex string, got {type(v).__name__}"
        raise TypeError(msg)
    if len(b) != 32:
        msg = f"{name} must be 32 bytes, got {len(b)}"
        raise ValueError(msg)
    return b


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(keccak256(abi.encode(leaf_encoding, value)))``."""
    return _core.keccak256(_core.keccak256(abi.encode(leaf_encoding, value)))


def _sorted_pair_hash(a: bytes, b: bytes) -> bytes:
    return _core.oz_node_hash(a, b)


# --- the array-heap core (OpenZeppelin src/core.ts) -------------------------


def _make_tree(leaves: Sequence[bytes], node_hash: NodeHash | None) -> list[bytes]:
    if not leaves:
        msg = "Expected non-zero number of leaves"
        raise ValueError(msg)
    if node_hash is None:
        flat = _core.oz_make_tree(b"".join(leaves))
        return [flat[i : i + 32] for i in range(0, len(flat), 32)]
    n = len(leaves)
    tree: list[bytes] = [b""] * (2 * n - 1)
    for i, leaf in enumerate(leaves):
        tree[len(tree) - 1 - i] = leaf
    for i in range(len(tree) - 1 - n, -1, -1):
        tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
    return tree


def _sibling(i: int) -> int:
    return i - 1 if i % 2 == 0 else i + 1


def _parent(i: int) -> int:
    return (i - 1) // 2


def _is_leaf_node(tree: Sequence[bytes], i: int) -> bool:
    return 0 <= i < len(tree) and not 2 * i + 1 < len(tree)


def _get_proof(tree: Sequence[bytes], index: int) -> list[bytes]:
    if not _is_leaf_node(tree, index):
        msg = f"Index {index} is not a leaf"
        raise ValueError(msg)
    proof = []
    while index > 0:
        proof.append(tree[_sibling(index)])
        index = _parent(index)
    return proof


def _process_proof(leaf: bytes, proof: Sequence[bytes], node_hash: NodeHash) -> bytes:
    return functools.reduce(node_hash, proof, leaf)


def _get_multi_proof(
    tree: Sequence[bytes], indices: Sequence[int]
) -> tuple[list[int], list[bytes], list[bool]]:
    for i in indices:
        if not _is_leaf_node(tree, i):
            msg = f"Index {i} is not a leaf"
            raise ValueError(msg)
    ordered = sorted(indices, reverse=True)
    if any(a == b for a, b in itertools.pairwise(ordered)):
        msg = "Cannot prove duplicated index"
        raise ValueError(msg)
    stack = list(ordered)
    proof: list[bytes] = []
    flags: list[bool] = []
    pos = 0  # stack is a queue: consume from the front, push to the back
    while pos < len(stack) and stack[pos] > 0:
        j = stack[pos]
        pos += 1
        s = _sibling(j)
        p = _parent(j)
        if pos < len(stack) and s == stack[pos]:
            flags.append(True)
            pos += 1
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(p)
    if not ordered:
        proof.append(tree[0])
    return ordered, proof, flags


def _process_multi_proof(
    leaves: Sequence[bytes], proof: Sequence[bytes], flags: Sequence[bool], node_hash: NodeHash
) -> bytes | None:
    """The root a multiproof implies, or None when it is malformed."""
    if len(proof) < sum(1 for f in flags if not f):
        return None
    if len(leaves) + len(proof) != len(flags) + 1:
        return None
    queue = list(leaves)
    qpos = 0
    ppos = 0
    for flag in flags:
        if qpos >= len(queue):
            return None
        a = queue[qpos]
        qpos += 1
        if flag:
            if qpos >= len(queue):
                return None
            b = queue[qpos]
            qpos += 1
        else:
            if ppos >= len(proof):
                return None
            b = proof[ppos]
            ppos += 1
        queue.append(node_hash(a, b))
    remaining = len(queue) - qpos
    if remaining + (len(proof) - ppos) != 1:
        return None
    return queue[-1] if remaining else proof[ppos]


def _is_valid_tree(tree: Sequence[bytes], node_hash: NodeHash) -> bool:
    for i, node in enumerate(tree):
        if len(node) != 32:
            return False
        left, right = 2 * i + 1, 2 * i + 2
        if right >= len(tree):
            if left < len(tree):
                return False
        elif node != node_hash(tree[left], tree[right]):
            return False
    return len(tree) > 0


def _render(tree: Sequence[bytes]) -> str:
    if not tree:
        msg = "Expected non-zero number of nodes"
        raise ValueError(msg)
    stack: list[tuple[int, list[int]]] = [(0, [])]
    lines = []
    while stack:
        i, path = stack.pop()
        lines.append(
            "".join(["   ", "│  "][p] for p in path[:-1])
            + "".join(["└─ ", "├─ "][p] for p in path[-1:])
            + f"{i}) {_hex(tree[i])}"
        )
        if 2 * i + 2 < len(tree):
            stack.append((2 * i + 2, [*path, 0]))
            stack.append((2 * i + 1, [*path, 1]))
    return "\n".join(lines)


# --- static-or-instance methods ---------------------------------------------


class _Dual(Generic[S, Self_, P, R]):
    """A method that is static on the class and bound on an instance.

    OpenZeppelin has both ``StandardMerkleTree.verify(root, encoding, leaf,
    proof)`` and ``tree.verify(leaf, proof)``; this keeps both spellings.
    """

    def __init__(self, static: S, bound: Callable[Concatenate[Self_, P], R]) -> None:
        self._static = static
        self._bound = bound
        self.__doc__ = static.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> S: ...
    @overload
    def __get__(self, obj: Self_, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: Self_ | None, owner: type) -> S | Callable[P, R]:
        if obj is None:
            return self._static
        return functools.partial(self._bound, obj)


# --- trees ---------------------------------------------------------------


@dataclass(frozen=True)
class MultiProof(Generic[T]):
    """A multiproof: the leaves (values), sibling hashes and flags, as OZ gives them."""

    leaves: list[T]
    proof: list[str]
    proof_flags: list[bool] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON shape OpenZeppelin uses (``proofFlags`` in camel case)."""
        return {"leaves": self.leaves, "proof": self.proof, "proofFlags": self.proof_flags}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultiProof[Any]:
        flags = data.get("proofFlags", data.get("proof_flags"))
        if flags is None:
            msg = "multiproof needs proofFlags"
            raise ValueError(msg)
        return cls(list(data["leaves"]), list(data["proof"]), list(flags))


def _coerce_multiproof(mp: MultiProof[Any] | Mapping[str, Any]) -> MultiProof[Any]:
    obj: object = mp
    if isinstance(obj, MultiProof):
        return obj
    if isinstance(obj, Mapping):
        return MultiProof.from_json(obj)
    msg = f"multiproof must be a MultiProof or a mapping, got {type(obj).__name__}"
    raise TypeError(msg)


def _proof_bytes(proof: Sequence[Any]) -> list[bytes] | None:
    if isinstance(proof, str | bytes) or not isinstance(proof, Sequence):
        msg = f"proof must be a sequence of hashes, got {type(proof).__name__}"
        raise TypeError(msg)
    try:
        return [_as_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]
    except ValueError:
        return None


class _TreeBase(Generic[T]):
    """What StandardMerkleTree and SimpleMerkleTree share (OZ merkletree.ts)."""

    _node_hash: NodeHash

    def __init__(self, tree: Sequence[bytes], values: Sequence[tuple[T, int]]) -> None:
        self._tree = list(tree)
        self._values = list(values)
        self._hash_lookup = {self._tree[ti]: vi for vi, (_, ti) in enumerate(self._values)}

    def _leaf_hash(self, value: T) -> bytes:
        raise NotImplementedError

    @classmethod
    def _prepare(
        cls,
        values: Sequence[T],
        leaf_hash: Callable[[T], bytes],
        sort_leaves: bool,
        node_hash: NodeHash | None,
    ) -> tuple[list[bytes], list[tuple[T, int]]]:
        hashed = [(leaf_hash(v), i) for i, v in enumerate(values)]
        if sort_leaves:
            hashed.sort(key=lambda hv: hv[0])  # stable, like Array.prototype.sort
        tree = _make_tree([h for h, _ in hashed], node_hash)
        tree_index = [0] * len(values)
        for leaf_i, (_, value_i) in enumerate(hashed):
            tree_index[value_i] = len(tree) - 1 - leaf_i
        return tree, [(v, tree_index[i]) for i, v in enumerate(values)]

    def __len__(self) -> int:
        return len(self._values)

    @property
    def root(self) -> str:
        """The root as 0x-prefixed hex."""
        return _hex(self._tree[0])

    @property
    def tree(self) -> list[str]:
        """Every node in heap order, as hex."""
        return [_hex(n) for n in self._tree]

    def entries(self) -> Iterator[tuple[int, T]]:
        """``(value_index, value)`` pairs in insertion order."""
        for i, (v, _) in enumerate(self._values):
            yield i, v

    def render(self) -> str:
        """A text drawing of the tree, as OpenZeppelin's ``render``."""
        return _render(self._tree)

    def leaf_hash(self, value: T) -> str:
        """The leaf hash of ``value`` as hex."""
        return _hex(self._leaf_hash(value))

    def leaf_lookup(self, value: T) -> int:
        """The value index of ``value``; ValueError if it is not in the tree."""
        vi = self._hash_lookup.get(self._leaf_hash(value))
        if vi is None:
            msg = "Leaf is not in tree"
            raise ValueError(msg)
        return vi

    def _validate_value_at(self, index: int) -> bytes:
        if not 0 <= index < len(self._values):
            msg = f"Index {index} out of range for {len(self._values)} values"
            raise IndexError(msg)
        value, ti = self._values[index]
        h = self._leaf_hash(value)
        if h != self._tree[ti]:
            msg = "Merkle tree does not contain the expected value"
            raise ValueError(msg)
        return h

    def validate(self) -> None:
        """Checks every value's leaf and every node; ValueError on the first defect."""
        for i in range(len(self._values)):
            self._validate_value_at(i)
        if not _is_valid_tree(self._tree, self._node_hash):
            msg = "Merkle tree is invalid"
            raise ValueError(msg)

    def _value_index(self, leaf: int | T) -> int:
        # As in OpenZeppelin, a number is a value index and anything else a value.
        if isinstance(leaf, int) and not isinstance(leaf, bool):
            return leaf
        return self.leaf_lookup(cast("T", leaf))

    def get_proof(self, leaf: int | T) -> list[str]:
        """The proof for a value (or a value index), as hex siblings from the leaf up."""
        vi = self._value_index(leaf)
        self._validate_value_at(vi)
        ti = self._values[vi][1]
        proof = _get_proof(self._tree, ti)
        if _process_proof(self._tree[ti], proof, self._node_hash) != self._tree[0]:
            msg = "Unable to prove value"
            raise ValueError(msg)
        return [_hex(p) for p in proof]

    def get_multi_proof(self, leaves: Sequence[int | T]) -> MultiProof[T]:
        """A multiproof for several values (or value indices) at once."""
        vis = [self._value_index(leaf) for leaf in leaves]
        for vi in vis:
            self._validate_value_at(vi)
        ordered, proof, flags = _get_multi_proof(self._tree, [self._values[vi][1] for vi in vis])
        leaf_hashes = [self._tree[ti] for ti in ordered]
        if _process_multi_proof(leaf_hashes, proof, flags, self._node_hash) != self._tree[0]:
            msg = "Unable to prove values"
            raise ValueError(msg)
        return MultiProof(
            [self._values[self._hash_lookup[h]][0] for h in leaf_hashes],
            [_hex(p) for p in proof],
            flags,
        )

    def _verify_leaf(self, leaf: int | T, proof: Sequence[Any]) -> bool:
        if isinstance(leaf, int) and not isinstance(leaf, bool):
            if not 0 <= leaf < len(self._values):
                return False
            leaf = self._values[leaf][0]
        h = self._leaf_hash(cast("T", leaf))
        # Only leaves of this tree count: an interior node presented as a leaf
        # with a shorter proof would otherwise reproduce the root.
        if h not in self._hash_lookup:
            return False
        path = _proof_bytes(proof)
        return path is not None and _process_proof(h, path, self._node_hash) == self._tree[0]

    def _verify_multi(self, multiproof: MultiProof[T] | Mapping[str, Any]) -> bool:
        mp = _coerce_multiproof(multiproof)
        hashes = [self._leaf_hash(v) for v in mp.leaves]
        if any(h not in self._hash_lookup for h in hashes):
            return False
        path = _proof_bytes(mp.proof)
        if path is None:
            return False
        return _process_multi_proof(hashes, path, mp.proof_flags, self._node_hash) == self._tree[0]


def _static_root(root: Any) -> bytes | None:
    try:
        return _as_hash(root, "root")
    except ValueError:
        return None


class StandardMerkleTree(_TreeBase[Sequence[Any]]):
    """OpenZeppelin ``StandardMerkleTree``: leaves are ABI-encoded values.

    >>> tree = StandardMerkleTree.of([["0x1111111111111111111111111111111111111111", 5000]],
    ...                              ["address", "uint256"])
    >>> tree.verify(0, tree.get_proof(0))
    True
    """

    _node_hash = staticmethod(_sorted_pair_hash)

    def __init__(
        self,
        tree: Sequence[bytes],
        values: Sequence[tuple[Sequence[Any], int]],
        leaf_encoding: Sequence[str],
    ) -> None:
        super().__init__(tree, values)
        self.leaf_encoding = list(leaf_encoding)

    def _leaf_hash(self, value: Sequence[Any]) -> bytes:
        return standard_leaf_hash(self.leaf_encoding, value)

    @classmethod
    def of(
        cls,
        values: Sequence[Sequence[Any]],
        leaf_encoding: Sequence[str],
        *,
        sort_leaves: bool = True,
    ) -> StandardMerkleTree:
        """Builds a tree from values, each ABI-encoded with ``leaf_encoding``."""
        for t in leaf_encoding:
            abi.parse_type(t)  # fail early on an unknown type
        enc = list(leaf_encoding)
        tree, indexed = cls._prepare(
            values, lambda v: standard_leaf_hash(enc, v), sort_leaves, None
        )
        return cls(tree, indexed, enc)

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StandardMerkleTree:
        """Loads a ``standard-v1`` dump and validates it."""
        if data.get("format") != "standard-v1":
            msg = f"Unknown format '{data.get('format')}'"
            raise ValueError(msg)
        if data.get("leafEncoding") is None:
            msg = "Expected leaf encoding"
            raise ValueError(msg)
        tree = [_as_hash(h, f"tree[{i}]") for i, h in enumerate(data["tree"])]
        values = [(v["value"], int(v["treeIndex"])) for v in data["values"]]
        out = cls(tree, values, data["leafEncoding"])
        out.validate()
        return out

    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` JSON form."""
        return {
            "format": "standard-v1",
            "leafEncoding": list(self.leaf_encoding),
            "tree": self.tree,
            "values": [{"value": v, "treeIndex": ti} for v, ti in self._values],
        }

    @staticmethod
    def _static_verify(
        root: Any, leaf_encoding: Sequence[str], leaf: Sequence[Any], proof: Sequence[Any]
    ) -> bool:
        """Verifies a proof against a root without the tree (as MerkleProof.sol)."""
        r = _static_root(root)
        path = _proof_bytes(proof)
        if r is None or path is None:
            return False
        return _process_proof(standard_leaf_hash(leaf_encoding, leaf), path, _sorted_pair_hash) == r

    @staticmethod
    def _static_verify_multi(
        root: Any, leaf_encoding: Sequence[str], multiproof: MultiProof[Any] | Mapping[str, Any]
    ) -> bool:
        """Verifies a multiproof against a root (as MerkleProof.multiProofVerify)."""
        mp = _coerce_multiproof(multiproof)
        r = _static_root(root)
        path = _proof_bytes(mp.proof)
        if r is None or path is None:
            return False
        hashes = [standard_leaf_hash(leaf_encoding, v) for v in mp.leaves]
        return _process_multi_proof(hashes, path, mp.proof_flags, _sorted_pair_hash) == r

    verify = _Dual(_static_verify, _TreeBase._verify_leaf)
    verify_multi_proof = _Dual(_static_verify_multi, _TreeBase._verify_multi)


class SimpleMerkleTree(_TreeBase[str]):
    """OpenZeppelin ``SimpleMerkleTree``: leaves are 32-byte values, not re-hashed.

    Values are given as bytes or 0x-hex and kept as hex. ``node_hash`` replaces
    the sorted-pair Keccak-256 (dumps then say ``"hash": "custom"``).
    """

    def __init__(
        self,
        tree: Sequence[bytes],
        values: Sequence[tuple[str, int]],
        node_hash: NodeHash | None = None,
    ) -> None:
        self._custom = node_hash
        self._node_hash = node_hash if node_hash is not None else _sorted_pair_hash
        super().__init__(tree, values)

    def _leaf_hash(self, value: Any) -> bytes:
        return _as_hash(value, "leaf")

    @classmethod
    def of(
        cls,
        values: Sequence[bytes | str],
        *,
        sort_leaves: bool = True,
        node_hash: NodeHash | None = None,
    ) -> SimpleMerkleTree:
        """Builds a tree from 32-byte values."""
        hexed = [_hex(_as_hash(v, f"values[{i}]")) for i, v in enumerate(values)]
        tree, indexed = cls._prepare(hexed, lambda v: _as_hash(v, "leaf"), sort_leaves, node_hash)
        return cls(tree, indexed, node_hash)

    @classmethod
    def load(cls, data: Mapping[str, Any], node_hash: NodeHash | None = None) -> SimpleMerkleTree:
        """Loads a ``simple-v1`` dump and validates it."""
        if data.get("format") != "simple-v1":
            msg = f"Unknown format '{data.get('format')}'"
            raise ValueError(msg)
        custom = data.get("hash") == "custom"
        if custom and node_hash is None:
            msg = "Data expects a custom node hashing function"
            raise ValueError(msg)
        if not custom and node_hash is not None:
            msg = "Data does not expect a custom node hashing function"
            raise ValueError(msg)
        tree = [_as_hash(h, f"tree[{i}]") for i, h in enumerate(data["tree"])]
        values = [
            (_hex(_as_hash(v["value"], "value")), int(v["treeIndex"])) for v in data["values"]
        ]
        out = cls(tree, values, node_hash)
        out.validate()
        return out

    def dump(self) -> dict[str, Any]:
        """The ``simple-v1`` JSON form."""
        out: dict[str, Any] = {
            "format": "simple-v1",
            "tree": self.tree,
            "values": [{"value": v, "treeIndex": ti} for v, ti in self._values],
        }
        if self._custom is not None:
            out["hash"] = "custom"
        return out

    @staticmethod
    def _static_verify(
        root: Any, leaf: Any, proof: Sequence[Any], node_hash: NodeHash | None = None
    ) -> bool:
        """Verifies a proof against a root without the tree."""
        r = _static_root(root)
        path = _proof_bytes(proof)
        if r is None or path is None:
            return False
        return _process_proof(_as_hash(leaf, "leaf"), path, node_hash or _sorted_pair_hash) == r

    @staticmethod
    def _static_verify_multi(
        root: Any,
        multiproof: MultiProof[Any] | Mapping[str, Any],
        node_hash: NodeHash | None = None,
    ) -> bool:
        """Verifies a multiproof against a root without the tree."""
        mp = _coerce_multiproof(multiproof)
        r = _static_root(root)
        path = _proof_bytes(mp.proof)
        if r is None or path is None:
            return False
        hashes = [_as_hash(v, "leaf") for v in mp.leaves]
        return (
            _process_multi_proof(hashes, path, mp.proof_flags, node_hash or _sorted_pair_hash) == r
        )

    verify = _Dual(_static_verify, _TreeBase._verify_leaf)
    verify_multi_proof = _Dual(_static_verify_multi, _TreeBase._verify_multi)
