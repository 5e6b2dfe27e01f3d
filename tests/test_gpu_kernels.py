"""The GPU backend without a GPU.

- Each .cu file compiles to PTX for compute_90 with NVRTC from pip (CuPy's
  binding, no driver needed).
- The kernels' logic runs on the host: the .cu files built with the host
  compiler through tests/gpu_host/cuda_shim.hpp and called with ctypes, checked
  against the C++ core (hashes, roots and fixed-point entropy bit for bit; the
  filter within the documented tolerance).
- The fixed-point entropy (kernels/entropy_fixed.hpp, the CPU path now) against
  exact arithmetic (decimal), hand-computed cases and the double measure.
- The backend switch: defaults, errors, and that importing autolien needs no CuPy.
"""

from __future__ import annotations

import ctypes
import itertools
import math
import shutil
import subprocess
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from autolien import _core, gpu
from autolien.entropy import by_vehicle, rolling_perm_entropy, rolling_shannon_entropy
from autolien.gnss import FusionConfig, fuse
from autolien.gpu.entropy import _segments, launch_shape
from autolien.gpu.fusion import config_vector
from autolien.gpu.ledger import level_plan
from autolien.ledger import MerkleLog, keccak256, leaf_hash, sha256
from conftest import load_json
from gpu_cases import assert_track_close, ledger_records, rtklib_py_fixes, synthetic_fleet

HERE = Path(__file__).parent
REPO = HERE.parent
UNIT = 2.0**-32


# ---------------------------------------------------------------- NVRTC


@pytest.mark.parametrize("name", gpu.KERNELS)
def test_kernel_compiles_to_ptx_for_sm90(name: str) -> None:
    pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy (test extra) not installed")
    try:
        ptx = gpu.compile_ptx(name, arch="compute_90")
    except OSError as err:  # pragma: no cover - the nvrtc wheel missing
        pytest.skip(f"NVRTC library not loadable: {err}")
    assert ".target sm_90" in ptx
    entries = {"hash": ["leaf_hashes_i32", "leaf_hashes_i64", "node_hashes"],
               "entropy": ["fixed_table", "rolling_fixed"], "fusion": ["fuse_groups"]}  # fmt: skip
    for entry in entries[name]:
        assert f".entry {entry}(" in ptx


def test_nvrtc_reports_a_broken_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cupy_backends.cuda.libs.nvrtc", reason="CuPy (test extra) not installed")
    broken = tmp_path / "hash.cu"
    broken.write_text('extern "C" __global__ void k() { undefined_thing(); }\n')
    monkeypatch.setattr(gpu, "kernel_path", lambda _name: broken)
    with pytest.raises(RuntimeError, match="undefined_thing"):
        gpu.compile_ptx("hash")


def test_shared_headers_are_std_free() -> None:
    # The FPGA flow compiles these too: no standard library, no exceptions,
    # no dynamic memory.
    for header in (REPO / "cpp" / "include" / "autolien" / "kernels").glob("*.hpp"):
        text = header.read_text()
        for banned in ("std::", "#include <", "throw", "new ", "malloc", "try {"):
            assert banned not in text, f"{header.name} uses {banned!r}"


# ------------------------------------------------------- host emulation


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no host C++ compiler to build the kernels for the host")
    out = tmp_path_factory.mktemp("gpu_host") / "kernels_host.so"
    subprocess.run(
        [cxx, "-std=c++20", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
         "-Wno-unknown-pragmas", f"-I{REPO / 'cpp' / 'include'}",
         f"-I{REPO / 'python' / 'autolien' / 'gpu'}", str(HERE / "gpu_host" / "kernels_host.cpp"),
         "-o", str(out)],
        check=True,
    )  # fmt: skip
    return ctypes.CDLL(str(out))


def ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


def host_leaves(
    lib: ctypes.CDLL, data: np.ndarray, offsets: np.ndarray, keccak: bool
) -> np.ndarray:
    n = offsets.size - 1
    out = np.zeros((n, 32), np.uint8)
    data = data if data.size else np.zeros(1, np.uint8)
    fn = lib.host_leaf_hashes_i64 if offsets.dtype == np.int64 else lib.host_leaf_hashes_i32
    fn(ptr(data), ptr(offsets), ctypes.c_uint64(n), ctypes.c_int(int(keccak)), ptr(out))
    return out


