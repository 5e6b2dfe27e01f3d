"""Golden files for the FPGA testbenches, from the Python package (the C++
core) and the public vectors in tests/data, and the list of checks to run.

    python fpga/scripts/gen_golden.py OUTDIR

Writes OUTDIR/checks.txt: one testbench invocation per line (binary name,
then arguments); `make -C fpga csim` runs each and wants exit status 0.
Expected values come from outside the FPGA code: the NIST CAVP and Keccak
KAT digests and the RFC 6962 reference tree as published (tests/data), and
autolien.ledger / autolien.entropy / autolien.gnss for random inputs.

File formats: *.rec length-prefixed records (u32 LE length, bytes); *.md
32-byte digests; *.f32 float32 samples; *.f64 float64; *.u64 u64 LE.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
sys.path.insert(0, str(ROOT / "tests"))

from autolien import _core
from autolien._tables import group_by_vehicle
from autolien.entropy import (
    histogram_edges,
    rolling_perm_entropy,
    rolling_shannon_entropy,
)
from autolien.gnss import FusionConfig
from autolien.gnss.fusion import float_column
from autolien.gpu.fusion import config_vector
from autolien.ledger import MerkleLog, keccak256, leaf_hash, node_hash, sha256
from gpu_cases import ledger_records, rtklib_py_fixes, synthetic_fleet

PERM_ORDERS = (3, 4, 5)
PERM_WINDOWS = (16, 256, 1024)
SHANNON_BINS = 16  # SH_BINS of the testbench
SHANNON_WINDOWS = (16, 256)


def records_bytes(records: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(r)) + r for r in records)


class Out:
    def __init__(self, d: Path) -> None:
        self.d = d
        self.checks: list[str] = []

    def file(self, name: str, data: bytes) -> str:
        (self.d / name).write_bytes(data)
        return str(self.d / name)

    def check(self, tb: str, *args: str) -> None:
        self.checks.append(" ".join([tb, *args]))


def random_records(n: int, seed: int) -> list[bytes]:
    arr = ledger_records(n, seed)
    return [bytes(x) for x in arr.to_pylist()]


def merkle(o: Out) -> None:
    nist = json.loads((DATA / "merkle" / "sha256_nist_cavp.json").read_text())
    msgs, mds = [], []
    for v in nist["fips180_examples"]:
        msgs.append(v["msg_ascii"].encode())
        mds.append(bytes.fromhex(v["md"]))
    for key in ("short_msg", "long_msg"):
        for v in nist[key]:
            if v["len_bits"] % 8:
                continue  # bit-oriented vectors: the kernels take whole bytes
            msgs.append(bytes.fromhex(v["msg"])[: v["len_bits"] // 8])
            mds.append(bytes.fromhex(v["md"]))
    o.check("csim_sha256", "--raw", "--in", o.file("nist_sha256.rec", records_bytes(msgs)),
            "--check", o.file("nist_sha256.md", b"".join(mds)))  # fmt: skip

    kat = json.loads((DATA / "merkle" / "keccak256_kat.json").read_text())
    msgs, mds = [], []
    for v in kat["keccak_256_short_msg"]:
        if v["len_bits"] % 8:
            continue
        msgs.append(bytes.fromhex(v["msg"])[: v["len_bits"] // 8])
        mds.append(bytes.fromhex(v["md"]))
    msgs.append(b"")
    mds.append(bytes.fromhex(kat["ethereum_empty"]["keccak256('')"]))
    o.check("csim_keccak256", "--raw", "--in", o.file("kat_keccak256.rec", records_bytes(msgs)),
            "--check", o.file("kat_keccak256.md", b"".join(mds)))  # fmt: skip

    # RFC 6962 reference tree: its leaf hashes and the root of every size.
    tree = json.loads((DATA / "merkle" / "rfc6962_sha256_reference_tree.json").read_text())
    leaves = [bytes.fromhex(h) for h in tree["leaf_inputs_hex"]]
    o.check("csim_sha256", "--leaf", "--in", o.file("rfc6962_leaves.rec", records_bytes(leaves)),
            "--check", o.file("rfc6962_leaves.md",
                              b"".join(bytes.fromhex(h) for h in tree["node_hashes_by_level_hex"][0])))  # fmt: skip
    for size, root in tree["root_by_tree_size_hex"].items():
        k = int(size)
        o.check("csim_merkle_root", "--in", o.file(f"rfc6962_first{k}.rec", records_bytes(leaves[:k])),
                "--check", o.file(f"rfc6962_root{k}.md", bytes.fromhex(root)))  # fmt: skip

    # Random records (every SHA-256 and Keccak block-count boundary) against
    # autolien.ledger.
    recs = random_records(300, seed=18)
    rec_file = o.file("random.rec", records_bytes(recs))
    rng = np.random.default_rng(18)
    pairs = [rng.integers(0, 256, 64, dtype=np.uint8).tobytes() for _ in range(40)]
    pair_file = o.file("random_pairs.rec", records_bytes(pairs))
    for name, fn in (("sha256", sha256), ("keccak256", keccak256)):
        tb = f"csim_{name}"
        o.check(tb, "--raw", "--in", rec_file,
                "--check", o.file(f"random_raw_{name}.md", b"".join(fn(r) for r in recs)))  # fmt: skip
        o.check(tb, "--leaf", "--in", rec_file,
                "--check", o.file(f"random_leaf_{name}.md",
                                  b"".join(leaf_hash(r, hash=name) for r in recs)))  # fmt: skip
        o.check(tb, "--node", "--in", pair_file,
                "--check", o.file(f"random_node_{name}.md",
                                  b"".join(node_hash(p[:32], p[32:], hash=name) for p in pairs)))  # fmt: skip
        roots = []
        for batch in (recs, *[recs[i : i + 37] for i in range(0, len(recs), 37)]):
            log = MerkleLog(name)  # type: ignore[arg-type]
            log.extend(batch)
            roots.append(log.root())
        o.check("csim_merkle_root", "--hash", name, "--in", rec_file,
                "--check", o.file(f"random_root_{name}.md", roots[0]))  # fmt: skip
        o.check("csim_merkle_root", "--hash", name, "--batch", "37", "--in", rec_file,
                "--check", o.file(f"random_root37_{name}.md", b"".join(roots[1:])))  # fmt: skip


def fixed_u64(values: np.ndarray) -> bytes:
    """The core's fixed-point output (a double k * 2^-32, NaN for none) as
    the integer k, ~0 for none."""
    v = np.asarray(values, dtype=np.float64)
    k = np.where(np.isnan(v), 0.0, v * 2.0**32)
    assert np.all(k == np.floor(k)), "fixed-point values are whole units"
    out = k.astype(np.uint64)
    out[np.isnan(v)] = np.uint64(0xFFFFFFFFFFFFFFFF)
    return out.astype("<u8").tobytes()


def entropy_series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(180)
    gauss = rng.normal(size=3000).astype(np.float32)
    logistic = np.load(DATA / "entropy" / "inputs" / "logistic_r3.9_x0.4_n1000.npy").astype(
        np.float32
    )
    # Ties (a coarse quantisation) and NaNs exercise the tie rule and the
    # patterns left out.
    ties = np.round(rng.normal(size=2500) * 2).astype(np.float32)
    ties[rng.random(ties.size) < 0.01] = np.nan
    return {"gauss": gauss, "logistic": logistic, "ties_nan": ties}


def entropy(o: Out) -> None:
    for name, x in entropy_series().items():
        xf = o.file(f"{name}.f32", x.astype("<f4").tobytes())
        x64 = x.astype(np.float64)
        for order in PERM_ORDERS:
            for w in PERM_WINDOWS:
                if w > x.size:
                    continue
                want = rolling_perm_entropy(x64, w, order=order, fixed_point=True)
                o.check("csim_perm_entropy", "--order", str(order), "--window", str(w), "--in", xf,
                        "--check", o.file(f"{name}_perm_o{order}_w{w}.u64", fixed_u64(want)))  # fmt: skip
        edges = histogram_edges(x64, SHANNON_BINS)
        ef = o.file(f"{name}_edges.f64", np.asarray(edges, "<f8").tobytes())
        for w in SHANNON_WINDOWS:
            want = rolling_shannon_entropy(x64, w, bins=edges, fixed_point=True)
            o.check("csim_shannon_entropy", "--window", str(w), "--edges", ef, "--in", xf,
                    "--check", o.file(f"{name}_shannon_w{w}.u64", fixed_u64(want)))  # fmt: skip


# ------------------------------------------------------------- fix fusion

A = 6378137.0
F = 1.0 / 298.257223563
E2 = F * (2.0 - F)


def ecef(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    la, lo = np.deg2rad(lat), np.deg2rad(lon)
    n = A / np.sqrt(1.0 - E2 * np.sin(la) ** 2)
    return (
        (n + h) * np.cos(la) * np.cos(lo),
        (n + h) * np.cos(la) * np.sin(lo),
        (n * (1 - E2) + h) * np.sin(la),
    )


def to_enu(lat0: float, lon0: float, h0: float, lat: np.ndarray, lon: np.ndarray, h: np.ndarray
           ) -> np.ndarray:  # fmt: skip
    ox, oy, oz = ecef(np.array(lat0), np.array(lon0), np.array(h0))
    x, y, z = ecef(lat, lon, h)
    dx, dy, dz = x - ox, y - oy, z - oz
    sl, cl = np.sin(np.deg2rad(lon0)), np.cos(np.deg2rad(lon0))
    sp, cp = np.sin(np.deg2rad(lat0)), np.cos(np.deg2rad(lat0))
    return np.stack([-sl * dx + cl * dy, -sp * cl * dx - sp * sl * dy + cp * dz,
                     cp * cl * dx + cp * sl * dy + sp * dz], axis=1)  # fmt: skip


def on_globe(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> np.ndarray:
    return (np.abs(lat) <= 90) & (np.abs(lon) <= 180) & (np.abs(h) <= 1e8)


def kf_case(o: Out, name: str, fixes: object) -> None:
    """Fixes in each vehicle's ENU frame (its first fix of quality >= 1 on the
    globe, as the core picks it), and the core's track taken to that frame."""
    fixes, _, groups, t = group_by_vehicle(fixes, "vehicle_id")  # type: ignore[arg-type]
    lat, lon, h = (float_column(fixes, k, np.float64, True) for k in ("lat", "lon", "height_m"))
    q = float_column(fixes, "quality", np.float64, True, default=0.0).astype(np.int32)
    sn, se, su = (
        float_column(fixes, k, np.float64, False) for k in ("sigma_n_m", "sigma_e_m", "sigma_u_m")
    )
    speed = float_column(fixes, "speed_kmh", np.float64, False) / 3.6
    cfg = FusionConfig()
    out = _core.fuse_groups(groups, t, lat, lon, h, q, sn, se, su, speed, False, asdict(cfg))
    rows_in, rows_out = [], []
    for g in range(groups.size - 1):
        lo, hi = int(groups[g]), int(groups[g + 1])
        sl = slice(lo, hi)
        ok = (q[sl] >= 1) & on_globe(lat[sl], lon[sl], h[sl])
        n = hi - lo
        enu = np.full((n, 3), np.nan)
        core = np.full((n, 3), np.nan)
        if ok.any():
            r = lo + int(np.argmax(ok))
            glob = on_globe(lat[sl], lon[sl], h[sl])
            enu[glob] = to_enu(lat[r], lon[r], h[r], lat[sl][glob], lon[sl][glob], h[sl][glob])
            have = np.isfinite(out["lat"][sl])
            core[have] = to_enu(lat[r], lon[r], h[r], out["lat"][sl][have], out["lon"][sl][have],
                                out["height_m"][sl][have])  # fmt: skip
        first = np.zeros(n)
        first[0] = 1.0
        rows_in.append(
            np.column_stack([first, t[sl], enu, q[sl], sn[sl], se[sl], su[sl], speed[sl]])
        )
        rows_out.append(np.column_stack([
            core, out["ve_mps"][sl], out["vn_mps"][sl], out["vu_mps"][sl], out["var_e_m2"][sl],
            out["var_n_m2"][sl], out["var_u_m2"][sl], out["nis"][sl], out["inflation"][sl],
            out["status"][sl].astype(np.float64), out["segment"][sl].astype(np.float64)]))  # fmt: skip
    cf = o.file("kf_config.f64", config_vector(cfg).astype("<f8").tobytes())
    o.check("csim_kf", "--config", cf, "--in", o.file(f"kf_{name}_in.f64", np.vstack(rows_in).astype("<f8").tobytes()),
            "--check", o.file(f"kf_{name}_core.f64", np.vstack(rows_out).astype("<f8").tobytes()))  # fmt: skip


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    o = Out(out)
    merkle(o)
    entropy(o)
    kf_case(o, "rtklib_py", rtklib_py_fixes())
    kf_case(o, "synthetic", synthetic_fleet(12, 400, seed=18))
    (out / "checks.txt").write_text("\n".join(o.checks) + "\n")
    print(f"{len(o.checks)} checks in {out / 'checks.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
