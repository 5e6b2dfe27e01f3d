"""Giving freed memory back to the operating system between large steps.

Measured on a 2,000-vehicle, 14-day ingest: the process held 2,032 MB when
it ended, of which the DuckDB tables used 151 MB. Arrow's mimalloc pool kept
344 MB of freed blocks and glibc's malloc 856 MB of freed arena memory
(DuckDB's and numpy's threads each allocate in their own arena, and a freed
chunk below the top of an arena is not returned). Neither is a leak, but
both count against a machine's memory until the process ends, and the next
stage allocates on top of them.
"""

from __future__ import annotations

import ctypes
import platform
import sys
from collections.abc import Callable

import pyarrow as pa

__all__ = ["release_memory"]


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None  # musl, macOS, Windows: no malloc_trim
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Returns the freed blocks of Arrow's pool and of glibc's malloc to the
    system (a few ms; nothing in use is touched)."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