def host_root(lib: ctypes.CDLL, leaves: np.ndarray, hash: str) -> bytes:
    # merkle_root's reduction (autolien.gpu.ledger) with the host-built kernel.
    keccak = hash == "keccak256"
    level = np.ascontiguousarray(leaves)
    frontier: list[bytes] = []
    while level.shape[0] > 1:
        if level.shape[0] % 2:
            frontier.append(level[-1].tobytes())
        m = level.shape[0] // 2
        parent = np.zeros((m, 32), np.uint8)
        lib.host_node_hashes(ptr(level), ctypes.c_uint64(m), ctypes.c_int(int(keccak)), ptr(parent))
        level = parent
    acc: bytes | None = None
    for node in frontier:
        acc = node if acc is None else _core.rfc6962_node_hash(node, acc, hash)
    top = level[0].tobytes()
    return top if acc is None else _core.rfc6962_node_hash(top, acc, hash)


@pytest.mark.parametrize("hash", ["sha256", "keccak256"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 1000, 1027])
def test_host_hash_kernel_matches_core(host_kernels: ctypes.CDLL, hash: str, n: int) -> None:
    records = ledger_records(n, seed=n)
    _, off_buf, data_buf = records.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[: n + 1].copy()
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    for off in (offsets, offsets.astype(np.int64)):
        leaves = host_leaves(host_kernels, data, off, hash == "keccak256")
        expect = [leaf_hash(r.as_py(), hash=hash) for r in records]  # type: ignore[arg-type]
        assert [bytes(row) for row in leaves] == expect
    log = MerkleLog(hash)
    log.extend(records)
    assert host_root(host_kernels, leaves, hash) == log.root()


def test_host_hash_kernel_public_vectors(host_kernels: ctypes.CDLL) -> None:
    # FIPS 180-4 / Keccak team vectors, through the kernel's own padding: a
    # leaf hash is H(0x00 || data), so hash the vector's message minus a
    # leading zero byte we prepend. SHA-256("") and Keccak-256("") via nodes
    # are checked by the core tests; here the message b"\x00abc".
    data = np.frombuffer(b"abc", np.uint8)
    off = np.array([0, 3], np.int64)
    assert bytes(host_leaves(host_kernels, data, off, False)[0]) == sha256(b"\x00abc")
    assert bytes(host_leaves(host_kernels, data, off, True)[0]) == keccak256(b"\x00abc")
    import hashlib

    assert (
        bytes(host_leaves(host_kernels, data, off, False)[0]) == hashlib.sha256(b"\x00abc").digest()
    )


def host_levels(lib: ctypes.CDLL, leaves: np.ndarray, old_size: int, hash: str) -> list[np.ndarray]:
    # gpu.ledger.tree_levels with the host-built node kernel.
    out = []
    level = np.ascontiguousarray(leaves)
    for skip, count in level_plan(old_size, old_size + leaves.shape[0]):
        child = np.ascontiguousarray(level[skip : skip + 2 * count])
        parent = np.zeros((count, 32), np.uint8)
        lib.host_node_hashes(ptr(child), ctypes.c_uint64(count),
                             ctypes.c_int(int(hash == "keccak256")), ptr(parent))  # fmt: skip
        out.append(parent)
        level = parent
    return out


def test_level_plan_by_hand() -> None:
    # Leaves 3..7 onto 3 old ones. Level 1: nodes ceil(3/2) = 2 .. 8 >> 1 = 4,
    # paired from the new leaves at offset 2*2 - 3 = 1 (node 1 = old leaf 2 +
    # new leaf 3 is the core's). Level 2: node 1 only, from level 1 at 0.
    assert level_plan(3, 8) == [(1, 2), (0, 1)]
    assert level_plan(0, 8) == [(0, 4), (0, 2), (0, 1)]
    assert level_plan(7, 8) == []  # every new node also covers old leaves
    assert level_plan(0, 1) == []
    with pytest.raises(ValueError, match="old_size <= new_size"):
        level_plan(5, 4)


