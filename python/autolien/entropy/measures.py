"""antropy-compatible entropy measures on the C++ core.

Signatures and defaults mirror antropy 0.2.3 so that ``import autolien.entropy
as ant`` is a drop-in switch; the extra keyword-only arguments (``r``,
``times``) extend them. docs/entropy.md records every convention.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .. import _core

__all__ = [
    "app_entropy",
    "histogram_edges",
    "perm_entropy",
    "rolling_perm_entropy",
    "rolling_shannon_entropy",
    "sample_entropy",
    "shannon_counts",
    "shannon_entropy",
    "spectral_entropy",
    "svd_entropy",
]

ArrayLike = npt.ArrayLike
Window = int | float | _dt.timedelta | np.timedelta64

_EMPTY = np.zeros(0, dtype=np.float64)


def _series(x: ArrayLike, name: str = "x") -> npt.NDArray[np.float64]:
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _int(v: object, name: str, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _tolerance(tolerance: float | None) -> float:
    if tolerance is None:
        return -1.0
    if isinstance(tolerance, bool) or not isinstance(
        tolerance, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"tolerance must be a float or int, got {type(tolerance).__name__}")
    if not (np.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be finite and >= 0, got {tolerance}")
    return float(tolerance)


def _measure(
    x: ArrayLike,
    kind: str,
    *,
    order: int = 3,
    delay: int = 1,
    normalize: bool = False,
    r: float = 0.2,
    tolerance: float | None = None,
    metric: str = "chebyshev",
    method: str = "fft",
    nperseg: int | None = None,
) -> float:
    a = _series(x)
    if not (np.isfinite(r) and r >= 0):
        raise ValueError(f"r must be finite and >= 0, got {r}")
    return float(
        _core.entropy_measure(
            a,
            kind,
            _int(order, "order", 1),
            _int(delay, "delay", 1),
            bool(normalize),
            float(r),
            _tolerance(tolerance),
            metric,
            method,
            0 if nperseg is None else _int(nperseg, "nperseg", 2),
        )
    )


def perm_entropy(x: ArrayLike, order: int = 3, delay: int = 1, normalize: bool = False) -> float:
    """Permutation entropy in bits (Bandt & Pompe), as antropy.perm_entropy.

    Ties go to the earlier sample. Orders 2..7. Patterns that touch a NaN are
    left out; NaN when none is left."""
    return _measure(x, "perm", order=order, delay=delay, normalize=normalize)


def sample_entropy(
    x: ArrayLike,
    order: int = 2,
    tolerance: float | None = None,
    metric: str = "chebyshev",
    *,
    r: float = 0.2,
) -> float:
    """Sample entropy -ln(A/B) in nats, as antropy.sample_entropy.

    ``tolerance`` is absolute; when None it is ``r`` (default 0.2) times the
    population SD. Below 5,000 samples with the Chebyshev metric a pair
    matches when d < tolerance, otherwise when d <= tolerance (antropy's two
    code paths). NaN when no m-template pair matches or x holds a NaN; inf
    when no (m+1)-template pair does."""
    return _measure(x, "sample", order=order, r=r, tolerance=tolerance, metric=metric)


def app_entropy(
    x: ArrayLike,
    order: int = 2,
    tolerance: float | None = None,
    metric: str = "chebyshev",
    *,
    r: float = 0.2,
) -> float:
    """Approximate entropy in nats (Pincus; self-matches counted, d <=
    tolerance), as antropy.app_entropy; ``tolerance`` as in sample_entropy."""
    return _measure(x, "app", order=order, r=r, tolerance=tolerance, metric=metric)


def svd_entropy(x: ArrayLike, order: int = 3, delay: int = 1, normalize: bool = False) -> float:
    """SVD entropy in bits of the delay embedding, as antropy.svd_entropy."""
    return _measure(x, "svd", order=order, delay=delay, normalize=normalize)


def spectral_entropy(
    x: ArrayLike,
    sf: float,
    method: str = "fft",
    nperseg: int | None = None,
    normalize: bool = False,
    axis: int = -1,
) -> float | npt.NDArray[np.float64]:
    """Spectral entropy in bits of scipy's periodogram (``fft``) or Welch
    estimate (``welch``), mean removed, as antropy.spectral_entropy. ``sf``
    scales the frequencies only, so it does not change the value. An N-D
    ``x`` gives one value per series along ``axis``."""
    if not np.isfinite(sf) or sf <= 0:
        raise ValueError(f"sf must be a positive sampling frequency, got {sf}")
    a = np.asarray(x)
    if a.ndim > 1:
        moved = np.moveaxis(a, axis, -1)
        flat = moved.reshape(-1, moved.shape[-1])
        vals = [
            _measure(row, "spectral", method=method, nperseg=nperseg, normalize=normalize)
            for row in flat
        ]
        return np.asarray(vals, dtype=np.float64).reshape(moved.shape[:-1])
    return _measure(a, "spectral", method=method, nperseg=nperseg, normalize=normalize)


def histogram_edges(
    x: ArrayLike, bins: int | Sequence[float] | npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The edges numpy.histogram would use: ``bins`` equal bins over the finite
    range of x, or the given edges checked."""
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        a = _series(x)
        finite = a[np.isfinite(a)]
        if finite.size == 0:
            raise ValueError("x has no finite values to bin")
        return np.asarray(
            _core.histogram_edges(float(finite.min()), float(finite.max()), _int(bins, "bins", 1))
        )
    e = _series(bins, "bins")
    if e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
        raise ValueError("bin edges must be at least two finite, increasing values")
    return e


