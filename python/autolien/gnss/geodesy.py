"""Distances on the Earth for the stages that need one (the monitor's steps,
jumps, tows and distances to familiar places), from the core's geodesy
(``great_circle_m``, C++)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .. import _core

__all__ = ["EARTH_M", "distance_m", "nearest_distance_m"]

EARTH_M = 6_371_008.8  # mean Earth radius (IUGG), metres

F64 = npt.NDArray[np.float64]


def distance_m(
    lat1: npt.ArrayLike,
    lon1: npt.ArrayLike,
    lat2: npt.ArrayLike,
    lon2: npt.ArrayLike,
    *,
    radius_m: float = EARTH_M,
) -> F64:
    """Great-circle (haversine) distance in metres between points given in
    degrees, on a sphere of ``radius_m`` (the mean Earth radius: within 0.5%
    of the WGS84 geodesic). The arguments broadcast against each other as
    numpy's do; NaN in any coordinate gives NaN."""
    b = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (lat1, lon1, lat2, lon2)))
    shape = b[0].shape
    flat = [np.ascontiguousarray(x).reshape(-1) for x in b]
    out = _core.great_circle_m(flat[0], flat[1], flat[2], flat[3], float(radius_m))
    return np.asarray(out, dtype=np.float64).reshape(shape)


def nearest_distance_m(
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    to_lat: npt.ArrayLike,
    to_lon: npt.ArrayLike,
    *,
    radius_m: float = EARTH_M,
) -> F64:
    """For each point, the great-circle distance in metres to the nearest of
    the targets (1-D arrays of degrees): the minimum of the points x targets
    ``distance_m`` matrix, without building it. NaN where a point (or a
    target) has a NaN coordinate, +inf without targets."""
    a = [np.ascontiguousarray(x, dtype=np.float64).reshape(-1) for x in (lat, lon, to_lat, to_lon)]
    return _core.great_circle_nearest_m(a[0], a[1], a[2], a[3], float(radius_m))
