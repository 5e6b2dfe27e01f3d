"""RTL simulation of sha256_leaf.v and perm_entropy.v with cocotb on Icarus
Verilog against the golden files of the C-simulation (fpga/build/golden).

    python fpga/rtl/run_sim.py --golden fpga/build/golden [--quick]

--quick runs a few vectors (make test); without iverilog or cocotb it says
so and exits 0, as a skip. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from params import dhex, perm_params


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--golden", required=True, type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--build", type=Path, default=HERE.parent / "build" / "rtl_sim")
    a = ap.parse_args()
    if shutil.which("iverilog") is None:
        print("SKIP rtl sim: iverilog is not installed (apt-get install iverilog)")
        return 0
    try:
        from cocotb.runner import get_runner  # noqa: PLC0415 (optional: skip without it)
    except ImportError:
        print("SKIP rtl sim: cocotb is not installed (pip install cocotb==1.9.2)")
        return 0
    g = a.golden.resolve()
    sha_cases = [("rfc6962", g / "rfc6962_leaves.rec", g / "rfc6962_leaves.md", 0)]
    if not a.quick:
        sha_cases.append(("random", g / "random.rec", g / "random_leaf_sha256.md", 0))
    perm_cases = [(3, 16, "logistic", 300)] if a.quick else [
        (3, 16, "logistic", 0), (4, 256, "gauss", 0), (5, 1024, "gauss", 0), (5, 256, "logistic", 0)]  # fmt: skip
    failed = 0
    runner = get_runner("icarus")
    runner.build(verilog_sources=[HERE / "sha256_leaf.v"], hdl_toplevel="sha256_leaf",
                 build_dir=a.build / "sha256_leaf", always=True)  # fmt: skip
    for name, rec, md, limit in sha_cases:
        os.environ.update(GOLDEN_RECORDS=str(rec), GOLDEN_DIGESTS=str(md), GOLDEN_LIMIT=str(limit))
        res = runner.test(hdl_toplevel="sha256_leaf", test_module="test_sha256_leaf",
                          test_dir=HERE / "tb", build_dir=a.build / "sha256_leaf",
                          results_xml=str(a.build / f"sha256_{name}.xml"))  # fmt: skip
        failed += _failures(res)
    for order, window, series, limit in perm_cases:
        p = perm_params(order, window)
        params: dict[str, object] = dict(p)
        bdir = a.build / f"perm_o{order}_w{window}"
        params["DHEX"] = f'"{dhex(window, bdir)}"'
        runner.build(verilog_sources=[HERE / "perm_entropy.v"], hdl_toplevel="perm_entropy",
                     parameters=params, build_dir=bdir, always=True)  # fmt: skip
        os.environ.update(GOLDEN_SAMPLES=str(g / f"{series}.f32"),
                          GOLDEN_VALUES=str(g / f"{series}_perm_o{order}_w{window}.u64"),
                          GOLDEN_LIMIT=str(limit))  # fmt: skip
        res = runner.test(hdl_toplevel="perm_entropy", test_module="test_perm_entropy",
                          test_dir=HERE / "tb", build_dir=bdir,
                          results_xml=str(a.build / f"perm_o{order}_w{window}.xml"))  # fmt: skip
        failed += _failures(res)
    print("rtl sim: " + ("all vectors bit-exact" if not failed else f"{failed} failing tests"))
    return 1 if failed else 0


def _failures(results_xml: Path) -> int:
    from cocotb.runner import get_results  # noqa: PLC0415 (imported once cocotb is known present)

    _, fails = get_results(results_xml)
    return int(fails)


if __name__ == "__main__":
    raise SystemExit(main())
