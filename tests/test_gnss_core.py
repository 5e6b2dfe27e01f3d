"""GNSS fusion core: geodesy against pyproj, the filter and smoother against
FilterPy on the same model, and outlier gating. (The full fusion API of the RTK
issue builds on these.)"""

from __future__ import annotations

import filterpy.kalman as filterpy_kf
import numpy as np
import pyproj
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien import _core

ECEF = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


# The bound kept by the double-precision geodesy (docs/gnss.md): a round trip
# through ENU within 100 km of the origin, anywhere on the globe.
ROUND_TRIP_M = 1e-7


@settings(max_examples=300)
@given(
    st.floats(-89.9, 89.9),
    st.floats(-180, 180),
    st.floats(-100, 9000),
    st.floats(-1e5, 1e5),
    st.floats(-1e5, 1e5),
    st.floats(-1000, 1000),
)
def test_enu_round_trip_within_the_bound(
    lat0: float, lon0: float, h0: float, e: float, n: float, u: float
) -> None:
    lat, lon, h = _core.enu_to_geodetic(lat0, lon0, h0, np.array([e]), np.array([n]), np.array([u]))
    e2, n2, u2 = _core.geodetic_to_enu(lat0, lon0, h0, lat, lon, h)
    assert abs(e2[0] - e) < ROUND_TRIP_M
    assert abs(n2[0] - n) < ROUND_TRIP_M
    assert abs(u2[0] - u) < ROUND_TRIP_M


def test_geodesy_against_pyproj_worldwide() -> None:
    """300 origins anywhere (poles and the antimeridian included), 200 points
    within 100 km of each: ENU equals pyproj's ECEF rotated into the frame, and
    the inverse lands where pyproj's inverse does (pyproj's own inverse is the
    looser of the two, about 1.3e-6 m; our round trip holds 1e-7 m)."""
    rng = np.random.default_rng(0)
    metres_per_deg = 6378137.0 * np.pi / 180
    for _ in range(300):
        lat0, lon0, h0 = rng.uniform(-89.9, 89.9), rng.uniform(-180, 180), rng.uniform(-100, 9000)
        e, n, u = (rng.uniform(-s, s, 200) for s in (1e5, 1e5, 1e3))
        x0, y0, z0 = ECEF.transform(lon0, lat0, h0)
        sl, cl = np.sin(np.radians(lon0)), np.cos(np.radians(lon0))
        sp, cp = np.sin(np.radians(lat0)), np.cos(np.radians(lat0))
        x = x0 - sl * e - sp * cl * n + cp * cl * u
        y = y0 + cl * e - sp * sl * n + cp * sl * u
        z = z0 + cp * n + sp * u
        want_lon, want_lat, want_h = ECEF.transform(x, y, z, direction="INVERSE")
        lat, lon, h = _core.enu_to_geodetic(lat0, lon0, h0, e, n, u)
        dlon = (lon - want_lon + 180) % 360 - 180
        assert np.max(np.abs(lat - want_lat)) * metres_per_deg < 1e-5
        assert np.max(np.abs(dlon * np.cos(np.radians(want_lat)))) * metres_per_deg < 1e-5
        assert np.max(np.abs(h - want_h)) < 1e-5
        # Forward: pyproj's ECEF of our geodetic points, rotated, is our ENU.
        e2, n2, u2 = _core.geodetic_to_enu(lat0, lon0, h0, lat, lon, h)
        px, py, pz = ECEF.transform(lon, lat, h)
        dx, dy, dz = px - x0, py - y0, pz - z0
        assert np.max(np.abs(e2 - (-sl * dx + cl * dy))) < 1e-8
        assert np.max(np.abs(n2 - (-sp * cl * dx - sp * sl * dy + cp * dz))) < 1e-8
        assert np.max(np.abs(u2 - (cp * cl * dx + cp * sl * dy + sp * dz))) < 1e-8


