"""``autolien.gnss.distance_m`` (the core's great-circle kernel) against
pyproj's geodesic on the same sphere, and its broadcasting and NaN rules."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest

from autolien.gnss import EARTH_M, distance_m, nearest_distance_m


def test_distance_matches_pyproj_on_the_sphere() -> None:
    rng = np.random.default_rng(4)
    lat1, lat2 = rng.uniform(-85, 85, (2, 5000))
    lon1, lon2 = rng.uniform(-180, 180, (2, 5000))
    # short steps too: the monitor's are metres to kilometres
    lat2[:2500] = lat1[:2500] + rng.normal(0, 0.01, 2500)
    lon2[:2500] = lon1[:2500] + rng.normal(0, 0.01, 2500)
    _, _, want = pyproj.Geod(a=EARTH_M, b=EARTH_M).inv(lon1, lat1, lon2, lat2)
    got = distance_m(lat1, lon1, lat2, lon2)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6)


def test_hand_computed_distances_broadcasting_and_nan() -> None:
    # a tenth of a degree of latitude: R * pi / 1800
    assert np.isclose(distance_m(31.0, 121.0, 31.1, 121.0), EARTH_M * np.pi / 1800, rtol=1e-12)
    assert distance_m(10.0, 20.0, 10.0, 20.0) == 0.0
    # antipodes: half the circumference, finite
    assert np.isclose(distance_m(0.0, 0.0, 0.0, 180.0), np.pi * EARTH_M, rtol=1e-12)
    m = distance_m(np.zeros((3, 1)), 0.0, np.zeros(4), np.arange(4.0))
    assert m.shape == (3, 4)
    assert np.all(m[0] == m[2])
    assert np.isnan(distance_m(np.nan, 0.0, 1.0, 1.0))
    assert np.isclose(distance_m(0.0, 0.0, 1.0, 0.0, radius_m=1.0), np.pi / 180)


def test_nearest_distance_is_the_minimum_of_the_distance_matrix() -> None:
    """Each point's distance to its nearest target equals the minimum of
    its row of the full ``distance_m`` matrix, bit for bit (the same core
    haversine, and a minimum is exact): a city's grid of cells with points
    at cell centres and halfway between (ties), far points, the poles and
    the antimeridian; NaN where a row holds a NaN, +inf without targets."""
    rng = np.random.default_rng(5)
    gi, gj = np.meshgrid(np.arange(-15, 16), np.arange(-15, 16))
    to_lat = np.r_[31.2 + 0.0018 * gi.ravel(), 89.99, -89.99, 0.0, 0.0]
    to_lon = np.r_[121.5 + 0.0018 * gj.ravel(), 0.0, 179.999, 179.9999, -179.9999]
    lat = np.r_[
        31.2 + rng.normal(0, 0.03, 200),
        to_lat[rng.integers(0, to_lat.size, 30)],
        31.2 + 0.0018 * (rng.integers(-15, 15, 30) + 0.5),
        rng.uniform(-90, 90, 30),
        89.999,
        0.0,
        np.nan,
        31.2,
    ]
    lon = np.r_[
        121.5 + rng.normal(0, 0.03, 200),
        to_lon[rng.integers(0, to_lon.size, 30)],
        121.5 + 0.0018 * (rng.integers(-15, 15, 30) + 0.5),
        rng.uniform(-180, 180, 30),
        90.0,
        180.0,
        121.5,
        np.nan,
    ]
    full = distance_m(lat[:, None], lon[:, None], to_lat[None, :], to_lon[None, :])
    got = nearest_distance_m(lat, lon, to_lat, to_lon)
    np.testing.assert_array_equal(got, full.min(axis=1))
    assert np.isnan(got[-2:]).all()
    # a NaN target: NaN everywhere, as numpy's min gives
    assert np.isnan(
        nearest_distance_m(lat[:3], lon[:3], np.r_[to_lat, np.nan], np.r_[to_lon, 1.0])
    ).all()
    assert (nearest_distance_m(lat[:3], lon[:3], [], []) == np.inf).all()
    with pytest.raises(ValueError, match="same length"):
        nearest_distance_m(lat, lon[:-1], to_lat, to_lon)
