"""Rolling fixed-point entropy for many series on the GPU (kernel ``entropy.cu``).

The values equal the C++ core's ``fixed_point=True`` rolling entropy bit for
bit: both slide the same integer counts through the shared table
``T(c) = round(c log2(c) 2^32)`` of ``kernels/entropy_fixed.hpp``.

One warp works on one series (a long series is cut into segments, a warp
each): its lanes compute the patterns or bins in parallel and keep the
window's counts in shared memory (``entropy.cu`` explains the scheme).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from . import module

__all__ = ["MAX_COUNT", "launch_shape", "rolling_fixed"]

# kernels::kEntropyMaxCount: the longest window the 64-bit sums hold.
MAX_COUNT = 1 << 24
# One warp per segment, up to 4 warps per block.
_WARPS = 4
# Enough warps to fill the device: a series longer than its share is cut
# into segments, each primed with its first window.
_TARGET_WARPS = 1 << 15
# Scratch counts (when the histograms do not fit in shared memory) are
# slots x segments 32-bit words; keep them under 1 GiB.
_SCRATCH_WORDS = 1 << 28
# Shared memory per block without opting in to more.
_SHARED_BYTES = 48 * 1024


def _segments(
    lengths: npt.NDArray[np.int64], window: int, slots: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    # Every group gets at least one segment; beyond that, as many as fill the
    # device while the scratch counts stay bounded.
    total = int(lengths.sum())
    target = max(1, min(_TARGET_WARPS, _SCRATCH_WORDS // slots))
    seg_len = max(-(-total // target), 4 * window, 1024)
    pieces = np.maximum(-(-lengths // seg_len), 1)
    group = np.repeat(np.arange(lengths.size, dtype=np.int32), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    k = np.arange(group.size, dtype=np.int64) - first
    begin = np.minimum(k * seg_len, lengths[group])
    end = np.minimum(begin + seg_len, lengths[group])
    return group, begin.astype(np.int64), end.astype(np.int64)


def launch_shape(slots: int) -> tuple[int, bool]:
    """(warps per block, histograms in shared memory) for ``slots`` counts."""
    warps = max(1, min(_WARPS, _SHARED_BYTES // (4 * slots)))
    return warps, 4 * slots * warps <= _SHARED_BYTES


def rolling_fixed(
    x: Any,
    times: Any,
    offsets: npt.NDArray[np.int64],
    count: int,
    span: float,
    *,
    order: int = 3,
    delay: int = 1,
    normalize: bool = False,
    edges: npt.NDArray[np.float64] | None = None,
) -> Any:
    """Rolling permutation (``edges`` None) or Shannon entropy per group.

    Arguments as the core's ``entropy_rolling``: ``offsets`` bound the groups,
    ``times`` (None: a count window of ``count`` samples) gives a span window
    of ``span`` seconds. Returns float64 on the host, or on the device when
    ``x`` is a CuPy array.
    """
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    on_device = isinstance(x, cp.ndarray)
    xd = cp.ascontiguousarray(cp.asarray(x, dtype=cp.float64))
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if (
        offsets.size < 1
        or offsets[0] != 0
        or offsets[-1] != xd.size
        or np.any(np.diff(offsets) < 0)
    ):
        raise ValueError("offsets must run from 0 to the number of samples")
    lengths = np.diff(offsets)
    longest = int(lengths.max()) if lengths.size else 0
    td = None
    if times is not None:
        td = cp.ascontiguousarray(cp.asarray(times, dtype=cp.float64))
        if td.size != xd.size:
            raise ValueError("times must have one entry per sample")
        if not (span > 0 and math.isfinite(span)):
            raise ValueError("time window must be a positive, finite span")
        if xd.size:
            if not bool(cp.isfinite(td).all()):
                raise ValueError("times must be finite")
            step = cp.diff(td)
            inner = cp.ones(step.size, dtype=cp.bool_)
            starts = offsets[1:-1]
            inner[cp.asarray(starts[(starts > 0) & (starts < xd.size)] - 1)] = False
            if bool(((step < 0) & inner).any()):
                raise ValueError("times must not decrease within a group")
        bound = longest
    else:
        if count < 1:
            raise ValueError("a count window must be >= 1")
        bound = min(longest, count)
    if bound > MAX_COUNT:
        raise ValueError(
            f"fixed-point entropy holds windows up to {MAX_COUNT} samples, got {bound}"
        )
    shannon = edges is not None
    if shannon:
        e = np.ascontiguousarray(edges, dtype=np.float64)
        if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
            raise ValueError("bin edges must be at least two finite, increasing values")
        slots = e.size - 1
        ed = cp.asarray(e)
    else:
        if not 2 <= order <= 7:
            raise ValueError(f"order must be in 2..7, got {order}")
        if delay < 1:
            raise ValueError(f"delay must be >= 1, got {delay}")
        slots = math.factorial(order)
        ed = cp.zeros(1, dtype=cp.float64)
    out = cp.empty(xd.size, dtype=cp.uint64)
    if xd.size:
        mod = module("entropy")
        table = cp.empty(bound + 2, dtype=cp.uint64)
        mod.get_function("fixed_table")(
            (-(-(bound + 2) // 256),), (256,), (table, np.uint32(bound + 1))
        )
        group, begin, end = _segments(lengths, count if times is None else 1024, slots)
        nseg = group.size
        warps, shared = launch_shape(slots)
        counts = cp.zeros(1 if shared else nseg * slots, dtype=cp.uint32)
        mod.get_function("rolling_fixed")(
            (-(-nseg // warps),),
            (32 * warps,),
            (
                xd,
                td if td is not None else np.uint64(0),
                cp.asarray(offsets),
                cp.asarray(group),
                cp.asarray(begin),
                cp.asarray(end),
                np.int64(nseg),
                np.int64(count),
                np.float64(span),
                np.int32(1 if shannon else 0),
                np.int32(order),
                np.int32(delay),
                ed,
                np.int32(ed.size),
                table,
                counts,
                np.int32(slots),
                np.int32(1 if shared else 0),
                out,
            ),
            shared_mem=4 * slots * warps if shared else 0,
        )
    missing = out == cp.uint64(0xFFFFFFFFFFFFFFFF)
    values = out.astype(cp.float64) * (2.0**-32)
    values[missing] = cp.nan
    if normalize and not shannon:
        values /= math.log2(float(math.factorial(order)))
    return values if on_device else cp.asnumpy(values)