@pytest.mark.parametrize("hash", ["sha256", "keccak256"])
def test_host_levels_into_core_log_equal_cpu_log(host_kernels: ctypes.CDLL, hash: str) -> None:
    # Leaves and node levels built by the kernels, stored by extend_with_levels
    # without rehashing: every root, leaf and proof equals the CPU log's.
    rng = np.random.default_rng(5)
    records = ledger_records(1500, seed=9)
    cpu = MerkleLog(hash)  # type: ignore[arg-type]
    cpu.extend(records)
    core = _core.MerkleLog(hash)
    _, off_buf, data_buf = records.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[: len(records) + 1].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8)
    cuts = [0, 1, 2, 3, 7, 8, 13, 64, 65, 300, 1023, 1024, 1025, 1500]
    for a, b in itertools.pairwise(cuts):
        off = offsets[a : b + 1] - offsets[a]
        leaves = host_leaves(host_kernels, data[offsets[a] : offsets[b]].copy(), off,
                             hash == "keccak256")  # fmt: skip
        levels = host_levels(host_kernels, leaves, a, hash)
        assert core.extend_with_levels(leaves.tobytes(), [lv.tobytes() for lv in levels]) == (a, b)
        assert core.root() == cpu.root(b)
    for size in [1, 2, 3, 8, 9, 1000, 1024, 1025, 1500]:
        assert core.root(size) == cpu.root(size)
    for index in rng.integers(0, 1500, 40):
        size = int(rng.integers(index + 1, 1501))
        assert core.inclusion_proof(int(index), size) == cpu.inclusion_proof(int(index), size)
    for size1 in (1, 7, 512, 1000):
        assert core.consistency_proof(size1, 1500) == cpu.consistency_proof(size1, 1500)


def test_host_levels_reproduce_rfc6962_reference_tree(host_kernels: ctypes.CDLL) -> None:
    # transparency-dev/merkle's reference tree (tests/data/merkle), appended in
    # uneven pieces through the kernel-built levels.
    ref = load_json("merkle/rfc6962_sha256_reference_tree.json")
    inputs = [bytes.fromhex(h) for h in ref["leaf_inputs_hex"]]
    core = _core.MerkleLog("sha256")
    for a, b in [(0, 3), (3, 4), (4, 7), (7, 8)]:
        part = inputs[a:b]
        data = np.frombuffer(b"".join(part), np.uint8)
        off = np.concatenate([[0], np.cumsum([len(p) for p in part])]).astype(np.int64)
        leaves = host_leaves(host_kernels, data, off, False)
        levels = host_levels(host_kernels, leaves, a, "sha256")
        core.extend_with_levels(leaves.tobytes(), [lv.tobytes() for lv in levels])
    for size, want in ref["root_by_tree_size_hex"].items():
        assert core.root(int(size)).hex() == want, size
    for v in ref["inclusion_proofs"]:
        proof = [bytes.fromhex(p) for p in v["proof"]]
        assert core.inclusion_proof(v["leaf_index"], v["tree_size"]) == proof


def test_extend_with_levels_rejects_wrong_levels() -> None:
    core = _core.MerkleLog("sha256")
    core.extend_leaf_hashes(bytes(32 * 3))
    leaves = bytes(32 * 5)  # leaves 3..7: level 1 needs 2 nodes, level 2 one
    with pytest.raises(ValueError, match="level 1 must hold 2 nodes"):
        core.extend_with_levels(leaves, [bytes(32)])
    with pytest.raises(ValueError, match="level 3 must hold 0 nodes"):
        core.extend_with_levels(leaves, [bytes(64), bytes(32), bytes(32)])
    with pytest.raises(ValueError, match="32-byte"):
        core.extend_with_levels(bytes(33), [])
    with pytest.raises(ValueError, match=r"levels\[0\] must be a concatenation"):
        core.extend_with_levels(leaves, [bytes(40)])
    assert core.size == 3  # nothing appended by a rejected call
    assert core.extend_with_levels(leaves, [bytes(64), bytes(32)]) == (3, 8)


