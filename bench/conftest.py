"""Shared bench plumbing: sizes, labels, peak memory, and the summary.

Every benchmark calls ``tag(benchmark, role, kernel, items, size=n)`` first:

* ``role``: "ours" or "peer";
* ``kernel``: a short label;
* ``items``: work items per round;
* ``size``: the input size this run uses. Each kernel runs at three sizes,
  spanning two orders of magnitude.

The optional ``pair`` pairs entries explicitly (say, the same batch size).

After the pytest-benchmark tables, the summary prints, per group:

* items/s per entry, with the spread (IQR/median);
* ratios ours/peer at each size, with a spread combined from both sides;
* each kernel's cost growth with size, as a fitted exponent (time ~ n^k);
* the peak extra memory each kernel used at its largest size.

The same figures go to ``bench/.last-summary.json``, which ``bench/gate.py``
saves as a baseline and checks against. Each entry also records whether it
ran on one thread: the share of the process's CPU time that other threads
used between ``tag`` and the end of the test (``time.process_time`` against
``time.thread_time``), which load on the machine does not change.

Each entry also records how busy the machine was meanwhile: the share of all
its cores' time (``/proc/stat``, steal included) that went to other processes
in that window. CPU seconds do not hold still under contention everywhere:
where the virtual cores share physical ones with the load, a probe's
single-thread ratio fell by 37% under one spinning process per core, while on
another host it did not move. The gate does not judge ratios timed on a busy
machine (``bench/gate.py``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# `make test` sets this (as for tests/): a peer that is missing there fails
# the bench run instead of skipping quietly, so no comparison disappears.
REQUIRE_ALL = os.environ.get("AUTOLIEN_REQUIRE_ALL") == "1"


def require_module(name: str) -> Any:
    """pytest.importorskip for a peer, failing under AUTOLIEN_REQUIRE_ALL=1."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if REQUIRE_ALL:
            pytest.fail(
                f"needs {name}: {e} (AUTOLIEN_REQUIRE_ALL=1: nothing may be skipped)",
                pytrace=False,
            )
        pytest.skip(f"needs {name}: {e}")


QUICK = os.environ.get("AUTOLIEN_BENCH_QUICK", "") not in ("", "0")
SUMMARY_PATH = Path(
    os.environ.get("AUTOLIEN_BENCH_SUMMARY") or Path(__file__).parent / ".last-summary.json"
)
# Other threads' share of the CPU time above which an entry is multi-threaded.
OTHER_THREADS_LIMIT = 0.05
# Per benchmark, at tag: (process CPU, thread CPU) seconds, and the machine
# sample (wall, machine busy + steal seconds, this process's own CPU seconds)
# where /proc/stat is readable.
_start: dict[int, tuple[tuple[float, float], tuple[float, float, float] | None]] = {}
# Windows shorter than this are not judged: /proc/stat counts in 10 ms ticks.
LOAD_MIN_WINDOW_S = 0.2
# Memory that grows faster than this power of the input is reported as a defect.
MEMORY_EXPONENT_LIMIT = 1.15


def size(full: int, quick: int) -> int:
    """One benchmark size: ``full`` normally, ``quick`` in CI's smoke mode."""
    return quick if QUICK else full


def sizes(full: tuple[int, int, int], quick: tuple[int, int, int]) -> tuple[int, int, int]:
    """The three sizes a kernel runs at (two orders of magnitude apart at least)."""
    return quick if QUICK else full


