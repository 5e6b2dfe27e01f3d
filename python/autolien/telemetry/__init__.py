"""T-Box telemetry: protocol decoders that turn raw bytes into Arrow tables.

Each decoder returns a :class:`DecodeResult` with ``.table`` (the decoded
rows), ``.rejects`` (offset, reason, message and raw bytes of everything that
did not decode) and, where the protocol has them, ``.messages``.

Available: :func:`decode_jt808`, :func:`decode_gb32960` and
:func:`decode_nmea` (NMEA 0183 and UBX). OBD-II and the DuckDB store arrive
with the rest of the telemetry issue.
"""

from __future__ import annotations

from ._common import DecodeResult
from .gb32960 import decode_gb32960
from .jt808 import decode_jt808
from .nmea import decode_nmea

__all__ = ["DecodeResult", "decode_gb32960", "decode_jt808", "decode_nmea"]
