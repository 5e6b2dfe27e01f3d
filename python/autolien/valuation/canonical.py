"""A lender's own listings in the canonical columns: read (CSV or Parquet),
mapped (a TOML file renames columns, converts units and declares extra
columns), and cleaned by stated rules, every dropped row counted by reason.

Canonical columns (docs/valuation.md, "Your own market"):

* required: ``make``, ``model``, ``year``, ``mileage_km``, ``price`` (the
  currency is given once, for the whole file);
* optional: ``registration_month``, ``fuel``, ``transmission``,
  ``engine_size_l``, ``power_kw``, ``body_type``, ``damaged``, ``region``,
  ``listed_at``, ``delisted_at``; service history: ``service_count``,
  ``km_since_service``, ``accident`` (1/0, yes/no, 是/否); the mapping may declare more columns as
  categorical or numeric features.

The mapping file (all sections optional)::

    currency = "EUR"
    listing_year = 2023          # ages when there is no listed_at
    [columns]                    # canonical name = the lender's column
    mileage_km = "Kilometerstand"
    [units]                      # mileage_km: km|miles; power_kw: kw|ps|hp; engine_size_l: l|cc
    mileage_km = "miles"
    [derive]                     # year = listing_year - this column (ages given, not years)
    year_from_age = "vehicle_age"
    [features]
    categorical = ["seller_type"]
    numeric = ["tax", "mpg"]
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from ..errors import AutolienError
from .data import FUELS, MILE_KM, TRANSMISSIONS

__all__ = [
    "CANONICAL_CATEGORICAL",
    "CANONICAL_NUMERIC",
    "CLEANING_RULES",
    "REQUIRED_CANONICAL",
    "CanonicalError",
    "Mapping",
    "layout_of",
    "load_canonical",
    "parse_amount",
    "read_listings",
    "train_canonical",
]

REQUIRED_CANONICAL = ("make", "model", "year", "mileage_km", "price")
# optional canonical features, by kind; dates are not features
CANONICAL_CATEGORICAL = ("fuel", "transmission", "body_type", "region")
CANONICAL_NUMERIC = ("engine_size_l", "power_kw", "registration_month", "damaged")
# service history (4S-dealer records, repair orders): optional numeric too
SERVICE = ("service_count", "km_since_service", "accident")
DATES = ("listed_at", "delisted_at")
PS_KW = 0.73549875
HP_KW = 0.745699872
MIN_YEAR = 1900
OUTLIER_ROBUST_Z = 5.0
OUTLIER_MIN_ROWS = 20
CLEANING_RULES = {
    "missing_required": "a required column (make, model, year, mileage_km, price) is empty "
    "or unreadable",
    "impossible_year": f"model year before {MIN_YEAR} or after the listing year",
    "impossible_mileage": "negative mileage",
    "zero_price": "price zero or negative",
    "outlier_price": f"log price more than {OUTLIER_ROBUST_Z:g} robust SDs (1.4826 MAD) from "
    f"its make's median (makes with at least {OUTLIER_MIN_ROWS} adverts)",
    "duplicate_advert": "the same make, model, year, mileage, price and every other column "
    "as an earlier advert",
}


class CanonicalError(AutolienError, ValueError):
    """The listings or the mapping cannot be read in the canonical columns."""


@dataclass
class Mapping:
    """How a lender's columns become the canonical ones (see the module doc)."""

    columns: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    currency: str | None = None
    listing_year: int | None = None
    year_from_age: str | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> Mapping:
        if path is None:
            return cls()
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CanonicalError(f"cannot read mapping {path}: {e}") from None
        known = {"columns", "units", "features", "derive", "currency", "listing_year"}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise CanonicalError(f"mapping {path}: unknown keys {unknown}; known: {sorted(known)}")
        units = {str(k): str(v).lower() for k, v in doc.get("units", {}).items()}
        allowed = {
            "mileage_km": {"km", "miles"},
            "power_kw": {"kw", "ps", "hp"},
            "engine_size_l": {"l", "cc"},
        }
        for k, v in units.items():
            if k not in allowed or v not in allowed[k]:
                raise CanonicalError(
                    f"mapping {path}: unit {k} = {v!r} not supported; supported: "
                    + "; ".join(f"{c}: {sorted(u)}" for c, u in allowed.items())
                )
        feats = doc.get("features", {})
        ly = doc.get("listing_year")
        return cls(
            columns={str(k): str(v) for k, v in doc.get("columns", {}).items()},
            units=units,
            categorical=[str(c) for c in feats.get("categorical", [])],
            numeric=[str(c) for c in feats.get("numeric", [])],
            currency=doc.get("currency"),
            listing_year=int(ly) if ly is not None else None,
            year_from_age=doc.get("derive", {}).get("year_from_age"),
        )