def shannon_entropy(
    x: ArrayLike, bins: int | Sequence[float] | npt.NDArray[np.float64] = 16
) -> float:
    """Shannon entropy in bits of x binned as numpy.histogram bins it
    (equal to ``scipy.stats.entropy(np.histogram(x, bins)[0], base=2)``).
    NaN and values outside given edges are not counted."""
    a = _series(x)
    counts, _ = _core.histogram(a, histogram_edges(a, bins))
    return float(_core.shannon_bits(counts))


def shannon_counts(counts: ArrayLike, offsets: ArrayLike | None = None) -> npt.NDArray[np.float64]:
    """Shannon entropy in bits of counts already binned: of each row of a 2-D
    count matrix, or, with ``offsets`` (n + 1 increasing indices), of each
    group ``counts[offsets[i]:offsets[i + 1]]`` of a 1-D array. NaN for a
    row or group whose counts sum to zero. Counts are whole numbers >= 0
    (integer dtype, or floats holding whole numbers)."""
    a = np.asarray(counts)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"counts must be numeric, got dtype {a.dtype}")
    c = a.astype(np.int64)
    if a.dtype.kind == "f" and not np.array_equal(c, a):
        raise ValueError("counts must be whole numbers")
    if (c < 0).any():
        raise ValueError("counts must be >= 0")
    if offsets is None:
        if c.ndim != 2:
            raise ValueError(f"counts must be 2-D without offsets, got shape {c.shape}")
        return np.asarray(_core.shannon_bits(np.ascontiguousarray(c)), dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    if c.ndim != 1 or off.ndim != 1 or off.size < 1 or off[0] != 0 or off[-1] != c.size:
        raise ValueError("offsets must run from 0 to len(counts) over 1-D counts")
    sizes = np.diff(off)
    if (sizes < 0).any():
        raise ValueError("offsets must not decrease")
    # groups padded with zero counts into rows (a zero count adds nothing)
    rows = np.zeros((sizes.size, int(sizes.max()) if sizes.size else 0), np.int64)
    group = np.repeat(np.arange(sizes.size), sizes)
    rows[group, np.arange(c.size) - off[group]] = c
    return np.asarray(_core.shannon_bits(rows), dtype=np.float64)


def _window(
    window: Window, times: ArrayLike | None, n: int
) -> tuple[int, float, npt.NDArray[np.float64]]:
    if times is None:
        if not isinstance(window, (int, np.integer)) or isinstance(window, bool):
            raise TypeError(
                "a time-span window needs times=; without them window is a sample count"
            )
        return _int(window, "window", 1), 0.0, _EMPTY
    t = np.asarray(times)
    if t.dtype.kind == "M":
        t = (t.astype("datetime64[us]").astype(np.int64) / 1e6).astype(np.float64)
    t = _series(t, "times")
    if t.size != n:
        raise ValueError(f"times has {t.size} entries for {n} values")
    span: float | None = None
    if isinstance(window, _dt.timedelta):
        span = window.total_seconds()
    elif isinstance(window, np.timedelta64):
        span = float(window / np.timedelta64(1, "us")) / 1e6
    elif isinstance(window, (int, float, np.integer, np.floating)):
        span = float(window)  # seconds
    if isinstance(window, bool) or span is None:
        raise TypeError(
            f"window must be a count, seconds or a timedelta, got {type(window).__name__}"
        )
    if not span > 0:
        raise ValueError(f"the time window must be positive, got {span} s")
    return 0, span, t


def rolling_perm_entropy(
    x: ArrayLike,
    window: Window,
    order: int = 3,
    delay: int = 1,
    normalize: bool = False,
    *,
    times: ArrayLike | None = None,
    fixed_point: bool = False,
    backend: str = "cpu",
    offsets: ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """Permutation entropy of the window ending at each sample.

    ``window`` is a sample count (the first window-1 values are NaN), or with
    ``times`` a span (seconds or timedelta) covering (t - span, t]. Only the
    patterns wholly inside a window count. Equals perm_entropy of each window
    (to rounding); O(1) per sample.

    ``fixed_point=True`` computes the entropy in integer arithmetic (units of
    2^-32 bits, within 2^-31 bits of the exact value; docs/gpu.md), the same
    bits on the CPU and the GPU. ``backend="gpu"`` (needs ``fixed_point``)
    runs on the device, ``"auto"`` does when one is usable.

    ``offsets`` (n + 1 indices from 0 to len(x), not decreasing) makes each
    ``x[offsets[i]:offsets[i + 1]]`` a series of its own, in one call: no
    window reaches across a group's start (ValueError for bad offsets)."""
    a = _series(x)
    count, span, t = _window(window, times, a.size)
    offsets = (
        np.array([0, a.size], dtype=np.int64)
        if offsets is None
        else np.ascontiguousarray(offsets, dtype=np.int64)
    )
    if a.size == 0 and offsets.size >= 1 and not offsets.any():
        # nothing to window (the core would read an empty `times` as a count window)
        return np.zeros(0)
    order = _int(order, "order", 2)
    delay = _int(delay, "delay", 1)
    if _on_gpu(backend, fixed_point):
        from ..gpu.entropy import rolling_fixed  # noqa: PLC0415 - lazy: CuPy only when used

        return np.asarray(
            rolling_fixed(
                a, t if times is not None else None, offsets, count, span,
                order=order, delay=delay, normalize=bool(normalize),
            )
        )  # fmt: skip
    return np.asarray(
        _core.entropy_rolling(
            a, t, offsets, count, span, order, delay, bool(normalize), _EMPTY, bool(fixed_point)
        )
    )


def _on_gpu(backend: str, fixed_point: bool) -> bool:
    """Whether a rolling entropy call runs on the GPU (which computes the
    fixed-point form only)."""
    if backend == "cpu":
        return False
    from ..gpu import resolve_backend  # noqa: PLC0415 - lazy: CuPy only when used

    why = "the GPU computes the fixed-point entropy only; pass fixed_point=True"
    return resolve_backend(backend, supported=bool(fixed_point), why=why) == "gpu"


def rolling_shannon_entropy(
    x: ArrayLike,
    window: Window,
    bins: int | Sequence[float] | npt.NDArray[np.float64] = 16,
    *,
    times: ArrayLike | None = None,
    fixed_point: bool = False,
    backend: str = "cpu",
) -> npt.NDArray[np.float64]:
    """Shannon entropy (bits) of the window ending at each sample. Integer
    ``bins`` span the finite range of the whole series so that every window
    shares its edges (equal to shannon_entropy(window, bins=edges)).
    ``fixed_point`` and ``backend`` as in :func:`rolling_perm_entropy`."""
    a = _series(x)
    count, span, t = _window(window, times, a.size)
    offsets = np.array([0, a.size], dtype=np.int64)
    edges = histogram_edges(a, bins)
    if _on_gpu(backend, fixed_point):
        from ..gpu.entropy import rolling_fixed  # noqa: PLC0415 - lazy: CuPy only when used

        return np.asarray(
            rolling_fixed(a, t if times is not None else None, offsets, count, span, edges=edges)
        )
    return np.asarray(
        _core.entropy_rolling(a, t, offsets, count, span, 3, 1, False, edges, bool(fixed_point))
    )
