"""Geofence enter/exit events along fused tracks (Python side of ``_core.geofence_events``)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from .._tables import group_by_vehicle
from ..schemas import TIME_TYPE
from .fusion import float_column, labels

__all__ = ["FENCE_KINDS", "GEOFENCE_EVENTS_SCHEMA", "geofence_events"]

FENCE_KINDS = ("allowed", "forbidden")

GEOFENCE_EVENTS_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("fence_id", pa.string(), nullable=False),
        pa.field("fence_kind", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),  # enter | exit
        # Leaving an allowed region or entering a forbidden place.
        pa.field("violation", pa.bool_(), nullable=False),
        pa.field("time", TIME_TYPE, nullable=False),  # the first fix clearly on the new side
        pa.field("previous_time", TIME_TYPE, nullable=False),  # the last fix on the old side
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),  # row of the (grouped) track
    ]
)


def _fences(fences: pa.Table) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(fences, pa.Table):
        raise TypeError(f"fences must be a pyarrow.Table, not {type(fences).__name__}")
    for name in ("fence_id", "lon", "lat"):
        if name not in fences.column_names:
            raise ValueError(f"fence table has no '{name}' column")
    ids = fences.column("fence_id").cast(pa.string()).to_pylist()
    if any(i is None for i in ids):
        raise ValueError("fence_id must not be null")
    kinds = (
        fences.column("kind").cast(pa.string()).to_pylist()
        if "kind" in fences.column_names
        else ["allowed"] * fences.num_rows
    )
    bad = sorted({str(k) for k in kinds if k not in FENCE_KINDS})
    if bad:
        raise ValueError(f"fence kind must be one of {FENCE_KINDS}, not {bad}")
    lon_col = fences.column("lon").combine_chunks()
    lat_col = fences.column("lat").combine_chunks()
    if not (pa.types.is_list(lon_col.type) or pa.types.is_large_list(lon_col.type)):
        raise TypeError("fence 'lon' and 'lat' must be list<double> columns (one ring per row)")
    lon_list = lon_col.to_pylist()
    lat_list = lat_col.to_pylist()
    offsets = [0]
    for fid, lo, la in zip(ids, lon_list, lat_list, strict=True):
        if lo is None or la is None or len(lo) != len(la):
            raise ValueError(f"fence {fid!r}: lon and lat must be lists of the same length")
        offsets.append(offsets[-1] + len(lo))
    flat_lon = np.array([x for ring in lon_list for x in ring], dtype=np.float64)
    flat_lat = np.array([x for ring in lat_list for x in ring], dtype=np.float64)
    return ids, [str(k) for k in kinds], np.array(offsets, dtype=np.int64), flat_lon, flat_lat


def geofence_events(
    track: pa.Table,
    fences: pa.Table,
    *,
    k_sigma: float = 2.0,
    vehicle_column: str = "vehicle_id",
) -> pa.Table:
    """Enter and exit events of each vehicle's track against each fence.

    ``track`` is :func:`fuse`'s track (or any table with ``time``, ``lat``,
    ``lon`` and optionally ``sigma_e_m``/``sigma_n_m`` and ``used``).
    ``fences`` has one simple polygon per row: ``fence_id``, ``kind``
    (``allowed`` or ``forbidden``; default allowed), and ``lon``/``lat`` as
    lists of WGS84 degrees. A side change counts once the fix is ``k_sigma``
    times its horizontal sigma past the edge, so noise on a boundary does not
    flap. A track that starts inside a fence gives an ``enter`` at its first
    fix. Returns :data:`GEOFENCE_EVENTS_SCHEMA` rows in track order.
    """
    if not isinstance(track, pa.Table):
        raise TypeError(f"track must be a pyarrow.Table, not {type(track).__name__}")
    ids, kinds, offsets, flon, flat = _fences(fences)
    table, vehicles, groups, _ = group_by_vehicle(track, vehicle_column)
    lat = float_column(table, "lat", np.float64, True)
    lon = float_column(table, "lon", np.float64, True)
    # Without sigmas the margin is 0 (NaN counts as unknown in the core).
    sigma = np.hypot(
        float_column(table, "sigma_e_m", np.float64, False),
        float_column(table, "sigma_n_m", np.float64, False),
    )
    if "used" in table.column_names:
        usable = np.ascontiguousarray(
            pc.fill_null(table.column("used"), False).to_numpy(zero_copy_only=False), np.uint8
        )
    else:
        usable = np.ones(table.num_rows, np.uint8)
    if table.num_rows == 0:
        return GEOFENCE_EVENTS_SCHEMA.empty_table()
    out = _core.geofence_events(
        groups, lat, lon, sigma, usable, offsets, flon, flat, float(k_sigma)
    )
    row, before, fence, enter = out["row"], out["before"], out["fence"], out["enter"].astype(bool)
    forbidden = np.array([k == "forbidden" for k in kinds], dtype=bool)
    time = table.column("time").cast(TIME_TYPE)
    return pa.Table.from_arrays(
        [
            vehicles.take(pa.array(row)),
            labels(fence, ids),
            labels(fence, kinds),
            labels(enter.astype(np.int8), ["exit", "enter"]),
            pa.array(enter == forbidden[fence], pa.bool_()),
            time.take(pa.array(row)),
            time.take(pa.array(before)),
            pa.array(lat[row]),
            pa.array(lon[row]),
            pa.array(row),
        ],
        schema=GEOFENCE_EVENTS_SCHEMA,
    )
