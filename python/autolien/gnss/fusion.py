"""Per-vehicle Kalman fusion of GNSS fixes (Python side of ``_core.fuse_groups``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core

__all__ = ["REASONS", "TRACK_SCHEMA", "FusionConfig", "FusionResult", "fuse"]

# Codes of FixStatus in cpp/include/autolien/gnss/fusion.hpp.
REASONS = {
    0: "used",
    1: "invalid",
    2: "gated",
    3: "reinit_gap",
    4: "reinit_rejects",
    5: "first",
}

TIME_TYPE = pa.timestamp("us", tz="UTC")

TRACK_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("time", TIME_TYPE, nullable=False),
        pa.field("lat", pa.float64()),
        pa.field("lon", pa.float64()),
        pa.field("height_m", pa.float64()),
        pa.field("ve_mps", pa.float64()),
        pa.field("vn_mps", pa.float64()),
        pa.field("vu_mps", pa.float64()),
        pa.field("sigma_e_m", pa.float64()),
        pa.field("sigma_n_m", pa.float64()),
        pa.field("sigma_u_m", pa.float64()),
        pa.field("nis", pa.float64()),
        pa.field("inflation", pa.float64()),
        pa.field("used", pa.bool_(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("segment", pa.uint32(), nullable=False),
    ]
)


@dataclass
class FusionConfig:
    """Filter settings; the defaults are documented in docs/gnss.md.

    ``floor_m`` and ``default_m`` are indexed by GGA quality code 0..6 (0
    invalid, 1 single, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float, 6 dead
    reckoning): the floor under a reported horizontal sigma, and the sigma
    used when a fix reports none. Vertical sigmas are ``vertical_factor``
    times the horizontal ones.
    """

    floor_m: list[float] = field(default_factory=lambda: [0.0, 3.0, 0.5, 3.0, 0.02, 0.15, 5.0])
    default_m: list[float] = field(default_factory=lambda: [0.0, 5.0, 1.0, 5.0, 0.05, 0.5, 10.0])
    vertical_factor: float = 2.0
    accel_psd: float = 2.0
    gate_chi2: float = 16.27
    reinit_gap_s: float = 300.0
    reinit_after_rejects: int = 10
    adapt_inflation: bool = True
    adapt_rate: float = 0.05
    max_inflation: float = 30.0


@dataclass
class FusionResult:
    """Output of :func:`fuse`: ``track`` has one row per input fix, in :data:`TRACK_SCHEMA`."""

    track: pa.Table


def _column(
    table: pa.Table, name: str, dtype: Any, required: bool, default: float = np.nan
) -> np.ndarray:
    if name not in table.column_names:
        if required:
            raise ValueError(f"fix table has no '{name}' column")
        return np.full(table.num_rows, default, dtype=dtype)
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        raise TypeError(f"column '{name}' must be numeric, not {col.type}")
    arr = pc.fill_null(col.cast(pa.float64()), default).to_numpy()
    return np.ascontiguousarray(arr, dtype=dtype)


def _seconds(table: pa.Table) -> np.ndarray:
    if "time" not in table.column_names:
        raise ValueError("fix table has no 'time' column")
    col = table.column("time")
    if not pa.types.is_timestamp(col.type):
        raise TypeError(f"column 'time' must be a timestamp, not {col.type}")
    if col.null_count:
        raise ValueError(f"'time' has {col.null_count} null values; drop or fill them first")
    micros: np.ndarray = col.cast(pa.timestamp("us", tz=col.type.tz)).cast(pa.int64()).to_numpy()
    return micros.astype(np.float64) / 1e6


def fuse(
    fixes: pa.Table,
    *,
    smooth: bool = False,
    config: FusionConfig | None = None,
    vehicle_column: str = "vehicle_id",
) -> FusionResult:
    """Filters (``smooth=True``: also RTS-smooths) every vehicle's fixes.

    Columns used: ``vehicle_column`` (absent: one vehicle), ``time``, ``lat``,
    ``lon``, ``height_m`` (ellipsoidal; ``altitude_m`` stands in when absent),
    ``quality`` (GGA code; null counts as invalid) and the optional
    ``sigma_n_m``/``sigma_e_m``/``sigma_u_m``. Rows may come in any vehicle
    order; within a vehicle, times must not decrease (ValueError otherwise).
    The track comes back grouped by vehicle, in input order within each.
    """
    if not isinstance(fixes, pa.Table):
        raise TypeError(f"fixes must be a pyarrow.Table, not {type(fixes).__name__}")
    cfg = config or FusionConfig()
    n = fixes.num_rows
    vid: pa.ChunkedArray | None = None
    if vehicle_column in fixes.column_names:
        vid = fixes.column(vehicle_column).cast(pa.string())
        if vid.null_count == n:
            vid = None  # a single log without ids (decode_nmea of one file) is one vehicle
        elif vid.null_count:
            raise ValueError(f"'{vehicle_column}' has {vid.null_count} null values among {n} rows")
    if vid is not None:
        # Stable grouping keeps each vehicle's rows in input order.
        codes = pc.dictionary_encode(vid).combine_chunks()
        idx = codes.indices.to_numpy(zero_copy_only=False)
        order = np.argsort(idx, kind="stable")
        counts = np.bincount(idx, minlength=len(codes.dictionary)) if n else np.zeros(0, np.int64)
        fixes = fixes.take(pa.array(order))
    else:
        counts = np.array([n], dtype=np.int64) if n else np.zeros(0, np.int64)
    groups = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    t = _seconds(fixes)
    bounds = groups[1:-1]
    step = np.diff(t)
    if step.size:
        bad = step < 0
        if bounds.size:
            bad[bounds - 1] = False  # across vehicles the time may go back
        if bad.any():
            i = int(np.flatnonzero(bad)[0]) + 1
            raise ValueError(
                f"fix times go backwards at sorted row {i}; sort each vehicle's fixes by time"
            )
    height = "height_m" if "height_m" in fixes.column_names else "altitude_m"
    lat = _column(fixes, "lat", np.float64, True)
    lon = _column(fixes, "lon", np.float64, True)
    h = _column(fixes, height, np.float64, True)
    quality = _column(fixes, "quality", np.float64, True, default=0.0).astype(np.int32)
    sn = _column(fixes, "sigma_n_m", np.float64, False)
    se = _column(fixes, "sigma_e_m", np.float64, False)
    su = _column(fixes, "sigma_u_m", np.float64, False)
    if n == 0:
        return FusionResult(TRACK_SCHEMA.empty_table())
    out = _core.fuse_groups(groups, t, lat, lon, h, quality, sn, se, su, smooth, asdict(cfg))
    status = out["status"]
    reason = np.array([REASONS[i] for i in range(len(REASONS))], dtype=object)[status]
    columns = {
        "vehicle_id": vid.take(pa.array(order)) if vid is not None else pa.nulls(n, pa.string()),
        "time": fixes.column("time").cast(TIME_TYPE),
        "lat": out["lat"],
        "lon": out["lon"],
        "height_m": out["height_m"],
        "ve_mps": out["ve_mps"],
        "vn_mps": out["vn_mps"],
        "vu_mps": out["vu_mps"],
        "sigma_e_m": np.sqrt(out["var_e_m2"]),
        "sigma_n_m": np.sqrt(out["var_n_m2"]),
        "sigma_u_m": np.sqrt(out["var_u_m2"]),
        "nis": out["nis"],
        "inflation": out["inflation"],
        "used": (status != 1) & (status != 2),  # a (re)initialising fix is used too
        "reason": pa.array(reason, pa.string()),
        "segment": out["segment"],
    }
    arrays = [
        pa.array(v, type=f.type, from_pandas=True) if isinstance(v, np.ndarray) else v
        for v, f in zip(columns.values(), TRACK_SCHEMA, strict=True)
    ]
    return FusionResult(pa.Table.from_arrays(arrays, schema=TRACK_SCHEMA))
