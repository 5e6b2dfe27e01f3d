"""Listings data in the valuation's canonical columns.

Canonical vehicle columns: ``make``, ``model``, ``year``, ``mileage_km``,
``fuel`` (petrol, diesel, hybrid, electric, other), ``transmission``
(manual, automatic, semi-auto, other), ``engine_size_l``; training tables add
``price`` and ``age_years`` (age at listing). Optional columns the UK model
also reads: ``tax`` (UK road tax, GBP/year) and ``mpg``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

__all__ = [
    "FUELS",
    "REQUIRED",
    "TRANSMISSIONS",
    "UK_LISTING_YEAR",
    "calibration_split",
    "load_cardekho",
    "load_uk_used_cars",
    "make_model_keys",
]

REQUIRED = ("make", "model", "year", "mileage_km", "fuel", "transmission", "engine_size_l")
FUELS = ("petrol", "diesel", "hybrid", "electric", "other")
TRANSMISSIONS = ("manual", "automatic", "semi-auto", "other")
# The UK adverts carry no date; they were collected in 2020 (the newest model
# year with many rows), so ages are counted from there.
UK_LISTING_YEAR = 2020
MILE_KM = 1.609344


def _norm(col: pa.ChunkedArray | pa.Array, allowed: tuple[str, ...]) -> pa.Array:
    low = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string())))
    return pc.if_else(pc.is_in(low, pa.array(allowed)), low, pa.scalar("other"))


def load_uk_used_cars(directory: str | Path) -> pa.Table:
    """The aelkahout/uk_used_cars CSVs (one per make) in canonical columns."""
    files = sorted(glob.glob(os.path.join(str(directory), "*.csv")))
    if not files:
        raise ValueError(f"no CSV files in {directory}")
    parts = []
    for f in files:
        t = pcsv.read_csv(f)
        make = Path(f).stem.replace("hyundi", "hyundai").replace("merc", "mercedes")
        parts.append(
            pa.table(
                {
                    "make": pa.array([make] * t.num_rows),
                    "model": pc.utf8_trim_whitespace(t.column("model").cast(pa.string())),
                    "year": t.column("year").cast(pa.int32()),
                    "mileage_km": pc.multiply(t.column("mileage").cast(pa.float64()), MILE_KM),
                    "fuel": _norm(t.column("fuelType"), FUELS),
                    "transmission": _norm(t.column("transmission"), TRANSMISSIONS),
                    "engine_size_l": t.column("engineSize").cast(pa.float64()),
                    "tax": t.column("tax").cast(pa.float64()),
                    "mpg": t.column("mpg").cast(pa.float64()),
                    "price": t.column("price").cast(pa.float64()),
                }
            )
        )
    table = pa.concat_tables(parts)
    age = pc.subtract(pa.scalar(UK_LISTING_YEAR), table.column("year"))
    # one advert says 2060: a year after the listing is dropped, not clipped
    keep = pc.greater_equal(age, 0)
    return table.append_column("age_years", age.cast(pa.float64())).filter(keep)


def load_cardekho(path: str | Path, *, listing_year: int = 2023) -> pa.Table:
    """CarDekho (India) listings in canonical columns (price in INR)."""
    t = pcsv.read_csv(str(path), convert_options=pcsv.ConvertOptions(null_values=["?", ""]))
    age = t.column("vehicle_age").cast(pa.float64())
    fuel = pc.utf8_lower(t.column("fuel_type").cast(pa.string()))
    return pa.table(
        {
            "make": pc.utf8_lower(t.column("brand").cast(pa.string())),
            "model": t.column("model").cast(pa.string()),
            "year": pc.subtract(pa.scalar(float(listing_year)), age).cast(pa.int32()),
            "mileage_km": t.column("km_driven").cast(pa.float64()),
            "fuel": pc.if_else(pc.is_in(fuel, pa.array(FUELS)), fuel, pa.scalar("other")),
            "transmission": _norm(t.column("transmission_type"), TRANSMISSIONS),
            "engine_size_l": pc.divide(t.column("engine").cast(pa.float64()), 1000.0),
            "price": t.column("selling_price").cast(pa.float64()),
            "age_years": age,
        }
    )


def split(n: int, seed: int = 42, test_share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-seed 80/20 split used for every metric."""
    idx = np.random.default_rng(seed).permutation(n)
    cut = round(n * (1 - test_share))
    return np.sort(idx[:cut]), np.sort(idx[cut:])


def calibration_split(test: np.ndarray, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """The test split in two fixed-seed halves: the interval is calibrated on
    the first and its coverage measured on the second, so the coverage figures
    are held out from the calibration too."""
    idx = np.random.default_rng(seed + 2).permutation(np.asarray(test))
    half = idx.size // 2
    return np.sort(idx[:half]), np.sort(idx[half:])


def make_model_keys(table: pa.Table) -> tuple[list[Any], list[Any]]:
    """Make and model as every lookup compares them: lower case, the model's
    surrounding spaces trimmed (the UK adverts write " Fiesta"); null stays
    None."""
    make = pc.utf8_lower(table.column("make").cast(pa.string())).to_pylist()
    model = pc.utf8_lower(pc.utf8_trim_whitespace(table.column("model").cast(pa.string())))
    return make, model.to_pylist()
