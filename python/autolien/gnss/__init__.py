"""GNSS fusion: clean tracks with honest uncertainty from mixed-quality fixes.

:func:`fuse` takes the fix table of :func:`autolien.telemetry.decode_nmea`
(many vehicles at once) and returns a :class:`FusionResult` whose ``track``
holds the filtered (or RTS-smoothed) position, velocity and covariance of every
fix, with the reason a fix was not used. The filter runs in the C++ core, one
vehicle per task on the thread pool with the GIL released.

The result also holds ``parked`` episodes and ``events`` (moves out of a
parked position: departure, displacement, relocated_offline, unexplained);
:func:`geofence_events` turns a track into enter/exit events against WGS84
polygons; :func:`distance_m` gives great-circle distances from the core's
geodesy. See docs/gnss.md.
"""

from __future__ import annotations

from .fusion import (
    EVENTS_SCHEMA,
    MOVE_KINDS,
    PARKED_SCHEMA,
    REASONS,
    TRACK_SCHEMA,
    FusionConfig,
    FusionResult,
    fuse,
)
from .geodesy import EARTH_M, distance_m, nearest_distance_m
from .geofence import FENCE_KINDS, GEOFENCE_EVENTS_SCHEMA, geofence_events

__all__ = [
    "EARTH_M",
    "EVENTS_SCHEMA",
    "FENCE_KINDS",
    "GEOFENCE_EVENTS_SCHEMA",
    "MOVE_KINDS",
    "PARKED_SCHEMA",
    "REASONS",
    "TRACK_SCHEMA",
    "FusionConfig",
    "FusionResult",
    "distance_m",
    "fuse",
    "geofence_events",
    "nearest_distance_m",
]
