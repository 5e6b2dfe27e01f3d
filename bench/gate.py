"""Saved bench baselines and the regression gate.

    python bench/gate.py save  [--baseline PATH] [--callgrind]
    python bench/gate.py check [--baseline PATH] [--callgrind] [--threshold 0.25]

Both read the summary the last bench run wrote (bench/.last-summary.json).
``make bench-save`` and ``make bench-check`` time the benches in process CPU
seconds (``--benchmark-timer=time.process_time``): a machine busy with other
work stretches wall time, not the CPU time our kernel and its peer need, so
the ratios hold still under load on most hosts (measured: 1.45x quiet, 1.46x
with two CPU hogs, where the wall-clock ratio fell from 1.19x to 0.19x), but
not on all (below: busy machines).

Baselines are keyed by machine: ``save`` writes
``bench/baselines/<cpu model>-<cores>c.json``, and ``check`` compares with
that file when the machine has one (same CPU model and core count), else with
``default.json``. Ratios move with the CPU model, so ``check`` fails (exit 1)
when, against the baseline:

* same CPU model and core count: an ours/peer ratio fell by more than
  max(threshold, 2 x its combined spread). The default threshold is 25%;
* another CPU: only like-for-like single-thread ratios (neither side ran
  other threads) are gated, on a band 1.6 times as wide (40%), so that a
  2x slowdown (-50%) still fails; every other ratio is
  printed, not gated. A baseline timed with another timer (wall against
  CPU seconds) is never compared ratio for ratio;
* on any machine, ratios timed while the machine was busy are printed, not
  gated: when other processes took more than 25% of the machine's core time
  (steal included) during either side's benchmarks, in the baseline or in the
  run. Under contention CPU seconds move too where virtual cores share
  physical ones: one spinning process per core moved a single-thread probe
  ratio by -37% on one host and by +3% on another, and a 2x slowdown is -50%.
  Instruction counts and growth exponents are still gated; run again on a
  quiet machine to judge the ratios;
* on any machine: the cost-growth exponent of one of our kernels rose by
  more than 0.3 (an O(n) kernel turning O(n^1.3) or worse);
* on any machine: a C++ kernel's callgrind instruction count rose by more
  than 2%. These counts are repeatable to a few instructions and do not
  depend on the CPU model or the load. They are taken when valgrind is on
  the machine.
* on any machine: a ratio or growth exponent of the baseline is missing
  from the run (a benchmark that disappears is a failure), and so is an
  instruction count when the run counted instructions at all.
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
BASELINES = HERE / "baselines"
DEFAULT_BASELINE = BASELINES / "default.json"
GROWTH_LIMIT = 0.3
INSTRUCTION_LIMIT = 0.02
# Across CPU models a single-thread ratio still moves (cache sizes, SIMD
# widths): its band is this many times the same-machine threshold.
FOREIGN_BAND = 1.6
WALL_TIMER = "time.perf_counter"
# Other processes' share of the machine's core time above which a ratio's
# timing is not judged (bench/conftest.py measures it per benchmark).
BUSY_LIMIT = 0.25

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
        # The NMEA decoder on the telemetry bench's data (GGA+RMC): the
        # instructions an epoch do not move with the CPU model or the load.
        "decode_nmea, 1e4 GGA+RMC epochs",
        "autolien::gnss::nmea::decode*",
        (
            "from pathlib import Path\nfrom autolien import _core\n"
            f"log = Path({str((HERE.parent / 'tests' / 'data' / 'gnss' / 'gpsd' / 'nmea-rtk.log').resolve())!r})\n"
            "lines = [ln.strip() for ln in log.read_bytes().split(b'\\n') if ln.startswith(b'$')]\n"
            "data = b'\\r\\n'.join((lines * 82)[:20_000]) + b'\\r\\n'\n"
            "assert len(_core.decode_nmea(data)['fixes']['offset']) == 10_000\n"
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


def machine_key(m: dict[str, Any]) -> str:
    """``intel-r-xeon-r-processor-2c``: the CPU model and the core count."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(m.get("cpu", "")).lower()).strip("-") or "unknown-cpu"
    return f"{slug}-{m.get('cores')}c"


def same_machine(base: dict[str, Any], now: dict[str, Any]) -> bool:
    return machine_key(base.get("machine", {})) == machine_key(now.get("machine", {}))


def load_summary() -> dict[str, Any]:
    if not SUMMARY.exists():
        sys.exit(f"{SUMMARY} not found: run `make bench` first")
    return json.loads(SUMMARY.read_text())  # type: ignore[no-any-return]


