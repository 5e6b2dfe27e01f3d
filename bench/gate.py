"""Saved bench baselines and the regression gate.

    python bench/gate.py save  [--baseline bench/baselines/default.json] [--callgrind]
    python bench/gate.py check [--baseline ...] [--callgrind] [--threshold 0.25]

Both read the summary the last bench run wrote (bench/.last-summary.json).
``check`` fails (exit 1) when, against the baseline:

* an ours/peer ratio fell by more than max(threshold, 2 x its combined spread).
  Ratios, not absolute times, are compared, so drift of a shared noisy machine
  cancels out. The default threshold is 25%;
* the cost-growth exponent of one of our kernels rose by more than 0.3 (an
  O(n) kernel turning O(n^1.3) or worse);
* a ratio or growth exponent of the baseline is missing from the run (a
  benchmark that disappears is a failure), and so is an instruction count
  when the run counted instructions at all;
* a C++ kernel's callgrind instruction count rose by more than 2%. These
  counts are repeatable to a few instructions, so the bound can be tight.
  They are taken when valgrind is on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
SUMMARY = HERE / ".last-summary.json"
DEFAULT_BASELINE = HERE / "baselines" / "default.json"
GROWTH_LIMIT = 0.3
INSTRUCTION_LIMIT = 0.02

# C++ kernels counted under callgrind: (name, toggle-collect pattern, script).
# One thread and a fixed hash seed make the counts repeatable. valgrind hides
# SHA-NI, so SHA-256 counts are those of the portable back end.
PROBES = [
    (
        "MerkleLog.extend sha256, 10k x 100 B",
        "autolien::ledger::MerkleLog::extend*",
        (
            "import numpy as np\nfrom autolien.ledger import MerkleLog\n"
            "rows = (np.arange(1_000_000, dtype=np.uint32) % 251).astype(np.uint8).reshape(10_000, 100)\n"
            "MerkleLog().extend(rows)\n"
        ),
    ),
    (
        "MerkleLog.extend keccak256, 2k x 100 B",
        "autolien::ledger::MerkleLog::extend*",
        (
            "import numpy as np\nfrom autolien.ledger import MerkleLog\n"
            "rows = (np.arange(200_000, dtype=np.uint32) % 251).astype(np.uint8).reshape(2_000, 100)\n"
            "MerkleLog('keccak256').extend(rows)\n"
        ),
    ),
    (
        "MerkleLog.inclusion_proofs, 1k proofs on 100k",
        "autolien::ledger::MerkleLog::inclusion_proofs*",
        (
            "import numpy as np\nfrom autolien.ledger import MerkleLog\n"
            "log = MerkleLog(); log.extend([i.to_bytes(4, 'big') for i in range(100_000)])\n"
            "log.inclusion_proofs(np.arange(0, 100_000, 100, dtype=np.int64))\n"
        ),
    ),
    (
        "verify_inclusion x1000 on 100k",
        "autolien::ledger::verify_inclusion*",
        (
            "from autolien.ledger import MerkleLog, verify_inclusion\n"
            "log = MerkleLog(); log.extend([i.to_bytes(4, 'big') for i in range(100_000)])\n"
            "r = log.root(); ps = [(log.leaf_hash(i), i, log.inclusion_proof(i)) for i in range(0, 100_000, 100)]\n"
            "assert all(verify_inclusion(h, i, 100_000, p, r) for h, i, p in ps)\n"
        ),
    ),
]


def callgrind_counts() -> dict[str, int]:
    if shutil.which("valgrind") is None:
        print("valgrind not found: instruction counts skipped", file=sys.stderr)
        return {}
    env = {**os.environ, "AUTOLIEN_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    out = {}
    for name, pattern, script in PROBES:
        res = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                f"--toggle-collect={pattern}",
                sys.executable,
                "-c",
                script,
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        m = re.search(r"Collected\s*:\s*(\d+)", res.stderr)
        if res.returncode != 0 or m is None:
            print(f"callgrind probe {name!r} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        out[name] = int(m.group(1))
        print(f"  {name:48s} {out[name]:>15,} instructions", file=sys.stderr)
    return out


def machine() -> dict[str, Any]:
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", flags)
    return {
        "cpu": model.group(1) if model else platform.processor(),
        "cores": os.cpu_count(),
        "sha_ni": " sha_ni" in flags,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_summary() -> dict[str, Any]:
    if not SUMMARY.exists():
        sys.exit(f"{SUMMARY} not found: run `make bench` first")
    return json.loads(SUMMARY.read_text())  # type: ignore[no-any-return]


def snapshot(summary: dict[str, Any], instructions: dict[str, int]) -> dict[str, Any]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": summary["quick"],
        "ratios": {
            r["key"]: {"ratio": r["ratio"], "spread": r["spread"]} for r in summary["ratios"]
        },
        "growth": {
            f"{g['group']} | {g['kernel']}": g["exponent"]
            for g in summary["growth"]
            if g["role"] == "ours"
        },
        "instructions": instructions,
    }


def compare(
    base: dict[str, Any], now: dict[str, Any], threshold: float
) -> tuple[list[str], list[str]]:
    """Returns (failures, notes)."""
    failures: list[str] = []
    notes: list[str] = []
    if base["quick"] != now["quick"]:
        failures.append(f"mode differs: baseline quick={base['quick']}, run quick={now['quick']}")
        return failures, notes
    for key, b in base["ratios"].items():
        n = now["ratios"].get(key)
        if n is None:  # a benchmark that disappeared is a failure, not a note
            failures.append(f"missing in this run: {key}")
            continue
        tol = max(threshold, 2 * (b["spread"] ** 2 + n["spread"] ** 2) ** 0.5)
        change = n["ratio"] / b["ratio"] - 1
        line = (
            f"{key}: {b['ratio']:.2f}x -> {n['ratio']:.2f}x ({change:+.0%}, tolerance -{tol:.0%})"
        )
        (failures if change < -tol else notes).append(line)
    for key, b in base["growth"].items():
        n = now["growth"].get(key)
        if n is None:
            failures.append(f"missing in this run: {key}")
        elif n - b > GROWTH_LIMIT:
            failures.append(f"{key}: cost grows as n^{n:.2f}, baseline n^{b:.2f}")
    for key, b in base.get("instructions", {}).items():
        counted = now.get("instructions", {})
        n = counted.get(key)
        if n is None:
            # a run without valgrind counts nothing; one that counts must count all
            if counted:
                failures.append(f"missing in this run: {key}")
            continue
        change = n / b - 1
        line = f"{key}: {b:,} -> {n:,} instructions ({change:+.2%})"
        (failures if change > INSTRUCTION_LIMIT else notes).append(line)
    return failures, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("action", choices=["save", "check"])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    p.add_argument(
        "--callgrind", action="store_true", help="also count instructions of the C++ kernels"
    )
    p.add_argument("--threshold", type=float, default=0.25)
    a = p.parse_args(argv)
    summary = load_summary()
    now = snapshot(summary, callgrind_counts() if a.callgrind else {})
    if a.action == "save":
        a.baseline.parent.mkdir(parents=True, exist_ok=True)
        a.baseline.write_text(json.dumps(now, indent=1) + "\n")
        print(
            f"baseline saved to {a.baseline}: {len(now['ratios'])} ratios, "
            f"{len(now['growth'])} growth exponents, {len(now['instructions'])} instruction counts"
        )
        return 0
    if not a.baseline.exists():
        sys.exit(f"no baseline at {a.baseline}: run `make bench-save` first")
    failures, notes = compare(json.loads(a.baseline.read_text()), now, a.threshold)
    for line in notes:
        print(f"  ok    {line}")
    for line in failures:
        print(f"  FAIL  {line}")
    print(f"bench-check: {len(failures)} regression(s) against {a.baseline}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