def host_table(lib: ctypes.CDLL, max_count: int) -> np.ndarray:
    table = np.zeros(max_count + 1, np.uint64)
    lib.host_fixed_table(ptr(table), ctypes.c_uint32(max_count))
    return table


def host_rolling(
    lib: ctypes.CDLL,
    x: np.ndarray,
    t: np.ndarray | None,
    offsets: np.ndarray,
    count: int,
    span: float,
    *,
    order: int = 3,
    delay: int = 1,
    edges: np.ndarray | None = None,
    window_hint: int = 1024,
    shared: bool = True,
) -> np.ndarray:
    lengths = np.diff(offsets)
    bound = int(min(lengths.max(), count) if t is None else lengths.max())
    table = host_table(lib, bound + 1)
    slots = edges.size - 1 if edges is not None else math.factorial(order)
    group, begin, end = _segments(lengths, window_hint, slots)
    warps, fits = launch_shape(slots)
    shared = shared and fits
    counts = np.zeros(1 if shared else group.size * slots, np.uint32)
    out = np.zeros(x.size, np.uint64)
    e = edges if edges is not None else np.zeros(1)
    lib.host_rolling_fixed(
        ptr(x), ptr(t) if t is not None else ctypes.c_void_p(0), ptr(offsets), ptr(group),
        ptr(begin), ptr(end), ctypes.c_longlong(group.size), ctypes.c_longlong(count),
        ctypes.c_double(span), ctypes.c_int(int(edges is not None)), ctypes.c_int(order),
        ctypes.c_int(delay), ptr(e), ctypes.c_int(e.size), ptr(table), ptr(counts),
        ctypes.c_int(slots), ctypes.c_int(int(shared)), ctypes.c_int(warps), ptr(out),
    )  # fmt: skip
    v = out.astype(np.float64) * UNIT
    v[out == np.uint64(0xFFFFFFFFFFFFFFFF)] = np.nan
    return v


def test_host_table_kernel_equals_core_table(host_kernels: ctypes.CDLL) -> None:
    assert np.array_equal(host_table(host_kernels, 70000), _core.entropy_fixed_table(70000))


def fleet_series(groups: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 700, groups)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.round(rng.normal(size=int(offsets[-1])), 1)  # ties on purpose
    x[rng.random(x.size) < 0.01] = np.nan
    t = np.concatenate([np.cumsum(rng.uniform(0.1, 3.0, k)) for k in lengths])
    return x, t, offsets


# Histograms in global scratch or in shared memory.
@pytest.mark.parametrize(("window_hint", "shared"), [(1, False), (1024, True)])
def test_host_entropy_kernel_bit_identical_to_core(
    host_kernels: ctypes.CDLL, window_hint: int, shared: bool
) -> None:
    x, t, offsets = fleet_series(40, seed=window_hint)
    edges = np.linspace(-3, 3, 17)
    for order, delay in [(3, 1), (4, 2), (7, 1)]:
        for count in (1, 50, 5000):
            want = _core.entropy_rolling(x, np.zeros(0), offsets, count, 0.0, order, delay, False,
                                         np.zeros(0), True)  # fmt: skip
            got = host_rolling(host_kernels, x, None, offsets, count, 0.0, order=order, delay=delay,
                               window_hint=window_hint, shared=shared)  # fmt: skip
            np.testing.assert_array_equal(got, want)
        want = _core.entropy_rolling(x, t, offsets, 0, 30.0, order, delay, False, np.zeros(0), True)
        got = host_rolling(host_kernels, x, t, offsets, 0, 30.0, order=order, delay=delay,
                           window_hint=window_hint, shared=shared)  # fmt: skip
        np.testing.assert_array_equal(got, want)
    want = _core.entropy_rolling(x, t, offsets, 0, 12.5, 3, 1, False, edges, True)
    got = host_rolling(host_kernels, x, t, offsets, 0, 12.5, edges=edges, window_hint=window_hint,
                       shared=shared)  # fmt: skip
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shared", [False, True])
def test_host_entropy_kernel_segments_and_time_gaps(
    host_kernels: ctypes.CDLL, shared: bool
) -> None:
    # Series cut into 1024-sample segments (each warp primes its own first
    # window), and time gaps longer than the window: the window empties and
    # restarts past items never added, as the CPU loop's reset.
    rng = np.random.default_rng(21)
    lengths = np.array([2500, 0, 3100, 40])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    x = np.round(rng.normal(size=int(offsets[-1])), 1)
    x[rng.random(x.size) < 0.02] = np.nan
    steps = rng.uniform(0.1, 2.0, x.size)
    steps[rng.random(x.size) < 0.01] = 200.0
    t = np.concatenate([np.cumsum(steps[a:b]) for a, b in itertools.pairwise(offsets)])
    assert _segments(np.diff(offsets), 1, 6)[0].size > 5
    edges = np.linspace(-2, 2, 9)
    for order in (3, 5):
        want = _core.entropy_rolling(x, t, offsets, 0, 60.0, order, 2, False, np.zeros(0), True)
        got = host_rolling(host_kernels, x, t, offsets, 0, 60.0, order=order, delay=2,
                           window_hint=1, shared=shared)  # fmt: skip
        np.testing.assert_array_equal(got, want)
        want = _core.entropy_rolling(x, np.zeros(0), offsets, 300, 0.0, order, 1, False,
                                     np.zeros(0), True)  # fmt: skip
        got = host_rolling(host_kernels, x, None, offsets, 300, 0.0, order=order, window_hint=1,
                           shared=shared)  # fmt: skip
        np.testing.assert_array_equal(got, want)
    want = _core.entropy_rolling(x, t, offsets, 0, 45.0, 3, 1, False, edges, True)
    got = host_rolling(
        host_kernels, x, t, offsets, 0, 45.0, edges=edges, window_hint=1, shared=shared
    )
    np.testing.assert_array_equal(got, want)