def snapshot(summary: dict[str, Any], instructions: dict[str, int]) -> dict[str, Any]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "quick": summary["quick"],
        "timer": summary.get("timer", WALL_TIMER),
        "ratios": {
            r["key"]: {
                "ratio": r["ratio"],
                "spread": r["spread"],
                "single_thread": r.get("single_thread", False),
                "other_load": r.get("other_load"),
            }
            for r in summary["ratios"]
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
    """Returns (failures, notes). See the module docstring for the rules."""
    failures: list[str] = []
    notes: list[str] = []
    if base["quick"] != now["quick"]:
        failures.append(f"mode differs: baseline quick={base['quick']}, run quick={now['quick']}")
        return failures, notes
    same = same_machine(base, now)
    busy = 0
    timers = (base.get("timer", WALL_TIMER), now.get("timer", WALL_TIMER))
    if not same:
        notes.append(
            f"baseline from {machine_key(base.get('machine', {}))}, this run on "
            f"{machine_key(now.get('machine', {}))}: only single-thread ratios are gated, "
            f"on a {FOREIGN_BAND:g}x band"
        )
    if timers[0] != timers[1]:
        notes.append(f"baseline timed by {timers[0]}, this run by {timers[1]}: ratios not gated")
    for key, b in base["ratios"].items():
        n = now["ratios"].get(key)
        if n is None:  # a benchmark that disappeared is a failure, not a note
            failures.append(f"missing in this run: {key}")
            continue
        load = busy_load(b, n)
        gated = (
            timers[0] == timers[1]
            and load is None
            and (same or bool(b.get("single_thread") and n.get("single_thread")))
        )
        limit = threshold if same else FOREIGN_BAND * threshold
        tol = max(limit, 2 * (b["spread"] ** 2 + n["spread"] ** 2) ** 0.5)
        change = n["ratio"] / b["ratio"] - 1
        line = f"{key}: {b['ratio']:.2f}x -> {n['ratio']:.2f}x ({change:+.0%}"
        if gated:
            line += f", tolerance -{tol:.0%})"
        elif load is not None:
            line += f", reported, not gated: machine busy, {load:.0%} of its cores to other work)"
            busy += 1
        else:
            line += ", reported, not gated)"
        (failures if gated and change < -tol else notes).append(line)
    if busy:
        notes.append(
            f"{busy} ratio(s) timed while the machine was busy (over {BUSY_LIMIT:.0%} of its "
            "core time to other processes): not gated; run again on a quiet machine"
        )
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


def busy_load(*ratios: dict[str, Any]) -> float | None:
    """The busiest ratio's other-process load when it is over BUSY_LIMIT, else None."""
    loads = [r.get("other_load") for r in ratios]
    worst = max((x for x in loads if x is not None), default=None)
    return worst if worst is not None and worst > BUSY_LIMIT else None


def pick_baseline(explicit: Path | None, here: dict[str, Any]) -> Path:
    """The baseline to check against: the one given, else this machine's, else default.json."""
    if explicit is not None:
        return explicit
    own = BASELINES / f"{machine_key(here)}.json"
    return own if own.exists() else DEFAULT_BASELINE


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("action", choices=["save", "check"])
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="baseline file (default: bench/baselines/<this machine>.json; check falls back "
        "to default.json)",
    )
    p.add_argument(
        "--callgrind", action="store_true", help="also count instructions of the C++ kernels"
    )
    p.add_argument("--threshold", type=float, default=0.25)
    a = p.parse_args(argv)
    summary = load_summary()
    now = snapshot(summary, callgrind_counts() if a.callgrind else {})
    if a.action == "save":
        path = a.baseline or BASELINES / f"{machine_key(now['machine'])}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(now, indent=1) + "\n")
        print(
            f"baseline saved to {path}: {len(now['ratios'])} ratios, "
            f"{len(now['growth'])} growth exponents, {len(now['instructions'])} instruction counts"
        )
        busy = [k for k, r in now["ratios"].items() if busy_load(r) is not None]
        if busy:
            print(
                f"warning: {len(busy)} ratio(s) were timed on a busy machine and will not be "
                "gated against this baseline; save it again on a quiet machine"
            )
        return 0
    path = pick_baseline(a.baseline, now["machine"])
    if not path.exists():
        sys.exit(f"no baseline at {path}: run `make bench-save` first")
    failures, notes = compare(json.loads(path.read_text()), now, a.threshold)
    for line in notes:
        print(f"  ok    {line}")
    for line in failures:
        print(f"  FAIL  {line}")
    print(f"bench-check: {len(failures)} regression(s) against {path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
