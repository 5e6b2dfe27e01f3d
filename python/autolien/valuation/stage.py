"""The pipeline's valuation stage: every pledged vehicle valued at the run's
clock from its loan-book attributes, latest odometer, the monitor's usage
features, the market's supply (``market_listings``, when the portfolio has a
feed) and its battery health, then LTV graded per loan.

Writes ``valuations`` (the value history: one row per vehicle and as-of
time, a re-run at the same clock replaces its own rows) and ``ltv``
(replaced), and the battery and ``valuation_drift`` alerts into ``alerts``,
all in one transaction. A book in another currency than the model's is valued
by a model trained on the portfolio's priced feed in its currency
(``feed.book_model``); without one it gets values but no LTV, with the reason
in the summary."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from .adjust import EV_COLUMNS, battery_alerts, ltv, soh_segments
from .feed import DRIFT_KIND, book_model, drift_alert, feed_table, market_response
from .market import SUPPLY_ELASTICITY, TOM_ELASTICITY, market_index
from .model import Valuer

__all__ = ["Scorer", "battery_segments", "score_here", "valuation_stage"]

NOMINAL_KWH = 60.0  # the simulated fleet's pack; a real book carries it per model
RECENT_SEGMENTS = 3


class Scorer(Protocol):
    """Prices ``vehicles`` (one row each, ``vehicle_id`` first) as
    ``Valuer.value`` does: the same rows in the same order."""

    def __call__(
        self,
        v: Valuer,
        vehicles: pa.Table,
        at: dt.datetime,
        *,
        usage: pa.Table | None,
        market: pa.Table | None,
        battery: pa.Table | None,
    ) -> pa.Table: ...


def score_here(
    v: Valuer,
    vehicles: pa.Table,
    at: dt.datetime,
    *,
    usage: pa.Table | None,
    market: pa.Table | None,
    battery: pa.Table | None,
) -> pa.Table:
    """The default scorer: the whole book in one call, in this process."""
    return v.value(vehicles, at, usage=usage, market=market, battery=battery)


def battery_segments(ev: pa.Table | None) -> pa.Table | None:
    """The charge segments of the packs in ``ev`` (GB/T 32960 frames), per
    VIN in VIN order: None without frames. Each VIN's segments depend on its
    own frames alone, so any split of the frames by VIN gives the same rows."""
    if ev is None or not ev.num_rows:
        return None
    return soh_segments(ev, nominal_kwh=NOMINAL_KWH)


def valuation_stage(
    db: str | Path,
    at: dt.datetime,
    *,
    model_dir: str | Path | None = None,
    segments: pa.Table | None = None,
    score: Scorer | None = None,
) -> dict[str, Any]:
    """``segments``: the packs' charge segments (``battery_segments``) when
    the caller has worked them out already, per VIN elsewhere (the Dask
    engine's tasks); else they are worked out here from the stored frames.
    ``score``: what prices the book (default :func:`score_here`, one
    ``Valuer.value`` call; the Dask engine's scores buckets of the book on
    its workers)."""
    from ..store import ev_frame_blocks, valuation_inputs, write_valuation  # noqa: PLC0415

    inputs = valuation_inputs(db, ev=False)
    book, km, usage, listings = inputs.book, inputs.km, inputs.usage, inputs.listings
    if segments is None:
        # a block of whole VINs at a time: each VIN's segments depend on its
        # own frames alone, so the blocks' rows, in VIN order, are those of
        # all frames at once, without the whole history in memory
        # only the columns the segments read: the frames' other columns
        # (temperatures, motors, ...) were most of each block's bytes
        blocks = ev_frame_blocks(db, columns=EV_COLUMNS)
        parts = [s for t in blocks if (s := battery_segments(t)) is not None]
        segments = pa.concat_tables(parts) if parts else None
    v, vdir, feed, own = _model(db, book, listings, at, model_dir)
    kmap = dict(zip(km.column("vehicle_id").to_pylist(), km.column("km").to_pylist(), strict=True))
    vehicles = book.select(
        ["vehicle_id", "make", "model", "year", "fuel", "transmission", "engine_size_l"]
    )
    vehicles = vehicles.append_column(
        "mileage_km",
        pa.array([kmap.get(k) for k in book.column("vehicle_id").to_pylist()], pa.float64()),
    )
    battery = None
    health: list[dict[str, Any]] = []
    seg = segments
    if seg is not None:
        # health now: the median of each pack's last RECENT_SEGMENTS charges
        vin_to_id = dict(
            zip(book.column("vin").to_pylist(), book.column("vehicle_id").to_pylist(), strict=True)
        )
        recent: dict[str, list[float]] = {}
        for r in seg.sort_by([("vin", "ascending"), ("end", "ascending")]).to_pylist():
            if r["soh"] is not None:
                recent.setdefault(r["vin"], []).append(r["soh"])
        battery = pa.table(
            {
                "vehicle_id": pa.array([vin_to_id.get(x) for x in recent], pa.string()),
                "soh": pa.array(
                    [float(np.median(v[-RECENT_SEGMENTS:])) for v in recent.values()], pa.float64()
                ),
            }
        )
        years = dict(
            zip(book.column("vin").to_pylist(), book.column("year").to_pylist(), strict=True)
        )
        health = [
            {**a, "vehicle_id": vin_to_id[a["vin"]]}
            for a in battery_alerts(seg, years)
            if a["vin"] in vin_to_id
        ]
    use_market, es, et, market_note = market_response(v.meta)
    market = (
        market_index(
            listings,
            at,
            # more supply never raises a value
            supply_elasticity=min(es, 0.0) if es is not None else SUPPLY_ELASTICITY,
            tom_elasticity=min(et, 0.0) if et is not None else TOM_ELASTICITY,
        )
        if use_market and listings is not None and listings.num_rows
        else None
    )
    values = (score or score_here)(v, vehicles, at, usage=usage, market=market, battery=battery)
    values = values.append_column("vehicle_id", book.column("vehicle_id")).append_column(
        "time", pa.array([at] * book.num_rows, pa.timestamp("us", tz="UTC"))
    )
    currency = (
        book.column("currency")[0].as_py()
        if "currency" in book.column_names and book.num_rows
        else None
    )
    summary: dict[str, Any] = {
        "vehicles": book.num_rows,
        "currency": v.currency,
        "model_version": v.version,
        "valued": values.num_rows - values.column("value").null_count,
        "errors": len(values.column("error")) - values.column("error").null_count,
        "flagged": len(values.column("flag")) - values.column("flag").null_count,
    }
    if market is not None:
        fm = np.asarray(values.column("market_factor").to_numpy(zero_copy_only=False), np.float64)
        summary["market"] = {
            "groups": market.num_rows,
            "factor_min": round(float(fm.min()), 3) if fm.size else None,
            "factor_median": round(float(np.median(fm)), 3) if fm.size else None,
        }
    summary["market_response"] = market_note
    summary["model"] = own
    drift_info, drift_rows = drift_alert(vdir, feed[0], at, feed[1])
    summary["drift"] = drift_info
    val = np.asarray(values.column("value").to_numpy(zero_copy_only=False), np.float64)
    summary["portfolio_value"] = round(float(np.nansum(val)), 2)
    if currency is not None and currency != v.currency:
        ratio = pa.table(
            {"vehicle_id": book.column("vehicle_id"), "ltv": pa.nulls(book.num_rows, pa.float64())}
        )
        summary["ltv"] = (
            f"not computed: the book is in {currency}, the model prices in {v.currency}"
        )
        table_ltv = ratio
    else:
        table_ltv = ltv(book, values)
        r = np.asarray(table_ltv.column("ltv").to_numpy(zero_copy_only=False), np.float64)
        levels = table_ltv.column("level").to_pylist()
        summary["ltv"] = {
            "median": round(float(np.nanmedian(r)), 3) if np.isfinite(r).any() else None,
            "p90": round(float(np.nanquantile(r, 0.9)), 3) if np.isfinite(r).any() else None,
            "warning": levels.count("warning"),
            "alert": levels.count("alert"),
            "emergency": levels.count("emergency"),
        }
    summary["battery_alerts"] = {
        lv: sum(1 for a in health if a["level"] == lv) for lv in ("warning", "alert", "emergency")
    }
    # battery alerts join the monitor's, the drift warning is recomputed every
    # run; all of it written in one transaction
    write_valuation(
        db,
        at,
        values,
        table_ltv,
        _alert_rows(health) if health else None,
        drift=(DRIFT_KIND, _alert_table(drift_rows) if drift_rows else None),
    )
    summary["ltv_table"] = table_ltv
    summary["values_table"] = values
    return summary


def _model(
    db: str | Path,
    book: pa.Table,
    listings: pa.Table | None,
    at: dt.datetime,
    model_dir: str | Path | None,
) -> tuple[Valuer, str | Path | None, tuple[pa.Table | None, str], str]:
    """The model that values the book: ``model_dir`` (default: the shipped
    one) when it prices in the book's currency; else one trained on the
    portfolio's priced feed in that currency (``feed.book_model``). Also the
    feed as canonical listings (or why not), for the drift check."""
    v = Valuer.load(model_dir)
    cur = (
        book.column("currency")[0].as_py()
        if "currency" in book.column_names and book.num_rows
        else None
    )
    if cur is None or cur == v.currency:
        feed = feed_table(listings, v.currency, for_model=v.meta)
        return v, model_dir, feed, f"{v.version} ({v.currency})"
    path, why = book_model(db, cur, listings, at)
    if path is None:
        return v, model_dir, (None, why), f"{v.version} ({v.currency}); no {cur} model: {why}"
    own = Valuer.load(path)
    feed = feed_table(listings, cur, for_model=own.meta)
    return own, path, feed, f"trained on the feed: {path.name}"


def _alert_table(rows: list[dict[str, Any]]) -> pa.Table:
    from ..schemas import ALERTS_SCHEMA, LEVELS  # noqa: PLC0415

    code = {name: i for i, name in enumerate(LEVELS)}
    return pa.Table.from_pylist(
        [{**r, "level_code": code[r["level"]]} for r in rows], schema=ALERTS_SCHEMA
    )


def _alert_rows(health: list[dict[str, Any]]) -> pa.Table:
    from ..schemas import ALERTS_SCHEMA, LEVELS  # noqa: PLC0415

    code = {name: i for i, name in enumerate(LEVELS)}
    rows = []
    for a in health:
        ev = a["evidence"]
        rows.append(
            {
                # one per pack: the id stays the same as the alert escalates
                "alert_id": (
                    f"{a['vehicle_id']}:battery_degradation:{round(a['opened'].timestamp() * 1e6)}"
                ),
                "vehicle_id": a["vehicle_id"],
                "kind": "battery_degradation",
                "level": a["level"],
                "level_code": code[a["level"]],
                "score": ev["deficit"],
                "opened": a["opened"],
                "updated": a["updated"],
                "closed": None,
                "first_signal": a["opened"],
                "last_signal": a["updated"],
                "n_signals": 1,
                "segment_start": dt.datetime.fromisoformat(ev["segment_start"]),
                "segment_end": dt.datetime.fromisoformat(ev["segment_end"]),
                "evidence": json.dumps(ev, sort_keys=True),
                "path": [],
            }
        )
    return pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA)
