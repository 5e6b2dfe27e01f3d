"""Synthetic dated listings with a known market response, for the market-fit
tests: per model, Poisson arrivals and exponential times on the market whose
rates follow a stated schedule (a seasonal swing in arrivals and, on another
period, in selling times; optionally a glut or a shortage in the first model
from ``shock_day``). Prices follow a stated rule times
supply_ratio^beta_supply x tom_ratio^beta_tom, the ratios being what each
advert met at listing (``supply_ratio_at_listing``, checked against DuckDB
SQL in tests/test_valuation_market.py, and ``tom_ratio_at_listing``, checked
against ``market_index``)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from autolien.valuation.market import supply_ratio_at_listing, tom_ratio_at_listing

T0 = dt.datetime(2024, 1, 1)
MODELS = (("ford", "fiesta"), ("vw", "golf"), ("bmw", "3"))
# (arrival multiplier, selling-time multiplier) of the first model from shock_day
SHOCKS = {"none": (1.0, 1.0), "glut": (2.0, 1.3), "shortage": (0.5, 0.7)}


def dated_listings(seed: int, *, days: int = 240, shock: str = "none", shock_day: int = 150,
                   rate: float = 10.0, swing: float = 0.4) -> pa.Table:  # fmt: skip
    """Unpriced dated adverts (make, model, year, mileage_km, listed_at,
    delisted_at; null where still on offer at the end)."""
    rng = np.random.default_rng(seed)
    arrive_x, stay_x = SHOCKS[shock]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("make", "model", "day", "stay", "age")}
    grid = np.arange(days)
    for i, (make, model) in enumerate(MODELS):
        lam = rate * (1 + swing * np.sin(2 * np.pi * (grid + 20 * i) / 60))
        if i == 0:
            lam = np.where(grid >= shock_day, lam * arrive_x, lam)
        counts = rng.poisson(lam)
        day = np.repeat(grid, counts) + rng.uniform(0, 1, counts.sum())
        mean_stay = 25 * (1 + 0.3 * np.sin(2 * np.pi * (day + 10 * i) / 45))
        if i == 0:
            mean_stay = np.where(day >= shock_day, mean_stay * stay_x, mean_stay)
        cols["make"].append(np.full(day.size, make, object))
        cols["model"].append(np.full(day.size, model, object))
        cols["day"].append(day)
        cols["stay"].append(rng.exponential(mean_stay))
        cols["age"].append(rng.uniform(1, 5, day.size))
    c = {k: np.concatenate(v) for k, v in cols.items()}
    listed_s = (T0 - dt.datetime(1970, 1, 1)).total_seconds() + c["day"] * 86400
    gone_s = listed_s + c["stay"] * 86400
    end_s = (T0 - dt.datetime(1970, 1, 1)).total_seconds() + days * 86400
    year = np.floor(2024 + c["day"] / 365.25 - c["age"]).astype(np.int32)
    return pa.table(
        {
            "make": pa.array(c["make"].tolist(), pa.string()),
            "model": pa.array(c["model"].tolist(), pa.string()),
            "year": pa.array(year),
            "mileage_km": pa.array(c["age"] * rng.uniform(8000, 20000, c["age"].size)),
            "listed_at": pa.array(listed_s.astype(np.int64), pa.timestamp("s")),
            "delisted_at": pa.array(
                gone_s.astype(np.int64), pa.timestamp("s"), mask=gone_s > end_s
            ),
        }
    )


def market_ratios(t: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """log supply ratio and log days'-supply ratio at listing, 0 where undefined."""
    xs = np.log(supply_ratio_at_listing(t))
    xt = np.log(tom_ratio_at_listing(t))
    return np.nan_to_num(xs), np.nan_to_num(xt)


def priced(t: pa.Table, beta_supply: float, beta_tom: float, seed: int,
           noise: float = 0.04) -> pa.Table:  # fmt: skip
    """``t`` with prices: 25,000 x 0.88^age x 0.8^(mileage/1e5), BMW +35%,
    times the known market response, times lognormal noise."""
    rng = np.random.default_rng([seed, 1])
    xs, xt = market_ratios(t)
    listed = t.column("listed_at").cast(pa.int64()).to_numpy().astype(np.float64)
    year_frac = 1970 + listed / 86400 / 365.25
    age = year_frac - 0.5 - t.column("year").to_numpy()
    make = np.array(t.column("make").to_pylist())
    logp = (
        np.log(25000)
        - 0.12 * age
        - 0.2 * t.column("mileage_km").to_numpy() / 1e5
        + np.where(make == "bmw", 0.3, 0.0)
        + beta_supply * xs
        + beta_tom * xt
        + rng.normal(0, noise, t.num_rows)
    )
    return t.append_column("price", pa.array(np.exp(logp)))
