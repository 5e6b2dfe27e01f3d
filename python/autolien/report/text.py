"""The dashboard's words: fleet-local times, what an alert's score measures
(with its unit), an alert's evidence as readable pairs, and the detection
quality table."""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "SCORE_UNITS",
    "alert_rows",
    "detection_html",
    "evidence_items",
    "local",
    "score_text",
    "tz_name",
    "valuation_text",
    "vehicle_alerts",
]


def local(v: Any, tz_h: float) -> str:
    """A time (datetime, ISO text or epoch seconds) as fleet-local text."""
    t: datetime = (
        datetime.fromisoformat(v)
        if isinstance(v, str)
        else datetime.fromtimestamp(float(v), UTC)
        if isinstance(v, (int, float))
        else v
    )
    return (t.astimezone(UTC) + timedelta(hours=tz_h)).strftime("%Y-%m-%d %H:%M")


def tz_name(tz_h: float) -> str:
    return f"UTC{tz_h:+g}" if tz_h else "UTC"


# What an alert's score measures, per kind: (label, factor, unit, decimals).
SCORE_UNITS: dict[str, tuple[str, float, str, int]] = {
    "device_silence": ("silent for", 1 / 3600, "h", 1),
    "position_jump": ("jump", 1 / 1000, "km", 2),
    "odometer_rollback": ("rolled back", 1.0, "km", 1),
    "towing": ("moved with ignition off", 1.0, "m", 0),
    "vin_change": ("VIN changes", 1.0, "", 0),
    "entropy_increase": ("CUSUM", 1.0, "robust z-hours", 1),
    "mileage_jump": ("excess", 1.0, "km/month", 0),
    "odometer_freeze": ("driven, odometer still", 1.0, "km", 1),
    "odometer_mismatch": ("|ln(odometer / track)|", 1.0, "", 2),
    "relocation": ("away from home", 1.0, "km", 0),
    "battery_degradation": ("SoH below expected", 100.0, "points", 1),
    "valuation_drift": ("MdAPE above the model card", 1.0, "points", 2),
}

# Evidence fields: label and how to show the value.
_TIMES = {
    "signal_time",
    "silent_since",
    "windows_from",
    "windows_to",
    "segment_start",
    "segment_end",
}
_UNIT_SUFFIX = (
    ("_km_month", "km/month", 0),
    ("_km_24h", "km in 24 h", 1),
    ("_kmh", "km/h", 1),
    ("_kwh", "kWh", 1),
    ("_km", "km", 1),
    ("_m", "m", 0),
    ("_s", "s", 0),
    ("_h", "h", 0),
)
_PERCENT = {"soh", "expected_soh", "deficit"}


def score_text(kind: str, score: float | None) -> str:
    """An alert's score with what it measures and its unit."""
    if score is None or not math.isfinite(score):
        return "-"
    label, k, unit, dec = SCORE_UNITS.get(kind, ("score", 1.0, "", 2))
    return f"{label} {score * k:,.{dec}f}{' ' + unit if unit else ''}"


