"""Keeping a model fresh: ``refresh`` (a recalibration on the newest
listings, in seconds) and ``drift`` (error on the latest week's listings
against the model's card).

A recalibration keeps the trees and refits two things on the new listings:
the price level (the median log residual, ``level_shift``, added to every
prediction) and the 90% interval per availability pattern (split-conformal,
as in training). The new listings are halved with a fixed seed: the first
half fits, the second measures. The refreshed model is a new version in a
new directory, its parent and the refresh recorded in ``versions.json``.

A refit (``refit``, minutes) trains new trees on the newest listings with the
parent's feature layout, recipe and seed, through the same ``train`` as the
first model, and records itself the same way. Every entry of
``versions.json`` names its card (``MODEL_CARD.md`` of its directory); every
valuation carries the version of the model that made it."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .card import accuracy
from .data import calibration_split
from .model import Valuer
from .train import _calibrate, _card

__all__ = ["DRIFT_MIN_ROWS", "DRIFT_THRESHOLD_POINTS", "drift", "refit", "refresh"]

# A rise in MdAPE of more than 2 points over the card's test figure warns:
# the UK model's MdAPE is about 5%, so that is 40% more error; a median of
# 100 APEs near 5% varies by about 0.6 points, so noise alone rarely gets
# there.
DRIFT_THRESHOLD_POINTS = 2.0
DRIFT_MIN_ROWS = 100
MIN_REFRESH_ROWS = 200


def _priced(table: pa.Table) -> tuple[pa.Table, np.ndarray]:
    price = np.asarray(
        table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    ok = np.isfinite(price) & (price > 0)
    return table.filter(pa.array(ok)), price[ok]


def refresh(
    model_dir: str | Path | None, table: pa.Table, out_dir: str | Path, *, seed: int = 42
) -> dict[str, Any]:
    """A recalibrated copy of ``model_dir`` in ``out_dir`` from the newest
    listings ``table`` (canonical columns with ``price`` and ``age_years``).
    Returns the new ``model.json``; ``refresh`` in it holds the new rows'
    accuracy before and after (on the held-out half) and the level shift."""
    t_start = time.perf_counter()
    v = Valuer.load(model_dir)
    src = Path(model_dir) if model_dir is not None else None
    table, price = _priced(table)
    if table.num_rows < MIN_REFRESH_ROWS:
        raise ValueError(
            f"{table.num_rows} priced listings; a refresh needs {MIN_REFRESH_ROWS} or more"
        )
    X = v.features(table)
    y = np.log(price)
    # the same halves as ``_calibrate`` uses: the level and the intervals
    # are fitted on one, measured on the other
    everything = np.arange(table.num_rows)
    fit, held = calibration_split(everything, seed)
    old_shift = float(v.meta.get("level_shift", 0.0))
    raw = v.predict_log(X)  # includes the old shift
    shift = old_shift + float(np.median(y[fit] - raw[fit]))

    def predict(M: np.ndarray) -> np.ndarray:
        return np.asarray(v.trees.predict(np.ascontiguousarray(M, np.float32))) + shift

    by_pattern, coverage = _calibrate(X, y, everything, v.optional, predict, seed, v.optional_index)
    before = accuracy(price[held], np.exp(raw[held]))
    after = accuracy(price[held], np.exp(predict(X[held])))
    meta = dict(v.meta)
    parent = meta["version"]
    digest = hashlib.sha256(json.dumps([shift, by_pattern], sort_keys=True).encode()).hexdigest()[
        :8
    ]
    meta["version"] = f"{parent.split('+r')[0]}+r{digest}"
    meta["level_shift"] = shift
    meta["log_residual_interval_90_by_pattern"] = by_pattern
    meta["interval_90_coverage"] = coverage
    meta["refresh"] = {
        "parent": parent,
        "kind": "recalibration",
        "refreshed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "seconds": None,
        "rows": int(table.num_rows),
        "level_shift": shift,
        "held_out_before": before,
        "held_out_after": after,
    }
    out = Path(out_dir)
    if src is not None and out.resolve() == src.resolve():
        raise ValueError("refresh writes a new model version: give another out_dir")
    out.mkdir(parents=True, exist_ok=True)
    from .model import DEFAULT_MODEL  # noqa: PLC0415

    base = src if src is not None else DEFAULT_MODEL
    for name in ("model.onnx", "trees.npz"):
        if (base / name).exists():
            shutil.copyfile(base / name, out / name)
    history = []
    if (base / "versions.json").exists():
        history = json.loads((base / "versions.json").read_text())
    history.append(
        {"version": meta["version"], **meta["refresh"], "card": str(out / "MODEL_CARD.md")}
    )
    (out / "versions.json").write_text(json.dumps(history, indent=1))
    meta["refresh"]["seconds"] = round(time.perf_counter() - t_start, 2)
    history[-1]["seconds"] = meta["refresh"]["seconds"]
    (out / "versions.json").write_text(json.dumps(history, indent=1))
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    (out / "MODEL_CARD.md").write_text(_card(meta, meta.get("data_note", "")))
    return meta


def refit(
    model_dir: str | Path,
    table: pa.Table,
    out_dir: str | Path,
    *,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A model of the newest listings ``table`` (canonical columns with
    ``price`` and ``age_years``) in ``out_dir``, trained with the layout,
    recipe (or ``params``) and seed of the canonical model in ``model_dir``.
    Returns the new ``model.json``; ``refresh`` in it names the parent and
    the kind "refit" and holds the seconds it took."""
    from .train import train  # noqa: PLC0415

    t_start = time.perf_counter()
    src = Path(model_dir)
    parent = Valuer.load(src).meta
    if "categorical" not in parent:
        raise ValueError(
            "a refit needs a model trained through the canonical path "
            "(`valuation train --format canonical`); recalibrate the shipped model instead"
        )
    out = Path(out_dir)
    if out.resolve() == src.resolve():
        raise ValueError("refresh writes a new model version: give another out_dir")
    table, _ = _priced(table)
    if table.num_rows < MIN_REFRESH_ROWS:
        raise ValueError(
            f"{table.num_rows} priced listings; a refit needs {MIN_REFRESH_ROWS} or more"
        )
    derived = ("make", "make_model")  # codes the encoder makes from make and model

    def present(cols: list[str]) -> list[str]:
        return [c for c in cols if c in derived or c in table.column_names]

    layout = {
        "categorical": present(parent["categorical"]),
        "numeric": present(parent["numeric"]),
        "optional": present(parent["optional"]),
    }
    note = f"Refit of {parent['version']} on {table.num_rows:,} newer listings. " + parent.get(
        "data_note", ""
    )
    meta = train(
        table,
        out,
        name=parent["name"],
        currency=parent["currency"],
        listing_year=parent.get("listing_year"),
        params=params or parent["params"],
        seed=parent["seed"],
        data_note=note,
        learner=parent.get("learner", "catboost"),
        layout=layout,
    )
    meta["refresh"] = {
        "parent": parent["version"],
        "kind": "refit",
        "refreshed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": int(table.num_rows),
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    history = (
        json.loads((src / "versions.json").read_text()) if (src / "versions.json").exists() else []
    )
    history.append(
        {"version": meta["version"], **meta["refresh"], "card": str(out / "MODEL_CARD.md")}
    )
    (out / "versions.json").write_text(json.dumps(history, indent=1))
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return meta


def drift(
    model_dir: str | Path | None,
    table: pa.Table,
    *,
    window_days: int = 7,
    threshold_points: float = DRIFT_THRESHOLD_POINTS,
    end: dt.datetime | None = None,
) -> dict[str, Any]:
    """MdAPE on the latest ``window_days`` of listings (by ``listed_at``;
    every row when the table has no dates) against the model card's test
    MdAPE. The window ends at ``end`` (naive UTC or aware; default: the
    latest listing); listings after it are not looked at. ``warning`` is set when it is higher by more than
    ``threshold_points`` on at least ``DRIFT_MIN_ROWS`` listings;
    ``status`` says which: ok, warning or too_few_rows."""
    v = Valuer.load(model_dir)
    table, price = _priced(table)
    window = None
    if "listed_at" in table.column_names and table.column("listed_at").null_count < table.num_rows:
        la = table.column("listed_at").cast(pa.timestamp("s"))
        if end is None:
            end = pc.max(la).as_py()
        elif end.tzinfo is not None:
            end = end.astimezone(dt.UTC).replace(tzinfo=None)
        start = end - dt.timedelta(days=window_days)
        keep = pc.fill_null(
            pc.and_(
                pc.greater(la, pa.scalar(start, pa.timestamp("s"))),
                pc.less_equal(la, pa.scalar(end, pa.timestamp("s"))),
            ),
            False,
        )
        table = table.filter(keep)
        price = price[np.asarray(keep.to_numpy(zero_copy_only=False), bool)]
        window = [start.isoformat(), end.isoformat()]
    ref = float(v.meta["metrics"]["test"]["mdape_pct"])
    out: dict[str, Any] = {
        "model_version": v.version,
        "window": window,
        "card_mdape_pct": ref,
        "threshold_points": threshold_points,
        "n": int(table.num_rows),
    }
    if table.num_rows < DRIFT_MIN_ROWS:
        return {**out, "status": "too_few_rows", "warning": False}
    got = accuracy(price, np.exp(v.predict_log(v.features(table))))
    rise = float(got["mdape_pct"]) - ref
    warn = rise > threshold_points
    return {
        **out,
        **got,
        "rise_points": round(rise, 3),
        "status": "warning" if warn else "ok",
        "warning": warn,
        "message": (
            f"valuation drift: MdAPE {got['mdape_pct']:.2f}% on the latest listings against "
            f"{ref:.2f}% on the card (+{rise:.2f} points, threshold {threshold_points:g})"
            if warn
            else ""
        ),
    }
