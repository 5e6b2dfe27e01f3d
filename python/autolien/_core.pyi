# Hand-written stub of the compiled module; tests/test_core_stub.py checks that
# its names match dir(_core).
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._typing import Buffer
from .gnss._raw import FenceEventsRaw, FuseRaw
from .telemetry._raw import Gb32960Raw, Jt808Raw, NmeaRaw, ObdRaw

class AutolienError(Exception): ...

def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...

# ledger
def sha256(data: Buffer) -> bytes: ...
def keccak256(data: Buffer) -> bytes: ...
def sha256_shani_supported() -> bool: ...
def sha256_backend() -> str: ...
def sha256_set_backend(backend: str) -> None: ...
def rfc6962_leaf_hash(data: Buffer, hash: str = "sha256") -> bytes: ...
def rfc6962_node_hash(left: Buffer, right: Buffer, hash: str = "sha256") -> bytes: ...
def verify_inclusion(
    leaf_hash: Buffer,
    index: int,
    size: int,
    proof: list[Buffer] | tuple[Buffer, ...],
    root: Buffer,
    *,
    hash: str = "sha256",
) -> bool: ...
def verify_consistency(
    size1: int,
    size2: int,
    proof: list[Buffer] | tuple[Buffer, ...],
    root1: Buffer,
    root2: Buffer,
    *,
    hash: str = "sha256",
) -> bool: ...
def oz_make_tree(leaves: Buffer) -> bytes: ...
def oz_node_hash(a: Buffer, b: Buffer) -> bytes: ...

# telemetry
def decode_jt808(data: Buffer, subpackage_window: int = 1024) -> Jt808Raw: ...
def jt808_safe_cut(data: Buffer, target: int, subpackage_window: int = 1024) -> int | None: ...
def column_types() -> dict[str, list[tuple[str, str, str]]]: ...
def decode_nmea(data: Buffer) -> NmeaRaw: ...

