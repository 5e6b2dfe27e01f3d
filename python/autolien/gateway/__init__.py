"""The live T-Box gateway behind ``autolien serve``: JT/T 808 and GB/T 32960
over TCP, a write-ahead spool (acknowledged means on disk), and decoding into
the store and the monitor as frames arrive. docs/gateway.md has the details."""

from __future__ import annotations

from .config import GatewayConfig, LoanBook
from .protocol import Gb32960Framer, Jt808Framer
from .server import Gateway, auth_code, serve
from .spool import Spool, SpoolReader

__all__ = [
    "Gateway",
    "GatewayConfig",
    "Gb32960Framer",
    "Jt808Framer",
    "LoanBook",
    "Spool",
    "SpoolReader",
    "auth_code",
    "serve",
]
