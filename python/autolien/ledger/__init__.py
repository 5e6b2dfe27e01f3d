"""The tamper-evident asset ledger.

* :class:`MerkleLog` and the stateless verifiers: an RFC 6962 / RFC 9162 log
  (SHA-256 by default, Keccak-256 as an option) with inclusion and consistency
  proofs for any past size.
* :class:`StandardMerkleTree` and :class:`SimpleMerkleTree`: OpenZeppelin
  merkle-tree 1.x compatible trees whose proofs verify on-chain.
"""

from __future__ import annotations

from . import abi
from .merkle import (
    HashName,
    MerkleLog,
    keccak256,
    leaf_hash,
    node_hash,
    sha256,
    sha256_backend,
    verify_consistency,
    verify_inclusion,
)
from .openzeppelin import MultiProof, SimpleMerkleTree, StandardMerkleTree

__all__ = [
    "HashName",
    "MerkleLog",
    "MultiProof",
    "SimpleMerkleTree",
    "StandardMerkleTree",
    "abi",
    "keccak256",
    "leaf_hash",
    "node_hash",
    "sha256",
    "sha256_backend",
    "verify_consistency",
    "verify_inclusion",
]
