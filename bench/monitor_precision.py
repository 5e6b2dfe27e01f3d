"""Alert precision of autolien.monitor on three simulated portfolios
(issue 16.6): per alert kind, true / (true + false) with its counts, and per
anomaly, recall, level reached and delays, so that a precision gain can be
checked against what it costs.

    python bench/monitor_precision.py [SEEDS] [MILEAGE_CONFIRM_H]
    python bench/monitor_precision.py --fleet FLEETS [FIRST_SEED] [SIZE]

* ``mixed``: SEEDS fleets of 30 vehicles for 30 days, two of each anomaly
  from day 18 (the bench/monitor_quality.py portfolio);
* ``mostly-normal``: SEEDS fleets of 60, one of each anomaly;
* ``demo``: the demo's shape, SEEDS fleets of 200 vehicles for 14 days, 10%
  of them anomalous from day 9 (``autolien simulate`` defaults), scored by
  ``score`` without the frame round trip.

Counting is autolien.monitor.quality.detection_quality's (MEANT / RELATED),
alerts judged from the anomaly day on. MILEAGE_CONFIRM_H (default: the
config's, 24) sets ``MonitorConfig.mileage_confirm_h``; 0 is the
unconfirmed single-window test. docs/monitor.md quotes the output.

``--fleet`` measures one large portfolio the way docs/monitor.md's
100,000-vehicle check did ("The entropy CUSUM at fleet scale"): FLEETS
fleets of SIZE vehicles (default 200 of 500, seeds from FIRST_SEED,
default 1000) for 15 days, 8 of each anomaly from day 9, each fleet
simulated and scored on a worker process (one per core). False alerts
too rare for the small portfolios add up there.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import sys
from collections import Counter
from typing import Any

import numpy as np

from autolien.monitor import MonitorConfig, score
from autolien.monitor.quality import detection_quality
from autolien.schemas import LEVELS
from autolien.sim import ANOMALIES, simulate_fleet

EPOCH = dt.datetime(2026, 9, 30, 16, tzinfo=dt.UTC)  # the simulator's day 0 (local midnight)


def _portfolios(seeds: int) -> dict[str, list[tuple[int, int, int, dict[str, int]]]]:
    kinds = list(ANOMALIES)
    demo_share = dict.fromkeys(kinds, 0)
    for i in range(20):  # 10% of 200, dealt round the kinds as `autolien simulate` does
        demo_share[kinds[i % len(kinds)]] += 1
    return {
        "mixed": [(s, 30, 30, dict.fromkeys(kinds, 2)) for s in range(seeds)],
        "mostly-normal": [(s, 60, 30, dict.fromkeys(kinds, 1)) for s in range(seeds)],
        "demo": [(s, 200, 14, demo_share) for s in range(seeds)],
    }


def _level_delays(alerts: Any, truth: Any) -> dict[str, list[float]]:
    """Per anomaly, hours from its start to the first alert of its kind at
    the expected level (opened within 168 h, as detection_quality counts).
    The time is the signal that raised the alert to its final level, so an
    alert that went past the expected level is left out (not known when it
    passed it): read it for kinds capped at their expected level."""
    out: dict[str, list[float]] = {}
    rows = alerts.to_pylist()
    for r in truth.to_pylist():
        s = r["start"].timestamp()
        need = LEVELS.index(r["expected_level"])
        times = [
            json.loads(a["evidence"])["signal_time"]
            for a in rows
            if a["vehicle_id"] == r["vehicle_id"]
            and a["kind"] == r["kind"]
            and a["level_code"] == need
            and s - 3600 <= a["opened"].timestamp() <= s + 168 * 3600
        ]
        if times:
            out.setdefault(r["anomaly"], []).append((min(times) - s) / 3600)
    return out


def _fleet(
    job: tuple[int, int, int, dict[str, int], MonitorConfig | None, int | None],
) -> dict[str, Any]:
    """One fleet simulated and scored: its counts and delays, to add up."""
    seed, n, days, anomalies, config, day = job
    anomaly_day = day if day is not None else (18 if days == 30 else days * 2 // 3)
    f = simulate_fleet(n, days, seed=seed, anomaly_day=anomaly_day, anomalies=anomalies)
    alerts = score(f.tracks, f.odometer, config=config)
    eval_start = EPOCH + dt.timedelta(days=anomaly_day)
    q = detection_quality(alerts, f.truth, eval_start=eval_start)
    injected = set(f.truth.column("vehicle_id").to_pylist())
    return {
        "q": q,
        "to_level": _level_delays(alerts, f.truth),
        "above_warning": sum(
            1
            for a in alerts.to_pylist()
            if a["vehicle_id"] not in injected and a["level"] != "warning"
        ),
    }


def measure(
    fleets: list[tuple[int, int, int, dict[str, int]]],
    config: MonitorConfig | None = None,
    *,
    anomaly_day: int | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {}
    kinds: dict[str, Counter[str]] = {}
    normal_above_warning = 0
    jobs = [(*f, config, anomaly_day) for f in fleets]
    if processes > 1:
        pool = multiprocessing.get_context("spawn").Pool(processes)
        results: Any = pool.imap_unordered(_fleet, jobs)
    else:
        pool, results = None, map(_fleet, jobs)
    try:
        for got in results:
            q, to_level = got["q"], got["to_level"]
            normal_above_warning += got["above_warning"]
            for name, v in q["anomalies"].items():
                p = per.setdefault(
                    name, {"n": [], "found": [], "level": [], "delay": [], "level_delay": []}
                )
                p["level_delay"] += to_level.get(name, [])
                p["n"].append(v["n"])
                p["found"].append(v["detected"])
                p["level"].append((v["level_reached"] or 0.0) * v["n"])
                p["delay"] += v["delays_h"]
            for kind, v in q["alert_kinds"].items():
                kinds.setdefault(kind, Counter()).update(
                    {k: v[k] for k in ("alerts", "true", "related", "false")}
                )
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {
        "precision": {
            k: {
                **dict(c),
                "precision": round(c["true"] / (c["true"] + c["false"]), 3)
                if c["true"] + c["false"]
                else None,
            }
            for k, c in sorted(kinds.items())
        },
        "anomalies": {
            name: {
                "n": int(sum(p["n"])),
                "recall": round(sum(p["found"]) / sum(p["n"]), 3) if sum(p["n"]) else None,
                "level_reached": round(sum(p["level"]) / sum(p["n"]), 3) if sum(p["n"]) else None,
                "median_delay_h": round(float(np.median(p["delay"])), 1) if p["delay"] else None,
                "max_delay_h": round(float(np.max(p["delay"])), 1) if p["delay"] else None,
                # to the expected level (an alert's evidence is the signal that raised it there)
                "median_delay_to_level_h": round(float(np.median(p["level_delay"])), 1)
                if p["level_delay"]
                else None,
                "max_delay_to_level_h": round(float(np.max(p["level_delay"])), 1)
                if p["level_delay"]
                else None,
            }
            for name, p in sorted(per.items())
        },
        "normal_vehicle_alerts_above_warning": normal_above_warning,
    }


def main(seeds: int = 3, mileage_confirm_h: int | None = None) -> dict[str, Any]:
    cfg = (
        MonitorConfig()
        if mileage_confirm_h is None
        else MonitorConfig(mileage_confirm_h=mileage_confirm_h)
    )
    return {name: measure(fleets, cfg) for name, fleets in _portfolios(seeds).items()}


def fleet_scale(fleets: int = 200, first_seed: int = 1000, size: int = 500) -> dict[str, Any]:
    """docs/monitor.md's fleet-scale check: ``fleets`` x ``size`` vehicles."""
    jobs = [
        (s, size, 15, dict.fromkeys(ANOMALIES, 8)) for s in range(first_seed, first_seed + fleets)
    ]
    return measure(jobs, MonitorConfig(), anomaly_day=9, processes=os.cpu_count() or 1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fleet"]:
        print(json.dumps(fleet_scale(*[int(a) for a in sys.argv[2:5]]), indent=1))
    else:
        print(json.dumps(main(*[int(a) for a in sys.argv[1:3]]), indent=1))
