"""Detection quality of autolien.monitor over many simulated fleets.

    python bench/monitor_quality.py [SEEDS] [VEHICLES] [PER_ANOMALY]

Each seed simulates VEHICLES vehicles for 30 days with PER_ANOMALY of each
injected anomaly from day 18 (the rest are normal), scores them in one batch
and matches the alerts against the ground truth (autolien.monitor.quality).
Prints, per anomaly, recall, level reached and detection delays; per alert
kind, precision (true / (true + false), related alerts apart) with its
counts; emergencies on normal vehicles; and the false alerts per normal
vehicle-day by level. docs/monitor.md quotes its output.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from autolien.monitor import score
from autolien.monitor.quality import detection_quality
from autolien.sim import ANOMALIES, simulate_fleet

EVAL_START = "2026-10-18T16:00:00Z"
EVAL_DAYS = 12.0  # day 18 to day 30


def main(seeds: int = 10, vehicles: int = 30, per_anomaly: int = 2) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {}
    kinds: dict[str, Counter[str]] = {}
    normal_em = 0
    normal_levels: Counter[str] = Counter()
    normal_vehicles = 0
    for seed in range(seeds):
        f = simulate_fleet(
            vehicles,
            30,
            seed=seed,
            anomaly_day=18,
            anomalies=dict.fromkeys(ANOMALIES, per_anomaly),
        )
        alerts = score(f.tracks, f.odometer)
        q = detection_quality(alerts, f.truth, eval_start=EVAL_START)
        normal_em += q["normal_emergencies"]
        injected = set(f.truth.column("vehicle_id").to_pylist())
        normal_vehicles += vehicles - len(injected)
        t0 = pa.scalar(EVAL_START).cast(alerts.schema.field("opened").type)
        late = alerts.filter(pc.greater_equal(alerts.column("opened"), t0))
        for vid, level in zip(
            late.column("vehicle_id").to_pylist(), late.column("level").to_pylist(), strict=True
        ):
            if vid not in injected:
                normal_levels[level] += 1
        for name, v in q["anomalies"].items():
            p = per.setdefault(name, {"n": [], "recall": [], "level": [], "delay": []})
            p["n"].append(v["n"])
            p["recall"].append(v["detected"])
            p["level"].append(v["level_reached"] * v["n"])
            p["delay"] += v["delays_h"]
        for kind, v in q["alert_kinds"].items():
            kinds.setdefault(kind, Counter()).update(
                {k: v[k] for k in ("alerts", "true", "related", "false")}
            )
        print(f"seed {seed}: done", file=sys.stderr)
    days = normal_vehicles * EVAL_DAYS
    return {
        "fleets": seeds,
        "vehicles": seeds * vehicles,
        "normal_vehicles": normal_vehicles,
        "anomalies": {
            name: {
                "n": int(sum(p["n"])),
                "recall": sum(p["recall"]) / sum(p["n"]),
                "level_reached": sum(p["level"]) / sum(p["n"]),
                "median_delay_h": round(float(np.median(p["delay"])), 1) if p["delay"] else None,
                "max_delay_h": round(float(np.max(p["delay"])), 1) if p["delay"] else None,
            }
            for name, p in per.items()
        },
        "precision_per_alert": {
            k: {
                **dict(c),
                "precision": round(c["true"] / (c["true"] + c["false"]), 3)
                if c["true"] + c["false"]
                else None,
            }
            for k, c in sorted(kinds.items())
        },
        "emergencies_on_normal_vehicles": normal_em,
        "normal_vehicle_alerts_per_day": {
            lvl: round(n / days, 4) for lvl, n in sorted(normal_levels.items())
        },
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    print(json.dumps(main(*args), indent=2))
