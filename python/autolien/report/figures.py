"""The dashboard's figures, as plotly.js reads them: the overview charts
(built with plotly) and each vehicle page's track, odometer, features and
valuation (built as plain dicts, see :class:`_Fig`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from .text import local, tz_name

__all__ = [
    "FEATURES",
    "HOURS_REF",
    "LEVEL_COLOURS",
    "MAX_TRACK_POINTS",
    "features_figure",
    "odometer_figure",
    "overview",
    "shared_hours",
    "thin",
    "track_figure",
    "valuation_figure",
]

FEATURES = (
    "location_entropy",
    "new_place_share",
    "stop_entropy",
    "speed_entropy",
    "turn_entropy",
    "km_24h",
)
LEVEL_COLOURS = {"warning": "#f0ad4e", "alert": "#d9534f", "emergency": "#7b1fa2"}
MAX_TRACK_POINTS = 3000
# A trace whose x is this string takes the page's shared hour times
# (``shared_hours``): the 19 hourly traces of a vehicle page drew one
# copy each, 70% of a 100 MB, 250-page dashboard. The page's script puts
# the array back before plotly sees the trace.
HOURS_REF = "@hours"


class _Ready(list):  # type: ignore[type-arg]
    """A list already fit for JSON (no NaN, no arrays): ``_plain`` passes it
    through instead of visiting each value again (times and series of a
    250-page dashboard are millions of values)."""


def _xy(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> tuple[Any, Any]:
    """Local east/north in km (equirectangular about the first fix)."""
    k = 111.195
    x = (lon - lon0) * k * math.cos(math.radians(lat0))
    y = (lat - lat0) * k
    return _nullable(x), _nullable(y)


def _nullable(a: np.ndarray, digits: int | None = 4) -> _Ready:
    """Values for JSON, rounded (unless ``digits`` is None), NaN and
    infinities as null (plotly draws a gap)."""
    a = np.asarray(a, float)
    out = (a if digits is None else np.round(a, digits)).astype(object)
    out[~np.isfinite(a)] = None
    return _Ready(out.tolist())


# zone names that are UTC all year (DuckDB hands out its session zone,
# "Etc/UTC" by default: the fast path had missed every stored time)
_UTC_NAMES = frozenset(
    (
        "UTC",
        "+00:00",
        "Etc/UTC",
        "Etc/UCT",
        "Etc/Universal",
        "Etc/Zulu",
        "UCT",
        "Universal",
        "Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/Greenwich",
    )
)


def iso_times(times: pa.Array | pa.ChunkedArray) -> _Ready:
    """ISO 8601 strings of timestamps, as ``datetime.isoformat`` writes them
    (UTC ones without nulls in numpy's formatter: a page of 250 vehicles
    is about a million of them)."""
    typ = times.type
    if (
        not pa.types.is_timestamp(typ)
        or typ.unit == "ns"
        or typ.tz not in _UTC_NAMES
        or times.null_count
        or not len(times)
    ):
        return _Ready(t.isoformat() if t is not None else None for t in times.to_pylist())
    us = np.asarray(times.cast(pa.timestamp("us", tz=typ.tz)).to_numpy()).astype("datetime64[us]")
    whole = us.astype(np.int64) % 1_000_000 == 0
    text = np.where(
        whole,
        np.datetime_as_string(us, unit="s"),
        np.datetime_as_string(us, unit="us"),
    )
    return _Ready(np.char.add(text, "+00:00").tolist())


def thin(n: int, most: int) -> np.ndarray:
    return (
        np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))
        if n > most
        else np.arange(n)
    )


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
            return _nullable(v, None)
        return v.tolist()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, _Ready):
        return v
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


def overview(
    per_day: list[dict[str, Any]],
    fleet_km: list[dict[str, Any]],
    totals: list[dict[str, Any]],
    ltv_t: pa.Table | None,
    tz_h: float,
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The overview charts (plotly figures, by div id) and the numbers shown
    instead of a one-point chart, in page order."""
    import plotly.graph_objects as go  # noqa: PLC0415

    tz = tz_name(tz_h)
    figs: dict[str, Any] = {}
    days: dict[str, dict[str, int]] = {}
    for r in per_day:
        days.setdefault(r["d"], {})[r["level"]] = r["n"]
    dx = sorted(days)
    fig = go.Figure(
        [
            go.Bar(x=dx, y=[days[d].get(lv, 0) for d in dx], name=lv, marker_color=c)
            for lv, c in LEVEL_COLOURS.items()
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
                f"{t['value'] or 0.0:,.0f} {t['currency']} as of {local(t['time'], tz_h)} ({tz})",
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
        ltvs = [x for x in ltv_t.column("ltv").to_pylist() if x is not None]
        if ltvs:
            fig = go.Figure([go.Histogram(x=ltvs, nbinsx=40, name="loans")])
            for lim, name in ((0.70, "warning"), (0.85, "alert"), (1.00, "emergency")):
                fig.add_vline(
                    x=lim,
                    line_color=LEVEL_COLOURS[name],
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
    return figs, stats


def track_figure(
    lat: np.ndarray, lon: np.ndarray, th: np.ndarray, va: list[dict[str, Any]]
) -> dict[str, Any]:
    """The track (points ``th`` of it) on km east/north of the first fix,
    with each alert's path highlighted."""
    x, y = _xy(lat[th], lon[th], lat[0], lon[0])
    traces = [
        _Scattergl(x=x, y=y, mode="lines", line={"color": "#9e9e9e", "width": 1}, name="track")
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
                    line={"color": LEVEL_COLOURS[a["level"]], "width": 3},
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
    return f.to_dict()


def _fcol(vf: pa.Table, name: str) -> np.ndarray:
    return np.asarray(vf.column(name).to_numpy(zero_copy_only=False), float)


def shared_hours(vf: pa.Table) -> _Ready:
    """The hour times of the features ``vf``, which every trace with
    ``x = HOURS_REF`` of a vehicle page reads."""
    return iso_times(vf.column("hour"))


def odometer_figure(
    times: list[str], mk: np.ndarray, th: np.ndarray, vf: pa.Table
) -> dict[str, Any]:
    """The odometer (``mk`` at the track's points ``th``, when it has any)
    against the distance along the track from the hourly features ``vf``
    (at the page's ``HOURS_REF``)."""
    odo_traces = []
    if mk.size and not np.isnan(np.asarray(mk, float)).all():
        m = np.asarray(mk, float)
        odo_traces.append(
            _Scatter(
                x=times,
                y=_nullable(m[th] - np.nanmin(m[:1]), 2),
                name="odometer (km since first fix)",
            )
        )
    cum = np.cumsum(np.nan_to_num(_fcol(vf, "km_track")))
    odo_traces.append(_Scatter(x=HOURS_REF, y=_nullable(cum, 2), name="track distance (km)"))
    f = _Fig(odo_traces)
    f.update_layout(
        title={"text": "Odometer against track distance"},
        height=320,
        xaxis={"title": {"text": "time (UTC)"}},
        yaxis={"title": {"text": "km since the first fix"}},
        margin={"l": 60, "r": 10, "t": 40, "b": 50},
    )
    return f.to_dict()


def features_figure(vf: pa.Table) -> dict[str, Any]:
    """The hourly features ``vf``, one panel each, with their baseline band
    (at the page's ``HOURS_REF``)."""
    ftr = []
    for k, name in enumerate(FEATURES):
        med, mad = _fcol(vf, f"{name}_median"), _fcol(vf, f"{name}_mad")
        ax = "" if k == 0 else str(k + 1)
        on = {"x": HOURS_REF, "mode": "lines", "xaxis": f"x{ax}", "yaxis": f"y{ax}"}
        band_hi = med + 3 * 1.4826 * mad
        band_lo = med - 3 * 1.4826 * mad
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
                y=_nullable(_fcol(vf, name)),
                name=name,
                line={"color": "#1a237e", "width": 1},
                showlegend=False,
            ),
        ]
    f = _Fig(ftr)
    grid: dict[str, dict[str, Any]] = {
        f"yaxis{'' if k == 0 else k + 1}": {
            "domain": [
                1 - (k + 1) / len(FEATURES) + 0.02,
                1 - k / len(FEATURES) - 0.02,
            ],
            "title": {"text": FEATURES[k], "font": {"size": 9}},
        }
        for k in range(len(FEATURES))
    }
    for k in range(len(FEATURES)):
        sfx = "" if k == 0 else str(k + 1)
        last = k == len(FEATURES) - 1
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
    return f.to_dict()


def valuation_figure(vv: list[dict[str, Any]], cur: str) -> dict[str, Any]:
    """A vehicle's valuations over time: value, base value and the factors."""
    xt = [r["time"].isoformat() for r in vv]
    f = _Fig(
        [
            _Scatter(x=xt, y=[r["value"] for r in vv], mode="lines+markers", name="value"),
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
    return f.to_dict()
