"""An independent pure-Python RFC 6962 / 9162 reference, written from the RFC
text with hashlib and safe-pysha3 only. It shares no code with autolien.

The verifiers here rebuild the root recursively from the proof's structure (the
MTH/PATH/SUBPROOF definitions), not with the bit-walking algorithm of RFC 9162
section 2.1.3.2 that the C++ core uses, so the two cannot share a mistake.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import sha3


def H(name: str, data: bytes) -> bytes:
    if name == "sha256":
        return hashlib.sha256(data).digest()
    k = sha3.keccak_256()
    k.update(data)
    return k.digest()


def largest_pow2_below(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class RefTree:
    def __init__(self, leaves: list[bytes], hash_name: str = "sha256") -> None:
        self.hash = hash_name
        self.leaves = leaves
        self.leaf_hashes = [H(hash_name, b"\x00" + d) for d in leaves]
        self.mth = lru_cache(maxsize=None)(self._mth)

    def node(self, left: bytes, right: bytes) -> bytes:
        return H(self.hash, b"\x01" + left + right)

    def _mth(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n == 0:
            return H(self.hash, b"")
        if n == 1:
            return self.leaf_hashes[lo]
        k = largest_pow2_below(n)
        return self.node(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = largest_pow2_below(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.path(index, 0, size)

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = largest_pow2_below(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    def consistency_proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True)


def _node(name: str, left: bytes, right: bytes) -> bytes:
    return H(name, b"\x01" + left + right)


def ref_verify_inclusion(
    leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes, hash_name: str = "sha256"
) -> bool:
    if not (0 <= index < size) or len(leaf) != 32 or len(root) != 32:
        return False
    if any(len(p) != 32 for p in proof):
        return False

    def rebuild(m: int, n: int, rest: list[bytes]) -> bytes | None:
        if n == 1:
            return leaf if not rest else None
        if not rest:
            return None
        k = largest_pow2_below(n)
        sib = rest[-1]
        if m < k:
            sub = rebuild(m, k, rest[:-1])
            return None if sub is None else _node(hash_name, sub, sib)
        sub = rebuild(m - k, n - k, rest[:-1])
        return None if sub is None else _node(hash_name, sib, sub)

    return rebuild(index, size, list(proof)) == root


def ref_verify_consistency(
    m: int, n: int, proof: list[bytes], root1: bytes, root2: bytes, hash_name: str = "sha256"
) -> bool:
    if len(root1) != 32 or len(root2) != 32 or any(len(p) != 32 for p in proof):
        return False
    if not (0 < m <= n):
        return False
    if m == n:
        return not proof and root1 == root2

    def rebuild(mm: int, nn: int, b: bool, rest: list[bytes]) -> tuple[bytes, bytes] | None:
        # Returns (hash of the old-tree part, hash of the new-tree part).
        if mm == nn:
            if b:
                return (root1, root1) if not rest else None
            return (rest[0], rest[0]) if len(rest) == 1 else None
        if not rest:
            return None
        k = largest_pow2_below(nn)
        sib = rest[-1]
        if mm <= k:
            sub = rebuild(mm, k, b, rest[:-1])
            if sub is None:
                return None
            return sub[0], _node(hash_name, sub[1], sib)
        sub = rebuild(mm - k, nn - k, False, rest[:-1])
        if sub is None:
            return None
        return _node(hash_name, sib, sub[0]), _node(hash_name, sib, sub[1])

    out = rebuild(m, n, True, list(proof))
    return out is not None and out == (root1, root2)
