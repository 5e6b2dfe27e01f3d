"""Inputs shared by the GPU tests (test_gpu.py, on a device) and the host
tests of the shared kernel headers (test_gpu_kernels.py), and by
bench/bench_gpu.py: the real rtklib_py log and a synthetic fleet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from rtklib_pos import read_pos

DATA = Path(__file__).parent / "data"


def rtklib_py_fixes() -> pa.Table:
    """rtklib-py's solution of the u-blox drive (tests/data/gnss, SOURCES.md) as fixes."""
    return read_pos(DATA / "gnss" / "rtklib_py" / "py_0315f.pos")


def synthetic_fleet(vehicles: int, fixes: int, seed: int = 0) -> pa.Table:
    """Random-walk drives with what the filter must handle: gaps that reinit,
    outliers the gate rejects, invalid and off-globe fixes, stops (speed 0),
    reported speeds, missing sigmas, vehicles interleaved in row order."""
    rng = np.random.default_rng(seed)
    n = vehicles * fixes
    vid = np.repeat(np.arange(vehicles), fixes)
    dt_s = rng.uniform(0.5, 5.0, n)
    dt_s[rng.random(n) < 0.002] = 900.0  # a gap past reinit_gap_s
    t = 1.7e9 + np.cumsum(dt_s.reshape(vehicles, fixes), axis=1).reshape(-1)
    step = rng.normal(0, 3e-5, (2, n))
    lat = (rng.uniform(-60, 60, vehicles)[vid]) + np.cumsum(
        step[0].reshape(vehicles, fixes), 1
    ).reshape(-1)
    lon = (rng.uniform(-179, 179, vehicles)[vid]) + np.cumsum(
        step[1].reshape(vehicles, fixes), 1
    ).reshape(-1)
    h = rng.normal(50, 2, n)
    out = rng.random(n) < 0.01
    lat[out] += rng.normal(0, 1e-3, out.sum())  # ~100 m outliers
    quality = rng.choice([0, 1, 2, 4, 5, 6], n, p=[0.02, 0.2, 0.2, 0.4, 0.15, 0.03])
    lat[rng.random(n) < 0.001] = 95.0  # off the globe
    sigma = np.abs(rng.normal(0.05, 0.03, n))
    sigma[rng.random(n) < 0.1] = np.nan
    speed = np.abs(rng.normal(30, 20, n))
    speed[rng.random(n) < 0.2] = 0.0
    speed[rng.random(n) < 0.3] = np.nan
    # Rows in time order across the fleet: vehicles interleave, each in order.
    order = np.argsort(t, kind="stable")
    table = pa.table(
        {
            "vehicle_id": pa.array([f"V{v:06d}" for v in vid]),
            "time": pa.array((t * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
            "lat": lat,
            "lon": lon,
            "height_m": h,
            "quality": pa.array(quality, pa.uint8()),
            "sigma_n_m": sigma,
            "sigma_e_m": sigma,
            "sigma_u_m": 2 * sigma,
            "speed_kmh": speed,
        }
    )
    return table.take(pa.array(order))


def ledger_records(n: int, seed: int = 0) -> pa.Array:
    """Variable-length records (0 to ~300 bytes, across the 1-, 2-, 3- and
    5-block SHA-256 and 1-3 Keccak block counts) as an Arrow binary array."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 300, n)
    lengths[: min(n, 8)] = [0, 54, 55, 56, 63, 64, 119, 135][: min(n, 8)]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = rng.integers(0, 256, int(offsets[-1]), dtype=np.uint8)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
    )


def assert_track_close(got: dict[str, np.ndarray], track: pa.Table) -> None:
    """A GPU (or host-built kernel) track against autolien.gnss.fuse's, within
    autolien.gpu.fusion.TOLERANCE; statuses and segments exactly."""
    from autolien.gpu.fusion import TOLERANCE

    def c(name: str) -> np.ndarray:
        return track.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    reasons = ["used", "invalid", "gated", "reinit_gap", "reinit_rejects", "first"]
    assert [reasons[s] for s in got["status"]] == track.column("reason").to_pylist()
    np.testing.assert_array_equal(got["segment"], c("segment"))
    assert np.array_equal(np.isnan(got["lat"]), np.isnan(c("lat")))
    lat0 = np.deg2rad(np.nan_to_num(c("lat")))
    dn = np.deg2rad(got["lat"] - c("lat")) * 6.4e6
    de = np.deg2rad(got["lon"] - c("lon")) * 6.4e6 * np.cos(lat0)
    sigma_h = np.nan_to_num(np.maximum(c("sigma_e_m"), c("sigma_n_m")))
    tol_h = TOLERANCE["position_m"] + TOLERANCE["position_sigma_rel"] * sigma_h
    tol_u = TOLERANCE["position_m"] + TOLERANCE["position_sigma_rel"] * np.nan_to_num(
        c("sigma_u_m")
    )
    for d, tol in ((dn, tol_h), (de, tol_h), (got["height_m"] - c("height_m"), tol_u)):
        np.testing.assert_array_less(np.nan_to_num(np.abs(d)), tol)
    for name in ("ve_mps", "vn_mps", "vu_mps"):
        np.testing.assert_allclose(got[name], c(name), rtol=0, atol=TOLERANCE["velocity_mps"])
    for mine, theirs in (("var_e", "sigma_e_m"), ("var_n", "sigma_n_m"), ("var_u", "sigma_u_m")):
        np.testing.assert_allclose(np.sqrt(got[mine]), c(theirs), rtol=TOLERANCE["variance_rel"])
    np.testing.assert_allclose(
        got["nis"], c("nis"), rtol=TOLERANCE["nis_rel"], atol=TOLERANCE["nis_abs"]
    )
    np.testing.assert_allclose(got["inflation"], c("inflation"), rtol=TOLERANCE["inflation_rel"])


def track_arrays(track: pa.Table) -> dict[str, np.ndarray]:
    """A TRACK_SCHEMA table as assert_track_close's ``got`` dict."""
    codes = {"used": 0, "invalid": 1, "gated": 2, "reinit_gap": 3, "reinit_rejects": 4, "first": 5}

    def c(name: str) -> np.ndarray:
        return track.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    out = {
        k: c(k)
        for k in ("lat", "lon", "height_m", "ve_mps", "vn_mps", "vu_mps", "nis", "inflation")
    }
    for axis in "enu":
        out[f"var_{axis}"] = c(f"sigma_{axis}_m") ** 2
    out["status"] = np.array([codes[r] for r in track.column("reason").to_pylist()], np.uint8)
    out["segment"] = c("segment").astype(np.uint32)
    return out