def test_enu_against_pyproj() -> None:
    rng = np.random.default_rng(3)
    lat0, lon0, h0 = 40.097, -105.147, 1578.8
    lat = lat0 + rng.normal(0, 0.05, 500)
    lon = lon0 + rng.normal(0, 0.05, 500)
    h = h0 + rng.normal(0, 50, 500)
    e, n, u = _core.geodetic_to_enu(lat0, lon0, h0, lat, lon, h)
    # The same rotation applied to pyproj's ECEF coordinates.
    x0, y0, z0 = ECEF.transform(lon0, lat0, h0)
    x, y, z = ECEF.transform(lon, lat, h)
    sl, cl = np.sin(np.radians(lon0)), np.cos(np.radians(lon0))
    sp, cp = np.sin(np.radians(lat0)), np.cos(np.radians(lat0))
    dx, dy, dz = x - x0, y - y0, z - z0
    want_e = -sl * dx + cl * dy
    want_n = -sp * cl * dx - sp * sl * dy + cp * dz
    want_u = cp * cl * dx + cp * sl * dy + sp * dz
    assert np.max(np.abs(e - want_e)) < 1e-6
    assert np.max(np.abs(n - want_n)) < 1e-6
    assert np.max(np.abs(u - want_u)) < 1e-6


def filterpy_axis(
    t: np.ndarray,
    z: np.ndarray,
    r: np.ndarray,
    q: float,
    smooth: bool,
    still: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One axis of the constant-velocity model in FilterPy, irregular steps;
    where `still`, a zero-velocity measurement (sigma ZUPT_SIGMA) first."""
    kf = filterpy_kf.KalmanFilter(dim_x=2, dim_z=1)
    kf.x = np.array([[z[0]], [0.0]])
    kf.P = np.diag([r[0], 30.0**2])
    kf.H = np.array([[1.0, 0.0]])
    xs, ps, fs, qs = [kf.x.copy()], [kf.P.copy()], [np.eye(2)], [np.zeros((2, 2))]
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        kf.F = np.array([[1.0, dt], [0.0, 1.0]])
        kf.Q = q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        kf.R = np.array([[r[i]]])
        kf.predict()
        if still is not None and still[i]:
            kf.update(np.array([[0.0]]), R=np.array([[ZUPT_SIGMA**2]]), H=np.array([[0.0, 1.0]]))
        kf.update(np.array([[z[i]]]))
        xs.append(kf.x.copy())
        ps.append(kf.P.copy())
        fs.append(kf.F.copy())
        qs.append(kf.Q.copy())
    x_arr, p_arr = np.array(xs), np.array(ps)
    if smooth:
        # FilterPy's smoother uses Fs[k + 1] for the step from k to k + 1.
        x_arr, p_arr, _, _ = kf.rts_smoother(x_arr, p_arr, Fs=np.array(fs), Qs=np.array(qs))
    return x_arr[:, 0, 0], p_arr[:, 0, 0]


ZUPT_SIGMA = 0.02  # FusionConfig default


@pytest.mark.parametrize("zupt", [False, True])
@pytest.mark.parametrize("smooth", [False, True])
def test_filter_and_smoother_match_filterpy(smooth: bool, zupt: bool) -> None:
    rng = np.random.default_rng(11)
    n = 300
    t = np.cumsum(rng.choice([0.25, 1.0, 30.0, 0.5], size=n))  # irregular steps
    t -= t[0]
    truth_e = 5 * np.sin(t / 50)
    truth_n = 0.1 * t
    sigma = rng.choice([0.02, 0.15, 0.5], size=n)
    e_meas = truth_e + rng.normal(0, sigma)
    n_meas = truth_n + rng.normal(0, sigma)
    lat0, lon0, h0 = 30.0, 120.0, 10.0
    lat, lon, h = _core.enu_to_geodetic(lat0, lon0, h0, e_meas, n_meas, np.zeros(n))
    q = 2.0
    still = rng.random(n) < 0.3  # reported speed 0 on these fixes
    cfg = {
        "adapt_inflation": False,
        "gate_chi2": 1e12,
        "floor_m": [0.0] * 7,
        "vertical_factor": 1.0,
        "accel_psd": q,
        "reinit_gap_s": 1e9,
    }
    out = _core.fuse_groups(
        np.array([0, n], dtype=np.int64),
        t,
        lat,
        lon,
        h,
        np.full(n, 4, dtype=np.int32),
        sigma,
        sigma,
        sigma,
        np.where(still, 0.0, np.nan) if zupt else np.full(n, np.nan),
        smooth,
        cfg,
    )
    # FilterPy wants the measurements in the same ENU frame as ours, which is
    # anchored at the first fix.
    e_ref, n_ref, _ = _core.geodetic_to_enu(lat[0], lon[0], h[0], lat, lon, h)
    fe, fn, _ = _core.geodetic_to_enu(lat[0], lon[0], h[0], out["lat"], out["lon"], out["height_m"])
    for ours, var, meas in ((fe, out["var_e_m2"], e_ref), (fn, out["var_n_m2"], n_ref)):
        want_x, want_p = filterpy_axis(t, meas, sigma**2, q, smooth, still if zupt else None)
        assert np.max(np.abs(ours - want_x)) < 1e-6
        assert np.max(np.abs(var - want_p) / want_p) < 1e-6


def test_outliers_are_gated_and_flagged_not_dropped() -> None:
    n = 400
    t = np.arange(n, dtype=float)
    e = np.zeros(n)
    nn = 0.5 * t
    rng = np.random.default_rng(5)
    e += rng.normal(0, 0.02, n)
    nn += rng.normal(0, 0.02, n)
    spikes = [50, 120, 121, 300]
    e[spikes] += 25.0  # multipath / wrong fixes
    lat, lon, h = _core.enu_to_geodetic(30.0, 120.0, 10.0, e, nn, np.zeros(n))
    sig = np.full(n, 0.02)
    out = _core.fuse_groups(
        np.array([0, n], dtype=np.int64),
        t,
        lat,
        lon,
        h,
        np.full(n, 4, dtype=np.int32),
        sig,
        sig,
        sig,
        np.full(n, np.nan),
        False,
        {},
    )
    status = out["status"]
    assert sorted(np.flatnonzero(status == 2).tolist()) == spikes  # gated, every one
    assert np.isfinite(out["lat"][spikes]).all()  # still a (predicted) state for them
    fe, _, _ = _core.geodetic_to_enu(30.0, 120.0, 10.0, out["lat"], out["lon"], out["height_m"])
    assert np.max(np.abs(fe[spikes])) < 0.5


@pytest.mark.parametrize("smooth", [False, True])
def test_speed_aiding_matches_filterpy_ekf(smooth: bool) -> None:
    """Reported ground speed as an extended Kalman update on the coupled
    horizontal state, against FilterPy's KalmanFilter with the same
    linearisation (H = [0, ve, 0, vn] / |v| at the prediction)."""
    rng = np.random.default_rng(21)
    n = 400
    t = np.cumsum(rng.choice([0.25, 1.0, 2.0], size=n))
    t -= t[0]
    heading = 0.02 * t
    true_speed = 8 + 2 * np.sin(t / 30)
    true_speed[150:170] = 0.0  # a stop: zero-velocity updates
    e_true = np.concatenate([[0], np.cumsum(np.diff(t) * true_speed[1:] * np.sin(heading[1:]))])
    n_true = np.concatenate([[0], np.cumsum(np.diff(t) * true_speed[1:] * np.cos(heading[1:]))])
    sigma = np.full(n, 0.3)
    e_meas = e_true + rng.normal(0, sigma)
    n_meas = n_true + rng.normal(0, sigma)
    speed = true_speed + rng.normal(0, 0.1, n) * (true_speed > 0)
    lat, lon, h = _core.enu_to_geodetic(30.0, 120.0, 10.0, e_meas, n_meas, np.zeros(n))
    q = 2.0
    cfg = {
        "adapt_inflation": False,
        "gate_chi2": 1e12,
        "floor_m": [0.0] * 7,
        "vertical_factor": 1.0,
    }
    out = _core.fuse_groups(
        np.array([0, n], dtype=np.int64),
        t,
        lat,
        lon,
        h,
        np.full(n, 5, dtype=np.int32),
        sigma,
        sigma,
        sigma,
        np.ascontiguousarray(speed),
        smooth,
        cfg,
    )
    e_ref, n_ref, _ = _core.geodetic_to_enu(lat[0], lon[0], h[0], lat, lon, h)
    fe, fn, _ = _core.geodetic_to_enu(lat[0], lon[0], h[0], out["lat"], out["lon"], out["height_m"])

    kf = filterpy_kf.KalmanFilter(dim_x=4, dim_z=1)
    kf.x = np.array([[e_ref[0]], [0.0], [n_ref[0]], [0.0]])
    kf.P = np.diag([sigma[0] ** 2, 900.0, sigma[0] ** 2, 900.0])
    xs, ps, fs, qs = [kf.x.copy()], [kf.P.copy()], [np.eye(4)], [np.zeros((4, 4))]
    for i in range(1, n):
        dt = t[i] - t[i - 1]
        kf.F = np.kron(np.eye(2), np.array([[1.0, dt], [0.0, 1.0]]))
        kf.Q = np.kron(np.eye(2), q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]]))
        kf.predict()
        ve, vn = kf.x[1, 0], kf.x[3, 0]
        vh = np.hypot(ve, vn)
        if speed[i] <= 0.05:
            for k in (1, 3):
                hk = np.zeros((1, 4))
                hk[0, k] = 1.0
                kf.update(np.array([[0.0]]), R=np.array([[ZUPT_SIGMA**2]]), H=hk)
        elif vh >= 1.0:
            hs = np.array([[0.0, ve / vh, 0.0, vn / vh]])
            sig = max(0.2, 0.03 * speed[i])
            kf.update(np.array([[speed[i] - vh]]) + hs @ kf.x, R=np.array([[sig**2]]), H=hs)
        for k, z in ((0, e_ref[i]), (2, n_ref[i])):
            hk = np.zeros((1, 4))
            hk[0, k] = 1.0
            kf.update(np.array([[z]]), R=np.array([[sigma[i] ** 2]]), H=hk)
        xs.append(kf.x.copy())
        ps.append(kf.P.copy())
        fs.append(kf.F.copy())
        qs.append(kf.Q.copy())
    x_arr, p_arr = np.array(xs), np.array(ps)
    if smooth:
        x_arr, p_arr, _, _ = kf.rts_smoother(x_arr, p_arr, Fs=np.array(fs), Qs=np.array(qs))
    np.testing.assert_allclose(fe, x_arr[:, 0, 0], atol=1e-6)
    np.testing.assert_allclose(fn, x_arr[:, 2, 0], atol=1e-6)
    np.testing.assert_allclose(out["ve_mps"], x_arr[:, 1, 0], atol=1e-6)
    np.testing.assert_allclose(out["var_e_m2"], p_arr[:, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(out["var_n_m2"], p_arr[:, 2, 2], rtol=1e-6)
    # And the speed helps: velocity error against the truth shrinks.
    plain = _core.fuse_groups(
        np.array([0, n], dtype=np.int64),
        t,
        lat,
        lon,
        h,
        np.full(n, 5, dtype=np.int32),
        sigma,
        sigma,
        sigma,
        np.full(n, np.nan),
        smooth,
        cfg,
    )
    err_speed = np.hypot(out["ve_mps"], out["vn_mps"]) - true_speed
    err_plain = np.hypot(plain["ve_mps"], plain["vn_mps"]) - true_speed
    assert np.sqrt(np.mean(err_speed[20:] ** 2)) < 0.7 * np.sqrt(np.mean(err_plain[20:] ** 2))
