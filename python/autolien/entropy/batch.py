"""Entropy over a table grouped by vehicle: one value per vehicle, or a
rolling value per row. Vehicles run on the core's thread pool with the GIL
released."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .. import _core
from .._tables import group_by_vehicle
from .measures import Window, _int, _on_gpu, _tolerance, _window, histogram_edges

__all__ = ["by_vehicle"]

_MEASURES = ("perm", "sample", "app", "svd", "spectral", "shannon")


def by_vehicle(
    table: pa.Table,
    column: str,
    measure: str = "perm",
    *,
    window: Window | None = None,
    vehicle_column: str = "vehicle_id",
    time_column: str = "time",
    order: int | None = None,
    delay: int = 1,
    normalize: bool = False,
    r: float = 0.2,
    tolerance: float | None = None,
    metric: str = "chebyshev",
    method: str = "fft",
    nperseg: int | None = None,
    bins: int | Sequence[float] | npt.NDArray[np.float64] = 16,
    fixed_point: bool = False,
    backend: str = "cpu",
) -> pa.Table:
    """``measure`` of ``column`` per vehicle.

    Without ``window``: one row per vehicle (``vehicle_id``, ``n``, ``value``),
    each vehicle's rows taken in table order. With ``window`` (``perm`` and
    ``shannon`` only): one row per input row (``vehicle_id``, ``time``,
    ``value``), the window a sample count or a time span over ``time_column``
    and never crossing vehicles. ``order`` defaults to antropy's: 3 for perm
    and svd, 2 for sample and app. Integer ``bins`` span the finite range of
    the whole column, so every vehicle and window shares the edges.

    ``fixed_point=True`` (perm and shannon) computes the integer entropy that
    the CPU and the GPU give bit for bit (within 2^-31 bits of the exact value);
    ``backend="gpu"`` runs it on the device, ``"auto"`` does when one is usable
    (see :func:`autolien.entropy.rolling_perm_entropy`)."""
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {', '.join(_MEASURES)}; got {measure!r}")
    if column not in table.column_names:
        raise ValueError(f"table has no column {column!r}")
    need_time = window is not None and not isinstance(window, (int, np.integer))
    if need_time or time_column in table.column_names:
        grouped, vehicles, offsets, t = group_by_vehicle(table, vehicle_column, time_column)
    else:
        grouped, vehicles, offsets, t = _group_untimed(table, vehicle_column)
    col = grouped.column(column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise TypeError(f"column {column!r} must be numeric, not {col.type}")
    x = np.ascontiguousarray(
        col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
    )
    if order is None:
        order = 2 if measure in ("sample", "app") else 3
    order = _int(order, "order", 1)
    delay = _int(delay, "delay", 1)
    edges = histogram_edges(x, bins) if measure == "shannon" else np.zeros(0, np.float64)
    if fixed_point and measure not in ("perm", "shannon"):
        raise ValueError(f"fixed_point is available for perm and shannon, not {measure!r}")
    gpu = _on_gpu(backend, fixed_point) if measure in ("perm", "shannon") else False
    if backend == "gpu" and measure not in ("perm", "shannon"):
        raise ValueError(f"the GPU backend computes perm and shannon, not {measure!r}")
    if fixed_point and window is None:
        # The whole series is the window ending at its last sample: cumulative
        # windows (all times equal, an unbounded span), read at each group's end.
        cumulative = _rolling_fixed(
            x, np.zeros(x.size), offsets, 0, 1e300, measure, order, delay, normalize, edges, gpu
        )
        ends = offsets[1:] - 1
        values = np.where(np.diff(offsets) > 0, cumulative[np.maximum(ends, 0)], np.nan)
        firsts = offsets[:-1]
        ids = vehicles.take(pa.array(firsts)) if firsts.size else pa.array([], pa.string())
        return pa.table(
            {
                "vehicle_id": ids,
                "n": pa.array(np.diff(offsets)),
                "value": pa.array(np.asarray(values), pa.float64()),
            }
        )
    if window is None:
        if measure == "shannon":
            values = _shannon_groups(x, offsets, edges)
        else:
            values = _core.entropy_groups(
                x,
                offsets,
                measure,
                order,
                delay,
                bool(normalize),
                float(r),
                _tolerance(tolerance),
                metric,
                method,
                0 if nperseg is None else _int(nperseg, "nperseg", 2),
            )
        firsts = offsets[:-1]
        ids = vehicles.take(pa.array(firsts)) if firsts.size else pa.array([], pa.string())
        return pa.table(
            {
                "vehicle_id": ids,
                "n": pa.array(np.diff(offsets)),
                "value": pa.array(np.asarray(values), pa.float64()),
            }
        )
    if measure not in ("perm", "shannon"):
        raise ValueError(f"rolling windows are available for perm and shannon, not {measure!r}")
    count, span, _ = _window(window, t if need_time else None, x.size)
    ts = t if need_time else np.zeros(0, np.float64)
    if fixed_point:
        values = _rolling_fixed(
            x, ts if need_time else None, offsets, count, span, measure, order, delay,
            normalize, edges, gpu,
        )  # fmt: skip
    else:
        values = _core.entropy_rolling(
            x, ts, offsets, count, span, order, delay, bool(normalize), edges
        )
    out: dict[str, Any] = {
        "vehicle_id": vehicles,
        "value": pa.array(np.asarray(values), pa.float64()),
    }
    if time_column in grouped.column_names:
        out = {"vehicle_id": vehicles, "time": grouped.column(time_column), "value": out["value"]}
    return pa.table(out)


def _group_untimed(
    table: pa.Table, vehicle_column: str
) -> tuple[pa.Table, pa.ChunkedArray, Any, Any]:
    # Rows without times keep their table order within each vehicle.
    empty = np.zeros(table.num_rows, np.float64)
    stamped = table.append_column("__t", pa.array(empty).cast(pa.timestamp("us", tz="UTC")))
    grouped, vehicles, offsets, _ = group_by_vehicle(stamped, vehicle_column, "__t")
    return grouped.drop_columns(["__t"]), vehicles, offsets, None


def _shannon_groups(
    x: npt.NDArray[np.float64], offsets: npt.NDArray[np.int64], edges: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    nb = edges.size - 1
    codes = np.searchsorted(edges, x, side="right") - 1
    codes[x == edges[-1]] = nb - 1
    ok = (x >= edges[0]) & (x <= edges[-1])
    group = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.zeros((offsets.size - 1, nb), np.int64)
    np.add.at(counts, (group[ok], codes[ok]), 1)
    return np.asarray(_core.shannon_bits(counts))


def _rolling_fixed(
    x: npt.NDArray[np.float64],
    t: npt.NDArray[np.float64] | None,
    offsets: npt.NDArray[np.int64],
    count: int,
    span: float,
    measure: str,
    order: int,
    delay: int,
    normalize: bool,
    edges: npt.NDArray[np.float64],
    gpu: bool,
) -> npt.NDArray[np.float64]:
    shannon = measure == "shannon"
    if gpu:
        from ..gpu.entropy import rolling_fixed  # noqa: PLC0415 - lazy: CuPy only when used

        return np.asarray(
            rolling_fixed(
                x, t, offsets, count, span, order=order, delay=delay, normalize=bool(normalize),
                edges=edges if shannon else None,
            )
        )  # fmt: skip
    ts = np.zeros(0, np.float64) if t is None else t
    return np.asarray(
        _core.entropy_rolling(
            x, ts, offsets, count, span, order, delay, bool(normalize),
            edges if shannon else np.zeros(0, np.float64), True,
        )
    )  # fmt: skip
