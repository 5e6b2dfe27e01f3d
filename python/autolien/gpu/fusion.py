"""Kalman filtering of every vehicle's fixes on the GPU (kernel ``fusion.cu``).

One thread per vehicle runs the shared constant-velocity step
(``kernels/kf_cv.hpp``) over its fixes. The track agrees with
:func:`autolien.gnss.fuse` (forward filter, ``smooth=False``) within
:data:`TOLERANCE`: the filter arithmetic is the same, the geodesy is double
precision on the device instead of the core's x87 long double, and the device
contracts multiply-adds (FMA), so float results differ in the last bits and
a fix at the gate's edge could in principle go the other way.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from .._tables import group_by_vehicle
from . import module

__all__ = ["TOLERANCE", "config_vector", "filter_arrays", "fuse_tracks"]

# Agreement with the CPU filter, checked by tests/test_gpu.py on the real
# rtklib_py log and on a synthetic fleet. Positions (after the geodetic round
# trip) within position_m plus position_sigma_rel times the filter's own sigma:
# a filter coasting through a run of gated fixes (sigma tens of metres) turns
# the nanometres of the geodesy into micrometres. Velocities (m/s) absolute,
# variances and inflation relative (the ground-speed update linearises at the
# state, so the covariance follows the state's last bits), NIS absolute plus
# relative.
TOLERANCE = {
    "position_m": 1e-6,
    "position_sigma_rel": 1e-6,
    "velocity_mps": 1e-6,
    "variance_rel": 1e-5,
    "inflation_rel": 1e-5,
    "nis_abs": 1e-6,
    "nis_rel": 1e-6,
}

_THREADS = 64
_OUTPUTS = ("lat", "lon", "height_m", "ve_mps", "vn_mps", "vu_mps", "var_e_m2", "var_n_m2", "var_u_m2",
            "nis", "inflation")  # fmt: skip


def config_vector(config: Any) -> np.ndarray:
    """The KfConfig fields (kernels/kf_cv.hpp order) of a gnss FusionConfig as doubles."""
    c = asdict(config)
    floor, default = list(c["floor_m"]), list(c["default_m"])
    if len(floor) != 7 or len(default) != 7:
        raise ValueError("floor_m and default_m need 7 entries (GGA quality 0..6)")
    return np.array(
        [
            *floor,
            *default,
            c["vertical_factor"],
            c["accel_psd"],
            c["gate_chi2"],
            c["reinit_gap_s"],
            float(c["reinit_after_rejects"]),
            1.0 if c["adapt_inflation"] else 0.0,
            c["adapt_rate"],
            c["max_inflation"],
            c.get("initial_speed_sigma", 30.0),
            c["zupt_speed_mps"],
            c["zupt_sigma_mps"],
            c["speed_sigma_mps"],
            c["speed_sigma_fraction"],
            c["min_heading_speed_mps"],
        ],
        dtype=np.float64,
    )


def filter_arrays(
    groups: np.ndarray,
    t: Any,
    lat: Any,
    lon: Any,
    h: Any,
    quality: Any,
    sn: Any,
    se: Any,
    su: Any,
    speed: Any,
    config: Any,
) -> dict[str, Any]:
    """The forward filter over fixes grouped by ``groups`` offsets; arrays on
    the host or device. Returns device arrays keyed as ``_core.fuse_groups``'s
    track outputs (``lat`` ... ``inflation``, ``status``, ``segment``)."""
    import cupy as cp  # noqa: PLC0415 - lazy: CuPy only when used

    n = int(np.asarray(t).shape[0]) if not isinstance(t, cp.ndarray) else int(t.shape[0])
    g = np.ascontiguousarray(groups, dtype=np.int64)
    if g.size < 1 or g[0] != 0 or g[-1] != n or np.any(np.diff(g) < 0):
        raise ValueError("groups must be offsets from 0 to the number of fixes")

    def dev(a: Any, dtype: Any) -> Any:
        arr = cp.ascontiguousarray(cp.asarray(a, dtype=dtype))
        if arr.shape != (n,):
            raise ValueError("every fix column must have the same length")
        return arr

    ins = [dev(a, cp.float64) for a in (t, lat, lon, h)]
    q = dev(quality, cp.int32)
    sig = [dev(a, cp.float64) for a in (sn, se, su, speed)]
    out = {k: cp.full(n, cp.nan, dtype=cp.float64) for k in _OUTPUTS}
    out["status"] = cp.ones(n, dtype=cp.uint8)
    out["segment"] = cp.zeros(n, dtype=cp.uint32)
    ng = g.size - 1
    if n and ng:
        module("fusion").get_function("fuse_groups")(
            (-(-ng // _THREADS),),
            (_THREADS,),
            (cp.asarray(g), np.int64(ng), *ins, q, *sig, cp.asarray(config_vector(config)),
             *(out[k] for k in _OUTPUTS), out["status"], out["segment"]),
        )  # fmt: skip
    return out


def fuse_tracks(
    fixes: pa.Table, config: Any = None, vehicle_column: str = "vehicle_id"
) -> pa.Table:
    """The filtered track of every vehicle (``TRACK_SCHEMA`` of autolien.gnss),
    forward filter only, computed on the GPU."""
    from ..gnss.fusion import TRACK_SCHEMA, FusionConfig, float_column, track_table  # noqa: PLC0415 - lazy: CuPy only when used

    if not isinstance(fixes, pa.Table):
        raise TypeError(f"fixes must be a pyarrow.Table, not {type(fixes).__name__}")
    cfg = config or FusionConfig()
    if fixes.num_rows == 0:
        return TRACK_SCHEMA.empty_table()
    fixes, vehicles, groups, t = group_by_vehicle(fixes, vehicle_column)
    height = "height_m" if "height_m" in fixes.column_names else "altitude_m"
    cols = [
        float_column(fixes, "lat", np.float64, True),
        float_column(fixes, "lon", np.float64, True),
        float_column(fixes, height, np.float64, True),
    ]
    quality = float_column(fixes, "quality", np.float64, True, default=0.0).astype(np.int32)
    sigmas = [
        float_column(fixes, k, np.float64, False) for k in ("sigma_n_m", "sigma_e_m", "sigma_u_m")
    ]
    speed = float_column(fixes, "speed_kmh", np.float64, False) / 3.6
    lat, lon, h = cols
    sn, se, su = sigmas
    res = filter_arrays(groups, t, lat, lon, h, quality, sn, se, su, speed, cfg)
    host = {k: v.get() for k, v in res.items()}
    return track_table(vehicles, fixes.column("time"), host)


def fuse_dispatch(
    cpu_fuse: Any, fixes: pa.Table, smooth: bool, config: Any, vehicle_column: str, backend: str
) -> Any:
    """``autolien.gnss.fuse`` for ``backend`` other than "cpu". The GPU runs the
    forward filter only; the parked-episode detector (and the smoother) are
    CPU-only, so the result's parked and events tables come from the CPU core
    and "auto" keeps the whole call on the CPU."""
    from . import resolve_backend  # noqa: PLC0415 - lazy: CuPy only when used

    if backend == "auto":
        resolve_backend(backend)  # validates
        return cpu_fuse(fixes, smooth=smooth, config=config, vehicle_column=vehicle_column)
    if (
        resolve_backend(backend, supported=not smooth, why="the RTS smoother runs on the CPU only")
        != "gpu"
    ):
        return cpu_fuse(
            fixes, smooth=smooth, config=config, vehicle_column=vehicle_column
        )  # pragma: no cover
    result = cpu_fuse(fixes, smooth=False, config=config, vehicle_column=vehicle_column)
    result.track = fuse_tracks(fixes, config, vehicle_column)
    return result
