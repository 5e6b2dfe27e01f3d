"""The market factor from dated listings (docs/valuation.md, "Market factor").

A used-car platform's listings feed (one row per advert: ``make``, ``model``,
``year``, ``listed_at`` and, once it is gone, ``delisted_at``) says how many
cars like a pledged one are on offer now against the usual number, and how
long they take to go. Per (make, model, age band):

* ``supply_ratio``: the mean daily count of active adverts over the last
  ``window_days`` over the mean over the ``norm_days`` before that;
* ``tom_ratio``: the model's time on market (all ages: one band's sales are
  too few) over the last ``tom_window_days`` (28, for the same reason) over
  that of the rest of the norm period. Time on market is the mean stock of
  adverts over sales per day (Little's law; the trade calls it days' supply).
  The median time of the adverts that went in a window would not do: while
  supply grows, recent quick sales crowd it and it falls when it should rise;
* ``factor = clip(supply_ratio^supply_elasticity x tom_ratio^tom_elasticity,
  *MARKET_BOUNDS_DATED)``: more cars on offer, or slower sales, lower the
  value. A supply ratio whose norm rests on fewer than ``min_listings``
  adverts, or a time-on-market ratio on fewer than ``min_sold`` sales on
  either side, counts as 1.

``fit_market_response`` estimates the supply elasticity from listings that
carry prices, as the slope of the base model's log residual on the log supply
ratio each advert met when it was listed; ``market_fit.fit_dated_market``
fits both responses with honest intervals and proves them out of time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .adjust import _band, _slope
from .data import make_model_keys

__all__ = [
    "MARKET_BOUNDS_DATED",
    "MARKET_SCHEMA",
    "SUPPLY_ELASTICITY",
    "TOM_ELASTICITY",
    "fit_market_response",
    "market_index",
    "tom_ratio_at_listing",
]

# Assumed responses, used where a market's listings do not identify them: a
# season's 35% rise in adverts lowers prices about 9% (1.35^-0.3), and
# sales that take twice as long lower them about 10% (2^-0.15).
# `fit_market_response` replaces the first where a lender has priced listings.
SUPPLY_ELASTICITY = -0.3
TOM_ELASTICITY = -0.15
# The downside is allowed further than the upside: collateral is valued
# conservatively.
MARKET_BOUNDS_DATED = (0.75, 1.15)
DAY_US = 86_400_000_000

MARKET_SCHEMA = pa.schema(
    [
        pa.field("make", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("age_band", pa.int8(), nullable=False),
        pa.field("active", pa.float64(), nullable=False),
        pa.field("active_norm", pa.float64(), nullable=False),
        pa.field("supply_ratio", pa.float64(), nullable=False),
        pa.field("sold", pa.int64(), nullable=False),  # the model's, in tom_window_days
        pa.field("tom_days", pa.float64()),
        pa.field("tom_norm_days", pa.float64()),
        pa.field("tom_ratio", pa.float64(), nullable=False),
        pa.field("factor", pa.float64(), nullable=False),
    ]
)


def _micros(col: pa.ChunkedArray | pa.Array) -> npt.NDArray[np.float64]:
    """Timestamps as float microseconds since the epoch, NaN for null."""
    if not pa.types.is_timestamp(col.type):
        raise TypeError(f"listing times must be timestamps, got {col.type}")
    ints = pc.cast(pc.cast(col, pa.timestamp("us", tz="UTC")), pa.int64())
    return np.asarray(ints.to_numpy(zero_copy_only=False), np.float64)


def _at_micros(at: dt.datetime | dt.date) -> float:
    if not isinstance(at, dt.datetime):
        at = dt.datetime(at.year, at.month, at.day, tzinfo=dt.UTC)
    if at.tzinfo is None:
        raise ValueError("`at` must be timezone-aware")
    return float(at.timestamp() * 1e6)


def _age_at(year: npt.NDArray[np.float64], t_us: npt.NDArray[np.float64]) -> np.ndarray:
    """Age at each time in the Valuer's convention (UTC date's year plus its
    day of year over 365.25, from mid model year), so bands agree."""
    day = t_us.astype("int64").astype("datetime64[us]").astype("datetime64[D]")
    y0 = day.astype("datetime64[Y]")
    frac = (day - y0.astype("datetime64[D]")).astype(np.float64) / 365.25
    return np.asarray(y0.astype(np.int64) + 1970 + frac - 0.5 - year, np.float64)


def _groups(listings: pa.Table, t_us: npt.NDArray[np.float64]) -> tuple[list[Any], np.ndarray]:
    """Group keys (make, model, band at t) and the group number of each row."""
    need = [c for c in ("make", "model", "year", "listed_at") if c not in listings.column_names]
    if need:
        raise ValueError(f"listings lack columns: {', '.join(need)}")
    make, model = make_model_keys(listings)
    year = np.asarray(
        listings.column("year").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    band = _band(_age_at(year, t_us)).tolist()
    keys: dict[tuple[str, str, int], int] = {}
    gid = np.empty(len(make), np.int64)
    for i, k in enumerate(zip(make, model, band, strict=True)):
        gid[i] = keys.setdefault(k, len(keys))
    return list(keys), gid


class _Stock:
    """Adverts active at given times (listed at or before, not yet gone), by
    binary search in the listing and delisting times, sorted once."""

    def __init__(self, listed: np.ndarray, delisted: np.ndarray) -> None:
        self.listed = np.sort(listed)
        self.gone = np.sort(delisted[np.isfinite(delisted)])

    def at(self, times: np.ndarray) -> np.ndarray:
        return np.asarray(
            np.searchsorted(self.listed, times, side="right")
            - np.searchsorted(self.gone, times, side="right"),
            np.float64,
        )


def _group_rows(gid: np.ndarray) -> list[np.ndarray]:
    """Row numbers of each group, groups in order of their number."""
    order = np.argsort(gid, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(gid[order])) + 1) if order.size else []


def market_index(
    listings: pa.Table,
    at: dt.datetime | dt.date,
    *,
    window_days: int = 7,
    tom_window_days: int = 28,
    norm_days: int = 84,
    supply_elasticity: float = SUPPLY_ELASTICITY,
    tom_elasticity: float = TOM_ELASTICITY,
    min_listings: int = 10,
    min_sold: int = 30,
) -> pa.Table:
    """Supply, time on market and the factor per (make, model, age band) at
    ``at`` (:data:`MARKET_SCHEMA`). Bands are those of the cars' ages at
    ``at``. Adverts listed after ``at`` are ignored."""
    if not (1 <= window_days < norm_days and 1 <= tom_window_days < norm_days):
        raise ValueError("need 1 <= window_days, tom_window_days < norm_days")
    if supply_elasticity > 0 or tom_elasticity > 0:
        raise ValueError("elasticities must be <= 0: more supply never raises a value")
    now = _at_micros(at)
    listed = _micros(listings.column("listed_at")) if "listed_at" in listings.column_names else None
    if listed is None:
        raise ValueError("listings lack columns: listed_at")
    if np.isnan(listed).any():
        raise ValueError("listed_at has nulls")
    delisted = (
        _micros(listings.column("delisted_at"))
        if "delisted_at" in listings.column_names
        else np.full(listed.size, np.nan)
    )
    if (delisted < listed).any():
        raise ValueError("an advert is delisted before it is listed")
    keep = listed <= now
    listings = listings.filter(pa.array(keep))
    listed, delisted = listed[keep], delisted[keep]
    delisted = np.where(delisted > now, np.nan, delisted)  # not gone yet, seen from `at`
    keys, gid = _groups(listings, np.full(listed.size, now))
    recent = now - np.arange(window_days)[::-1] * DAY_US
    norm = now - np.arange(window_days, norm_days)[::-1] * DAY_US
    rows: dict[str, list[Any]] = {f.name: [] for f in MARKET_SCHEMA}
    in_recent = delisted > now - tom_window_days * DAY_US  # NaN (not gone) compares False
    in_norm = (delisted > now - norm_days * DAY_US) & ~in_recent
    model_of: dict[tuple[str, str], int] = {}
    for k in keys:
        model_of.setdefault(k[:2], len(model_of))
    mid = np.array([model_of[keys[g][:2]] for g in gid], np.int64)
    tom_recent = now - np.arange(tom_window_days)[::-1] * DAY_US
    tom_norm = now - np.arange(tom_window_days, norm_days)[::-1] * DAY_US
    tom_by_model: dict[int, tuple[int, float | None, float | None, float]] = {}
    for m, sel in enumerate(_group_rows(mid)):
        r, q = int(in_recent[sel].sum()), int(in_norm[sel].sum())
        stock = _Stock(listed[sel], delisted[sel])
        stock_r = float(stock.at(tom_recent).mean())
        stock_n = float(stock.at(tom_norm).mean())
        t_r = stock_r / (r / tom_window_days) if r else None
        t_n = stock_n / (q / (norm_days - tom_window_days)) if q else None
        ok = t_r is not None and t_n is not None and r >= min_sold and q >= min_sold
        tom_by_model[m] = (r, t_r, t_n, t_r / t_n if ok else 1.0)  # type: ignore[operator]
    for sel in _group_rows(gid):
        mk, md, band = keys[int(gid[sel[0]])]
        stock = _Stock(listed[sel], delisted[sel])
        a_recent = float(stock.at(recent).mean())
        a_norm = float(stock.at(norm).mean())
        supply = a_recent / a_norm if a_norm >= min_listings else 1.0
        sold, t_recent, t_norm, ratio_tom = tom_by_model[model_of[(mk, md)]]
        factor = float(
            np.clip(supply**supply_elasticity * ratio_tom**tom_elasticity, *MARKET_BOUNDS_DATED)
        )
        for name, v in zip(
            rows,
            (mk, md, band, a_recent, a_norm, supply, sold, t_recent, t_norm, ratio_tom, factor),
            strict=True,
        ):
            rows[name].append(v)
    return pa.table(rows, schema=MARKET_SCHEMA)


def supply_ratio_at_listing(
    listings: pa.Table, *, window_days: int = 7, norm_days: int = 84, min_listings: int = 10
) -> npt.NDArray[np.float64]:
    """The supply ratio each advert met on the day it was listed (NaN where
    the norm rests on fewer than ``min_listings`` adverts)."""
    listed = _micros(listings.column("listed_at"))
    delisted = (
        _micros(listings.column("delisted_at"))
        if "delisted_at" in listings.column_names
        else np.full(listed.size, np.nan)
    )
    _, gid = _groups(listings, listed)
    out = np.full(listed.size, np.nan)
    recent = np.arange(window_days)[::-1] * DAY_US
    norm = np.arange(window_days, norm_days)[::-1] * DAY_US
    for sel in _group_rows(gid):
        stock = _Stock(listed[sel], delisted[sel])
        t0 = listed[sel][:, None]
        a_recent = stock.at(t0 - recent[None, :]).mean(axis=1)
        a_norm = stock.at(t0 - norm[None, :]).mean(axis=1)
        out[sel] = np.where(a_norm >= min_listings, a_recent / np.maximum(a_norm, 1.0), np.nan)
    return out


def tom_ratio_at_listing(
    listings: pa.Table, *, tom_window_days: int = 28, norm_days: int = 84, min_sold: int = 30
) -> npt.NDArray[np.float64]:
    """The days'-supply (time-on-market) ratio of its model each advert met on
    the day it was listed, as ``market_index`` computes it at that moment
    (mean stock over sales a day, the last ``tom_window_days`` over the rest
    of the norm period); NaN where either side has fewer than ``min_sold``
    sales. It looks back only: adverts listed or sold after the listing do
    not count."""
    if not 1 <= tom_window_days < norm_days:
        raise ValueError("need 1 <= tom_window_days < norm_days")
    listed = _micros(listings.column("listed_at"))
    delisted = (
        _micros(listings.column("delisted_at"))
        if "delisted_at" in listings.column_names
        else np.full(listed.size, np.nan)
    )
    make, model = make_model_keys(listings)
    keys: dict[tuple[str, str], int] = {}
    mid = np.array([keys.setdefault(k, len(keys)) for k in zip(make, model, strict=True)], np.int64)
    out = np.full(listed.size, np.nan)
    recent = np.arange(tom_window_days)[::-1] * DAY_US
    norm = np.arange(tom_window_days, norm_days)[::-1] * DAY_US
    for sel in _group_rows(mid):
        stock = _Stock(listed[sel], delisted[sel])
        t0 = listed[sel]
        # sales (delistings) in (t0 - w, t0] and (t0 - norm, t0 - w]
        sold_at = stock.gone

        def sold(lo: np.ndarray, hi: np.ndarray, sold_at: np.ndarray = sold_at) -> np.ndarray:
            return np.asarray(
                np.searchsorted(sold_at, hi, side="right")
                - np.searchsorted(sold_at, lo, side="right"),
                np.float64,
            )

        r = sold(t0 - tom_window_days * DAY_US, t0)
        q = sold(t0 - norm_days * DAY_US, t0 - tom_window_days * DAY_US)
        s_r = stock.at(t0[:, None] - recent[None, :]).mean(axis=1)
        s_n = stock.at(t0[:, None] - norm[None, :]).mean(axis=1)
        ok = (r >= min_sold) & (q >= min_sold)
        t_r = s_r / np.maximum(r, 1.0) * tom_window_days
        t_n = s_n / np.maximum(q, 1.0) * (norm_days - tom_window_days)
        out[sel] = np.where(ok & (t_n > 0), t_r / np.where(t_n > 0, t_n, 1.0), np.nan)
    return out


def fit_market_response(
    listings: pa.Table,
    residual_log: npt.ArrayLike,
    *,
    window_days: int = 7,
    norm_days: int = 84,
    min_listings: int = 10,
) -> dict[str, float]:
    """Least-squares slope of the base model's log residual (price over base
    value, per advert) on the log supply ratio at listing: the supply
    elasticity, with its standard error and the number of adverts used."""
    x = np.log(
        supply_ratio_at_listing(
            listings, window_days=window_days, norm_days=norm_days, min_listings=min_listings
        )
    )
    return _slope(x, np.asarray(residual_log, np.float64))
