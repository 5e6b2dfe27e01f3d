"""The risk dashboard: one self-contained ``index.html`` (plotly.js embedded,
no server, no network) with the portfolio overview, the sortable alert list
and a page per alerted vehicle.

A vehicle page shows its track on projected coordinates (no tile layer) with
each alert's path highlighted, the entropy features against their baseline
band, odometer against track distance, and its ledger history with each
entry's inclusion proof checked against the current root. Vehicle pages are
plotted in the browser from embedded data when selected (``#vehicle=<id>``).
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["SCORE_UNITS", "build_dashboard", "evidence_items", "score_text"]

_FEATURES = (
    "location_entropy",
    "new_place_share",
    "stop_entropy",
    "speed_entropy",
    "turn_entropy",
    "km_24h",
)
_LEVEL_COLOURS = {"warning": "#f0ad4e", "alert": "#d9534f", "emergency": "#7b1fa2"}
_MAX_TRACK_POINTS = 3000


def _xy(
    lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float
) -> tuple[list[float], list[float]]:
    """Local east/north in km (equirectangular about the first fix)."""
    k = 111.195
    x = (lon - lon0) * k * math.cos(math.radians(lat0))
    y = (lat - lat0) * k
    return np.round(x, 4).tolist(), np.round(y, 4).tolist()


def _nullable(a: np.ndarray, digits: int = 4) -> list[float | None]:
    """Values for JSON, NaN as null (plotly draws a gap)."""
    return [None if math.isnan(v) else round(float(v), digits) for v in a]


def _thin(n: int, most: int) -> np.ndarray:
    return (
        np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))
        if n > most
        else np.arange(n)
    )


def _iso(v: Any) -> str | None:
    return None if v is None else v.isoformat()


def _local(v: Any, tz_h: float) -> str:
    """A time (datetime, ISO text or epoch seconds) as fleet-local text."""
    t: datetime = (
        datetime.fromisoformat(v)
        if isinstance(v, str)
        else datetime.fromtimestamp(float(v), UTC)
        if isinstance(v, (int, float))
        else v
    )
    return (t.astimezone(UTC) + timedelta(hours=tz_h)).strftime("%Y-%m-%d %H:%M")


def _tz_name(tz_h: float) -> str:
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
            out.append((label, f"{_local(v, tz_h)} ({_tz_name(tz_h)})"))
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


class _Fig:
    """A figure as plotly.js reads it, built without plotly's per-value
    validation and deep copies, which took 80% of a 250-page dashboard."""

    def __init__(self, data: list[dict[str, Any]]) -> None:
        self.data = list(data)
        self.layout: dict[str, Any] = {}

    def update_layout(self, **kw: Any) -> None:
        self.layout.update(kw)

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}


def _plain(v: Any) -> Any:
    """JSON-ready: arrays to lists, NaN and infinities to null."""
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "f":
            out = v.astype(object)
            out[~np.isfinite(v)] = None
            return out.tolist()
        return v.tolist()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [
            _plain(x)
            if isinstance(x, (list, dict, np.ndarray))
            else (None if isinstance(x, float) and not math.isfinite(x) else x)
            for x in v
        ]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def _trace(kind: str) -> Any:
    def make(**kw: Any) -> dict[str, Any]:
        return {"type": kind, **{k: _plain(v) for k, v in kw.items() if v is not None}}

    return make


_Scatter = _trace("scatter")
_Scattergl = _trace("scattergl")


def _ledger_rows(ledger_dir: Path | None, vins: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    from ..ledger import AssetLedger, verify_inclusion  # noqa: PLC0415
    from ..ledger.assets import CONFIG  # noqa: PLC0415

    if ledger_dir is None or not (ledger_dir / CONFIG).exists():
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    led = AssetLedger.open(ledger_dir, read_only=True)
    try:
        size, root = led.size, led.root()
        for vid, vin in vins.items():
            code = led.code_for_vin(vin)
            if code is None:
                continue
            rows = []
            for e in led.history(code):
                seq = e["seq"]
                ok = verify_inclusion(led.leaf_hash(seq), seq, size, led.inclusion_proof(seq), root)
                rows.append(
                    {
                        "seq": seq,
                        "type": e["type"],
                        "time": e["time"],
                        "proof": "verified" if ok else "FAILED",
                    }
                )
            out[vid] = rows
    finally:
        led.close()
    return out


def build_dashboard(
    db: str | Path,
    out_dir: str | Path,
    *,
    ledger_dir: str | Path | None = None,
    max_vehicles: int = 250,
    max_alert_rows: int = 5000,
    detection: dict[str, Any] | None = None,
    history_days: float | None = None,
    tz_offset_h: float | None = None,
) -> dict[str, Any]:
    """Writes ``out_dir/index.html`` from the store; returns what it holds.

    A page stays loadable at any fleet size: vehicle pages go to the
    ``max_vehicles`` vehicles with the most severe (then most recent) alerts,
    the alert list to the ``max_alert_rows`` most severe alerts, and the
    overview charts are aggregated in the store. Every alert of the store is
    counted (the monitor's and the valuation's battery alerts), as the
    ``autolien run`` summary counts them. ``detection`` (the run's detection
    quality, when the portfolio has ground truth) adds a recall/precision
    table; times show in fleet-local time (``tz_offset_h``, default the
    monitor's). A series of one point is shown as a number, not a chart."""
    from ..monitor.config import MonitorConfig  # noqa: PLC0415

    tz_h = MonitorConfig().tz_offset_h if tz_offset_h is None else tz_offset_h
    tz = _tz_name(tz_h)
    import plotly  # noqa: PLC0415
    import plotly.graph_objects as go  # noqa: PLC0415

    from ..telemetry import Store  # noqa: PLC0415

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with Store(db, read_only=True) as store:
        have = set(store.tables())
        if "alerts" not in have:
            raise ValueError(
                f"{db} has no alerts table; run `autolien monitor` or `autolien run` first"
            )
        counts = store.query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE level = 'emergency') AS emergency, "
            "count(*) FILTER (WHERE level = 'alert') AS alert, "
            "count(*) FILTER (WHERE level = 'warning') AS warning, "
            "count(DISTINCT vehicle_id) AS vehicles, max(last_signal) AS last_signal FROM alerts"
        ).to_pylist()[0]
        alerts = store.query(
            f"SELECT * FROM alerts ORDER BY level_code DESC, opened LIMIT {int(max_alert_rows)}"
        )
        per_day = store.query(
            "SELECT strftime(opened, '%Y-%m-%d') AS d, level, count(*) AS n FROM alerts "
            "GROUP BY ALL ORDER BY d"
        ).to_pylist()
        ids = sorted(
            store.query(
                "SELECT vehicle_id FROM alerts GROUP BY vehicle_id "
                f"ORDER BY max(level_code) DESC, max(opened) DESC, vehicle_id LIMIT {int(max_vehicles)}"
            )
            .column(0)
            .to_pylist()
        )
        store.con.register("_dash_ids", pa.table({"v": pa.array(ids, pa.string())}))
        vehicle_alerts = store.query(
            "SELECT * FROM alerts WHERE vehicle_id IN (SELECT v FROM _dash_ids) "
            "ORDER BY level_code DESC, opened"
        ).to_pylist()
        feats = (
            store.query(
                "SELECT * FROM monitor_features WHERE vehicle_id IN (SELECT v FROM _dash_ids) "
                "ORDER BY vehicle_id, hour"
            )
            if "monitor_features" in have
            else pa.table({})
        )
        fleet_km = (
            store.query(
                "SELECT strftime(hour, '%Y-%m-%d') AS d, sum(coalesce(km_track, 0)) AS km "
                "FROM monitor_features GROUP BY d ORDER BY d"
            ).to_pylist()
            if "monitor_features" in have
            else []
        )
        book = store.query("SELECT * FROM loan_book") if "loan_book" in have else None
        valuations = (
            store.query(
                "SELECT * FROM valuations WHERE vehicle_id IN (SELECT v FROM _dash_ids) ORDER BY time"
            )
            if "valuations" in have
            else None
        )
        totals = (
            store.query(
                "SELECT time, sum(value) AS value, any_value(currency) AS currency FROM valuations "
                "GROUP BY time ORDER BY time"
            ).to_pylist()
            if "valuations" in have
            else []
        )
        ltv_t = store.query("SELECT ltv FROM ltv") if "ltv" in have else None
        if "locations" in have and book is not None:
            track = store.query(
                "SELECT lb.vehicle_id, l.time, l.lat, l.lon, l.mileage_km FROM locations l JOIN loan_book lb "
                "ON lb.terminal_id = l.terminal_id WHERE lb.vehicle_id IN (SELECT v FROM _dash_ids) "
                "ORDER BY lb.vehicle_id, l.time"
            )
        elif "gnss_track" in have:
            track = store.query(
                "SELECT vehicle_id, time, lat, lon, NULL::DOUBLE AS mileage_km FROM gnss_track "
                "WHERE used AND vehicle_id IN (SELECT v FROM _dash_ids) ORDER BY vehicle_id, time"
            )
        else:
            track = None
    vins = (
        dict(
            zip(book.column("vehicle_id").to_pylist(), book.column("vin").to_pylist(), strict=True)
        )
        if book is not None
        else {}
    )
    book_currency = (
        dict(
            zip(
                book.column("vehicle_id").to_pylist(),
                book.column("currency").to_pylist(),
                strict=True,
            )
        )
        if book is not None and "currency" in book.column_names
        else {}
    )
    ledger = _ledger_rows(
        Path(ledger_dir) if ledger_dir else None, {v: vins[v] for v in ids if v in vins}
    )
    for entries in ledger.values():
        for e in entries:
            e["time"] = _local(e["time"], tz_h)

    # -- overview ---------------------------------------------------------------
    rows = alerts.to_pylist()
    figs: dict[str, Any] = {}
    days: dict[str, dict[str, int]] = {}
    for r in per_day:
        days.setdefault(r["d"], {})[r["level"]] = r["n"]
    dx = sorted(days)
    fig = go.Figure(
        [
            go.Bar(x=dx, y=[days[d].get(lv, 0) for d in dx], name=lv, marker_color=c)
            for lv, c in _LEVEL_COLOURS.items()
        ]
    )
    fig.update_layout(
        barmode="stack",
        title="Alerts opened per day, by level",
        height=320,
        xaxis={"type": "category", "title": {"text": "day opened (UTC)"}},
        yaxis={"title": {"text": "alerts"}, "rangemode": "tozero"},
        margin={"l": 50, "r": 10, "t": 40, "b": 50},
    )
    figs["overview_alerts"] = fig
    stats: list[tuple[str, str]] = []
    if len(fleet_km) == 1:
        stats.append(
            (
                f"Fleet distance on {fleet_km[0]['d']}",
                f"{fleet_km[0]['km']:,.0f} km (one day of data)",
            )
        )
    elif fleet_km:
        fig = go.Figure(
            [
                go.Scatter(
                    x=[r["d"] for r in fleet_km],
                    y=[round(r["km"], 1) for r in fleet_km],
                    mode="lines+markers",
                    name="km",
                )
            ]
        )
        fig.update_layout(
            title="Fleet distance per day (km, from the tracks)",
            height=320,
            xaxis={"title": {"text": "day (UTC)"}},
            yaxis={"title": {"text": "km"}, "rangemode": "tozero"},
            margin={"l": 60, "r": 10, "t": 40, "b": 50},
        )
        figs["overview_km"] = fig

    if len(totals) == 1:
        # one run so far: a number, not a one-point chart
        t = totals[0]
        stats.append(
            (
                "Total collateral value",
                f"{t['value'] or 0.0:,.0f} {t['currency']} as of {_local(t['time'], tz_h)} ({tz})",
            )
        )
    elif totals:
        cur = totals[0]["currency"]
        fig = go.Figure(
            [
                go.Scatter(
                    x=[r["time"].isoformat() for r in totals],
                    y=[r["value"] or 0.0 for r in totals],
                    mode="lines+markers",
                    name="value",
                )
            ]
        )
        fig.update_layout(
            title=f"Total collateral value ({cur}), one point per run",
            height=320,
            xaxis={"title": {"text": "valued as of (UTC)"}},
            yaxis={"title": {"text": cur}, "rangemode": "tozero"},
            margin={"l": 70, "r": 10, "t": 40, "b": 50},
        )
        figs["overview_value"] = fig
    if ltv_t is not None and "ltv" in ltv_t.column_names:
        r = [x for x in ltv_t.column("ltv").to_pylist() if x is not None]
        if r:
            fig = go.Figure([go.Histogram(x=r, nbinsx=40, name="loans")])
            for lim, name in ((0.70, "warning"), (0.85, "alert"), (1.00, "emergency")):
                fig.add_vline(
                    x=lim,
                    line_color=_LEVEL_COLOURS[name],
                    line_dash="dash",
                    annotation_text=f"{name} {lim:.0%}",
                )
            fig.update_layout(
                title="LTV distribution (outstanding / value)",
                height=320,
                xaxis={"tickformat": ".0%", "title": {"text": "loan-to-value"}},
                yaxis={"title": {"text": "loans"}},
                margin={"l": 50, "r": 10, "t": 40, "b": 50},
            )
            figs["overview_ltv"] = fig

    # -- vehicles ---------------------------------------------------------------
    vehicles: dict[str, Any] = {}
    tcols = (
        {c: track.column(c) for c in track.column_names}
        if track is not None and track.num_rows
        else {}
    )
    tv = np.asarray(tcols["vehicle_id"].to_pylist()) if tcols else np.zeros(0, str)
    fv = np.asarray(feats.column("vehicle_id").to_pylist()) if feats.num_rows else np.zeros(0, str)
    by_vehicle: dict[str, list[dict[str, Any]]] = {}
    for a in vehicle_alerts:
        by_vehicle.setdefault(a["vehicle_id"], []).append(a)
    for vid in ids:
        va = by_vehicle.get(vid, [])
        page: dict[str, Any] = {
            "alerts": [
                {
                    "kind": a["kind"],
                    "level": a["level"],
                    "opened": f"{_local(a['opened'], tz_h)} ({tz})",
                    "closed": None
                    if a["closed"] is None
                    else f"{_local(a['closed'], tz_h)} ({tz})",
                    "score": score_text(a["kind"], a["score"]),
                    "evidence": evidence_items(a["evidence"], tz_h),
                }
                for a in va
            ]
        }
        sel = np.flatnonzero(tv == vid)
        if sel.size:
            lat = np.asarray(tcols["lat"].take(pa.array(sel)).to_numpy(zero_copy_only=False), float)
            lon = np.asarray(tcols["lon"].take(pa.array(sel)).to_numpy(zero_copy_only=False), float)
            th = _thin(sel.size, _MAX_TRACK_POINTS)
            x, y = _xy(lat[th], lon[th], lat[0], lon[0])
            traces = [
                _Scattergl(
                    x=x, y=y, mode="lines", line={"color": "#9e9e9e", "width": 1}, name="track"
                )
            ]
            for a in va:
                if a["path"]:
                    px, py = _xy(
                        np.array([p["lat"] for p in a["path"]]),
                        np.array([p["lon"] for p in a["path"]]),
                        lat[0],
                        lon[0],
                    )
                    traces.append(
                        _Scattergl(
                            x=px,
                            y=py,
                            mode="lines+markers",
                            name=f"{a['kind']} ({a['level']})",
                            line={"color": _LEVEL_COLOURS[a["level"]], "width": 3},
                        )
                    )
            f = _Fig(traces)
            f.update_layout(
                title={"text": "Track (km east/north of the first fix); alert paths highlighted"},
                height=460,
                xaxis={"title": {"text": "km east"}},
                yaxis={"scaleanchor": "x", "title": {"text": "km north"}},
                margin={"l": 60, "r": 10, "t": 40, "b": 50},
            )
            page["track"] = f.to_dict()
            mk = tcols["mileage_km"].take(pa.array(sel)).to_numpy(zero_copy_only=False)
            times = [t.isoformat() for t in tcols["time"].take(pa.array(sel[th])).to_pylist()]
            odo_traces = []
            if mk.size and not np.isnan(np.asarray(mk, float)).all():
                m = np.asarray(mk, float)
                odo_traces.append(
                    _Scatter(
                        x=times,
                        y=np.round(m[th] - np.nanmin(m[:1]), 2).tolist(),
                        name="odometer (km since first fix)",
                    )
                )
            fi = np.flatnonzero(fv == vid)
            if fi.size:
                vf = feats.take(pa.array(fi))

                def fcol(name: str, vf: pa.Table = vf) -> np.ndarray:
                    return np.asarray(vf.column(name).to_numpy(zero_copy_only=False), float)

                fh = [h.isoformat() for h in vf.column("hour").to_pylist()]
                cum = np.cumsum(np.nan_to_num(fcol("km_track")))
                odo_traces.append(
                    _Scatter(x=fh, y=np.round(cum, 2).tolist(), name="track distance (km)")
                )
                f = _Fig(odo_traces)
                f.update_layout(
                    title={"text": "Odometer against track distance"},
                    height=320,
                    xaxis={"title": {"text": "time (UTC)"}},
                    yaxis={"title": {"text": "km since the first fix"}},
                    margin={"l": 60, "r": 10, "t": 40, "b": 50},
                )
                page["odometer"] = f.to_dict()
                ftr = []
                for k, name in enumerate(_FEATURES):
                    med, mad = fcol(f"{name}_median"), fcol(f"{name}_mad")
                    ax = "" if k == 0 else str(k + 1)
                    on = {"x": fh, "mode": "lines", "xaxis": f"x{ax}", "yaxis": f"y{ax}"}
                    band_hi = np.round(med + 3 * 1.4826 * mad, 4)
                    band_lo = np.round(med - 3 * 1.4826 * mad, 4)
                    ftr += [
                        _Scatter(**on, y=_nullable(band_hi), line={"width": 0}, showlegend=False),
                        _Scatter(
                            **on,
                            y=_nullable(band_lo),
                            line={"width": 0},
                            fill="tonexty",
                            fillcolor="rgba(66,133,244,0.2)",
                            name="baseline ±3 robust SD" if k == 0 else None,
                            showlegend=k == 0,
                        ),
                        _Scatter(
                            **on,
                            y=_nullable(fcol(name)),
                            name=name,
                            line={"color": "#1a237e", "width": 1},
                            showlegend=False,
                        ),
                    ]
                f = _Fig(ftr)
                grid: dict[str, dict[str, Any]] = {
                    f"yaxis{'' if k == 0 else k + 1}": {
                        "domain": [
                            1 - (k + 1) / len(_FEATURES) + 0.02,
                            1 - k / len(_FEATURES) - 0.02,
                        ],
                        "title": {"text": _FEATURES[k], "font": {"size": 9}},
                    }
                    for k in range(len(_FEATURES))
                }
                for k in range(len(_FEATURES)):
                    sfx = "" if k == 0 else str(k + 1)
                    last = k == len(_FEATURES) - 1
                    grid[f"xaxis{sfx}"] = {
                        "anchor": f"y{sfx}",
                        "showticklabels": last,
                        **({"title": {"text": "hour (UTC)"}} if last else {}),
                    }
                f.update_layout(
                    title={"text": "Hourly features (24 h windows) and their baseline band"},
                    height=900,
                    margin={"l": 90, "r": 10, "t": 40, "b": 50},
                    **grid,
                )
                page["features"] = f.to_dict()
        if valuations is not None and valuations.num_rows:
            vv = [
                r
                for r in valuations.select(
                    [
                        "vehicle_id",
                        "time",
                        "base_value",
                        "usage_factor",
                        "market_factor",
                        "battery_factor",
                        "value",
                    ]
                ).to_pylist()
                if r["vehicle_id"] == vid
            ]
            cur = book_currency.get(vid, "")
            if len(vv) == 1:
                r = vv[0]
                page["valuation_text"] = (
                    f"Value {r['value'] or 0.0:,.0f} {cur} as of {_local(r['time'], tz_h)} ({tz}): "
                    f"base {r['base_value'] or 0.0:,.0f} {cur} x usage {r['usage_factor']:.3f} "
                    f"x market {r['market_factor']:.3f} x battery {r['battery_factor']:.3f}"
                    " (one valuation so far)"
                )
            elif vv:
                xt = [r["time"].isoformat() for r in vv]
                f = _Fig(
                    [
                        _Scatter(
                            x=xt, y=[r["value"] for r in vv], mode="lines+markers", name="value"
                        ),
                        _Scatter(
                            x=xt,
                            y=[r["base_value"] for r in vv],
                            mode="lines+markers",
                            name="base (vehicle)",
                        ),
                        *(
                            _Scatter(
                                x=xt,
                                y=[r[f"{name}_factor"] for r in vv],
                                mode="lines+markers",
                                name=f"{name} factor",
                                yaxis="y2",
                            )
                            for name in ("usage", "market", "battery")
                        ),
                    ]
                )
                f.update_layout(
                    title={
                        "text": "Valuation trend: base value (vehicle) and its usage, market and battery factors"
                    },
                    height=320,
                    xaxis={"title": {"text": "valued as of (UTC)"}},
                    yaxis={"title": {"text": f"value ({cur})"}, "rangemode": "tozero"},
                    yaxis2={
                        "overlaying": "y",
                        "side": "right",
                        "range": [0.6, 1.1],
                        "title": {"text": "factor"},
                    },
                    margin={"l": 70, "r": 60, "t": 40, "b": 50},
                )
                page["valuation"] = f.to_dict()
        page["ledger"] = ledger.get(vid, [])
        vehicles[vid] = page

    table_rows = []
    paged = set(ids)
    for a in rows:
        age = (a["closed"] or counts["last_signal"]) - a["opened"]
        vid = html.escape(a["vehicle_id"])
        table_rows.append(
            (
                f"<tr><td><a href='#vehicle={vid}'>{vid}</a></td>"
                if a["vehicle_id"] in paged
                else f"<tr><td>{vid}</td>"
            )
            + f"<td>{html.escape(a['kind'])}</td><td data-v='{a['level_code']}'>"
            f"<span class='lv {a['level']}'>{a['level']}</span></td>"
            f"<td>{_local(a['opened'], tz_h)}</td><td data-v='{age.total_seconds() / 3600:.1f}'>"
            f"{age.total_seconds() / 3600:.1f}</td><td>{'open' if a['closed'] is None else 'closed'}</td>"
            f"<td data-v='{html.escape(a['kind'])} {a['score']:020.6f}'>"
            f"{html.escape(score_text(a['kind'], a['score']))}</td></tr>"
        )
    overview_divs = "".join(
        f"<p class='stat' id='stat{i}'><b>{html.escape(k)}</b>: {html.escape(v)}</p>"
        for i, (k, v) in enumerate(stats)
    ) + "".join(f"<div id='{k}' class='fig'></div>" for k in figs)
    overview_divs += _detection_html(detection, history_days)
    data = {
        "overview": {k: json.loads(plotly.io.to_json(f)) for k, f in figs.items()},
        # plotly's default look, once: vehicle figures are built without it
        "template": json.loads(plotly.io.to_json(go.Figure()))["layout"]["template"],
        "vehicles": vehicles,
    }
    page_html = _TEMPLATE.format(
        plotly_js=plotly.offline.get_plotlyjs(),
        n_alerts=counts["n"],
        tz=tz,
        n_vehicles=counts["vehicles"],
        levels=", ".join(f"{counts[lv]} {lv}" for lv in ("emergency", "alert", "warning")),
        limits=(
            f" The list shows the {len(rows):,} most severe; vehicle pages cover the "
            f"{len(ids):,} vehicles with the most severe, then most recent, alerts."
            if len(rows) < counts["n"] or len(ids) < counts["vehicles"]
            else ""
        ),
        overview=overview_divs,
        rows="\n".join(table_rows),
        data=json.dumps(data, separators=(",", ":")).replace("</", "<\\/"),
    )
    (out / "index.html").write_text(page_html)
    return {
        "path": str(out / "index.html"),
        "alerts": counts["n"],
        "alert_rows": len(rows),
        "vehicles": counts["vehicles"],
        "vehicle_pages": len(ids),
        "figures": len(figs)
        + sum(
            sum(k in p for k in ("track", "odometer", "features", "valuation"))
            for p in vehicles.values()
        ),
        "bytes": len(page_html),
    }


