"""Detection quality against injected ground truth: recall, precision, the
level reached and the detection delay per anomaly kind."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from .config import LEVELS, MonitorConfig

__all__ = ["BASELINE_KINDS", "COMPATIBLE", "baseline_need_h", "detection_quality"]

# Kinds that an injected behaviour legitimately raises besides its own (a
# relocation drives far, so it is also a mileage jump).
COMPATIBLE = {
    "mileage_jump": {"mileage_jump"},
    "rollback": {"odometer_rollback", "odometer_mismatch"},
    "relocation": {"relocation", "mileage_jump", "entropy_increase", "position_jump"},
    "rental": {"entropy_increase", "mileage_jump", "relocation"},
    "silence": {"device_silence", "position_jump"},  # it may reappear elsewhere
    # carried off and left standing: far from home, nothing driven
    "tow": {"towing", "position_jump", "relocation", "odometer_mismatch", "entropy_increase"},
    # from the valuation stage's charge segments (GB/T 32960)
    "battery": {"battery_degradation"},
}


# Alert kinds scored against a vehicle's own baseline: none can be raised
# before the baseline has min_baseline_h hours of data and its lag behind it.
BASELINE_KINDS = frozenset({"mileage_jump", "entropy_increase"})


def baseline_need_h(config: MonitorConfig | None = None) -> float:
    """Hours of history before a baseline detector can raise anything."""
    c = config or MonitorConfig()
    return float(c.min_baseline_h + c.lag_h)


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64) / 1e6


def detection_quality(
    alerts: pa.Table,
    truth: pa.Table,
    *,
    eval_start: Any,
    horizon_h: float = 168.0,
    history_h: float | None = None,
    config: MonitorConfig | None = None,
) -> dict[str, Any]:
    """Per truth kind: recall (detected within ``horizon_h`` of the start),
    whether the expected level was reached, and delays in hours; per alert
    kind: precision over the alerts opened from ``eval_start`` on (warm-up
    alerts before it are not judged), counted over alerts (``true`` of
    ``alerts`` are on a vehicle with a compatible injected anomaly), beside
    ``anomalies``: how many injected anomalies those true alerts cover.
    Emergencies on vehicles without an injected anomaly are counted apart.

    With ``history_h`` (hours of data the monitor had) shorter than a
    baseline detector needs (:func:`baseline_need_h`), its anomalies are
    ``measurable: False`` with the reason, and recall is None, not 0."""
    t0 = (
        float(pa.array([eval_start]).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())[0].as_py())
        / 1e6
    )
    A = alerts.to_pylist()
    opened = _us(alerts.column("opened")) if alerts.num_rows else np.zeros(0)
    truth_rows = truth.to_pylist()
    starts = _us(truth.column("start")) if truth.num_rows else np.zeros(0)
    by_vehicle = {r["vehicle_id"]: (r, s) for r, s in zip(truth_rows, starts, strict=True)}
    per_kind: dict[str, dict[str, Any]] = {}
    for r, s in zip(truth_rows, starts, strict=True):
        k = per_kind.setdefault(
            r["anomaly"], {"kind": r["kind"], "n": 0, "detected": 0, "level_ok": 0, "delays_h": []}
        )
        k["n"] += 1
        hits = [
            (o, a)
            for o, a in zip(opened, A, strict=True)
            if a["vehicle_id"] == r["vehicle_id"]
            and a["kind"] == r["kind"]
            and s - 3600 <= o <= s + horizon_h * 3600
        ]
        if hits:
            k["detected"] += 1
            k["delays_h"].append((min(o for o, _ in hits) - s) / 3600)
            best = max(a["level_code"] for _, a in hits)
            k["level_ok"] += int(best >= LEVELS.index(r["expected_level"]))
    summary: dict[str, Any] = {"anomalies": {}, "alert_kinds": {}, "normal_emergencies": 0}
    need = baseline_need_h(config)
    for name, k in per_kind.items():
        d = k["delays_h"]
        short = history_h is not None and k["kind"] in BASELINE_KINDS and history_h < need
        summary["anomalies"][name] = {
            "kind": k["kind"],
            "n": k["n"],
            "recall": None if short else k["detected"] / k["n"],
            "level_reached": None if short else k["level_ok"] / k["n"],
            "median_delay_h": float(np.median(d)) if d else None,
            "max_delay_h": float(max(d)) if d else None,
            "delays_h": [float(x) for x in d],
            "measurable": not short,
        }
        if short:
            assert history_h is not None
            summary["anomalies"][name]["note"] = (
                f"not measurable: history {history_h / 24:.1f} d < {need / 24:g} d "
                "that the baseline needs"
            )
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    covered: dict[str, set[str]] = defaultdict(set)
    for o, a in zip(opened, A, strict=True):
        if o < t0:
            continue
        tr = by_vehicle.get(a["vehicle_id"])
        ok = tr is not None and a["kind"] in COMPATIBLE[tr[0]["anomaly"]] and o >= tr[1] - 3600
        counts[a["kind"]][0] += int(ok)
        counts[a["kind"]][1] += 1
        if ok:
            covered[a["kind"]].add(a["vehicle_id"])
        if tr is None and a["level"] == "emergency":
            summary["normal_emergencies"] += 1
    for kind, (tp, n) in sorted(counts.items()):
        summary["alert_kinds"][kind] = {
            "alerts": n,
            "true": tp,
            "precision": tp / n,  # over alerts
            "anomalies": len(covered[kind]),  # injected anomalies those true alerts are on
        }
    return summary
