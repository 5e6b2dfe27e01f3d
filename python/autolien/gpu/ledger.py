"""RFC 6962 leaf and node hashing on the GPU (kernel ``hash.cu``).

Records come as Arrow binary layout: one bytes buffer and an offsets array
(int32 or int64), on the host (numpy, copied to the device once) or already
on the device (CuPy). Results are bit-identical to the C++ core.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _core
from . import module

__all__ = ["leaf_hashes", "merkle_root", "node_level", "record_buffers"]

_THREADS = 128


def _kind(hash: str) -> int:
    if hash not in ("sha256", "keccak256"):
        raise ValueError(f"hash must be 'sha256' or 'keccak256', got {hash!r}")
    return 1 if hash == "keccak256" else 0


def _blocks(n: int) -> tuple[int]:
    return ((n + _THREADS - 1) // _THREADS,)


def record_buffers(items: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(bytes, int64 offsets) per chunk of ``items``: a pyarrow binary array
    (chunked or not), a 2-D uint8 array (one record per row) or an iterable
    of bytes-like records. Arrow buffers are used without copies."""
    from ..ledger.merkle import _arrow_binary_chunks  # noqa: PLC0415 - lazy: CuPy only when used

    if isinstance(items, np.ndarray):
        if items.dtype != np.uint8 or items.ndim != 2:
            raise ValueError(
                f"items as an array must be 2-D uint8, got {items.ndim}-D {items.dtype}"
            )
        rows, width = items.shape
        offsets = np.arange(rows + 1, dtype=np.int64) * width
        return [(np.ascontiguousarray(items).reshape(-1), offsets)]
    arrow = _arrow_binary_chunks(items)
    if arrow is not None:
        return arrow
    if isinstance(items, bytes | bytearray | memoryview | str):
        raise TypeError(
            f"items must be an iterable of records, got a single {type(items).__name__}"
        )
    parts = [bytes(memoryview(r)) for r in _iterable(items)]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return [(np.frombuffer(b"".join(parts), dtype=np.uint8), offsets)]


def _iterable(items: Any) -> Iterable[Any]:
    if not hasattr(items, "__iter__"):
        raise TypeError(f"items must be an iterable of records, got {type(items).__name__}")
    it: Iterable[Any] = items
    return it


def leaf_hashes(data: Any, offsets: Any, *, hash: str = "sha256") -> Any:
    """Leaf hashes ``H(0x00 || record)`` as a device ``(n, 32)`` uint8 CuPy array.

    ``data`` is the bytes buffer (uint8), ``offsets`` the n+1 record bounds
    (int32 or int64, non-decreasing, within the buffer).
    """
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    kind = _kind(hash)
    off = cp.asarray(offsets)
    if off.ndim != 1 or off.size < 1:
        raise ValueError("offsets must be a 1-D array of n+1 record bounds")
    if off.dtype not in (cp.int32, cp.int64):
        raise TypeError(f"offsets must be int32 or int64, got {off.dtype}")
    buf = cp.asarray(data, dtype=cp.uint8).reshape(-1)
    n = off.size - 1
    if n and (int(off[0]) < 0 or int(off[-1]) > buf.size or bool((off[1:] < off[:-1]).any())):
        raise ValueError("offsets must be non-decreasing and within the data buffer")
    out = cp.empty((n, 32), dtype=cp.uint8)
    if n == 0:
        return out
    name = "leaf_hashes_i64" if off.dtype == cp.int64 else "leaf_hashes_i32"
    if buf.size == 0:
        buf = cp.zeros(1, dtype=cp.uint8)  # a valid pointer for all-empty records
    module("hash").get_function(name)(
        _blocks(n), (_THREADS,), (buf, off, np.uint64(n), np.int32(kind), out)
    )
    return out


def node_level(child: Any, *, hash: str = "sha256") -> Any:
    """One tree level up: ``H(0x01 || child[2i] || child[2i+1])`` for each pair
    (an odd last child is left out), as a device ``(m, 32)`` array."""
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    kind = _kind(hash)
    child = cp.ascontiguousarray(child, dtype=cp.uint8).reshape(-1, 32)
    m = child.shape[0] // 2
    parent = cp.empty((m, 32), dtype=cp.uint8)
    if m:
        module("hash").get_function("node_hashes")(
            _blocks(m), (_THREADS,), (child, np.uint64(m), np.int32(kind), parent)
        )
    return parent


def merkle_root(leaves: Any, *, hash: str = "sha256") -> bytes:
    """The RFC 6962 root of device leaf hashes ``(n, 32)``: levels reduced on the
    GPU, the at most 64 perfect-subtree roots of n's binary form folded on the
    host (right to left, as RFC 6962's split at the largest power of two)."""
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    _kind(hash)
    level = cp.ascontiguousarray(leaves, dtype=cp.uint8).reshape(-1, 32)
    if level.shape[0] == 0:
        return _core.sha256(b"") if hash == "sha256" else _core.keccak256(b"")
    frontier: list[bytes] = []  # lowest level (rightmost subtree) first
    while level.shape[0] > 1:
        if level.shape[0] % 2:
            frontier.append(level[-1].get().tobytes())
        level = node_level(level, hash=hash)
    # Fold the subtrees right to left: acc is the hash of everything right of
    # the current subtree.
    acc: bytes | None = None
    for node in frontier:
        acc = node if acc is None else _core.rfc6962_node_hash(node, acc, hash)
    top = level[0].get().tobytes()
    return top if acc is None else _core.rfc6962_node_hash(top, acc, hash)
