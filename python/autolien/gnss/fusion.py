"""Per-vehicle Kalman fusion of GNSS fixes (Python side of ``_core.fuse_groups``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from .._tables import group_by_vehicle
from ..schemas import TIME_TYPE
from ._raw import FuseMoves, FuseParked

__all__ = [
    "EVENTS_SCHEMA",
    "MOVE_KINDS",
    "PARKED_SCHEMA",
    "REASONS",
    "TRACK_SCHEMA",
    "FusionConfig",
    "FusionResult",
    "fuse",
]

# Codes of MoveKind in cpp/include/autolien/gnss/parked.hpp.
MOVE_KINDS = {0: "departure", 1: "displacement", 2: "relocated_offline", 3: "unexplained"}

# Codes of FixStatus in cpp/include/autolien/gnss/fusion.hpp.
REASONS = {
    0: "used",
    1: "invalid",
    2: "gated",
    3: "reinit_gap",
    4: "reinit_rejects",
    5: "first",
}


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


PARKED_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("start", TIME_TYPE, nullable=False),
        pa.field("end", TIME_TYPE, nullable=False),
        pa.field("lat", pa.float64(), nullable=False),
        pa.field("lon", pa.float64(), nullable=False),
        pa.field("height_m", pa.float64(), nullable=False),
        pa.field("sigma_n_m", pa.float64(), nullable=False),
        pa.field("sigma_e_m", pa.float64(), nullable=False),
        pa.field("sigma_u_m", pa.float64(), nullable=False),
        pa.field("n_fixes", pa.uint32(), nullable=False),
    ]
)

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("vehicle_id", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("time", TIME_TYPE, nullable=False),  # the fix that confirmed the move
        pa.field("parked_since", TIME_TYPE, nullable=False),
        pa.field("parked_lat", pa.float64(), nullable=False),
        pa.field("parked_lon", pa.float64(), nullable=False),
        pa.field("distance_m", pa.float64(), nullable=False),
        pa.field("sigma_m", pa.float64(), nullable=False),
        # Evidence: the fixes outside the parked position, as row numbers of
        # the track and their times.
        pa.field("evidence_first_row", pa.int64(), nullable=False),
        pa.field("evidence_last_row", pa.int64(), nullable=False),
        pa.field("evidence_start", TIME_TYPE, nullable=False),
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
    zupt_speed_mps: float = 0.05
    zupt_sigma_mps: float = 0.02
    speed_sigma_mps: float = 0.2
    speed_sigma_fraction: float = 0.03
    min_heading_speed_mps: float = 1.0
    # Parked episodes (see docs/gnss.md).
    min_parked_s: float = 120.0
    parked_gate_chi2: float = 13.82
    parked_confirm: int = 3
    stationary_mps: float = 0.5
    offline_gap_s: float = 300.0
    correlation_s: float = 60.0
    # The slowly varying bias of each quality class at rest (1-sigma per
    # horizontal axis, same indexing as floor_m), its time constant, and what
    # starts a new bias (a gap since the class's last fix, a sigma jump).
    parked_bias_m: list[float] = field(default_factory=lambda: [0.0, 2.0, 0.5, 2.0, 0.01, 0.4, 3.0])
    bias_time_s: float = 1800.0
    reacquire_gap_s: float = 60.0
    reset_sigma_ratio: float = 2.0


@dataclass
class FusionResult:
    """Output of :func:`fuse`.

    ``track``: one row per input fix (:data:`TRACK_SCHEMA`); ``parked``: parked
    episodes (:data:`PARKED_SCHEMA`); ``events``: moves out of a parked
    episode, with their kind and evidence rows in ``track``
    (:data:`EVENTS_SCHEMA`).
    """

    track: pa.Table
    parked: pa.Table
    events: pa.Table


def float_column(
    table: pa.Table, name: str, dtype: Any, required: bool, default: float = np.nan
) -> np.ndarray:
    if name not in table.column_names:
        if required:
            raise ValueError(f"table has no '{name}' column")
        return np.full(table.num_rows, default, dtype=dtype)
    col = table.column(name)
    if pa.types.is_timestamp(col.type):
        raise TypeError(f"column '{name}' must be numeric, not {col.type}")
    arr = pc.fill_null(col.cast(pa.float64()), default).to_numpy()
    return np.ascontiguousarray(arr, dtype=dtype)


def labels(codes: np.ndarray, names: Sequence[str]) -> pa.Array:
    """Small integer codes as the strings they stand for."""
    return pa.array(list(names), pa.string()).take(pa.array(codes))


def fuse(
    fixes: pa.Table,
    *,
    smooth: bool = False,
    config: FusionConfig | None = None,
    vehicle_column: str = "vehicle_id",
    backend: str = "cpu",
) -> FusionResult:
    """Filters (``smooth=True``: also RTS-smooths) every vehicle's fixes.

    Columns used: ``vehicle_column`` (absent: one vehicle), ``time``, ``lat``,
    ``lon``, ``height_m`` (ellipsoidal; ``altitude_m`` stands in when absent),
    ``quality`` (GGA code; null counts as invalid) and the optional
    ``sigma_n_m``/``sigma_e_m``/``sigma_u_m``. Rows may come in any vehicle
    order; within a vehicle, times must not decrease (ValueError otherwise).
    The track comes back grouped by vehicle, in input order within each.
    ``backend="gpu"`` filters the track on the GPU (forward filter only, within
    ``autolien.gpu.fusion.TOLERANCE`` of the CPU); parked episodes and events
    still come from the CPU core. ``"auto"`` stays on the CPU.
    """
    if backend != "cpu":
        from ..gpu.fusion import fuse_dispatch  # noqa: PLC0415 - lazy: CuPy only when used

        result: FusionResult = fuse_dispatch(fuse, fixes, smooth, config, vehicle_column, backend)
        return result
    if not isinstance(fixes, pa.Table):
        raise TypeError(f"fixes must be a pyarrow.Table, not {type(fixes).__name__}")
    cfg = config or FusionConfig()
    n = fixes.num_rows
    fixes, vehicles, groups, t = group_by_vehicle(fixes, vehicle_column)
    height = "height_m" if "height_m" in fixes.column_names else "altitude_m"
    lat = float_column(fixes, "lat", np.float64, True)
    lon = float_column(fixes, "lon", np.float64, True)
    h = float_column(fixes, height, np.float64, True)
    quality = float_column(fixes, "quality", np.float64, True, default=0.0).astype(np.int32)
    sn = float_column(fixes, "sigma_n_m", np.float64, False)
    se = float_column(fixes, "sigma_e_m", np.float64, False)
    su = float_column(fixes, "sigma_u_m", np.float64, False)
    speed = float_column(fixes, "speed_kmh", np.float64, False) / 3.6
    if n == 0:
        return FusionResult(
            TRACK_SCHEMA.empty_table(), PARKED_SCHEMA.empty_table(), EVENTS_SCHEMA.empty_table()
        )
    out = _core.fuse_groups(groups, t, lat, lon, h, quality, sn, se, su, speed, smooth, asdict(cfg))
    track = track_table(vehicles, fixes.column("time"), out)
    return FusionResult(
        track,
        _parked_table(out["parked"], track),
        _events_table(out["moves"], out["parked"], track),
    )


def track_table(vehicles: Any, time: Any, out: Mapping[str, Any]) -> pa.Table:
    """``TRACK_SCHEMA`` from the filter's per-fix arrays (the CPU core's or the
    GPU kernel's, which share their names)."""
    status = out["status"]
    columns = {
        "vehicle_id": vehicles,
        "time": time.cast(TIME_TYPE),
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
        "reason": labels(status, list(REASONS.values())),
        "segment": out["segment"],
    }
    arrays = [
        pa.array(v, type=f.type, from_pandas=True) if isinstance(v, np.ndarray) else v
        for v, f in zip(columns.values(), TRACK_SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=TRACK_SCHEMA)


def _parked_table(p: FuseParked, track: pa.Table) -> pa.Table:
    first, last = pa.array(p["first"]), pa.array(p["last"])
    time = track.column("time")
    return pa.Table.from_arrays(
        [
            track.column("vehicle_id").take(first),
            time.take(first),
            time.take(last),
            pa.array(p["lat"]),
            pa.array(p["lon"]),
            pa.array(p["height_m"]),
            pa.array(np.sqrt(p["var_n_m2"])),
            pa.array(np.sqrt(p["var_e_m2"])),
            pa.array(np.sqrt(p["var_u_m2"])),
            pa.array(p["n_fixes"], pa.uint32()),
        ],
        schema=PARKED_SCHEMA,
    )


def _events_table(m: FuseMoves, p: FuseParked, track: pa.Table) -> pa.Table:
    time = track.column("time")
    episode = m["episode"]
    return pa.Table.from_arrays(
        [
            track.column("vehicle_id").take(pa.array(m["first_fix"])),
            labels(m["kind"], list(MOVE_KINDS.values())),
            time.take(pa.array(m["last_fix"])),
            time.take(pa.array(p["first"][episode])),
            pa.array(p["lat"][episode]),
            pa.array(p["lon"][episode]),
            pa.array(m["distance_m"]),
            pa.array(m["sigma_m"]),
            pa.array(m["first_fix"]),
            pa.array(m["last_fix"]),
            time.take(pa.array(m["first_fix"])),
        ],
        schema=EVENTS_SCHEMA,
    )