def host_track(lib: ctypes.CDLL, fixes: pa.Table) -> dict[str, np.ndarray]:
    # gpu.fusion.fuse_tracks's preparation, the kernel on the host.
    from autolien._tables import group_by_vehicle
    from autolien.gnss.fusion import float_column

    fixes, _, groups, t = group_by_vehicle(fixes, "vehicle_id")
    height = "height_m" if "height_m" in fixes.column_names else "altitude_m"
    cols = [float_column(fixes, k, np.float64, True) for k in ("lat", "lon", height)]
    q = float_column(fixes, "quality", np.float64, True, default=0.0).astype(np.int32)
    sig = [
        float_column(fixes, k, np.float64, False) for k in ("sigma_n_m", "sigma_e_m", "sigma_u_m")
    ]
    speed = float_column(fixes, "speed_kmh", np.float64, False) / 3.6
    n = t.size
    outs = [np.full(n, np.nan) for _ in range(11)]
    status = np.ones(n, np.uint8)
    segment = np.zeros(n, np.uint32)
    out_ptrs = (ctypes.c_void_p * 11)(*[o.ctypes.data for o in outs])
    cfg = config_vector(FusionConfig())
    t = np.ascontiguousarray(t, np.float64)
    lib.host_fuse_groups(
        ptr(groups), ctypes.c_longlong(groups.size - 1), ptr(t), *[ptr(c) for c in cols], ptr(q),
        *[ptr(s) for s in sig], ptr(speed), ptr(cfg), out_ptrs, ptr(status), ptr(segment),
    )  # fmt: skip
    names = ["lat", "lon", "height_m", "ve_mps", "vn_mps", "vu_mps", "var_e", "var_n", "var_u", "nis",
             "inflation"]  # fmt: skip
    res = dict(zip(names, outs, strict=True))
    res["status"] = status
    res["segment"] = segment
    return res


def test_host_fusion_kernel_matches_fuse_on_rtklib_py(host_kernels: ctypes.CDLL) -> None:
    fixes = rtklib_py_fixes()
    assert_track_close(host_track(host_kernels, fixes), fuse(fixes).track)


def test_host_fusion_kernel_matches_fuse_on_synthetic_fleet(host_kernels: ctypes.CDLL) -> None:
    fixes = synthetic_fleet(30, 400, seed=3)
    track = fuse(fixes).track
    reasons = set(track.column("reason").to_pylist())
    # The fleet exercises every path of the step.
    assert {"used", "invalid", "gated", "reinit_gap", "first"} <= reasons
    assert_track_close(host_track(host_kernels, fixes), track)