def read_listings(path: str | Path) -> pa.Table:
    """A CSV or Parquet file (by its suffix), every CSV column read as text so
    that the mapping, not the reader's guess, decides the types."""
    p = Path(path)
    if not p.exists():
        raise CanonicalError(f"no such file: {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(p)
    try:
        head = pcsv.read_csv(p, read_options=pcsv.ReadOptions(block_size=1 << 16)).schema.names
        return pcsv.read_csv(
            p,
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(head, pa.string()),
                strings_can_be_null=True,
                null_values=["", "NA", "N/A", "null", "NULL", "?", "-"],
            ),
        )
    except pa.ArrowInvalid as e:
        raise CanonicalError(f"cannot read {p} as CSV: {e}") from None


_NUM = re.compile(r"[-+]?\d[\d,.\s']*")


def parse_amount(text: Any) -> tuple[float, str]:
    """A number written by people: ``"$5,000"`` -> (5000, ""), ``"150,000km"``
    -> (150000, "km"), ``"62 mi"`` -> (62, "mi"), ``"1.4"`` -> (1.4, ""),
    ``"110 PS"`` -> (110, "ps"). Commas and spaces are thousands separators;
    the unit is the trailing letters, lower case. NaN and "" when no number."""
    if text is None:
        return float("nan"), ""
    if isinstance(text, int | float):
        return float(text), ""
    s = str(text).strip()
    m = _NUM.search(s)
    if not m:
        return float("nan"), ""
    digits = re.sub(r"[,\s']", "", m.group(0))
    try:
        value = float(digits)
    except ValueError:
        return float("nan"), ""
    unit = re.sub(r"[^a-z]", "", s[m.end() :].lower())
    return value, unit


_MILE_UNITS = {"mi", "mile", "miles", "m"}
_KM_UNITS = {"km", "kms", "kilometres", "kilometers", ""}


def _numeric(col: pa.ChunkedArray, name: str, unit: str | None) -> np.ndarray:
    """A column as float64: numbers as they are, strings parsed by
    ``parse_amount``; a unit in the text wins over the mapping's."""
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        vals = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        if name == "mileage_km" and unit == "miles":
            vals = vals * MILE_KM
        if name == "power_kw" and unit in ("ps", "hp"):
            vals = vals * (PS_KW if unit == "ps" else HP_KW)
        if name == "engine_size_l" and unit == "cc":
            vals = vals / 1000.0
        return vals
    if pa.types.is_boolean(col.type):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    out = np.full(len(col), np.nan)
    for i, raw in enumerate(col.cast(pa.string()).to_pylist()):
        if raw is None:
            continue
        if name in ("damaged", "accident"):
            low = raw.strip().lower()
            # and the Chinese a 4S dealer's export writes: 是/有 (yes), 否/无 (no)
            if low in ("yes", "y", "true", "damaged", "repaired", "是", "有"):
                out[i] = 1.0
                continue
            if low in ("no", "n", "false", "none", "否", "无"):
                out[i] = 0.0
                continue
        v, u = parse_amount(raw)
        if name == "mileage_km":
            if u in _MILE_UNITS or (u == "" and unit == "miles"):
                v *= MILE_KM
            elif u not in _KM_UNITS:
                v = float("nan")  # an unknown unit is unreadable, not guessed
        elif name == "power_kw":
            kind = u or (unit or "kw")
            v *= {"ps": PS_KW, "hp": HP_KW, "bhp": HP_KW, "cv": PS_KW}.get(kind, 1.0)
        elif name == "engine_size_l" and (u == "cc" or (u == "" and unit == "cc")):
            v /= 1000.0
        out[i] = v
    return out


