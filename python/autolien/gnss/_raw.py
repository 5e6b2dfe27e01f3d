"""The types of what the compiled gnss functions return (``_core.fuse_groups``,
``_core.geofence_events``).

``_core.pyi`` types those functions with these. tests/test_core_stub_types.py
holds them equal to the C++ column lists (``_core.column_types()``) and to
what the compiled functions return.
"""

from __future__ import annotations

from typing import TypeAlias, TypedDict

import numpy as np
from numpy.typing import NDArray

__all__ = ["FenceEventsRaw", "FuseMoves", "FuseParked", "FuseRaw"]

U8: TypeAlias = NDArray[np.uint8]
U32: TypeAlias = NDArray[np.uint32]
I64: TypeAlias = NDArray[np.int64]
F64: TypeAlias = NDArray[np.float64]


class FuseParked(TypedDict):
    group: I64
    first: I64
    last: I64
    lat: F64
    lon: F64
    height_m: F64
    var_e_m2: F64
    var_n_m2: F64
    var_u_m2: F64
    n_fixes: U32


class FuseMoves(TypedDict):
    group: I64
    episode: I64
    first_fix: I64
    last_fix: I64
    distance_m: F64
    sigma_m: F64
    kind: U8


class FuseRaw(TypedDict):
    lat: F64
    lon: F64
    height_m: F64
    ve_mps: F64
    vn_mps: F64
    vu_mps: F64
    var_e_m2: F64
    var_n_m2: F64
    var_u_m2: F64
    nis: F64
    inflation: F64
    status: U8
    segment: U32
    parked: FuseParked
    moves: FuseMoves


class FenceEventsRaw(TypedDict):
    row: I64
    before: I64
    fence: U32
    enter: U8
