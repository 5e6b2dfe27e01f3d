"""Geofences: point-in-polygon and edge distance against shapely (GEOS),
enter/exit events against shapely's answer fix by fix, hysteresis, errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import shapely

from autolien import _core
from autolien.gnss import geofence_events

M_PER_DEG = 6378137.0 * np.pi / 180


def star(
    rng: np.random.Generator, lon0: float, lat0: float, radius_deg: float, k: int = 17
) -> np.ndarray:
    """A non-convex (star-shaped) ring of k vertices."""
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    r = radius_deg * rng.uniform(0.3, 1.0, k)
    return np.column_stack([lon0 + r * np.cos(ang), lat0 + r * np.sin(ang)])


def test_locate_against_shapely() -> None:
    rng = np.random.default_rng(1)
    ring = star(rng, 121.47, 31.23, 0.01)
    poly = shapely.Polygon(ring)
    lon = rng.uniform(121.45, 121.49, 3000)
    lat = rng.uniform(31.21, 31.25, 3000)
    inside, dist = _core.fence_locate(
        np.ascontiguousarray(ring[:, 0]), np.ascontiguousarray(ring[:, 1]), lat, lon
    )
    want = shapely.contains_xy(poly, lon, lat)
    assert (inside.astype(bool) == want).all()
    assert 100 < want.sum() < 2900
    # Distance: the same local equirectangular metres, measured by GEOS.
    for i in range(0, 3000, 15):
        kx, ky = M_PER_DEG * np.cos(np.radians(lat[i])), M_PER_DEG
        local = shapely.Polygon(
            np.column_stack([(ring[:, 0] - lon[i]) * kx, (ring[:, 1] - lat[i]) * ky])
        )
        assert dist[i] == pytest.approx(
            local.exterior.distance(shapely.Point(0, 0)), rel=1e-9, abs=1e-6
        )


def fences_table(rings: list[np.ndarray], kinds: list[str]) -> pa.Table:
    return pa.table(
        {
            "fence_id": [f"f{i}" for i in range(len(rings))],
            "kind": kinds,
            "lon": [r[:, 0].tolist() for r in rings],
            "lat": [r[:, 1].tolist() for r in rings],
        }
    )


def wander(rng: np.random.Generator, n: int, lon0: float, lat0: float, vehicle: str) -> pa.Table:
    lon = lon0 + np.cumsum(rng.normal(0, 4e-4, n))
    lat = lat0 + np.cumsum(rng.normal(0, 4e-4, n))
    return pa.table(
        {
            "vehicle_id": [vehicle] * n,
            "time": pa.array(1_760_000_000_000_000 + np.arange(n) * 1_000_000, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "lat": lat,
            "lon": lon,
        }
    )


def test_events_match_shapely_transitions() -> None:
    rng = np.random.default_rng(7)
    rings = [
        star(rng, 121.47, 31.23, 0.01),
        star(rng, 121.48, 31.24, 0.006),
        star(rng, 121.46, 31.22, 0.004),
    ]
    kinds = ["allowed", "forbidden", "forbidden"]
    tracks = [wander(rng, 2000, 121.47, 31.23, v) for v in ("a", "b", "c")]
    events = geofence_events(pa.concat_tables(tracks), fences_table(rings, kinds), k_sigma=0.0)
    want = []
    for track in tracks:
        v = track.column("vehicle_id")[0].as_py()
        lon, lat = track.column("lon").to_numpy(), track.column("lat").to_numpy()
        times = track.column("time").to_pylist()
        for f, ring in enumerate(rings):
            inside = shapely.contains_xy(shapely.Polygon(ring), lon, lat)
            if inside[0]:
                want.append((v, f"f{f}", "enter", times[0]))
            flips = np.flatnonzero(inside[1:] != inside[:-1]) + 1
            want.extend((v, f"f{f}", "enter" if inside[i] else "exit", times[i]) for i in flips)
    got = list(
        zip(
            events.column("vehicle_id").to_pylist(),
            events.column("fence_id").to_pylist(),
            events.column("event").to_pylist(),
            events.column("time").to_pylist(),
            strict=True,
        )
    )
    assert sorted(got) == sorted(want)
    assert len(want) > 20
    kind_of = dict(zip([f"f{i}" for i in range(3)], kinds, strict=True))
    for fid, ev, violation in zip(
        events.column("fence_id").to_pylist(),
        events.column("event").to_pylist(),
        events.column("violation").to_pylist(),
        strict=True,
    ):
        assert violation == ((ev == "exit") == (kind_of[fid] == "allowed"))


def test_hysteresis_stops_flapping_on_a_boundary() -> None:
    rng = np.random.default_rng(3)
    square = np.array([[121.0, 31.0], [121.01, 31.0], [121.01, 31.01], [121.0, 31.01]])
    n = 600
    # Parked 0.3 m east of the west edge, with 0.5 m noise and a 1 m sigma.
    east = 0.3 + rng.normal(0, 0.5, n)
    lon = 121.0 + east / (M_PER_DEG * np.cos(np.radians(31.005)))
    track = pa.table(
        {
            "time": pa.array(np.arange(n) * 1_000_000, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "lat": np.full(n, 31.005),
            "lon": lon,
            "sigma_e_m": np.full(n, 0.7),
            "sigma_n_m": np.full(n, 0.7),
        }
    )
    fences = fences_table([square], ["allowed"])
    noisy = geofence_events(track, fences, k_sigma=0.0)
    calm = geofence_events(track, fences, k_sigma=2.0)
    assert noisy.num_rows > 50
    assert calm.num_rows <= 1  # at most the start inside


def test_geofence_errors() -> None:
    track = wander(np.random.default_rng(0), 10, 121.0, 31.0, "a")
    square = np.array([[121.0, 31.0], [121.01, 31.0], [121.01, 31.01]])
    with pytest.raises(ValueError, match="kind"):
        geofence_events(track, fences_table([square], ["market"]))
    with pytest.raises(ValueError, match="3 distinct"):
        geofence_events(track, fences_table([square[:2]], ["allowed"]))
    with pytest.raises(ValueError, match="fence_id"):
        geofence_events(track, fences_table([square], ["allowed"]).drop_columns(["fence_id"]))
    with pytest.raises(ValueError, match="WGS84"):
        geofence_events(track, fences_table([square + np.array([200.0, 0.0])], ["allowed"]))
    with pytest.raises(ValueError, match="k_sigma"):
        geofence_events(track, fences_table([square], ["allowed"]), k_sigma=-1)
    with pytest.raises(ValueError, match="backwards"):
        geofence_events(track.take(pa.array([1, 0, 2])), fences_table([square], ["allowed"]))
