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
from .measures import Window, _int, _tolerance, _window, histogram_edges

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
) -> pa.Table:
    """``measure`` of ``column`` per vehicle.

    Without ``window``: one row per vehicle (``vehicle_id``, ``n``, ``value``),
    each vehicle's rows taken in table order. With ``window`` (``perm`` and
    ``shannon`` only): one row per input row (``vehicle_id``, ``time``,
    ``value``), the window a sample count or a time span over ``time_column``
    and never crossing vehicles. ``order`` defaults to antropy's: 3 for perm
    and svd, 2 for sample and app. Integer ``bins`` span the finite range of
    the whole column, so every vehicle and window shares the edges."""
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