def test_host_fusion_kernel_blanks_rows_before_the_first_valid_fix(
    host_kernels: ctypes.CDLL,
) -> None:
    # Vehicles whose first fixes are invalid (quality 0): fuse leaves those
    # rows without a state (NaN, status invalid), and so must the kernel.
    fixes = synthetic_fleet(6, 200, seed=8)
    quality = fixes.column("quality").to_numpy().copy()
    vid = np.asarray(fixes.column("vehicle_id").to_pylist())
    when = fixes.column("time").to_numpy()
    for v, k in (("V000001", 3), ("V000004", 1)):
        rows = np.nonzero(vid == v)[0]
        assert rows.size, v
        quality[rows[np.argsort(when[rows], kind="stable")][:k]] = 0
    col = fixes.schema.get_field_index("quality")
    fixes = fixes.set_column(col, "quality", pa.array(quality, fixes.schema.field("quality").type))
    track = fuse(fixes).track
    lat = track.column("lat").to_numpy(zero_copy_only=False).astype(np.float64)
    assert np.isnan(lat).sum() >= 4
    assert_track_close(host_track(host_kernels, fixes), track)


# ------------------------------------------------- fixed-point entropy


def test_fixed_table_against_exact_arithmetic() -> None:
    getcontext().prec = 60
    ln2 = Decimal(2).ln()
    table = _core.entropy_fixed_table(5000)
    for c in range(5001):
        exact = Decimal(0) if c < 2 else Decimal(c) * Decimal(c).ln() / ln2 * Decimal(2**32)
        assert abs(Decimal(int(table[c])) - exact) <= Decimal("0.5000001"), c
    # Exact powers of two: log2 is an integer, so is T.
    assert int(table[4096]) == 4096 * 12 * 2**32
    wide = _core.entropy_fixed_table(70000)
    assert np.array_equal(wide[:5001], table)
    for c in (65535, 65536, 69999, 70000):
        exact = Decimal(c) * Decimal(c).ln() / ln2 * Decimal(2**32)
        assert abs(Decimal(int(wide[c])) - exact) <= Decimal("0.5000001"), c
    with pytest.raises(ValueError, match="up to 16777216"):
        _core.entropy_fixed_table(2**24 + 1)


def test_fixed_point_hand_computed() -> None:
    # Four bins, two values each: exactly 2 bits; a constant series: 0 bits.
    x = np.array([0, 0, 1, 1, 2, 2, 3, 3], float)
    out = rolling_shannon_entropy(x, 8, bins=4, fixed_point=True)
    assert out[-1] == 2.0
    assert np.isnan(out[:-1]).all()
    assert rolling_perm_entropy(np.arange(50.0), 10, fixed_point=True)[-1] == 0.0
    # Counts {3, 1}: H = 2 - (3/4) log2 3 = 0.8112781244591328...
    x = np.array([0, 0, 0, 1], float)
    h = rolling_shannon_entropy(x, 4, bins=2, fixed_point=True)[-1]
    exact = 2 - 0.75 * math.log2(3)
    assert abs(h - exact) < 2.0**-31
    assert h * 2**32 == math.floor(h * 2**32)  # a whole number of units


def exact_entropy(counts: list[int]) -> float:
    getcontext().prec = 40
    n = sum(counts)
    ln2 = Decimal(2).ln()
    h = sum((-(Decimal(c) / n) * (Decimal(c) / n).ln() / ln2 for c in counts if c), Decimal(0))
    return float(h)


