"""The GPU backend on a device (skipped without one): hashes, roots and
fixed-point entropy bit-identical to the CPU core; the filter within
autolien.gpu.fusion.TOLERANCE on the real rtklib_py log and a synthetic fleet.
bench/gpu_check.sh runs these on the H200 machine."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from autolien import _core, gpu
from autolien.entropy import by_vehicle, rolling_perm_entropy, rolling_shannon_entropy
from autolien.gnss import fuse
from autolien.ledger import MerkleLog, leaf_hash
from gpu_cases import (
    assert_track_close,
    ledger_records,
    rtklib_py_fixes,
    synthetic_fleet,
    track_arrays,
)

STATUS = gpu.available()
pytestmark = pytest.mark.skipif(not STATUS, reason=f"no usable GPU: {STATUS.reason}")


def test_available_names_the_device() -> None:
    assert STATUS
    assert "compute" in STATUS.reason


def arrow_parts(records: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    _, off, data = records.buffers()
    n = len(records)
    return np.frombuffer(data, np.uint8), np.frombuffer(off, np.int32)[: n + 1]


@pytest.mark.parametrize("hash", ["sha256", "keccak256"])
def test_leaf_hashes_bit_identical(hash: str) -> None:
    import cupy as cp

    from autolien.gpu.ledger import leaf_hashes, merkle_root

    records = ledger_records(5000, seed=1)
    data, off = arrow_parts(records)
    want = b"".join(leaf_hash(r.as_py(), hash=hash) for r in records)  # type: ignore[arg-type]
    for offsets in (off, off.astype(np.int64), cp.asarray(off)):
        got = leaf_hashes(data, offsets, hash=hash)
        assert isinstance(got, cp.ndarray)
        assert got.get().tobytes() == want
    leaves = leaf_hashes(data, off, hash=hash)
    for n in (1, 2, 3, 5, 8, 1000, 4097, 5000):
        log = MerkleLog(hash)
        log.extend(records.slice(0, n))
        assert merkle_root(leaves[:n], hash=hash) == log.root()
    assert merkle_root(leaves[:0], hash=hash) == MerkleLog(hash).root()


@pytest.mark.parametrize("hash", ["sha256", "keccak256"])
def test_extend_gpu_equals_cpu(hash: str) -> None:
    cpu, dev = MerkleLog(hash), MerkleLog(hash)
    for seed, n in enumerate((3, 1000, 77)):  # unaligned old sizes on purpose
        records = ledger_records(n, seed=seed)
        assert cpu.extend(records) == dev.extend(records, backend="gpu")
        assert cpu.root() == dev.root()
    rows = np.random.default_rng(0).integers(0, 256, (100, 40), dtype=np.uint8)
    assert cpu.extend(rows) == dev.extend(rows, backend="gpu")
    items = [b"", b"a", b"x" * 200]
    assert cpu.extend(items) == dev.extend(items, backend="auto")
    assert cpu.root() == dev.root()
    assert cpu.inclusion_proof(5) == dev.inclusion_proof(5)


@pytest.mark.parametrize("hash", ["sha256", "keccak256"])
def test_staged_chunks_and_device_levels_equal_cpu(hash: str) -> None:
    # Tiny staging chunks: many chunks over both pinned buffers and streams,
    # a record longer than a chunk, sliced Arrow input with a non-zero offset.
    from autolien.gpu.ledger import staged_leaf_hashes, tree_levels

    records = ledger_records(5000, seed=4).slice(17, 4000)
    _, off_buf, data_buf = records.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[17 : 17 + 4001].astype(np.int64)
    data = np.frombuffer(data_buf, np.uint8)
    leaves = staged_leaf_hashes(data, offsets, hash=hash, chunk_bytes=1000)
    want = [leaf_hash(r.as_py(), hash=hash) for r in records]  # type: ignore[arg-type]
    assert [bytes(row) for row in leaves.get()] == want
    cpu = MerkleLog(hash)  # type: ignore[arg-type]
    cpu.extend(records)
    for old in (0, 1, 5, 1024, 3999):
        core = _core.MerkleLog(hash)
        core.extend_leaf_hashes(b"".join(want[:old]))
        import cupy as cp

        new = cp.asarray(leaves[old:])
        levels = tree_levels(new, old, hash=hash)
        core.extend_with_levels(new.get().tobytes(), [lv.get().tobytes() for lv in levels])
        assert core.root() == cpu.root()
        assert core.inclusion_proof(old // 2, 4000) == cpu.inclusion_proof(old // 2)


def test_rolling_entropy_bit_identical() -> None:
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=20000), 1)
    x[rng.random(x.size) < 0.01] = np.nan
    t = np.cumsum(rng.uniform(0.1, 2.0, x.size))
    for order, delay in [(3, 1), (5, 3), (7, 1)]:
        for window in (1, 64, 3000):
            cpu = rolling_perm_entropy(x, window, order, delay, fixed_point=True)
            dev = rolling_perm_entropy(x, window, order, delay, fixed_point=True, backend="gpu")
            np.testing.assert_array_equal(dev, cpu)
        cpu = rolling_perm_entropy(x, 90.0, order, delay, True, times=t, fixed_point=True)
        dev = rolling_perm_entropy(
            x, 90.0, order, delay, True, times=t, fixed_point=True, backend="gpu"
        )
        np.testing.assert_array_equal(dev, cpu)
    for bins in (4, 16, 100, 20000):  # 20000 bins: histograms in global scratch
        cpu = rolling_shannon_entropy(x, 500, bins, fixed_point=True)
        np.testing.assert_array_equal(
            rolling_shannon_entropy(x, 500, bins, fixed_point=True, backend="gpu"), cpu
        )
        cpu = rolling_shannon_entropy(x, 30.0, bins, times=t, fixed_point=True)
        np.testing.assert_array_equal(
            rolling_shannon_entropy(x, 30.0, bins, times=t, fixed_point=True, backend="auto"), cpu
        )


def test_rolling_entropy_on_device_arrays() -> None:
    import cupy as cp

    from autolien.gpu.entropy import rolling_fixed

    x = np.random.default_rng(3).normal(size=5000)
    offsets = np.array([0, 1000, 1000, 5000], np.int64)
    got = rolling_fixed(cp.asarray(x), None, offsets, 100, 0.0, order=4)
    assert isinstance(got, cp.ndarray)
    want = _core.entropy_rolling(x, np.zeros(0), offsets, 100, 0.0, 4, 1, False, np.zeros(0), True)
    np.testing.assert_array_equal(got.get(), want)


def test_by_vehicle_gpu_bit_identical() -> None:
    rng = np.random.default_rng(4)
    lengths = rng.integers(0, 3000, 300)
    vid = np.repeat([f"v{i:03d}" for i in range(lengths.size)], lengths)
    t = np.concatenate([np.cumsum(rng.uniform(0.5, 2.0, k)) for k in lengths])
    table = pa.table(
        {
            "vehicle_id": vid,
            "time": pa.array((t * 1e6).astype(np.int64), pa.timestamp("us")),
            "rpm": np.round(rng.normal(2000, 300, t.size), -1),
        }
    )
    for measure in ("perm", "shannon"):
        for window in (None, 200, 120.0):
            cpu = by_vehicle(table, "rpm", measure, window=window, fixed_point=True)
            dev = by_vehicle(table, "rpm", measure, window=window, fixed_point=True, backend="gpu")
            assert dev.drop_columns(["value"]).equals(cpu.drop_columns(["value"]))
            np.testing.assert_array_equal(
                dev.column("value").to_numpy(), cpu.column("value").to_numpy()
            )


def test_fuse_gpu_within_tolerance_on_rtklib_py() -> None:
    fixes = rtklib_py_fixes()
    cpu = fuse(fixes)
    dev = fuse(fixes, backend="gpu")
    assert_track_close(track_arrays(dev.track), cpu.track)
    assert dev.parked.equals(cpu.parked)


def test_fuse_gpu_within_tolerance_on_synthetic_fleet() -> None:
    from autolien.gpu.fusion import fuse_tracks

    fixes = synthetic_fleet(500, 300, seed=5)
    cpu = fuse(fixes).track
    assert_track_close(track_arrays(fuse_tracks(fixes)), cpu)
