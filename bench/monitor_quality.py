"""Detection quality of autolien.monitor over many simulated fleets.

    python bench/monitor_quality.py [SEEDS] [VEHICLES]

Each seed simulates VEHICLES vehicles for 30 days with two of each injected
anomaly from day 18, scores them in one batch and matches the alerts against
the ground truth (autolien.monitor.quality). Prints recall, level reached and
detection delays per anomaly, precision per alert kind, and emergencies on
normal vehicles. docs/monitor.md quotes its output.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from autolien.monitor import score
from autolien.monitor.quality import detection_quality
from autolien.sim import ANOMALIES, simulate_fleet


def main(seeds: int = 10, vehicles: int = 30) -> dict[str, object]:
    per: dict[str, dict[str, list[float]]] = {}
    kinds: dict[str, list[int]] = {}
    normal_em = 0
    for seed in range(seeds):
        f = simulate_fleet(
            vehicles, 30, seed=seed, anomaly_day=18, anomalies=dict.fromkeys(ANOMALIES, 2)
        )
        q = detection_quality(
            score(f.tracks, f.odometer), f.truth, eval_start="2026-10-18T16:00:00Z"
        )
        normal_em += q["normal_emergencies"]
        for name, v in q["anomalies"].items():
            p = per.setdefault(name, {"n": [], "recall": [], "level": [], "delay": []})
            p["n"].append(v["n"])
            p["recall"].append(v["recall"] * v["n"])
            p["level"].append(v["level_reached"] * v["n"])
        for kind, v in q["alert_kinds"].items():
            k = kinds.setdefault(kind, [0, 0])
            k[0] += v["true"]
            k[1] += v["alerts"]
        for name, v in q["anomalies"].items():
            per[name]["delay"] += v["delays_h"]
        print(f"seed {seed}: done", file=sys.stderr)
    return {
        "fleets": seeds,
        "vehicles": seeds * vehicles,
        "anomalies": {
            name: {
                "n": int(sum(p["n"])),
                "recall": sum(p["recall"]) / sum(p["n"]),
                "level_reached": sum(p["level"]) / sum(p["n"]),
                "median_delay_h": round(float(np.median(p["delay"])), 1),
                "max_delay_h": round(float(np.max(p["delay"])), 1),
            }
            for name, p in per.items()
        },
        "precision": {
            k: {"true": t, "alerts": n, "precision": round(t / n, 3)} for k, (t, n) in kinds.items()
        },
        "emergencies_on_normal_vehicles": normal_em,
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args), indent=2))
