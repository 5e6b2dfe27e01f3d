"""The consortium asset ledger: one code per vehicle, signed lifecycle events
in a durable RFC 6962 log, M-of-N disposal, the 7-day rule, auctions, signed
and witnessed checkpoints, and audit (docs/ledger.md).

:class:`AssetLedger` is assembled from its parts, one module each:
envelope.py (format, LEDGER.json, the signed envelope, the consortium), log.py
(replay, durable writing, checkpoints), disposal.py (M-of-N disposal),
auction.py (auctions) and auditor.py (witness, audit, truncate). The names
below stay importable from here.
"""

from __future__ import annotations

from .auction import AuctionLedger
from .auditor import AuditReport, Witness, audit, truncate
from .disposal import DISPOSAL_REQUEST_FIELDS, DisposalLedger, check_disposal_request
from .envelope import (
    CHECKPOINTS,
    CONFIG,
    DISPOSAL_DOMAIN,
    ENTRIES,
    EVENT_DOMAIN,
    FORMAT,
    ID_MAX,
    OPERATOR_KEY,
    TRUNCATED_DIR,
    TRUNCATION_DOMAIN,
    TRUNCATIONS,
    Entry,
    Member,
    check_idempotency_key,
    disposal_signing_bytes,
    read_config,
    signing_bytes,
)
from .log import read_truncations, revoked_checkpoints

# The public names of the single-module ledger this file was, all kept.
__all__ = [
    "CHECKPOINTS",
    "CONFIG",
    "DISPOSAL_DOMAIN",
    "DISPOSAL_REQUEST_FIELDS",
    "ENTRIES",
    "EVENT_DOMAIN",
    "FORMAT",
    "ID_MAX",
    "OPERATOR_KEY",
    "TRUNCATED_DIR",
    "TRUNCATIONS",
    "TRUNCATION_DOMAIN",
    "AssetLedger",
    "AuditReport",
    "Entry",
    "Member",
    "Witness",
    "audit",
    "check_disposal_request",
    "check_idempotency_key",
    "disposal_signing_bytes",
    "read_config",
    "read_truncations",
    "revoked_checkpoints",
    "signing_bytes",
    "truncate",
]


class AssetLedger(DisposalLedger, AuctionLedger):
    """A durable consortium ledger in a directory. Use :meth:`create` or :meth:`open`."""
