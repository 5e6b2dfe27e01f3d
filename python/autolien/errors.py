"""autolien's exception family.

Every domain error derives from :class:`autolien.AutolienError` (raised by the
C++ core too). Errors that are also plain argument errors additionally derive
from ValueError, so ``except ValueError`` keeps working for callers that treat
them that way.
"""

from __future__ import annotations

from ._core import AutolienError

__all__ = [
    "AuthorizationError",
    "AutolienError",
    "IdempotencyConflictError",
    "InvalidAssetCodeError",
    "InvalidTransitionError",
    "InvalidVINError",
    "LedgerCorruptError",
    "LedgerLockedError",
    "SignatureError",
]


class InvalidVINError(AutolienError, ValueError):
    """A VIN that is malformed or fails its ISO 3779 check digit."""


class InvalidAssetCodeError(AutolienError, ValueError):
    """An asset code that is malformed or fails its check character."""


class InvalidTransitionError(AutolienError):
    """A lifecycle event that the asset's state does not allow; nothing was recorded."""


class AuthorizationError(AutolienError):
    """An M-of-N authorisation that does not hold (too few, duplicate, unknown or bad signatures)."""


class SignatureError(AutolienError):
    """A signed note or event whose signature does not verify."""


class IdempotencyConflictError(AutolienError):
    """A ledger event whose idempotency key was already used for different content."""


class LedgerLockedError(AutolienError):
    """Another process holds the ledger directory's write lock."""


class LedgerCorruptError(AutolienError):
    """Stored ledger data failed its checks; ``offset`` (bytes) and ``index`` locate it."""

    def __init__(
        self, message: str, *, path: str = "", offset: int | None = None, index: int | None = None
    ):
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.index = index
