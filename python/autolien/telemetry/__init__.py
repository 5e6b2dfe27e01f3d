"""T-Box telemetry: protocol decoders that turn raw bytes into Arrow tables.

Each decoder returns a :class:`DecodeResult` with ``.table`` (the decoded
rows), ``.rejects`` (offset, reason, message and raw bytes of everything that
did not decode) and, where the protocol has them, ``.messages``.

Decoders: :func:`decode_jt808`, :func:`decode_gb32960`, :func:`decode_nmea`
(NMEA 0183 and UBX) and :func:`decode_obd` (ELM327 lines; :func:`obd_value`
for raw PID bytes). :class:`Store` keeps the results in an embedded DuckDB
database; ``autolien ingest`` drives it from the shell.
"""

from __future__ import annotations

from ._common import DecodeResult
from .gb32960 import decode_gb32960
from .jt808 import decode_jt808
from .nmea import decode_nmea
from .obd import decode_obd, obd_value
from .store import Store

__all__ = [
    "DecodeResult",
    "Store",
    "decode_gb32960",
    "decode_jt808",
    "decode_nmea",
    "decode_obd",
    "obd_value",
]
