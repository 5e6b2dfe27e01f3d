"""``autolien valuation evaluate``: a model card (JSON and an HTML page with
plots) from a model directory and listings with prices.

The card gives MdAPE and the share of adverts within ±5/10/20% overall and by
age band, price band and make; the 90% interval's coverage per availability
pattern (the patterns the data has, and each calibrated pattern imposed by
hiding columns); and a calibration plot (mean log actual against mean log
predicted by decile of the prediction)."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .data import calibration_split, split
from .model import Valuer
from .train import _hide, pattern_key

__all__ = ["AGE_BANDS", "accuracy", "evaluate", "write_card"]

AGE_BANDS = ((0.0, 3.0), (3.0, 6.0), (6.0, 10.0), (10.0, float("inf")))
MIN_GROUP = 30  # makes with fewer evaluation adverts are pooled as "other"


def accuracy(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    """MdAPE and the share within ±5/10/20%, APE = |predicted/actual - 1|."""
    a = np.asarray(actual, np.float64)
    p = np.asarray(predicted, np.float64)
    if a.size == 0:
        return {"n": 0}
    ape = np.abs(p / a - 1.0)
    return {
        "n": int(a.size),
        "mdape_pct": round(float(np.median(ape)) * 100, 3),
        "within_5_pct": round(float(np.mean(ape <= 0.05)) * 100, 2),
        "within_10_pct": round(float(np.mean(ape <= 0.10)) * 100, 2),
        "within_20_pct": round(float(np.mean(ape <= 0.20)) * 100, 2),
    }


def _age_label(lo: float, hi: float) -> str:
    return f"{lo:g}+ years" if hi == float("inf") else f"{lo:g}-{hi:g} years"


def evaluate(
    model_dir: str | Path | None,
    table: pa.Table,
    *,
    rows: str = "test",
) -> dict[str, Any]:
    """The card of ``model_dir`` on ``table`` (canonical columns with
    ``price`` and ``age_years``). ``rows="test"``: the table is the one the
    model was trained on, and the card uses its held-out test split (the
    coverage, its half not used for calibration); ``rows="all"``: every row
    is new to the model (listings after training: out of time)."""
    v = Valuer.load(model_dir)
    meta = v.meta
    price = np.asarray(table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False))
    ok = np.isfinite(price) & (price > 0)
    table = table.filter(pa.array(ok))
    price = price[ok]
    if rows == "test":
        if table.num_rows != meta["rows"]:
            raise ValueError(
                f"rows='test' needs the training table ({meta['rows']:,} rows with a price), "
                f"got {table.num_rows:,}; pass rows='all' for new listings"
            )
        _, te = split(table.num_rows, meta["seed"])
        _, ev = calibration_split(te, meta["seed"])
    elif rows == "all":
        te = ev = np.arange(table.num_rows)
    else:
        raise ValueError(f"rows must be 'test' or 'all', got {rows!r}")
    sub = table.take(pa.array(te))
    X = v.features(sub)
    pred = np.exp(v.predict_log(X))
    actual = price[te]
    age = np.asarray(sub.column("age_years").cast(pa.float64()).to_numpy(zero_copy_only=False))
    card: dict[str, Any] = {
        "model_version": v.version,
        "currency": v.currency,
        "evaluated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "overall": accuracy(actual, pred),
    }
    card["by_age_band"] = {
        _age_label(lo, hi): accuracy(actual[m], pred[m])
        for lo, hi in AGE_BANDS
        if (m := (age >= lo) & (age < hi)).any()
    }
    edges = np.quantile(actual, [0.2, 0.4, 0.6, 0.8])
    band = np.searchsorted(edges, actual, side="right")
    bounds = [0.0, *edges.tolist(), float("inf")]
    card["by_price_band"] = {
        f"{bounds[b]:,.0f}-{bounds[b + 1]:,.0f}" if b < 4 else f"{bounds[b]:,.0f}+": accuracy(
            actual[band == b], pred[band == b]
        )
        for b in range(5)
        if (band == b).any()
    }
    make = np.array([str(x).lower() for x in sub.column("make").to_pylist()], dtype=object)
    names, counts = np.unique(make, return_counts=True)
    big = {str(n) for n, c in zip(names, counts, strict=True) if c >= MIN_GROUP}
    group = np.array([m if m in big else "other" for m in make], dtype=object)
    card["by_make"] = {
        str(g): accuracy(actual[group == g], pred[group == g]) for g in sorted(set(group))
    }
    # coverage on the rows held out from calibration
    pos = np.searchsorted(te, ev)
    Xe, ye = X[pos], np.log(actual[pos])
    card["interval_90_coverage_by_pattern"] = _coverage(v, Xe, ye)
    # calibration: deciles of the prediction
    lp, la = np.log(pred), np.log(actual)
    cuts = np.quantile(lp, np.linspace(0, 1, 11))
    dec = np.clip(np.searchsorted(cuts, lp, side="right") - 1, 0, 9)
    card["calibration"] = [
        {
            "decile": int(d),
            "mean_log_predicted": round(float(lp[dec == d].mean()), 5),
            "mean_log_actual": round(float(la[dec == d].mean()), 5),
            "n": int((dec == d).sum()),
        }
        for d in range(10)
        if (dec == d).any()
    ]
    card["train_metrics"] = meta.get("metrics", {})
    if "cleaning" in meta:
        card["cleaning"] = meta["cleaning"]
    return card


def _coverage(v: Valuer, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Per pattern: ``in_data`` (rows as they came) and ``imposed`` (every
    calibrated pattern, its other columns hidden, on rows that have its
    columns)."""
    out: dict[str, Any] = {"in_data": {}, "imposed": {}}
    idx = v.optional_index
    q05, q95 = v.interval(X)
    r = y - v.predict_log(X)
    inside = (r >= q05) & (r <= q95)
    present = ~np.isnan(X[:, idx]) if idx else np.zeros((X.shape[0], 0), bool)
    keys = [pattern_key([o for j, o in enumerate(v.optional) if row[j]]) for row in present]
    for k in sorted(set(keys)):
        m = np.array([x == k for x in keys])
        out["in_data"][k] = {
            "coverage_pct": round(float(inside[m].mean()) * 100, 2),
            "n": int(m.sum()),
        }
    table = v.meta.get("log_residual_interval_90_by_pattern") or {}
    for k in table:
        cols = [] if k == "none" else k.split("+")
        rows = np.ones(X.shape[0], bool)
        for c in cols:
            rows &= present[:, v.optional.index(c)]
        if not rows.any():
            continue
        Xh = _hide(X[rows], v.optional, cols, idx)
        lo, hi = v.interval(Xh)
        rr = y[rows] - v.predict_log(Xh)
        cov = float(((rr >= lo) & (rr <= hi)).mean())
        out["imposed"][k] = {"coverage_pct": round(cov * 100, 2), "n": int(rows.sum())}
    return out


