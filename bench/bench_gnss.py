"""GNSS fusion against FilterPy on the same fixes in one run, at three sizes.

* ``gnss-filter``: our C++ filter with gating (``fuse``) against a FilterPy
  ``KalmanFilter`` predict/update loop over the same 6-state constant-velocity
  model and per-fix noise;
* ``gnss-smooth``: the same plus the RTS pass (FilterPy ``rts_smoother``);
* ``gnss-geodesy``: geodetic to local ENU, ours (double precision, round
  trip within 1e-7 m) against pyproj's cart + topocentric pipeline;
* ``gnss-geodesy-inverse``: local ENU back to geodetic, ours against the same
  pipeline run inverse;
* ``gnss-fleet``: 1,000 vehicles in one table on the thread pool (ours only,
  fixes/s on every core).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from autolien.gnss import FusionConfig, fuse
from conftest import require_module, size, sizes, tag

SIZES = sizes((1_000, 10_000, 100_000), (50, 500, 5_000))
FLEET_FIXES = size(100_000, 5_000)


@cache
def track(n: int, vehicles: int = 1) -> pa.Table:
    """A car at 1 Hz with RTK fixed, float and single fixes, noise to match."""
    rng = np.random.default_rng(7)
    quality = rng.choice(np.array([4, 5, 1], np.uint8), n, p=[0.5, 0.4, 0.1])
    sigma = np.array([0.0, 3.0, 0, 0, 0.02, 0.3, 0])[quality]
    heading = np.cumsum(rng.normal(0, 0.05, n))
    e = np.cumsum(10 * np.sin(heading)) + rng.normal(0, 1, n) * sigma
    nn = np.cumsum(10 * np.cos(heading)) + rng.normal(0, 1, n) * sigma
    lat = 31.2 + nn / 111_320.0
    lon = 121.4 + e / (111_320.0 * np.cos(np.radians(31.2)))
    per = -(-n // vehicles)
    return pa.table(
        {
            "vehicle_id": [f"v{i // per}" for i in range(n)],
            "time": pa.array(
                ((np.arange(n) % per) * 1_000_000).astype(np.int64), pa.timestamp("us", tz="UTC")
            ),
            "lat": lat,
            "lon": lon,
            "height_m": 20 + rng.normal(0, 1, n) * sigma,
            "quality": quality,
            "sigma_n_m": sigma,
            "sigma_e_m": sigma,
            "sigma_u_m": 2 * sigma,
        }
    )


def filterpy_run(table: pa.Table, smooth: bool) -> np.ndarray:
    from filterpy.kalman import KalmanFilter, rts_smoother

    from autolien import _core

    t = table.column("time").cast(pa.int64()).to_numpy() / 1e6
    lat, lon, h = (table.column(c).to_numpy() for c in ("lat", "lon", "height_m"))
    e, n, u = _core.geodetic_to_enu(lat[0], lon[0], h[0], lat, lon, h)
    cfg = FusionConfig()
    q = table.column("quality").to_numpy()
    sig = np.maximum(table.column("sigma_e_m").to_numpy(), np.array(cfg.floor_m)[q])
    kf = KalmanFilter(dim_x=6, dim_z=3)
    kf.H = np.zeros((3, 6))
    kf.H[0, 0] = kf.H[1, 2] = kf.H[2, 4] = 1.0
    kf.x = np.array([e[0], 0, n[0], 0, u[0], 0.0])
    kf.P = np.diag([sig[0] ** 2, 900, sig[0] ** 2, 900, 4 * sig[0] ** 2, 900])
    xs, ps, fs, qs = [], [], [], []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        f1 = np.array([[1, dt], [0, 1]])
        q1 = cfg.accel_psd * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        kf.F = np.kron(np.eye(3), f1)
        kf.Q = np.kron(np.eye(3), q1)
        kf.predict()
        kf.update(
            np.array([e[i], n[i], u[i]]), R=np.diag([sig[i] ** 2, sig[i] ** 2, 4 * sig[i] ** 2])
        )
        xs.append(kf.x.copy())
        ps.append(kf.P.copy())
        fs.append(kf.F.copy())
        qs.append(kf.Q.copy())
    if smooth:
        xs, ps, _, _ = rts_smoother(np.array(xs), np.array(ps), Fs=np.array(fs), Qs=np.array(qs))
    return np.asarray(xs)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("smooth", [False, True], ids=["filter", "smooth"])
@pytest.mark.benchmark
def test_fuse_ours(benchmark: Any, n: int, smooth: bool) -> None:
    table = track(n).drop_columns(["vehicle_id"])
    benchmark.group = f"gnss-{'smooth' if smooth else 'filter'}"
    tag(benchmark, "ours", f"fuse(smooth={smooth}) C++ CV filter + gating", n, size=n)
    out = benchmark.pedantic(
        lambda: fuse(table, smooth=smooth).track, rounds=5, iterations=1, warmup_rounds=1
    )
    assert out.num_rows == n


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("smooth", [False, True], ids=["filter", "smooth"])
@pytest.mark.benchmark
def test_fuse_peer_filterpy(benchmark: Any, n: int, smooth: bool) -> None:
    require_module("filterpy")
    table = track(n).drop_columns(["vehicle_id"])
    benchmark.group = f"gnss-{'smooth' if smooth else 'filter'}"
    tag(
        benchmark,
        "peer",
        "FilterPy KalmanFilter loop" + (" + rts_smoother" if smooth else ""),
        n,
        size=n,
    )
    xs = benchmark.pedantic(filterpy_run, args=(table, smooth), rounds=1, iterations=1)
    assert xs.shape == (n - 1, 6)


@pytest.mark.benchmark(group="gnss-fleet")
def test_fuse_fleet_ours(benchmark: Any) -> None:
    table = track(FLEET_FIXES, vehicles=1_000)
    tag(benchmark, "ours", "fuse() 1,000 vehicles on the thread pool", FLEET_FIXES)
    out = benchmark.pedantic(lambda: fuse(table).track, rounds=5, iterations=1, warmup_rounds=1)
    assert out.num_rows == FLEET_FIXES


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="gnss-geodesy")
def test_geodesy_ours(benchmark: Any, n: int) -> None:
    from autolien import _core

    t = track(n)
    lat, lon, h = (np.ascontiguousarray(t.column(c).to_numpy()) for c in ("lat", "lon", "height_m"))
    tag(benchmark, "ours", "geodetic_to_enu (double precision)", n, size=n)
    e, _, _ = benchmark.pedantic(
        _core.geodetic_to_enu,
        args=(lat[0], lon[0], h[0], lat, lon, h),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert e.shape == (n,)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="gnss-geodesy")
def test_geodesy_peer_pyproj(benchmark: Any, n: int) -> None:
    pyproj = require_module("pyproj")
    t = track(n)
    lat, lon, h = (np.ascontiguousarray(t.column(c).to_numpy()) for c in ("lat", "lon", "height_m"))
    # pyproj's topocentric conversion (PROJ +proj=topocentric) on geodetic input.
    to_enu = pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=cart +ellps=WGS84 "
        f"+step +proj=topocentric +ellps=WGS84 +lon_0={lon[0]} +lat_0={lat[0]} +h_0={h[0]}"
    )
    tag(benchmark, "peer", "pyproj cart + topocentric pipeline", n, size=n)
    e, _, _ = benchmark.pedantic(
        to_enu.transform, args=(lon, lat, h), rounds=3, iterations=1, warmup_rounds=1
    )
    from autolien import _core

    assert np.allclose(e, _core.geodetic_to_enu(lat[0], lon[0], h[0], lat, lon, h)[0], atol=1e-6)


def enu_points(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from autolien import _core

    t = track(n)
    lat, lon, h = (np.ascontiguousarray(t.column(c).to_numpy()) for c in ("lat", "lon", "height_m"))
    return _core.geodetic_to_enu(lat[0], lon[0], h[0], lat, lon, h)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="gnss-geodesy-inverse")
def test_geodesy_inverse_ours(benchmark: Any, n: int) -> None:
    from autolien import _core

    t = track(n)
    lat0, lon0, h0 = (t.column(c)[0].as_py() for c in ("lat", "lon", "height_m"))
    e, nn, u = enu_points(n)
    tag(benchmark, "ours", "enu_to_geodetic (double precision)", n, size=n)
    lat, _, _ = benchmark.pedantic(
        _core.enu_to_geodetic,
        args=(lat0, lon0, h0, e, nn, u),
        rounds=5,
        iterations=1,
        warmup_rounds=1,
    )
    assert np.allclose(lat, t.column("lat").to_numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="gnss-geodesy-inverse")
def test_geodesy_inverse_peer_pyproj(benchmark: Any, n: int) -> None:
    pyproj = require_module("pyproj")
    t = track(n)
    lat0, lon0, h0 = (t.column(c)[0].as_py() for c in ("lat", "lon", "height_m"))
    e, nn, u = enu_points(n)
    to_enu = pyproj.Transformer.from_pipeline(
        "+proj=pipeline +step +proj=cart +ellps=WGS84 "
        f"+step +proj=topocentric +ellps=WGS84 +lon_0={lon0} +lat_0={lat0} +h_0={h0}"
    )
    tag(benchmark, "peer", "pyproj cart + topocentric pipeline, inverse", n, size=n)
    _, lat, _ = benchmark.pedantic(
        to_enu.transform,
        args=(e, nn, u),
        kwargs={"direction": "INVERSE"},
        rounds=3,
        iterations=1,
        warmup_rounds=1,
    )
    assert np.allclose(lat, t.column("lat").to_numpy(), rtol=0, atol=1e-10)
