"""Every gnss function (and every decoder) returns what ``_core.pyi`` says: the
stub's return annotation is evaluated and the runtime value checked against
it, key by key and dtype by dtype (issue 16, point 7: no ``dict[str, Any]``)."""

from __future__ import annotations

import ast
from importlib import resources
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from autolien import _core
from autolien.gnss import _raw as gnss_raw
from autolien.telemetry import _raw as telemetry_raw
from stub_types import _check

GNSS = ["decode_nmea", "geodetic_to_enu", "enu_to_geodetic", "fuse_groups", "geofence_events"]
GNSS += ["fence_locate"]


def _returns(name: str) -> Any:
    """The stub's return annotation of `name`, as a runtime type."""
    text = resources.files("autolien").joinpath("_core.pyi").read_text(encoding="utf-8")
    (node,) = [n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert node.returns is not None
    names = {"np": np, "NDArray": NDArray, "Any": Any, **vars(gnss_raw), **vars(telemetry_raw)}
    return eval(ast.unparse(node.returns), names)  # the stub is ours: its annotations only


def _nmea(body: str) -> bytes:
    x = 0
    for ch in body.encode():
        x ^= ch
    return f"${body}*{x:02X}\r\n".encode()


def _static_then_moved(n: int = 400) -> dict[str, np.ndarray]:
    """A receiver at rest for n fixes, then 40 m north for n more (RTK fixed)."""
    rng = np.random.default_rng(7)
    lat = np.full(2 * n, 30.0) + rng.normal(0, 1e-8, 2 * n)
    lat[n:] += 40 / 111_000
    return {
        "t": np.arange(2 * n, dtype=np.float64),
        "lat": lat,
        "lon": np.full(2 * n, 120.0),
        "h": np.full(2 * n, 10.0),
    }


def _call(name: str) -> Any:
    a = _static_then_moved()
    n = len(a["t"])
    fence_lon = np.array([119.999, 120.001, 120.001, 119.999])
    fence_lat = np.array([29.999, 29.999, 30.0002, 30.0002])
    if name == "decode_nmea":
        gga = "GPGGA,120000.00,3001.0000,N,12001.0000,E,4,12,0.9,10.0,M,5.0,M,1.0,0001"
        return _core.decode_nmea(_nmea(gga) + b"junk")
    if name == "geodetic_to_enu":
        return _core.geodetic_to_enu(30.0, 120.0, 10.0, a["lat"], a["lon"], a["h"])
    if name == "enu_to_geodetic":
        return _core.enu_to_geodetic(30.0, 120.0, 10.0, a["lat"] * 0, a["lon"] * 0, a["h"] * 0)
    if name == "fuse_groups":
        sigma = np.full(n, 0.02)
        return _core.fuse_groups(
            np.array([0, n], np.int64),
            a["t"],
            a["lat"],
            a["lon"],
            a["h"],
            np.full(n, 4, np.int32),
            sigma,
            sigma,
            sigma * 2,
            np.zeros(n),
            True,
            {},
        )
    if name == "geofence_events":
        return _core.geofence_events(
            np.array([0, n], np.int64),
            a["lat"],
            a["lon"],
            np.full(n, 0.02),
            np.ones(n, np.uint8),
            np.array([0, 4], np.int64),
            fence_lon,
            fence_lat,
            3.0,
        )
    assert name == "fence_locate"
    return _core.fence_locate(fence_lon, fence_lat, a["lat"], a["lon"])


@pytest.mark.parametrize("name", GNSS)
def test_gnss_functions_return_what_the_stub_says(name: str) -> None:
    out = _call(name)
    _check(out, _returns(name), name)


def test_the_gnss_results_are_not_empty() -> None:
    # The checks above see rows, not only empty arrays: a parked episode, a
    # move out of it, and an exit from the fence.
    fused = _call("fuse_groups")
    assert len(fused["parked"]["group"]) >= 1
    assert len(fused["moves"]["kind"]) >= 1
    assert len(_call("geofence_events")["row"]) >= 1
    assert len(_call("decode_nmea")["fixes"]["lat"]) == 1


def test_every_gnss_function_is_covered() -> None:
    text = resources.files("autolien").joinpath("_core.pyi").read_text(encoding="utf-8")
    section = text.split("# gnss", 1)[1]
    stubbed = {
        n.name
        for n in ast.parse(text).body
        if isinstance(n, ast.FunctionDef) and f"def {n.name}(" in section
    }
    gnss_like = {n for n in stubbed if "fence" in n or "fuse" in n or "geodetic" in n}
    assert gnss_like <= set(GNSS)