def _detection_html(det: dict[str, Any] | None, history_days: float | None) -> str:
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


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>autolien risk dashboard</title>
<style>
body{{font-family:system-ui,sans-serif;margin:20px;color:#222}} h1{{margin:0 0 4px}} .fig{{margin:8px 0}}
table{{border-collapse:collapse;font-size:13px}} th,td{{padding:3px 8px;border-bottom:1px solid #ddd}}
th{{cursor:pointer;background:#f5f5f5}} .lv{{color:#fff;padding:1px 6px;border-radius:3px}}
.warning{{background:#f0ad4e}} .alert{{background:#d9534f}} .emergency{{background:#7b1fa2}}
#vehicle{{display:none}} .note{{color:#666}} #errors{{color:#b00}} .stat{{font-size:16px}}
dl{{display:grid;grid-template-columns:max-content auto;gap:1px 12px;font-size:13px;margin:4px 0 12px}} dt{{color:#666}} dd{{margin:0}}
</style>
<script>window.__errors=[];window.addEventListener('error',function(e){{window.__errors.push(String(e.message));
var d=document.getElementById('errors');if(d)d.textContent=window.__errors.join('\\n');}});</script>
<script>{plotly_js}</script>
</head><body>
<div id="errors"></div>
<h1>autolien risk dashboard</h1>
<p class="note">{n_alerts} alerts on {n_vehicles} vehicles: {levels}.{limits}</p>
<div id="overview">{overview}
<h2>Alerts</h2><p class="note">Click a column to sort; click a vehicle for its page.</p>
<table id="alerts"><thead><tr><th>vehicle</th><th>kind</th><th>level</th><th>opened ({tz})</th><th>age (h)</th>
<th>state</th><th>measure (per kind, with its unit)</th></tr></thead><tbody>
{rows}
</tbody></table></div>
<div id="vehicle"><p><a href="#">&larr; portfolio</a></p><h2 id="vtitle"></h2>
<div id="valerts"></div><p id="vvaltext" class="stat"></p><div id="vvaluation" class="fig"></div><div id="vtrack" class="fig"></div><div id="vfeatures" class="fig"></div>
<div id="vodometer" class="fig"></div><h3>Ledger history (times {tz})</h3><table id="vledger"></table></div>
<script id="data" type="application/json">{data}</script>
<script>
var DATA=JSON.parse(document.getElementById('data').textContent);
function esc(t){{return String(t).replace(/&/g,'&amp;').replace(/</g,'&lt;');}}
function plot(id,fig){{if(fig){{if(!fig.layout.template){{fig.layout.template=DATA.template;}}Plotly.newPlot(id,fig.data,fig.layout,{{responsive:true}});}}
else{{document.getElementById(id).innerHTML='';}}}}
Object.keys(DATA.overview).forEach(function(k){{plot(k,DATA.overview[k]);}});
document.querySelectorAll('#alerts th').forEach(function(th,i){{th.addEventListener('click',function(){{
 var tb=document.querySelector('#alerts tbody'),rs=Array.from(tb.rows),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
 rs.sort(function(a,b){{var x=a.cells[i].dataset.v||a.cells[i].textContent,y=b.cells[i].dataset.v||b.cells[i].textContent;
 var nx=parseFloat(x),ny=parseFloat(y);var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;}});
 rs.forEach(function(r){{tb.appendChild(r);}});}});}});
function show(){{var m=location.hash.match(/vehicle=([^&]+)/);var v=m&&DATA.vehicles[decodeURIComponent(m[1])];
 document.getElementById('overview').style.display=v?'none':'block';document.getElementById('vehicle').style.display=v?'block':'none';
 if(!v)return;var id=decodeURIComponent(m[1]);document.getElementById('vtitle').textContent='Vehicle '+id;
 document.getElementById('valerts').innerHTML=v.alerts.map(function(a){{return '<div class="al"><span class="lv '+a.level+'">'+a.level+
 '</span> '+esc(a.kind)+' opened '+esc(a.opened)+(a.closed?' closed '+esc(a.closed):' (open)')+'; '+esc(a.score)+'<dl>'+
 a.evidence.map(function(p){{return '<dt>'+esc(p[0])+'</dt><dd>'+esc(p[1])+'</dd>';}}).join('')+'</dl></div>';}}).join('');
 document.getElementById('vvaltext').textContent=v.valuation_text||'';
 plot('vvaluation',v.valuation);plot('vtrack',v.track);plot('vfeatures',v.features);plot('vodometer',v.odometer);
 document.getElementById('vledger').innerHTML='<tr><th>seq</th><th>event</th><th>time</th><th>inclusion proof</th></tr>'+
 v.ledger.map(function(e){{return '<tr><td>'+e.seq+'</td><td>'+e.type+'</td><td>'+e.time+'</td><td>'+e.proof+'</td></tr>';}}).join('');}}
window.addEventListener('hashchange',show);show();
</script></body></html>
"""