def _status_kib(key: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _reset_peak() -> bool:
    # Linux: writing 5 to clear_refs resets the RSS high-water mark (VmHWM).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _machine_cpu_seconds() -> float | None:
    """CPU seconds the whole machine spent busy since boot (steal included), or None."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 8:
        return None
    v = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    t = os.times()
    # children that were waited for (a pool shut down inside the benchmark) count as ours
    return t.user + t.system + t.children_user + t.children_system


def other_load(
    start: tuple[float, float, float], end: tuple[float, float, float], cores: int
) -> float | None:
    """The share of the machine's core time other processes used between two samples."""
    wall = end[0] - start[0]
    if wall < LOAD_MIN_WINDOW_S or cores < 1:
        return None
    others = (end[1] - start[1]) - (end[2] - start[2])
    return min(1.0, max(0.0, others / (wall * cores)))


def _load_sample() -> tuple[float, float, float] | None:
    busy = _machine_cpu_seconds()
    if busy is None:
        return None
    return time.perf_counter(), busy, _own_cpu_seconds()


def tag(
    benchmark: Any,
    role: str,
    kernel: str,
    items: int,
    *,
    size: int | None = None,
    pair: str | None = None,
) -> None:
    """Labels a benchmark and starts its peak-memory window (inputs are already built)."""
    info = {"role": role, "kernel": kernel, "items": items}
    if size is not None:
        info["size"] = size
    if pair is not None:
        info["pair"] = pair
    if _reset_peak():
        info["rss_before_kib"] = _status_kib("VmRSS")
    benchmark.extra_info.update(info)
    _start[id(benchmark)] = ((time.process_time(), time.thread_time()), _load_sample())


@pytest.fixture(autouse=True)
def _peak_memory(request: pytest.FixtureRequest) -> Any:
    yield
    bench = request.node.funcargs.get("benchmark") if hasattr(request.node, "funcargs") else None
    if bench is None:
        return
    if "rss_before_kib" in bench.extra_info:
        bench.extra_info["peak_extra_kib"] = max(
            0, _status_kib("VmHWM") - bench.extra_info["rss_before_kib"]
        )
    start = _start.pop(id(bench), None)
    if start is None:
        return
    (cpu, thread), load_start = start
    process = time.process_time() - cpu
    other = process - (time.thread_time() - thread)
    bench.extra_info["other_threads_cpu_share"] = other / process if process > 0 else 0.0
    load_end = _load_sample() if load_start is not None else None
    if load_start is not None and load_end is not None:
        load = other_load(load_start, load_end, os.cpu_count() or 1)
        if load is not None:
            bench.extra_info["machine_other_load"] = load


def _stats(bench: Any) -> tuple[float, float] | None:
    stats = getattr(bench, "stats", None)
    inner = getattr(stats, "stats", stats)
    med = getattr(inner, "median", None)
    if not med:
        return None
    iqr = getattr(inner, "iqr", 0.0) or 0.0
    return float(med), float(iqr) / float(med)


def _busier(a: float | None, b: float | None) -> float | None:
    known = [x for x in (a, b) if x is not None]
    return max(known) if known else None


def _fit_exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(y) against log(x)."""
    pts = [(math.log(x), math.log(y)) for x, y in points if x > 0 and y > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def summarize(benchmarks: list[Any]) -> dict[str, Any]:
    """The numbers the summary prints and the gate compares."""
    rows = []
    for bench in benchmarks:
        info = bench.extra_info
        st = _stats(bench)
        if st is None or "role" not in info:
            continue
        med, spread = st
        rows.append(
            {
                "group": bench.group or bench.name,
                "role": info["role"],
                "kernel": info["kernel"],
                "size": info.get("size"),
                "pair": info.get("pair"),
                "seconds": med,
                "rate": info["items"] / med,
                "spread": spread,
                "peak_extra_kib": info.get("peak_extra_kib"),
                "single_thread": (
                    info["other_threads_cpu_share"] <= OTHER_THREADS_LIMIT
                    if "other_threads_cpu_share" in info
                    else None
                ),
                "other_load": info.get("machine_other_load"),
            }
        )
    ratios = []
    by_group_size: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_group_size[(r["group"], r["size"])].append(r)
    for (group, sz), rs in by_group_size.items():
        ours = [r for r in rs if r["role"] == "ours"]
        peers = [r for r in rs if r["role"] == "peer"]
        paired = any(r["pair"] is not None for r in rs)
        best = max(ours, key=lambda r: r["rate"]) if ours else None
        # Every ours x peer ratio is kept under a stable key (the gate compares
        # them all); the terminal shows the best of ours against each peer.
        for o in ours:
            for p in peers:
                if paired and (o["pair"] is None or o["pair"] != p["pair"]):
                    continue
                ratios.append(
                    {
                        "key": f"{group} | n={sz} | {o['kernel']} / {p['kernel']}",
                        "group": group,
                        "size": sz,
                        "ratio": o["rate"] / p["rate"],
                        "spread": math.hypot(o["spread"], p["spread"]),
                        # like-for-like single thread: neither side used other threads
                        "single_thread": bool(o["single_thread"] and p["single_thread"]),
                        # the busier of the two windows (None: not measured)
                        "other_load": _busier(o["other_load"], p["other_load"]),
                        "shown": paired or o is best,
                    }
                )
    growth = []
    mem_growth = []
    by_kernel: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["size"] is not None:
            by_kernel[(r["group"], r["kernel"])].append(r)
    for (group, kernel), rs in by_kernel.items():
        rs.sort(key=lambda r: r["size"])
        exp = _fit_exponent([(r["size"], r["seconds"]) for r in rs])
        if exp is not None:
            growth.append(
                {
                    "group": group,
                    "kernel": kernel,
                    "role": rs[0]["role"],
                    "exponent": exp,
                    "sizes": [r["size"] for r in rs],
                }
            )
        # Growth is judged between the two largest sizes, and only when both
        # used 4 MiB or more: below that, memory freed by earlier benchmarks is
        # reused, the high-water mark hardly moves, and the slope is inflated.
        mems = [(r["size"], r["peak_extra_kib"]) for r in rs if r["peak_extra_kib"]]
        if len(mems) >= 2 and mems[-1][1] >= 4096 and mems[-2][1] >= 4096:
            mexp = _fit_exponent([(float(s), float(m)) for s, m in mems[-2:]])
            mem_growth.append(
                {
                    "group": group,
                    "kernel": kernel,
                    "role": rs[0]["role"],
                    "peak_extra_mib": mems[-1][1] / 1024,
                    "at_size": mems[-1][0],
                    "exponent": mexp,
                }
            )
    return {
        "rows": rows,
        "ratios": ratios,
        "growth": growth,
        "memory": mem_growth,
        "quick": QUICK,
        "timer": _TIMER[0],
    }


# The benchmark timer's name ("time.perf_counter" unless --benchmark-timer):
# ratios timed in CPU seconds and in wall seconds are not compared.
_TIMER = ["time.perf_counter"]


def pytest_configure(config: pytest.Config) -> None:
    timer = config.getoption("benchmark_timer", None)
    if timer is not None:
        _TIMER[0] = str(timer)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", True):
        return
    summary = summarize(session.benchmarks)
    if not summary["rows"]:
        return
    SUMMARY_PATH.write_text(json.dumps(summary, indent=1))
    tr = terminalreporter
    tr.section("autolien: ours vs peers (items/s from the median round; spread = IQR/median)")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in summary["rows"]:
        groups[r["group"]].append(r)
    for group, rs in sorted(groups.items()):
        tr.write_line(f"[{group}]")
        for r in sorted(rs, key=lambda r: (r["size"] or 0, -r["rate"])):
            n = f"n={r['size']:>9,}" if r["size"] is not None else " " * 11
            tr.write_line(
                f"  {n} {r['role']:4s} {r['kernel']:46s} {r['rate']:14,.0f} /s  spread {r['spread']:5.1%}"
            )
        for q in (q for q in summary["ratios"] if q["group"] == group and q["shown"]):
            tr.write_line(
                f"  ratio {q['key'].split(' | ', 1)[1]}: {q['ratio']:,.2f}x (spread {q['spread']:.0%})"
            )
    if summary["growth"]:
        tr.section("autolien: cost growth with size (time ~ n^k over the three sizes)")
        for g in sorted(summary["growth"], key=lambda g: (g["group"], g["kernel"])):
            tr.write_line(
                f"  {g['group']:16s} {g['role']:4s} {g['kernel']:46s} k = {g['exponent']:5.2f}"
            )
    if summary["memory"]:
        tr.section("autolien: peak extra memory at the largest size (VmHWM over the run)")
        for m in sorted(summary["memory"], key=lambda m: (m["group"], m["kernel"])):
            flag = ""
            if m["exponent"] is not None and m["exponent"] > MEMORY_EXPONENT_LIMIT:
                flag = "  DEFECT: memory grows faster than the input"
            exp = f"{m['exponent']:.2f}" if m["exponent"] is not None else "  - "
            tr.write_line(
                f"  {m['group']:16s} {m['role']:4s} {m['kernel']:46s} {m['peak_extra_mib']:9.1f} MiB"
                f" at n={m['at_size']:,}  growth n^{exp}{flag}"
            )
