"""Fleet-scale figures of the GPU backend against the C++ core on the same
machine, as one script (bench/gpu_check.sh runs it on the H200 machine):

* hashing: 1e7 variable-length records, SHA-256 (and Keccak-256 at 2e6):
  leaf kernel on device-resident data, the device Merkle root, and
  ``MerkleLog.extend(backend="gpu")`` from host Arrow (pinned staging, node
  levels on the device; also timed step by step), against the CPU
  ``MerkleLog.extend`` (SHA-NI when the CPU has it) on all cores;
* entropy: 1e5 vehicles x 1e4 samples, rolling permutation entropy (orders 3
  and 7, 1000-sample windows) and Shannon entropy (16 bins), fixed point;
* fusion: 1e5 vehicles x 1e3 fixes, the forward filter (``_core.fuse_groups``,
  which also finds parked episodes, against ``autolien.gpu.fusion``).

Every GPU result is checked against the CPU one in the same run (bit
identity, or the filter tolerance). ``--dry-run`` runs the CPU side at a
small scale without a device. Writes a JSON of figures (``--out``).

Also collected by pytest (``make test`` runs bench/ quickly): the one test
runs a tiny fleet when a GPU is usable and skips otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

HERE = Path(__file__).resolve().parent


def now() -> float:
    return time.perf_counter()


def sync() -> None:
    import cupy as cp

    cp.cuda.Device().synchronize()


def timed(fn: Any, *args: Any, gpu: bool = False, **kw: Any) -> tuple[float, Any]:
    if gpu:
        sync()
    t0 = now()
    out = fn(*args, **kw)
    if gpu:
        sync()
    return now() - t0, out


def machine() -> dict[str, Any]:
    from autolien import _core, get_num_threads

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "cpu_threads": get_num_threads(),
        "os_cpus": os.cpu_count(),
        "sha256_backend": _core.sha256_backend(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    from autolien import gpu

    status = gpu.available()
    info["gpu"] = status.reason
    if status:
        import cupy as cp

        info["cupy"] = cp.__version__
        info["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
        info["cuda_driver"] = cp.cuda.runtime.driverGetVersion()
        props = cp.cuda.runtime.getDeviceProperties(0)
        info["gpu_sms"] = props["multiProcessorCount"]
        info["gpu_memory_gib"] = round(props["totalGlobalMem"] / 2**30, 1)
    return info


def records(n: int, seed: int, on_gpu: bool) -> pa.Array:
    """n records of 32..255 bytes (mean ~144) as an Arrow binary array."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(32, 256, n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    size = int(offsets[-1])
    if on_gpu:
        import cupy as cp

        data = cp.random.RandomState(seed).randint(0, 256, size, dtype=cp.uint8).get()
    else:
        data = rng.integers(0, 256, size, dtype=np.uint8)
    return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def bench_hash(n: int, hash: str, on_gpu: bool) -> dict[str, Any]:
    from autolien.ledger import MerkleLog

    arr = records(n, seed=1, on_gpu=on_gpu)
    nbytes = arr.buffers()[2].size
    res: dict[str, Any] = {"records": n, "bytes": nbytes, "hash": hash}
    cpu_log = MerkleLog(hash)
    t_cpu, _ = timed(cpu_log.extend, arr)
    res["cpu_extend_s"] = t_cpu
    res["cpu_records_per_s"] = n / t_cpu
    res["cpu_GB_per_s"] = nbytes / t_cpu / 1e9
    if not on_gpu:
        return res
    import cupy as cp

    from autolien.gpu.ledger import leaf_hashes, merkle_root

    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, np.int32)[: n + 1]
    data = np.frombuffer(data_buf, np.uint8)
    t_h2d, (d_data, d_off) = timed(lambda: (cp.asarray(data), cp.asarray(offsets)), gpu=True)
    leaf_hashes(d_data[:1024], d_off[:2], hash=hash)  # compile and load the module
    runs = [timed(leaf_hashes, d_data, d_off, hash=hash, gpu=True) for _ in range(3)]
    t_leaf = min(t for t, _ in runs)
    leaves = runs[-1][1]
    t_root, root = timed(merkle_root, leaves, hash=hash, gpu=True)
    from autolien.gpu.ledger import _download, staged_leaf_hashes, tree_levels

    # The end-to-end pipeline step by step (each timed alone), then as one call.
    off64 = offsets.astype(np.int64)
    staged_leaf_hashes(data[:4096], off64[:2], hash=hash)  # pinned pool, streams
    t_staged, staged = timed(staged_leaf_hashes, data, off64, hash=hash, gpu=True)
    t_levels, levels = timed(tree_levels, staged, 0, hash=hash, gpu=True)
    t_down, host = timed(_download, [staged, *levels])
    split_log = MerkleLog(hash)
    t_store, _ = timed(split_log._log.extend_with_levels, host[0], host[1:])
    del staged, levels, host
    gpu_log = MerkleLog(hash)
    gpu_log.extend(arr.slice(0, 1000), backend="gpu")  # warm: pinned blocks of the pool
    gpu_log = MerkleLog(hash)
    t_e2e, _ = timed(gpu_log.extend, arr, backend="gpu", gpu=True)
    t_e2e2, _ = timed(MerkleLog(hash).extend, arr, backend="gpu", gpu=True)
    # The same on the CPU a second time: its spread between runs.
    t_cpu2, _ = timed(MerkleLog(hash).extend, arr)
    res.update(
        cpu_extend_again_s=t_cpu2,
        h2d_pageable_s=t_h2d,
        h2d_pageable_GB_per_s=nbytes / t_h2d / 1e9,
        gpu_leaf_kernel_s=t_leaf,
        gpu_leaf_GB_per_s=nbytes / t_leaf / 1e9,
        gpu_leaf_records_per_s=n / t_leaf,
        gpu_levels_s=t_root,
        gpu_device_root_s=t_leaf + t_root,
        e2e_staged_leaves_s=t_staged,
        e2e_staged_GB_per_s=nbytes / t_staged / 1e9,
        e2e_tree_levels_s=t_levels,
        e2e_download_pinned_s=t_down,
        e2e_core_store_s=t_store,
        gpu_extend_e2e_s=t_e2e,
        gpu_extend_e2e_again_s=t_e2e2,
        leaf_speedup_vs_cpu_extend=t_cpu / t_leaf,
        device_root_speedup_vs_cpu_extend=t_cpu / (t_leaf + t_root),
        e2e_speedup=t_cpu / t_e2e,
        e2e_speedup_best=min(t_cpu, t_cpu2) / min(t_e2e, t_e2e2),
        root_equal=bool(root == cpu_log.root() == gpu_log.root() == split_log.root()),
        leaves_equal_sample=bool(
            all(gpu_log.leaf_hash(i) == cpu_log.leaf_hash(i) for i in (0, n // 2, n - 1))
        ),
        proof_equal_sample=bool(
            all(
                gpu_log.inclusion_proof(i) == cpu_log.inclusion_proof(i) for i in (1, n // 3, n - 2)
            )
        ),
    )
    return res


def series(vehicles: int, samples: int, on_gpu: bool) -> np.ndarray:
    n = vehicles * samples
    if on_gpu:
        import cupy as cp

        return cp.round(cp.random.RandomState(2).standard_normal(n), 2).get()
    return np.round(np.random.default_rng(2).standard_normal(n), 2)


def bench_entropy(vehicles: int, samples: int, window: int, on_gpu: bool) -> dict[str, Any]:
    from autolien import _core

    x = series(vehicles, samples, on_gpu)
    offsets = np.arange(vehicles + 1, dtype=np.int64) * samples
    edges = np.linspace(-4.0, 4.0, 17)
    res: dict[str, Any] = {"vehicles": vehicles, "samples": samples, "window": window}
    empty = np.zeros(0)
    for name, e, order in (("perm", empty, 3), ("perm7", empty, 7), ("shannon", edges, 3)):
        t_cpu, cpu = timed(
            _core.entropy_rolling, x, empty, offsets, window, 0.0, order, 1, False, e, True
        )
        r: dict[str, Any] = {"cpu_s": t_cpu, "cpu_samples_per_s": x.size / t_cpu}
        if on_gpu:
            import cupy as cp

            from autolien.gpu.entropy import rolling_fixed

            kw = {"order": order, "edges": e if e.size else None}
            rolling_fixed(
                cp.asarray(x[: 4 * window]), None, np.array([0, 4 * window]), window, 0.0, **kw
            )
            xd = cp.asarray(x)
            t_k, dev = timed(rolling_fixed, xd, None, offsets, window, 0.0, gpu=True, **kw)
            t_e2e, host = timed(rolling_fixed, x, None, offsets, window, 0.0, gpu=True, **kw)
            same = bool(cp.array_equal(dev, cp.asarray(cpu), equal_nan=True))
            r.update(
                gpu_kernel_s=t_k,
                gpu_samples_per_s=x.size / t_k,
                gpu_e2e_s=t_e2e,
                kernel_speedup=t_cpu / t_k,
                e2e_speedup=t_cpu / t_e2e,
                bit_identical=same and bool(np.array_equal(host, cpu, equal_nan=True)),
            )
            del xd, dev, host
        res[name] = r
        del cpu
    return res


def fleet_fixes(vehicles: int, fixes: int, on_gpu: bool) -> dict[str, np.ndarray]:
    n = vehicles * fixes
    if on_gpu:
        import cupy as xp

    else:
        import numpy as xp
    rng: Any = xp.random.RandomState(3)  # the same API in numpy and CuPy
    shape = (vehicles, fixes)
    t = 1.7e9 + xp.cumsum(rng.uniform(0.5, 5.0, shape), axis=1)
    lat = rng.uniform(-60, 60, (vehicles, 1)) + xp.cumsum(rng.normal(0, 3e-5, shape), axis=1)
    lon = rng.uniform(-179, 179, (vehicles, 1)) + xp.cumsum(rng.normal(0, 3e-5, shape), axis=1)
    h = rng.normal(50, 2, shape)
    quality = rng.randint(1, 7, shape).astype(xp.int32)
    sigma = xp.abs(rng.normal(0.05, 0.03, shape))
    speed = xp.abs(rng.normal(8, 6, shape))
    speed[rng.random_sample(shape) < 0.2] = 0.0
    out = {"t": t, "lat": lat, "lon": lon, "h": h, "quality": quality, "sn": sigma, "se": sigma,
           "su": 2 * sigma, "speed": speed}  # fmt: skip
    out = {k: v.reshape(n) for k, v in out.items()}
    if on_gpu:
        out = {k: v.get() for k, v in out.items()}
    return out


def bench_fusion(vehicles: int, fixes: int, on_gpu: bool, cpu_budget_s: float) -> dict[str, Any]:
    from autolien import _core
    from autolien.gnss import FusionConfig

    cfg = FusionConfig()
    f = fleet_fixes(vehicles, fixes, on_gpu)
    n = vehicles * fixes
    groups = np.arange(vehicles + 1, dtype=np.int64) * fixes
    cols = [f[k] for k in ("t", "lat", "lon", "h", "quality", "sn", "se", "su", "speed")]
    res: dict[str, Any] = {"vehicles": vehicles, "fixes_per_vehicle": fixes}
    # The CPU at full scale when it fits the budget, else on the first vehicles.
    probe = max(1, vehicles // 20)
    pg = groups[: probe + 1]
    t_probe, _ = timed(
        _core.fuse_groups, pg, *[c[: probe * fixes] for c in cols], False, asdict(cfg)
    )
    cpu_vehicles = vehicles if t_probe * vehicles / probe <= cpu_budget_s else probe
    cg = groups[: cpu_vehicles + 1]
    m = cpu_vehicles * fixes
    t_cpu, cpu = timed(_core.fuse_groups, cg, *[c[:m] for c in cols], False, asdict(cfg))
    res.update(cpu_vehicles=cpu_vehicles, cpu_s=t_cpu, cpu_fixes_per_s=m / t_cpu)
    if not on_gpu:
        return res
    import cupy as cp

    from autolien.gpu.fusion import TOLERANCE, filter_arrays

    dcols = [cp.asarray(c) for c in cols]
    filter_arrays(groups[:2], *[c[:fixes] for c in dcols], cfg)  # compile
    t_k, dev = timed(filter_arrays, groups, *dcols, cfg, gpu=True)
    t_e2e, _ = timed(
        lambda: {k: v.get() for k, v in filter_arrays(groups, *cols, cfg).items()}, gpu=True
    )
    g = {k: v[:m].get() for k, v in dev.items()}
    dn = np.abs(g["lat"] - cpu["lat"]) * (math.pi / 180 * 6.4e6)
    de = np.abs(g["lon"] - cpu["lon"]) * (math.pi / 180 * 6.4e6) * np.cos(np.deg2rad(cpu["lat"]))
    sigma = np.sqrt(np.maximum(g["var_e_m2"], g["var_n_m2"]))
    pos = np.nan_to_num(np.maximum(dn, de))
    tol = TOLERANCE["position_m"] + TOLERANCE["position_sigma_rel"] * np.nan_to_num(sigma)
    w = int(np.argmax(pos))
    res.update(
        within_position_tolerance_fraction=float(np.mean(pos <= tol)),
        max_position_diff_over_sigma=float(np.nanmax(pos / np.maximum(sigma, 1e-9))),
        worst_position_row={
            "diff_m": float(pos[w]), "sigma_m": float(sigma[w]), "status": int(cpu["status"][w]),
            "cpu_speed_mps": float(np.hypot(cpu["ve_mps"][w], cpu["vn_mps"][w])),
            "gpu_speed_mps": float(np.hypot(g["ve_mps"][w], g["vn_mps"][w])),
            "fix_in_vehicle": int(w % fixes),
        },
        rows_over_1mm=int(np.sum(pos > 1e-3)),
    )  # fmt: skip
    res.update(
        gpu_kernel_s=t_k,
        gpu_fixes_per_s=n / t_k,
        gpu_e2e_s=t_e2e,
        kernel_speedup_per_fix=(t_cpu / m) / (t_k / n),
        e2e_speedup_per_fix=(t_cpu / m) / (t_e2e / n),
        status_equal_fraction=float(np.mean(g["status"] == cpu["status"])),
        max_position_diff_m=float(np.nanmax(np.maximum(dn, de))),
        max_height_diff_m=float(np.nanmax(np.abs(g["height_m"] - cpu["height_m"]))),
        max_velocity_diff_mps=float(np.nanmax(np.abs(g["ve_mps"] - cpu["ve_mps"]))),
        max_nis_rel_diff=float(
            np.nanmax(np.abs(g["nis"] - cpu["nis"]) / np.maximum(1.0, np.abs(cpu["nis"])))
        ),
        tolerance=TOLERANCE,
    )
    return res


def ncu_hash(n: int) -> None:
    """One leaf-hash launch on n records, for ncu to profile."""
    import cupy as cp

    from autolien.gpu.ledger import leaf_hashes

    arr = records(n, seed=1, on_gpu=True)
    _, off_buf, data_buf = arr.buffers()
    d_data = cp.asarray(np.frombuffer(data_buf, np.uint8))
    d_off = cp.asarray(np.frombuffer(off_buf, np.int32)[: n + 1])
    leaf_hashes(d_data, d_off)
    sync()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None, help="JSON file of figures")
    ap.add_argument("--dry-run", action="store_true", help="CPU side only, small scale")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the fleet sizes")
    ap.add_argument("--hash-scale", type=float, default=None, help="for hashing (default: --scale)")
    ap.add_argument("--only", default="hash,entropy,fusion")
    ap.add_argument("--cpu-budget-s", type=float, default=45.0)
    ap.add_argument(
        "--ncu-hash", type=int, default=0, help="one leaf kernel on N records, then exit"
    )
    args = ap.parse_args(argv)
    if args.ncu_hash:
        ncu_hash(args.ncu_hash)
        return {}
    from autolien import gpu

    on_gpu = bool(gpu.available()) and not args.dry_run
    scale = min(args.scale, 0.002) if args.dry_run else args.scale
    hscale = scale if args.hash_scale is None or args.dry_run else args.hash_scale
    figures: dict[str, Any] = {"machine": machine(), "scale": scale, "hash_scale": hscale,
                               "gpu_run": on_gpu}  # fmt: skip
    only = set(args.only.split(","))

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(figures, indent=2, default=float))

    steps = [
        ("hash_sha256", "hash", lambda: bench_hash(max(1000, int(1e7 * hscale)), "sha256", on_gpu)),
        ("hash_keccak256", "hash", lambda: bench_hash(max(1000, int(2e6 * hscale)), "keccak256", on_gpu)),
        ("entropy", "entropy",
         lambda: bench_entropy(max(10, int(1e5 * scale)), 10_000, 1000, on_gpu)),
        ("fusion", "fusion",
         lambda: bench_fusion(max(10, int(1e5 * scale)), 1000, on_gpu, args.cpu_budget_s)),
    ]  # fmt: skip
    for key, group, run in steps:
        if group not in only:
            continue
        t0 = now()
        try:
            figures[key] = run()
        except Exception as err:  # noqa: BLE001 - report and go on to the next kernel
            figures[key] = {"error": f"{type(err).__name__}: {err}"}
        figures[key]["wall_s"] = now() - t0
        print(key, json.dumps(figures[key], default=float), flush=True)
        save()
    return figures


def test_gpu_fleet_quick() -> None:
    from autolien import gpu

    status = gpu.available()
    if not status:
        pytest.skip(f"no usable GPU: {status.reason}")
    figures = main(["--scale", "0.0005"])
    for key in ("hash_sha256", "hash_keccak256", "entropy", "fusion"):
        assert "error" not in figures[key], figures[key]
    assert figures["hash_sha256"]["root_equal"]
    assert figures["entropy"]["perm"]["bit_identical"]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent / "tests"))
    main()
