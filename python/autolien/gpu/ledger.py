"""RFC 6962 leaf and node hashing on the GPU (kernel ``hash.cu``).

Records come as Arrow binary layout: one bytes buffer and an offsets array
(int32 or int64), on the host (numpy) or already on the device (CuPy).
Results are bit-identical to the C++ core.

Host records travel in chunks through pinned (page-locked) staging buffers,
two of them on two streams, so that filling one buffer on the host overlaps
the copy and the hashing of the other (pageable copies ran at ~1.2 GB/s on
the H200 machine). :func:`extend_log` then computes the tree's node levels on
the device too and hands leaves and nodes to the core log in one call
(``extend_with_levels``), which stores them without rehashing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _core
from . import module

__all__ = [
    "extend_log",
    "leaf_hashes",
    "level_plan",
    "merkle_root",
    "node_level",
    "record_buffers",
    "staged_leaf_hashes",
    "tree_levels",
]

_THREADS = 128
# Bytes of records per staging chunk (a record longer than this is a chunk).
CHUNK_BYTES = 64 << 20
# Host threads that fill a pinned staging buffer (numpy copies drop the GIL).
_COPY_THREADS = 8


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


def level_plan(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """How to build the node levels above leaves ``old_size .. new_size - 1``.

    Item ``k - 1`` is ``(skip, count)`` for level ``k``: its nodes are those
    covering new leaves only, indices ``ceil(old_size / 2^k) ..
    new_size >> k`` (``count`` of them), made from the level below it (the
    leaves for ``k = 1``) by pairing its nodes from position ``skip`` (0, or
    1 when that level starts with a right child). Levels with no such node
    are left out; ``MerkleLog.extend_with_levels`` takes the levels in this
    form and hashes the at most one node per level that also covers old
    leaves itself.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size}, {new_size}")
    plan = []
    start = old_size  # index of the first node of the level below
    for k in range(1, 65):
        lo, hi = -(-old_size >> k), new_size >> k
        if hi <= lo:
            break
        plan.append((2 * lo - start, hi - lo))
        start = lo
    return plan


def tree_levels(leaves: Any, old_size: int, *, hash: str = "sha256") -> list[Any]:
    """The node levels (device arrays) above new ``leaves`` (device
    ``(m, 32)``, leaves ``old_size .. old_size + m - 1``), as
    :func:`level_plan` lays them out."""
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    _kind(hash)
    level = cp.ascontiguousarray(leaves, dtype=cp.uint8).reshape(-1, 32)
    out: list[Any] = []
    for skip, count in level_plan(old_size, old_size + level.shape[0]):
        level = node_level(level[skip : skip + 2 * count], hash=hash)
        out.append(level)
    return out


def _chunks(offsets: np.ndarray, limit: int) -> list[tuple[int, int]]:
    # Record ranges [a, b) of at most `limit` bytes each (or one record).
    n = offsets.size - 1
    bounds = [0]
    while bounds[-1] < n:
        a = bounds[-1]
        b = int(np.searchsorted(offsets, offsets[a] + limit, side="right")) - 1
        bounds.append(min(n, max(b, a + 1)))
    return list(itertools.pairwise(bounds))


def _parallel_copy(dst: np.ndarray, src: np.ndarray, pool: Any) -> None:
    parts = max(1, min(_COPY_THREADS, src.size >> 22))
    cuts = np.linspace(0, src.size, parts + 1).astype(np.int64)
    list(pool.map(lambda i: np.copyto(dst[cuts[i] : cuts[i + 1]], src[cuts[i] : cuts[i + 1]]),
                  range(parts)))  # fmt: skip