def _table(title: str, groups: dict[str, dict[str, Any]]) -> str:
    head = "<tr><th>group</th><th>n</th><th>MdAPE</th><th>±5%</th><th>±10%</th><th>±20%</th></tr>"
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{g['n']:,}</td><td>{g.get('mdape_pct', float('nan')):.2f}%</td>"
        f"<td>{g.get('within_5_pct', float('nan')):.1f}%</td><td>{g.get('within_10_pct', float('nan')):.1f}%</td>"
        f"<td>{g.get('within_20_pct', float('nan')):.1f}%</td></tr>"
        for k, g in groups.items()
    )
    return f"<h2>{html.escape(title)}</h2><table>{head}{body}</table>"


def write_card(card: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """``model_card.json`` and ``model_card.html`` (plotly, its JavaScript
    embedded so the page works offline) in ``out_dir``."""
    import plotly.graph_objects as go  # noqa: PLC0415

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jpath = out / "model_card.json"
    jpath.write_text(json.dumps(card, indent=1, sort_keys=True))
    cal = card["calibration"]
    x = [c["mean_log_predicted"] for c in cal]
    y = [c["mean_log_actual"] for c in cal]
    lo, hi = min(x + y), max(x + y)
    f1 = go.Figure(
        [
            go.Scatter(x=x, y=y, mode="markers+lines", name="decile of the prediction"),
            go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect", line={"dash": "dash"}),
        ]
    )
    f1.update_layout(
        title="Calibration: mean log actual price by decile of the prediction",
        xaxis_title="mean log predicted",
        yaxis_title="mean log actual",
    )
    cov = card["interval_90_coverage_by_pattern"]
    f2 = go.Figure()
    for kind in ("imposed", "in_data"):
        ks = list(cov[kind])
        f2.add_bar(x=ks, y=[cov[kind][k]["coverage_pct"] for k in ks], name=kind)
    f2.add_hline(y=90, line_dash="dash")
    f2.update_layout(title="90% interval coverage per availability pattern", yaxis_title="%")
    ages = card["by_age_band"]
    f3 = go.Figure(go.Bar(x=list(ages), y=[a["mdape_pct"] for a in ages.values()]))
    f3.update_layout(title="MdAPE by age band", yaxis_title="%")
    plots = [
        f1.to_html(full_html=False, include_plotlyjs=True),
        f2.to_html(full_html=False, include_plotlyjs=False),
        f3.to_html(full_html=False, include_plotlyjs=False),
    ]
    o = card["overall"]
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Model card {html.escape(card["model_version"])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:auto}}td,th{{padding:2px 8px;text-align:right}}</style>
</head><body>
<h1>Model card: {html.escape(card["model_version"])}</h1>
<p>Prices in {html.escape(card["currency"])}; rows: {html.escape(card["rows"])}; evaluated
{html.escape(card["evaluated_at"])}. Overall: MdAPE {o["mdape_pct"]:.2f}%, within ±5% {o["within_5_pct"]:.1f}%,
±10% {o["within_10_pct"]:.1f}%, ±20% {o["within_20_pct"]:.1f}% of {o["n"]:,} adverts.</p>
{_table("By age band", card["by_age_band"])}
{_table("By price band", card["by_price_band"])}
{_table("By make", card["by_make"])}
{"".join(plots)}
<h2>Cleaning</h2><pre>{html.escape(json.dumps(card.get("cleaning", {}), indent=1))}</pre>
</body></html>"""
    hpath = out / "model_card.html"
    hpath.write_text(page)
    return jpath, hpath