# gnss
def geodetic_to_enu(
    lat0: float,
    lon0: float,
    h0: float,
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    h: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
def enu_to_geodetic(
    lat0: float,
    lon0: float,
    h0: float,
    e: NDArray[np.float64],
    n: NDArray[np.float64],
    u: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]: ...
def fuse_groups(
    groups: NDArray[np.int64],
    t: NDArray[np.float64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    h: NDArray[np.float64],
    quality: NDArray[np.int32],
    sigma_n: NDArray[np.float64],
    sigma_e: NDArray[np.float64],
    sigma_u: NDArray[np.float64],
    speed_mps: NDArray[np.float64],
    smooth: bool,
    config: dict[str, Any],
) -> FuseRaw: ...
def decode_gb32960(data: Buffer) -> Gb32960Raw: ...
def decode_obd(data: Buffer) -> ObdRaw: ...
def obd_value(pid: int, data: Buffer) -> float: ...

class MerkleLog:
    def __init__(self, hash: str = "sha256") -> None: ...
    @property
    def hash(self) -> str: ...
    @property
    def size(self) -> int: ...
    def append(self, data: Buffer) -> int: ...
    def append_leaf_hash(self, leaf_hash: Buffer) -> int: ...
    def extend(self, items: Iterable[Buffer]) -> tuple[int, int]: ...
    def extend_rows(self, rows: NDArray[np.uint8]) -> tuple[int, int]: ...
    def extend_offsets(
        self, data: NDArray[np.uint8], offsets: NDArray[np.int64]
    ) -> tuple[int, int]: ...
    def extend_leaf_hashes(self, hashes: Buffer) -> tuple[int, int]: ...
    def extend_with_levels(self, leaves: Buffer, levels: Sequence[Buffer]) -> tuple[int, int]: ...
    def root(self, size: int | None = None) -> bytes: ...
    def leaf_hash(self, index: int) -> bytes: ...
    def inclusion_proof(self, index: int, size: int) -> list[bytes]: ...
    def inclusion_proofs(
        self, indices: NDArray[np.int64], size: int
    ) -> tuple[NDArray[np.uint8], NDArray[np.int64]]: ...
    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...

def geofence_events(
    groups: NDArray[np.int64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    sigma_h: NDArray[np.float64],
    usable: NDArray[np.uint8],
    fence_offsets: NDArray[np.int64],
    fence_lon: NDArray[np.float64],
    fence_lat: NDArray[np.float64],
    k_sigma: float,
) -> FenceEventsRaw: ...
def great_circle_m(
    lat1: NDArray[np.float64],
    lon1: NDArray[np.float64],
    lat2: NDArray[np.float64],
    lon2: NDArray[np.float64],
    radius_m: float,
) -> NDArray[np.float64]: ...
def great_circle_nearest_m(
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
    to_lat: NDArray[np.float64],
    to_lon: NDArray[np.float64],
    radius_m: float,
) -> NDArray[np.float64]: ...
def fence_locate(
    fence_lon: NDArray[np.float64],
    fence_lat: NDArray[np.float64],
    lat: NDArray[np.float64],
    lon: NDArray[np.float64],
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]: ...

# entropy
def entropy_measure(
    x: NDArray[np.float64],
    kind: str,
    order: int,
    delay: int,
    normalize: bool,
    r: float,
    tolerance: float,
    metric: str,
    method: str,
    nperseg: int,
) -> float: ...
def entropy_groups(
    x: NDArray[np.float64],
    offsets: NDArray[np.int64],
    kind: str,
    order: int,
    delay: int,
    normalize: bool,
    r: float,
    tolerance: float,
    metric: str,
    method: str,
    nperseg: int,
) -> NDArray[np.float64]: ...
def entropy_rolling(
    x: NDArray[np.float64],
    t: NDArray[np.float64],
    offsets: NDArray[np.int64],
    count: int,
    span: float,
    order: int,
    delay: int,
    normalize: bool,
    edges: NDArray[np.float64],
    fixed_point: bool = ...,
) -> NDArray[np.float64]: ...
def entropy_fixed_table(max_count: int) -> NDArray[np.uint64]: ...
def histogram_edges(lo: float, hi: float, bins: int) -> NDArray[np.float64]: ...
def histogram(
    x: NDArray[np.float64], edges: NDArray[np.float64]
) -> tuple[NDArray[np.int64], int]: ...
def shannon_bits(counts: NDArray[np.int64]) -> Any: ...

# valuation
class TreeEnsemble:
    def __init__(
        self,
        feature: NDArray[np.int32],
        threshold: NDArray[np.float32],
        yes: NDArray[np.int32],
        no: NDArray[np.int32],
        missing_yes: NDArray[np.uint8],
        value: NDArray[np.float64],
        roots: NDArray[np.int32],
        leq: bool,
        base: float,
        n_features: int,
    ) -> None: ...
    def predict(self, rows: NDArray[np.float32]) -> NDArray[np.float64]: ...
    @property
    def n_trees(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def n_features(self) -> int: ...

class ObliviousEnsemble:
    @staticmethod
    def best_isa() -> str: ...
    @staticmethod
    def supports(isa: str) -> bool: ...
    def __init__(
        self,
        depth: int,
        feature: NDArray[np.int32],
        threshold: NDArray[np.float32],
        leaf: NDArray[np.float32],
        base: float,
        n_features: int,
    ) -> None: ...
    def predict(self, rows: NDArray[np.float32], isa: str = "auto") -> NDArray[np.float64]: ...
    @property
    def n_trees(self) -> int: ...
    @property
    def depth(self) -> int: ...
    @property
    def n_features(self) -> int: ...

class MonitorBlockArgs:
    def __init__(
        self,
        offsets: NDArray[np.int64],
        t: NDArray[np.float64],
        lat: NDArray[np.float64],
        lon: NDArray[np.float64],
        speed: NDArray[np.float64],
        local_hour: NDArray[np.float64],
        cells: NDArray[np.int64],
        run_carry: NDArray[np.float64],
        h_a: NDArray[np.int64],
        h_b: NDArray[np.int64],
    ) -> None: ...

def monitor_derive_block(
    args: MonitorBlockArgs, params: dict[str, float]
) -> dict[str, NDArray[Any]]: ...
def monitor_hourly_block(
    args: MonitorBlockArgs,
    speed: NDArray[np.float64],
    dist_m: NDArray[np.float64],
    moving_s: NDArray[np.float64],
    night_s: NDArray[np.float64],
    speeding_s: NDArray[np.float64],
    turn: NDArray[np.float64],
    moving: NDArray[np.bool_],
    harsh_accel: NDArray[np.bool_],
    harsh_brake: NDArray[np.bool_],
    stop_end: NDArray[np.bool_],
    dwell_s: NDArray[np.int64],
    stop_bin: NDArray[np.int64],
) -> dict[str, NDArray[Any]]: ...
def monitor_location(
    hour: NDArray[np.int64],
    cell: NDArray[np.int64],
    secs: NDArray[np.int64],
    h_a: int,
    h_b: int,
    context_h: int,
    lag_h: int,
    baseline_h: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def monitor_window_features(
    n: NDArray[np.int64],
    dist_km: NDArray[np.float64],
    moving_s: NDArray[np.float64],
    night_s: NDArray[np.float64],
    speeding_s: NDArray[np.float64],
    odo_km: NDArray[np.float64],
    harsh_accel: NDArray[np.int64],
    harsh_brake: NDArray[np.int64],
    n_odo: NDArray[np.int64],
    speed_hist: NDArray[np.int64],
    turn_hist: NDArray[np.int64],
    stop_hist: NDArray[np.int64],
    first: int,
    k: int,
) -> dict[str, NDArray[Any]]: ...
def monitor_mileage(
    km: NDArray[np.float64],
    track: NDArray[np.float64],
    odo: NDArray[np.float64],
    fixes: NDArray[np.float64],
    earlier: NDArray[np.float64],
    median: float,
    mad: float,
    count: int,
    min_baseline_h: int,
    mad_floor_km: float,
    warn_km_month: float,
    z: float,
    freeze_track_km: float,
    rollback_km: float,
    mismatch_low: float,
    mismatch_high: float,
    confirm: bool,
) -> dict[str, NDArray[Any]]: ...
def monitor_entropy(
    values: NDArray[np.float64],
    median: NDArray[np.float64],
    mad: NDArray[np.float64],
    z_floor: NDArray[np.float64],
    count: NDArray[np.int64],
    place: NDArray[np.bool_],
    t_end: NDArray[np.float64],
    away: NDArray[np.float64],
    driving_more: NDArray[np.bool_],
    min_baseline_h: int,
    hold_s: float,
    away_km: float,
    cusum_k: float,
    cusum_h: float,
    hour_s: float,
    cusum: float,
    cusum_since: float,
    mileage_flag_t: float,
    slow_k: float = 0.0,
    slow_h: float = 0.0,
    slow: float = 0.0,
    slow_since: float = ...,
) -> dict[str, Any]: ...
def monitor_score_block(
    columns: Mapping[str, NDArray[Any]],
    params: Mapping[str, float],
) -> dict[str, NDArray[Any]]: ...
def monitor_relocation(
    away: NDArray[np.float64],
    hours: int,
    away_km: float,
    context_h: int,
    away_hours: int,
    emergency_h: int,
    streak: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]: ...
def monitor_baseline(
    hour: NDArray[np.int64],
    n: NDArray[np.int64],
    n_odo: NDArray[np.int64],
    values: NDArray[np.float64],
    cell_hour: NDArray[np.int64],
    cell: NDArray[np.int64],
    lo: int,
    hi: int,
    home_days: int,
) -> tuple[
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.int64],
    NDArray[np.int64],
    NDArray[np.int64],
]: ...
