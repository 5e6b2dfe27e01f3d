"""Shared bench plumbing: sizes, and the ours-vs-peer ratio summary.

Every benchmark records ``extra_info["role"]`` ("ours" or "peer"),
``extra_info["kernel"]`` (what is measured) and ``extra_info["items"]`` (work
items per round). After the pytest-benchmark tables, a summary prints items/s
for each entry and the ratio of our best entry to each peer, within each group.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import pytest

QUICK = os.environ.get("AUTOLIEN_BENCH_QUICK", "") not in ("", "0")


def size(full: int, quick: int) -> int:
    """The benchmark size: ``full`` normally, ``quick`` in CI's smoke mode."""
    return quick if QUICK else full


def tag(benchmark: Any, role: str, kernel: str, items: int, *, pair: str | None = None) -> None:
    """Labels a benchmark. Entries with the same ``pair`` (say, a batch size)
    are compared with each other; otherwise our best entry faces each peer."""
    benchmark.extra_info.update({"role": role, "kernel": kernel, "items": items})
    if pair is not None:
        benchmark.extra_info["pair"] = pair


def _median(bench: Any) -> float | None:
    stats = getattr(bench, "stats", None)
    if stats is None:
        return None
    inner = getattr(stats, "stats", stats)
    med = getattr(inner, "median", None)
    return float(med) if med else None


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", True):
        return
    groups: dict[str, list[tuple[str, str, float, float, str | None]]] = defaultdict(list)
    for bench in session.benchmarks:
        info = bench.extra_info
        med = _median(bench)
        if not med or "role" not in info:
            continue
        iqr = getattr(getattr(bench, "stats", None), "iqr", 0.0) or 0.0
        rate = info["items"] / med
        groups[bench.group or bench.name].append(
            (info["role"], info["kernel"], rate, iqr / med, info.get("pair"))
        )
    if not groups:
        return
    tr = terminalreporter
    tr.section("autolien: ours vs peers (items/s from the median round; spread = IQR/median)")
    for group, rows in sorted(groups.items()):
        tr.write_line(f"[{group}]")
        for role, kernel, rate, spread, _ in sorted(rows, key=lambda r: -r[2]):
            tr.write_line(f"  {role:4s} {kernel:44s} {rate:14,.0f} /s   spread {spread:5.1%}")
        for ours, peer in _ratio_pairs(rows):
            tr.write_line(f"  ratio {ours[1]} / {peer[1]}: {ours[2] / peer[2]:,.2f}x")


def _ratio_pairs(rows: list[Any]) -> list[tuple[Any, Any]]:
    ours = [r for r in rows if r[0] == "ours"]
    peers = [r for r in rows if r[0] == "peer"]
    if any(r[4] is not None for r in rows):
        return [(o, p) for o in ours for p in peers if o[4] is not None and o[4] == p[4]]
    if not ours:
        return []
    best = max(ours, key=lambda r: r[2])
    return [(best, p) for p in peers]
