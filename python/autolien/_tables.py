"""Table helpers shared by the per-vehicle stages: grouping rows by vehicle
and reading timestamps as seconds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["group_by_vehicle", "seconds"]


def seconds(table: pa.Table, time_column: str = "time") -> np.ndarray:
    """A timestamp column as float seconds since the epoch."""
    if time_column not in table.column_names:
        raise ValueError(f"table has no '{time_column}' column")
    col = table.column(time_column)
    if not pa.types.is_timestamp(col.type):
        raise TypeError(f"column '{time_column}' must be a timestamp, not {col.type}")
    if col.null_count:
        raise ValueError(
            f"'{time_column}' has {col.null_count} null values; drop or fill them first"
        )
    micros: np.ndarray = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64()).to_numpy()
    return micros.astype(np.float64) / 1e6


def group_by_vehicle(
    table: pa.Table, vehicle_column: str, time_column: str = "time"
) -> tuple[pa.Table, pa.ChunkedArray, np.ndarray, np.ndarray]:
    """Rows grouped by vehicle (stable: each vehicle keeps its row order), the
    vehicle ids in that order, the group offsets and the times in seconds.
    Times must not go back within a vehicle. An absent or all-null id column
    means one vehicle."""
    n = table.num_rows
    vid: pa.ChunkedArray | None = None
    if vehicle_column in table.column_names:
        vid = table.column(vehicle_column).cast(pa.string())
        if vid.null_count == n:
            vid = None  # a single log without ids (decode_nmea of one file) is one vehicle
        elif vid.null_count:
            raise ValueError(f"'{vehicle_column}' has {vid.null_count} null values among {n} rows")
    if vid is not None:
        codes = pc.dictionary_encode(vid).combine_chunks()
        idx = codes.indices.to_numpy(zero_copy_only=False)
        order = pa.array(np.argsort(idx, kind="stable"))
        counts = np.bincount(idx, minlength=len(codes.dictionary)) if n else np.zeros(0, np.int64)
        table = table.take(order)
        vehicles = vid.take(order)
    else:
        counts = np.array([n], dtype=np.int64) if n else np.zeros(0, np.int64)
        vehicles = pa.chunked_array([pa.nulls(n, pa.string())])
    groups = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    t = seconds(table, time_column)
    step = np.diff(t)
    if step.size:
        bad = step < 0
        if groups.size > 2:
            bad[groups[1:-1] - 1] = False  # across vehicles the time may go back
        if bad.any():
            i = int(np.flatnonzero(bad)[0]) + 1
            raise ValueError(
                f"times go backwards at grouped row {i}; sort each vehicle's rows by time"
            )
    return table, vehicles, groups, t
