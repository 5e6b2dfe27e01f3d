"""The tamper-evident asset ledger.

* :class:`MerkleLog` and the stateless verifiers: an RFC 6962 / RFC 9162 log
  (SHA-256 by default, Keccak-256 as an option) with inclusion and consistency
  proofs for any past size.
* :class:`StandardMerkleTree` and :class:`SimpleMerkleTree`: OpenZeppelin
  merkle-tree 1.x compatible trees whose proofs verify on-chain.
* :class:`AssetLedger`: the consortium ledger of pledged vehicles (signed
  lifecycle events, M-of-N disposal, the 7-day rule, auctions, checkpoints,
  witnesses, durable storage, :func:`audit` (call it before writing: it
  reports every damaged file with its byte offset) and the operator's
  explicit :func:`truncate`); see docs/ledger.md. One module per part:
  envelope (format and signed envelope), log (replay and durable writing),
  disposal, auction, auditor (witness, audit, truncate).
"""

from __future__ import annotations

from . import abi
from .assets import AssetLedger
from .auditor import AuditReport, Witness, audit, truncate
from .envelope import Entry, Member
from .identity import asset_code, validate_asset_code, validate_vin, vin_check_digit
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
from .note import Checkpoint, NoteSigner, NoteVerifier
from .openzeppelin import MultiProof, SimpleMerkleTree, StandardMerkleTree

__all__ = [
    "AssetLedger",
    "AuditReport",
    "Checkpoint",
    "Entry",
    "HashName",
    "Member",
    "MerkleLog",
    "MultiProof",
    "NoteSigner",
    "NoteVerifier",
    "SimpleMerkleTree",
    "StandardMerkleTree",
    "Witness",
    "abi",
    "asset_code",
    "audit",
    "keccak256",
    "leaf_hash",
    "node_hash",
    "sha256",
    "sha256_backend",
    "truncate",
    "validate_asset_code",
    "validate_vin",
    "verify_consistency",
    "verify_inclusion",
    "vin_check_digit",
]