def test_fixed_point_error_bound() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=3000)
    edges = np.linspace(x.min(), x.max(), 17)
    fixed = rolling_shannon_entropy(x, 400, bins=edges, fixed_point=True)
    double = rolling_shannon_entropy(x, 400, bins=edges)
    assert np.nanmax(np.abs(fixed - double)) <= 2.0**-30
    for end in (399, 1234, 2999):
        counts, _ = np.histogram(x[end - 399 : end + 1], edges)
        assert abs(fixed[end] - exact_entropy(counts.tolist())) < 2.0**-31
    for order, delay, window in [(3, 1, 100), (5, 2, 1000), (7, 1, 2999)]:
        f = rolling_perm_entropy(x, window, order, delay, fixed_point=True)
        d = rolling_perm_entropy(x, window, order, delay)
        assert np.nanmax(np.abs(f - d)) <= 2.0**-30
        fn = rolling_perm_entropy(x, window, order, delay, True, fixed_point=True)
        dn = rolling_perm_entropy(x, window, order, delay, True)
        assert np.nanmax(np.abs(fn - dn)) <= 2.0**-30
    # (t - 60 s, t] at 2 Hz holds 120 samples: the count window of 120 once full.
    with_times = rolling_perm_entropy(x, 60.0, times=np.arange(x.size) * 0.5, fixed_point=True)
    assert np.max(np.abs(with_times[119:] - rolling_perm_entropy(x, 120)[119:])) <= 2.0**-30


def test_by_vehicle_fixed_point() -> None:
    x, t, offsets = fleet_series(12, seed=11)
    vid = np.repeat([f"v{i:02d}" for i in range(12)], np.diff(offsets))
    table = pa.table({"vehicle_id": vid, "time": pa.array((t * 1e6).astype(np.int64), pa.timestamp("us")),
                      "speed": x})  # fmt: skip
    for measure in ("perm", "shannon"):
        for window in (None, 40, 20.0):
            a = by_vehicle(table, "speed", measure, window=window, fixed_point=True)
            b = by_vehicle(table, "speed", measure, window=window)
            va, vb = a.column("value").to_numpy(), b.column("value").to_numpy()
            assert np.array_equal(np.isnan(va), np.isnan(vb))
            assert np.nanmax(np.abs(va - vb)) <= 2.0**-30
    with pytest.raises(ValueError, match="perm and shannon"):
        by_vehicle(table, "speed", "sample", fixed_point=True)


# ------------------------------------------------------ backend switch


def test_backend_argument_checked_everywhere() -> None:
    x = np.random.default_rng(0).normal(size=200)
    with pytest.raises(ValueError, match="backend must be one of"):
        rolling_perm_entropy(x, 10, backend="tpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        MerkleLog().extend([b"a"], backend="fpga")
    with pytest.raises(ValueError, match="backend must be one of"):
        fuse(synthetic_fleet(1, 10), backend="cuda")
    with pytest.raises(ValueError, match="fixed_point=True"):
        rolling_perm_entropy(x, 10, backend="gpu")
    with pytest.raises(ValueError, match="smoother"):
        fuse(synthetic_fleet(1, 10), smooth=True, backend="gpu")


@pytest.mark.skipif(bool(gpu.available()), reason="a usable GPU is present")
def test_without_a_device_gpu_raises_and_auto_falls_back() -> None:
    status = gpu.available()
    assert not status
    assert status.reason
    x = np.random.default_rng(0).normal(size=500)
    with pytest.raises(gpu.GpuUnavailableError, match="needs a usable CUDA device"):
        rolling_perm_entropy(x, 10, fixed_point=True, backend="gpu")
    with pytest.raises(gpu.GpuUnavailableError):
        MerkleLog().extend([b"a"], backend="gpu")
    auto = rolling_perm_entropy(x, 10, fixed_point=True, backend="auto")
    np.testing.assert_array_equal(auto, rolling_perm_entropy(x, 10, fixed_point=True))
    log_a, log_b = MerkleLog(), MerkleLog()
    log_a.extend([b"a", b"bc"], backend="auto")
    log_b.extend([b"a", b"bc"])
    assert log_a.root() == log_b.root()
    fixes = synthetic_fleet(2, 50)
    assert fuse(fixes, backend="auto").track.equals(fuse(fixes).track)


def test_import_needs_no_cupy() -> None:
    code = (
        "import sys; sys.modules['cupy'] = None; sys.modules['cupy_backends'] = None\n"
        "import autolien, autolien.gpu, autolien.ledger, autolien.entropy, autolien.gnss\n"
        "s = autolien.gpu.available(); assert not s and 'CuPy is not installed' in s.reason, s\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
