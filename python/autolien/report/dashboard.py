"""The risk dashboard: one self-contained ``index.html`` (plotly.js embedded,
no server, no network) with the portfolio overview, the sortable alert list
and a page per alerted vehicle.

A vehicle page shows its track on projected coordinates (no tile layer) with
each alert's path highlighted, the entropy features against their baseline
band, odometer against track distance, and its ledger history with each
entry's inclusion proof checked against the current root. Vehicle pages are
plotted in the browser from embedded data when selected (``#vehicle=<id>``).

This module assembles the page; the data comes from the store adapter
(``autolien.store.dashboard``) and the ledger (queries.py), the figures
from figures.py and the words from text.py.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..store import dashboard as store_reads
from . import figures, queries, text
from .text import SCORE_UNITS, evidence_items, local, score_text, tz_name

if TYPE_CHECKING:
    from ..ledger.log import Replay

__all__ = ["SCORE_UNITS", "build_dashboard", "evidence_items", "score_text"]


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
    ledger_replay: Replay | None = None,
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
    monitor's). A series of one point is shown as a number, not a chart.
    ``ledger_replay``: a :class:`~autolien.ledger.log.Replay` slot to open
    the ledger with (the pipeline hands on its ledger stage's)."""
    from ..monitor.config import MonitorConfig  # noqa: PLC0415

    tz_h = MonitorConfig().tz_offset_h if tz_offset_h is None else tz_offset_h
    tz = tz_name(tz_h)
    import plotly  # noqa: PLC0415
    import plotly.graph_objects as go  # noqa: PLC0415

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    got = store_reads.load(db, max_vehicles=max_vehicles, max_alert_rows=max_alert_rows)
    counts, ids, feats, track, valuations = (
        got.counts,
        got.ids,
        got.feats,
        got.track,
        got.valuations,
    )
    vins, book_currency = got.vins, got.book_currency
    ledger = queries.ledger_rows(
        Path(ledger_dir) if ledger_dir else None,
        {v: vins[v] for v in ids if v in vins},
        ledger_replay,
    )
    for entries in ledger.values():
        for e in entries:
            e["time"] = local(e["time"], tz_h)

    # -- overview ---------------------------------------------------------------
    rows = got.alerts.to_pylist()
    figs, stats = figures.overview(got.per_day, got.fleet_km, got.totals, got.ltv_t, tz_h)

    # -- vehicles ---------------------------------------------------------------
    vehicles: dict[str, Any] = {}
    tcols = (
        {c: track.column(c) for c in track.column_names}
        if track is not None and track.num_rows
        else {}
    )
    # the track and the features come ordered by vehicle: each vehicle's rows
    # are one range, found once (not a comparison of every row per page)
    t_rng = _ranges(tcols["vehicle_id"]) if tcols else {}
    f_rng = _ranges(feats.column("vehicle_id")) if feats.num_rows else {}
    vals: dict[str, list[dict[str, Any]]] = {}
    if valuations is not None and valuations.num_rows:
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
        ).to_pylist():
            vals.setdefault(r["vehicle_id"], []).append(r)
    by_vehicle: dict[str, list[dict[str, Any]]] = {}
    for a in got.vehicle_alerts:
        by_vehicle.setdefault(a["vehicle_id"], []).append(a)
    for vid in ids:
        va = by_vehicle.get(vid, [])
        page: dict[str, Any] = {"alerts": text.vehicle_alerts(va, tz_h)}
        if vid in t_rng:
            t0, n = t_rng[vid]
            lat = np.asarray(tcols["lat"].slice(t0, n).to_numpy(), float)
            lon = np.asarray(tcols["lon"].slice(t0, n).to_numpy(), float)
            th = figures.thin(n, figures.MAX_TRACK_POINTS)
            page["track"] = figures.track_figure(lat, lon, th, va)
            mk = tcols["mileage_km"].slice(t0, n).to_numpy()
            times = figures.iso_times(tcols["time"].slice(t0, n).take(pa.array(th)))
            if vid in f_rng:
                vf = feats.slice(*f_rng[vid])
                page["hours"] = figures.shared_hours(vf)
                page["odometer"] = figures.odometer_figure(times, mk, th, vf)
                page["features"] = figures.features_figure(vf)
        if vals:
            vv = vals.get(vid, [])
            cur = book_currency.get(vid, "")
            if len(vv) == 1:
                page["valuation_text"] = text.valuation_text(vv[0], cur, tz_h)
            elif vv:
                page["valuation"] = figures.valuation_figure(vv, cur)
        page["ledger"] = ledger.get(vid, [])
        vehicles[vid] = page

    table_rows = text.alert_rows(rows, set(ids), counts["last_signal"], tz_h)
    overview_divs = "".join(
        f"<p class='stat' id='stat{i}'><b>{html.escape(k)}</b>: {html.escape(v)}</p>"
        for i, (k, v) in enumerate(stats)
    ) + "".join(f"<div id='{k}' class='fig'></div>" for k in figs)
    overview_divs += text.detection_html(detection, history_days)
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
        hours_ref=figures.HOURS_REF,
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


def _ranges(ids: pa.ChunkedArray) -> dict[str, tuple[int, int]]:
    """(first row, row count) of each id in ``ids``, which are grouped (sorted)."""
    enc = ids.combine_chunks().dictionary_encode()
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False))
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], codes.size]
    names = enc.dictionary.to_pylist()
    out = {names[codes[a]]: (int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)}
    if len(out) != starts.size:
        raise ValueError("rows are not grouped by vehicle")
    return out


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
function plot(id,fig,page){{if(fig){{if(!fig.layout.template){{fig.layout.template=DATA.template;}}
fig.data.forEach(function(t){{if(t.x==='{hours_ref}'){{t.x=page.hours;}}}});Plotly.newPlot(id,fig.data,fig.layout,{{responsive:true}});}}
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
 plot('vvaluation',v.valuation,v);plot('vtrack',v.track,v);plot('vfeatures',v.features,v);plot('vodometer',v.odometer,v);
 document.getElementById('vledger').innerHTML='<tr><th>seq</th><th>event</th><th>time</th><th>inclusion proof</th></tr>'+
 v.ledger.map(function(e){{return '<tr><td>'+e.seq+'</td><td>'+e.type+'</td><td>'+e.time+'</td><td>'+e.proof+'</td></tr>';}}).join('');}}
window.addEventListener('hashchange',show);show();
</script></body></html>
"""
