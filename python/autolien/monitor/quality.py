"""Detection quality against injected ground truth.

Two different counts, labelled apart:

* per anomaly (``anomalies``): recall, the share of injected anomalies that
  an alert of the kind meant for them found within ``horizon_h`` of their
  start, whether that alert reached the expected level, and the delays;
* per alert (``alert_kinds``): precision, the share of alerts opened from
  ``eval_start`` on that an injected anomaly meant to raise that kind
  explains.

An alert of a kind an anomaly is not meant for, but that it entails (a
relocation drives hundreds of km, so it is also a mileage jump), is
*related*: counted apart, neither true nor false. Everything else is false.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from .config import LEVELS, MonitorConfig

__all__ = ["BASELINE_KINDS", "MEANT", "RELATED", "baseline_need_h", "detection_quality"]

# The alert kinds each injected anomaly is meant to raise: only these find it
# (recall) and only these count as true alerts (precision).
MEANT: dict[str, frozenset[str]] = {
    "mileage_jump": frozenset({"mileage_jump"}),
    "rollback": frozenset({"odometer_rollback"}),
    "relocation": frozenset({"relocation"}),
    "rental": frozenset({"entropy_increase"}),
    "silence": frozenset({"device_silence"}),
    "tow": frozenset({"towing"}),
    "battery": frozenset({"battery_degradation"}),
    # the replay harness's odometer jump: the odometer leaps, the track does not
    "odometer_jump": frozenset({"odometer_mismatch"}),
}
# What an anomaly physically entails besides its own kind; reported apart.
RELATED: dict[str, frozenset[str]] = {
    "relocation": frozenset({"mileage_jump", "position_jump"}),  # it drives or hops far
    "rental": frozenset({"mileage_jump", "relocation"}),  # a renter drives more, elsewhere
    "silence": frozenset({"position_jump"}),  # the device may reappear elsewhere
    "tow": frozenset({"position_jump", "relocation"}),  # carried off and left far away
    "odometer_jump": frozenset({"mileage_jump"}),  # the odometer says it drove that far
}
# Kinds scored against a per-vehicle baseline: they are silent until the
# vehicle has lag_h + min_baseline_h hours of history (docs/monitor.md).
BASELINE_KINDS = frozenset({"entropy_increase", "mileage_jump", "relocation"})


def baseline_need_h(config: MonitorConfig | None = None) -> float:
    """Hours of history before a baseline detector can raise anything."""
    c = config or MonitorConfig()
    return float(c.min_baseline_h + c.lag_h)


def _below(x: float, limit: float, digits: int) -> str:
    """x (known to be under ``limit``) with ``digits`` decimals, or as many
    more as it takes to read under the limit as shown: 191.99 h is
    "7.9996 d", never "8.0 d < 8 d"."""
    for d in range(digits, 13):
        s = f"{x:.{d}f}"
        if float(s) < float(f"{limit:g}"):
            return s
    return repr(x)


def _sec(x: Any) -> float:
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return float(pa.array([x]).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())[0].as_py()) / 1e6


def _us(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.float64) / 1e6


_ALERT_COLUMNS = ["vehicle_id", "kind", "level", "level_code"]


def detection_quality(
    alerts: pa.Table,
    truth: pa.Table,
    *,
    eval_start: Any,
    horizon_h: float = 168.0,
    first_seen: Mapping[str, Any] | None = None,
    history_h: float | None = None,
    config: MonitorConfig | None = None,
) -> dict[str, Any]:
    """Per anomaly: recall (an alert of its kind opened from 1 h before its
    start to ``horizon_h`` after), the share that reached the expected level,
    and delays in hours. Per alert kind: precision over the alerts opened
    from ``eval_start`` on (warm-up alerts before it are not judged), with
    related alerts apart. Emergencies on vehicles without an injected
    anomaly are counted apart.

    ``first_seen`` (vehicle -> time of its first row) marks anomalies of a
    baseline kind that start before the vehicle has a whole baseline
    (``lag_h + min_baseline_h`` hours): their recall is not measurable, so
    they are left out of ``n`` and listed under ``not_measurable`` with the
    reason instead of counting as misses. ``history_h`` (hours of data the
    monitor had, for the whole portfolio) does the same for every vehicle.
    An anomaly kind with none measurable has ``recall`` None,
    ``measurable`` False and a ``note`` that says why."""
    cfg = config or MonitorConfig()
    t0 = _sec(eval_start)
    # only the columns read below: the alerts table carries each alert's
    # evidence, and a national book's history holds hundreds of thousands
    A = alerts.select(_ALERT_COLUMNS).to_pylist() if alerts.num_rows else []
    opened = _us(alerts.column("opened")) if alerts.num_rows else np.zeros(0)
    # alert open times and levels by (vehicle, kind), so that each anomaly
    # looks at its own vehicle's alerts, not at every alert
    by_key: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for o, a in zip(opened, A, strict=True):
        by_key.setdefault((a["vehicle_id"], a["kind"]), []).append((float(o), a["level_code"]))
    truth_rows = truth.to_pylist()
    starts = _us(truth.column("start")) if truth.num_rows else np.zeros(0)
    need_s = baseline_need_h(cfg) * 3600.0
    seen = {k: _sec(v) for k, v in (first_seen or {}).items()}
    by_vehicle: dict[str, list[tuple[str, float]]] = {}
    per_kind: dict[str, dict[str, Any]] = {}
    for r, s in zip(truth_rows, starts, strict=True):
        by_vehicle.setdefault(r["vehicle_id"], []).append((r["anomaly"], float(s)))
        k = per_kind.setdefault(
            r["anomaly"],
            {"kind": r["kind"], "n": 0, "detected": 0, "level_ok": 0, "delays_h": [], "nm": []},
        )
        first = seen.get(r["vehicle_id"])
        if r["kind"] in BASELINE_KINDS and history_h is not None and history_h * 3600 < need_s:
            k["nm"].append(
                {
                    "vehicle_id": r["vehicle_id"],
                    "reason": f"history {_below(history_h / 24, need_s / 86400, 1)} d "
                    f"< {need_s / 86400:g} d "
                    "that the baseline needs",
                }
            )
            continue
        if r["kind"] in BASELINE_KINDS and first is not None and s - first < need_s:
            k["nm"].append(
                {
                    "vehicle_id": r["vehicle_id"],
                    "reason": f"history {_below((s - first) / 3600, need_s / 3600, 0)} h "
                    "before the start < "
                    f"{need_s / 3600:g} h (lag_h + min_baseline_h) that {r['kind']} needs",
                }
            )
            continue
        k["n"] += 1
        hits = [
            (o, code)
            for o, code in by_key.get((r["vehicle_id"], r["kind"]), ())
            if s - 3600 <= o <= s + horizon_h * 3600
        ]
        if hits:
            k["detected"] += 1
            k["delays_h"].append((min(o for o, _ in hits) - s) / 3600)
            best = max(code for _, code in hits)
            k["level_ok"] += int(best >= LEVELS.index(r["expected_level"]))
    summary: dict[str, Any] = {"anomalies": {}, "alert_kinds": {}, "normal_emergencies": 0}
    for name, k in per_kind.items():
        d = k["delays_h"]
        n = k["n"]
        summary["anomalies"][name] = {
            "kind": k["kind"],
            "n": n,
            "detected": k["detected"],
            "recall": k["detected"] / n if n else None,
            "level_reached": k["level_ok"] / n if n else None,
            "median_delay_h": float(np.median(d)) if d else None,
            "max_delay_h": float(max(d)) if d else None,
            "delays_h": [float(x) for x in d],
            "not_measurable": k["nm"],
            "measurable": bool(n),
        }
        if not n and k["nm"]:
            summary["anomalies"][name]["note"] = f"not measurable: {k['nm'][0]['reason']}"
    counts: dict[str, dict[str, int]] = {}
    covered: dict[str, set[str]] = {}
    for o, a in zip(opened, A, strict=True):
        if o < t0:
            continue
        c = counts.setdefault(a["kind"], {"alerts": 0, "true": 0, "related": 0, "false": 0})
        c["alerts"] += 1
        injected = [(name, s) for name, s in by_vehicle.get(a["vehicle_id"], []) if o >= s - 3600]
        if any(a["kind"] in MEANT.get(name, ()) for name, _ in injected):
            c["true"] += 1
            covered.setdefault(a["kind"], set()).add(a["vehicle_id"])
        elif any(a["kind"] in RELATED.get(name, ()) for name, _ in injected):
            c["related"] += 1
        else:
            c["false"] += 1
        if a["vehicle_id"] not in by_vehicle and a["level"] == "emergency":
            summary["normal_emergencies"] += 1
    for kind, c in sorted(counts.items()):
        judged = c["true"] + c["false"]
        summary["alert_kinds"][kind] = {
            **c,
            # true / (true + false): related alerts are neither
            "precision": c["true"] / judged if judged else None,
            # true / all alerts: related ones counted against
            "precision_strict": c["true"] / c["alerts"],
            # vehicles with an injected anomaly that the true alerts are on
            "anomalies": len(covered.get(kind, ())),
        }
    return summary
