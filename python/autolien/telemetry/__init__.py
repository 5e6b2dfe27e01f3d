"""T-Box telemetry: protocol decoders that turn raw bytes into Arrow tables.

Each decoder returns a :class:`DecodeResult` with ``.table`` (the decoded
rows), ``.rejects`` (offset, reason, message and raw bytes of everything that
did not decode) and, where the protocol has them, ``.messages``.

Available: :func:`decode_jt808`. GB/T 32960, NMEA/UBX, OBD-II and the DuckDB
store arrive with the rest of the telemetry issue.
"""

from __future__ import annotations

from ._common import DecodeResult
from .jt808 import decode_jt808

__all__ = ["DecodeResult", "decode_jt808"]
