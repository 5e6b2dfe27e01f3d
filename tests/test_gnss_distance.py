"""``autolien.gnss.distance_m`` (the core's great-circle kernel) against
pyproj's geodesic on the same sphere, and its broadcasting and NaN rules."""

from __future__ import annotations

import numpy as np
import pyproj

from autolien.gnss import EARTH_M, distance_m


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