def evidence_items(evidence: str, tz_h: float) -> list[tuple[str, str]]:
    """An alert's evidence (JSON) as (label, readable value) pairs: times in
    fleet-local time, lengths, durations and ratios with their units, no
    float noise."""
    try:
        ev = json.loads(evidence) if evidence else {}
    except ValueError:
        return [("evidence", evidence)]
    if not isinstance(ev, dict):
        return [("evidence", str(ev))]
    out = []
    for key, v in ev.items():
        label = key.replace("_", " ")
        if key in _TIMES and v is not None:
            out.append((label, f"{local(v, tz_h)} ({tz_name(tz_h)})"))
        elif key in _PERCENT and isinstance(v, (int, float)):
            out.append((label, f"{v * 100:.1f}%"))
        elif key == "km_24h" and isinstance(v, (int, float)):
            out.append(("distance in 24 h", f"{v:,.1f} km"))
        elif isinstance(v, dict):
            parts = ", ".join(
                f"{k} {x:+.2f}" if isinstance(x, (int, float)) else f"{k} {x}"
                for k, x in sorted(v.items(), key=lambda kv: kv[0])
            )
            out.append((f"{label} (robust z)" if key == "z" else label, parts))
        elif isinstance(v, list) and len(v) == 2 and all(isinstance(x, float) for x in v):
            out.append((f"{label} (lat, lon)", f"{v[0]:.5f}, {v[1]:.5f}"))
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append((label, str(v)))
        else:
            for suffix, unit, dec in _UNIT_SUFFIX:
                if key.endswith(suffix) or key == suffix[1:]:
                    out.append(
                        (
                            label.removesuffix(suffix.replace("_", " ")).strip() or label,
                            f"{v:,.{dec}f} {unit}",
                        )
                    )
                    break
            else:
                if key in ("last_lat", "last_lon"):
                    out.append((label, f"{v:.5f}"))
                elif isinstance(v, int) or float(v).is_integer():
                    out.append((label, f"{v:,.0f}"))
                else:
                    out.append((label, f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"))
    return out


def detection_html(det: dict[str, Any] | None, history_days: float | None) -> str:
    """Recall per injected anomaly (or why it cannot be measured) and
    precision per alert kind, counted over alerts."""
    if not det:
        return ""
    rows = []
    for name, v in sorted(det["anomalies"].items()):
        if v.get("recall") is None:
            cells = f"<td colspan='3'>{html.escape(v.get('note', 'not measurable'))}</td>"
        else:
            delay = "-" if v["median_delay_h"] is None else f"{v['median_delay_h']:.1f} h"
            cells = f"<td>{v['recall']:.0%}</td><td>{v['level_reached']:.0%}</td><td>{delay}</td>"
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(v['kind'])}</td><td>{v['n']}</td>{cells}</tr>"
        )
    prec = "".join(
        f"<tr><td>{html.escape(kind)}</td>"
        f"<td>{'n/a' if v['precision'] is None else format(v['precision'], '.0%')}</td>"
        f"<td>{v['true']} of {v['alerts']} ({v.get('related', 0)} related)</td>"
        f"<td>{v.get('anomalies', '-')}</td></tr>"
        for kind, v in sorted(det["alert_kinds"].items())
    )
    hist = f" over {history_days:g} days of history" if history_days is not None else ""
    return (
        f"<h2>Detection against the injected truth</h2><p class='note'>Recall is counted over "
        f"injected anomalies{hist}; precision over alerts (an alert is true when its vehicle "
        "carries an injected anomaly that kind is meant for; alerts on related anomalies are "
        "counted apart and left out of precision).</p><table id='recall'><thead><tr><th>anomaly</th>"
        "<th>alert kind</th><th>injected</th><th>recall</th><th>level reached</th><th>median delay</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table><h3>Precision over alerts</h3>"
        "<table id='precision'><thead><tr><th>alert kind</th><th>precision</th><th>true alerts</th>"
        f"<th>anomalies they cover</th></tr></thead><tbody>{prec}</tbody></table>"
        f"<p class='note'>Emergencies on vehicles without an injected anomaly: "
        f"{det['normal_emergencies']}</p>"
    )


def vehicle_alerts(va: list[dict[str, Any]], tz_h: float) -> list[dict[str, Any]]:
    """A vehicle page's alerts, as the page's script shows them."""
    tz = tz_name(tz_h)
    return [
        {
            "kind": a["kind"],
            "level": a["level"],
            "opened": f"{local(a['opened'], tz_h)} ({tz})",
            "closed": None if a["closed"] is None else f"{local(a['closed'], tz_h)} ({tz})",
            "score": score_text(a["kind"], a["score"]),
            "evidence": evidence_items(a["evidence"], tz_h),
        }
        for a in va
    ]


def valuation_text(r: dict[str, Any], cur: str, tz_h: float) -> str:
    """A vehicle's only valuation so far, in words."""
    return (
        f"Value {r['value'] or 0.0:,.0f} {cur} as of {local(r['time'], tz_h)} ({tz_name(tz_h)}): "
        f"base {r['base_value'] or 0.0:,.0f} {cur} x usage {r['usage_factor']:.3f} "
        f"x market {r['market_factor']:.3f} x battery {r['battery_factor']:.3f}"
        " (one valuation so far)"
    )


def alert_rows(
    rows: list[dict[str, Any]], paged: set[str], last_signal: Any, tz_h: float
) -> list[str]:
    """The alert list's table rows; a vehicle with a page links to it."""
    table_rows = []
    for a in rows:
        age = (a["closed"] or last_signal) - a["opened"]
        vid = html.escape(a["vehicle_id"])
        table_rows.append(
            (
                f"<tr><td><a href='#vehicle={vid}'>{vid}</a></td>"
                if a["vehicle_id"] in paged
                else f"<tr><td>{vid}</td>"
            )
            + f"<td>{html.escape(a['kind'])}</td><td data-v='{a['level_code']}'>"
            f"<span class='lv {a['level']}'>{a['level']}</span></td>"
            f"<td>{local(a['opened'], tz_h)}</td><td data-v='{age.total_seconds() / 3600:.1f}'>"
            f"{age.total_seconds() / 3600:.1f}</td><td>{'open' if a['closed'] is None else 'closed'}</td>"
            f"<td data-v='{html.escape(a['kind'])} {a['score']:020.6f}'>"
            f"{html.escape(score_text(a['kind'], a['score']))}</td></tr>"
        )
    return table_rows