def staged_leaf_hashes(
    data: np.ndarray, offsets: np.ndarray, *, hash: str = "sha256", chunk_bytes: int = CHUNK_BYTES
) -> Any:
    """:func:`leaf_hashes` of host records through pinned staging buffers.

    The records go in chunks of about ``chunk_bytes``: each is copied into one
    of two pinned buffers (by several host threads), sent with an async copy
    on that buffer's stream, and hashed there, while the host fills the other
    buffer. Returns the device ``(n, 32)`` leaf hashes.
    """
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    kind = _kind(hash)
    off = np.ascontiguousarray(offsets, dtype=np.int64)
    buf = np.ascontiguousarray(data, dtype=np.uint8).reshape(-1)
    if off.ndim != 1 or off.size < 1:
        raise ValueError("offsets must be a 1-D array of n+1 record bounds")
    n = off.size - 1
    if n and (off[0] < 0 or off[-1] > buf.size or bool(np.any(off[1:] < off[:-1]))):
        raise ValueError("offsets must be non-decreasing and within the data buffer")
    out = cp.empty((n, 32), dtype=cp.uint8)
    if n == 0:
        return out
    ranges = _chunks(off, chunk_bytes)
    max_bytes = max(1, *(int(off[b] - off[a]) for a, b in ranges))
    max_recs = max(b - a for a, b in ranges)
    nbuf = min(2, len(ranges))
    h2d = cp.cuda.runtime.memcpyHostToDevice
    host_data = [np.frombuffer(cp.cuda.alloc_pinned_memory(max_bytes), np.uint8, max_bytes)
                 for _ in range(nbuf)]  # fmt: skip
    host_off = [np.frombuffer(cp.cuda.alloc_pinned_memory(8 * (max_recs + 1)), np.int64,
                              max_recs + 1) for _ in range(nbuf)]  # fmt: skip
    dev_data = [cp.empty(max_bytes, dtype=cp.uint8) for _ in range(nbuf)]
    dev_off = [cp.empty(max_recs + 1, dtype=cp.int64) for _ in range(nbuf)]
    streams = [cp.cuda.Stream(non_blocking=True) for _ in range(nbuf)]
    done: list[Any] = [None] * nbuf
    fn = module("hash").get_function("leaf_hashes_i64")
    with ThreadPoolExecutor(_COPY_THREADS) as pool:
        for i, (a, b) in enumerate(ranges):
            j = i % nbuf
            if done[j] is not None:
                done[j].synchronize()  # buffer j's previous copy has left the host
            lo, hi = int(off[a]), int(off[b])
            _parallel_copy(host_data[j][: hi - lo], buf[lo:hi], pool)
            np.subtract(off[a : b + 1], lo, out=host_off[j][: b - a + 1])
            st = streams[j]
            if hi > lo:
                cp.cuda.runtime.memcpyAsync(dev_data[j].data.ptr, host_data[j].ctypes.data,
                                            hi - lo, h2d, st.ptr)  # fmt: skip
            cp.cuda.runtime.memcpyAsync(dev_off[j].data.ptr, host_off[j].ctypes.data,
                                        8 * (b - a + 1), h2d, st.ptr)  # fmt: skip
            m = b - a
            with st:
                fn(_blocks(m), (_THREADS,), (dev_data[j], dev_off[j], np.uint64(m), np.int32(kind),
                                              out[a:b]))  # fmt: skip
            done[j] = st.record()
    for st in streams:
        st.synchronize()
    return out


def _download(arrays: list[Any]) -> list[np.ndarray]:
    # All arrays into one pinned host block (async copies, one wait).
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    sizes = [int(a.nbytes) for a in arrays]
    total = max(1, sum(sizes))
    host = np.frombuffer(cp.cuda.alloc_pinned_memory(total), np.uint8, total)
    stream = cp.cuda.get_current_stream()
    views = []
    pos = 0
    for a, size in zip(arrays, sizes, strict=True):
        view = host[pos : pos + size]
        if size:
            cp.cuda.runtime.memcpyAsync(view.ctypes.data, cp.ascontiguousarray(a).data.ptr, size,
                                        cp.cuda.runtime.memcpyDeviceToHost, stream.ptr)  # fmt: skip
        views.append(view)
        pos += size
    stream.synchronize()
    return views


def extend_log(log: Any, items: Any, *, hash: str = "sha256") -> tuple[int, int]:
    """Appends ``items`` to the core log ``log`` (``_core.MerkleLog``) with the
    leaves and all new node levels computed on the GPU; returns
    ``(first_index, new_size)``. Items as :func:`record_buffers` takes them,
    or ``(data, offsets)`` CuPy arrays already on the device."""
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    first = int(log.size)
    if isinstance(items, tuple) and len(items) == 2 and isinstance(items[0], cp.ndarray):
        parts = [items]
    else:
        parts = record_buffers(items)
    for data, offsets in parts:
        if isinstance(data, cp.ndarray):
            leaves = leaf_hashes(data, offsets, hash=hash)
        else:
            leaves = staged_leaf_hashes(data, offsets, hash=hash)
        levels = tree_levels(leaves, int(log.size), hash=hash)
        host = _download([leaves, *levels])
        log.extend_with_levels(host[0], host[1:])
    return first, int(log.size)