def _dates(col: pa.ChunkedArray) -> pa.Array:
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        # whole seconds of UTC: a feed's sub-second times (a platform's
        # microseconds) are truncated, not refused
        return col.cast(pa.timestamp("s"), safe=False).combine_chunks()
    vals = []
    for raw in col.cast(pa.string()).to_pylist():
        try:
            vals.append(dt.datetime.fromisoformat(raw.strip()) if raw else None)
        except ValueError:
            vals.append(None)
    return pa.array(vals, pa.timestamp("s"))


def _text(col: pa.ChunkedArray) -> pa.Array:
    return pc.utf8_trim_whitespace(col.cast(pa.string())).combine_chunks()


def _norm(col: pa.Array, allowed: tuple[str, ...]) -> pa.Array:
    low = pc.utf8_lower(col)
    out = pc.if_else(pc.is_in(low, pa.array(allowed)), low, pa.scalar("other"))
    return pc.if_else(pc.is_null(low), pa.scalar(None, pa.string()), out)


def load_canonical(
    path_or_table: str | Path | pa.Table,
    mapping: Mapping | None = None,
    *,
    currency: str | None = None,
    listing_year: int | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The listings in canonical columns, cleaned, and the cleaning report
    (``rows_in``, ``rows_out``, ``dropped`` by reason, ``rules``, the optional
    and extra columns found, ``currency``). Raises ``CanonicalError`` when a
    required column is absent or no currency is given."""
    m = mapping or Mapping()
    raw = path_or_table if isinstance(path_or_table, pa.Table) else read_listings(path_or_table)
    cur = currency or m.currency
    if not cur:
        raise CanonicalError("the currency of the prices is required (--currency or the mapping)")
    ly = listing_year if listing_year is not None else m.listing_year

    def source(name: str) -> str | None:
        s = m.columns.get(name, name)
        return s if s in raw.column_names else None

    cols: dict[str, Any] = {}
    need = [c for c in REQUIRED_CANONICAL if not (c == "year" and m.year_from_age)]
    missing = [f"{c} (as {m.columns.get(c, c)!r})" for c in need if source(c) is None]
    if m.year_from_age and m.year_from_age not in raw.column_names:
        missing.append(f"year_from_age column {m.year_from_age!r}")
    if missing:
        raise CanonicalError(
            "listings lack required columns: "
            + ", ".join(missing)
            + f"; the file has: {', '.join(raw.column_names)}"
        )
    if m.year_from_age and ly is None:
        raise CanonicalError("derive.year_from_age needs listing_year")
    for c in ("make", "model"):
        cols[c] = _text(raw.column(source(c)))
    if m.year_from_age:
        age = _numeric(raw.column(m.year_from_age), "age", None)
        cols["year"] = float(ly) - age  # type: ignore[arg-type]
    else:
        cols["year"] = _numeric(raw.column(source("year")), "year", None)
    cols["mileage_km"] = _numeric(
        raw.column(source("mileage_km")), "mileage_km", m.units.get("mileage_km")
    )
    cols["price"] = _numeric(raw.column(source("price")), "price", None)
    present: list[str] = []
    for c in CANONICAL_CATEGORICAL:
        s = source(c)
        if s is not None:
            t = _text(raw.column(s))
            if c == "fuel":
                t = _norm(t, FUELS)
            elif c == "transmission":
                t = _norm(
                    pc.replace_substring(pc.utf8_lower(t), "semi-automatic", "semi-auto"),
                    TRANSMISSIONS,
                )
            cols[c] = t
            present.append(c)
    for c in (*CANONICAL_NUMERIC, *SERVICE):
        s = source(c)
        if s is not None:
            cols[c] = _numeric(raw.column(s), c, m.units.get(c))
            present.append(c)
    extra_cat, extra_num = [], []
    for c in m.categorical:
        if source(c) is None:
            raise CanonicalError(f"mapping declares categorical column {c!r}, not in the file")
        cols[c] = _text(raw.column(source(c)))
        extra_cat.append(c)
    for c in m.numeric:
        if source(c) is None:
            raise CanonicalError(f"mapping declares numeric column {c!r}, not in the file")
        cols[c] = _numeric(raw.column(source(c)), c, m.units.get(c))
        extra_num.append(c)
    for c in DATES:
        s = source(c)
        if s is not None:
            cols[c] = _dates(raw.column(s))
    n = raw.num_rows
    year = np.asarray(cols["year"], np.float64)
    km = np.asarray(cols["mileage_km"], np.float64)
    price = np.asarray(cols["price"], np.float64)
    make_null = np.asarray(pc.is_null(cols["make"]).to_numpy(zero_copy_only=False), bool)
    make_null |= np.asarray(
        pc.equal(cols["make"], "").fill_null(True).to_numpy(zero_copy_only=False), bool
    )
    model_null = np.asarray(pc.is_null(cols["model"]).to_numpy(zero_copy_only=False), bool)

    # the listing year of each row: listed_at's, else the stated one
    if "listed_at" in cols:
        la = cols["listed_at"]
        frac = np.asarray(
            pc.add(
                pc.year(la).cast(pa.float64()),
                pc.divide(pc.subtract(pc.day_of_year(la), 1).cast(pa.float64()), 365.25),
            ).to_numpy(zero_copy_only=False),
            np.float64,
        )
    else:
        frac = np.full(n, np.nan)
    if ly is not None:
        frac = np.where(np.isnan(frac), float(ly) + 0.5, frac)
    if np.isnan(frac).any():
        raise CanonicalError(
            "ages need a listing date: give listed_at in every row or a listing_year"
        )
    age = frac - 0.5 - year
    reason = np.full(n, "", dtype=object)

    def mark(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    mark(
        make_null | model_null | ~np.isfinite(year) | ~np.isfinite(km) | ~np.isfinite(price),
        "missing_required",
    )
    # a model year may be on sale from the summer before it
    mark((year < MIN_YEAR) | (year > np.floor(frac) + 1) | (age < -1), "impossible_year")
    mark(km < 0, "impossible_mileage")
    mark(price <= 0, "zero_price")
    cols["age_years"] = np.maximum(age, 0.0)
    ok = reason == ""
    # outliers, per make, among the rows still kept
    lp = np.log(np.where(ok & (price > 0), price, np.nan))
    make_low = np.array([x.lower() if x else "" for x in cols["make"].to_pylist()], dtype=object)
    for mk in np.unique(make_low[ok]):
        sel = ok & (make_low == mk)
        if sel.sum() < OUTLIER_MIN_ROWS:
            continue
        med = np.median(lp[sel])
        mad = 1.4826 * np.median(np.abs(lp[sel] - med))
        if mad > 0:
            mark(sel & (np.abs(lp - med) > OUTLIER_ROBUST_Z * mad), "outlier_price")
    table = pa.table(
        {
            k: (v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v, pa.float64()))
            for k, v in cols.items()
        }
    )
    # duplicates: the same advert twice (every column equal), kept once
    keep = reason == ""
    seen: set[tuple[Any, ...]] = set()
    idx = np.flatnonzero(keep)
    rows = table.take(pa.array(idx)).to_pylist()
    for i, r in zip(idx, rows, strict=True):
        key = tuple((k, _hashable(v)) for k, v in r.items())
        if key in seen:
            reason[i] = "duplicate_advert"
        else:
            seen.add(key)
    keep = reason == ""
    out = table.filter(pa.array(keep))
    yr = np.asarray(out.column("year").cast(pa.float64()).to_numpy(zero_copy_only=False))
    out = out.set_column(out.schema.get_field_index("year"), "year", pa.array(yr.astype(np.int32)))
    dropped = {k: int((reason == k).sum()) for k in CLEANING_RULES}
    report = {
        "rows_in": int(n),
        "rows_out": int(out.num_rows),
        "dropped": dropped,
        "rules": CLEANING_RULES,
        "currency": cur,
        "optional_present": present,
        "extra_categorical": extra_cat,
        "extra_numeric": extra_num,
        "dated": "listed_at" in cols,
    }
    return out, report


def _hashable(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return "nan"
    return v


def layout_of(table: pa.Table, report: dict[str, Any]) -> dict[str, list[str]]:
    """The model's features for cleaned canonical listings: make and
    make|model codes, age and mileage always; the optional and declared
    columns the data has (a column empty in every row is left out, and the
    report says so) as optional features."""

    def has(c: str) -> bool:
        return (
            c in table.column_names
            and table.column(c).null_count < table.num_rows
            and (
                not pa.types.is_floating(table.column(c).type)
                or bool(np.isfinite(table.column(c).to_numpy(zero_copy_only=False)).any())
            )
        )

    cats = [
        c for c in (*CANONICAL_CATEGORICAL, *report["extra_categorical"]) if c in table.column_names
    ]
    nums = [
        c
        for c in (*CANONICAL_NUMERIC, *SERVICE, *report["extra_numeric"])
        if c in table.column_names
    ]
    empty = [c for c in (*cats, *nums) if not has(c)]
    report["empty_columns_ignored"] = empty
    cats = [c for c in cats if c not in empty]
    nums = [c for c in nums if c not in empty]
    return {
        "categorical": ["make", "make_model", *cats],
        "numeric": ["age_years", "mileage_km", *nums],
        "optional": [*cats, *nums],
    }


def train_canonical(
    data: str | Path | pa.Table,
    out_dir: str | Path,
    *,
    mapping: Mapping | None = None,
    currency: str | None = None,
    listing_year: int | None = None,
    name: str = "canonical",
    params: dict[str, Any] | None = None,
    learner: str = "catboost",
    seed: int = 42,
) -> dict[str, Any]:
    """Reads, maps and cleans a lender's listings and trains the base value
    model on them (``train`` with the canonical layout). Writes the model
    directory plus ``training_report.json`` (the cleaning counts by reason);
    returns ``model.json``'s content."""
    import json  # noqa: PLC0415

    from .train import train  # noqa: PLC0415

    table, report = load_canonical(data, mapping, currency=currency, listing_year=listing_year)
    if table.num_rows < 50:
        raise CanonicalError(
            f"{table.num_rows} listings left after cleaning ({report['dropped']}); 50 needed"
        )
    layout = layout_of(table, report)
    src = data if not isinstance(data, pa.Table) else "a table"
    dropped = ", ".join(f"{v:,} {k}" for k, v in report["dropped"].items() if v) or "none"
    note = (
        f"A lender's listings from {src} through the canonical path; prices in "
        f"{report['currency']}. {report['rows_in']:,} rows read, dropped: {dropped}."
    )
    meta = train(
        table,
        out_dir,
        name=name,
        currency=report["currency"],
        listing_year=listing_year
        if listing_year is not None
        else (mapping or Mapping()).listing_year,
        params=params,
        seed=seed,
        data_note=note,
        learner=learner,
        layout=layout,
        cleaning=report,
    )
    Path(out_dir, "training_report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return meta
