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
    encoding = "latin-1"         # of a CSV (default utf-8)
    [columns]                    # canonical name = the lender's column
    mileage_km = "Kilometerstand"
    [units]                      # mileage_km: km|miles; power_kw: kw|ps|hp; engine_size_l: l|cc
    mileage_km = "miles"
    [derive]                     # year = listing_year - this column (ages given, not years)
    year_from_age = "vehicle_age"
    [features]
    categorical = ["seller_type"]
    numeric = ["tax", "mpg"]
    [values.transmission]        # the lender's value (any case) = the canonical one
    manuell = "manual"
    [missing]                    # cells that mean "unknown" (compared before units)
    power_kw = [0]
    [keep]                       # only rows whose column holds one of these values;
    offerType = ["Angebot"]      # the rest dropped, counted as excluded_by_mapping
    [dates]                      # delisted_at at or after this = still listed (censored)
    delisted_censored_from = "2016-04-05T11:00:00"
    observed_from = "2016-03-05T14:00:00"   # the feed's first day: earlier stock is unseen

Sections name canonical columns (``values``, ``missing``) or the lender's
(``keep``). Every cell a section changes is counted in the report
(``values_mapped``, ``set_missing``, ``censored_delisted``), and so is every
optional cell that stays unreadable (``unreadable_cells``) and every fuel or
transmission value that no rule knows and becomes ``other``
(``unknown_values``): nothing changes silently.
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
CLEANING_RULES = {  # in the order a row is checked: counted under the first it breaks
    "excluded_by_mapping": "a value the mapping's [keep] section does not keep (an advert that "
    "is not an offer for sale, a seller type outside the market)",
    "missing_required": "a required column (make, model, year, mileage_km, price) is empty "
    "or unreadable",
    "impossible_year": f"model year before {MIN_YEAR} or after the listing year",
    "impossible_mileage": "negative mileage",
    "zero_price": "price zero or negative",
    "bad_dates": "listed_at unreadable (with no listing_year to fall back on), delisted_at "
    "written but unreadable, or delisted before listed",
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
    encoding: str = "utf8"
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: dict[str, list[Any]] = field(default_factory=dict)
    keep: dict[str, list[str]] = field(default_factory=dict)
    delisted_censored_from: dt.datetime | None = None
    observed_from: dt.datetime | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> Mapping:
        if path is None:
            return cls()
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CanonicalError(f"cannot read mapping {path}: {e}") from None
        known = {
            "columns", "units", "features", "derive", "currency", "listing_year", "encoding",
            "values", "missing", "keep", "dates",
        }  # fmt: skip
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
        values: dict[str, dict[str, Any]] = {}
        for col, table in doc.get("values", {}).items():
            if not isinstance(table, dict):
                raise CanonicalError(f"mapping {path}: [values.{col}] must be a table")
            values[str(col)] = {str(k).strip().lower(): v for k, v in table.items()}
        for sec in ("missing", "keep"):
            bad = [k for k, v in doc.get(sec, {}).items() if not isinstance(v, list)]
            if bad:
                raise CanonicalError(f"mapping {path}: [{sec}] {bad} must be lists of values")
        missing = {str(k): list(v) for k, v in doc.get("missing", {}).items()}
        keep = {str(k): [str(x) for x in v] for k, v in doc.get("keep", {}).items()}
        dates = doc.get("dates", {})
        unknown_dates = sorted(set(dates) - {"delisted_censored_from", "observed_from"})
        if unknown_dates:
            raise CanonicalError(f"mapping {path}: unknown [dates] keys {unknown_dates}")

        def when(key: str) -> dt.datetime | None:
            v = dates.get(key)
            if v is None:
                return None
            if not isinstance(v, dt.datetime):
                try:
                    v = dt.datetime.fromisoformat(str(v))
                except ValueError:
                    raise CanonicalError(
                        f"mapping {path}: [dates] {key} {v!r} is not an ISO date"
                    ) from None
            return v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo is not None else v

        censor = when("delisted_censored_from")
        enc = str(doc.get("encoding", "utf8"))
        try:
            "".encode(enc)
        except LookupError:
            raise CanonicalError(f"mapping {path}: unknown encoding {enc!r}") from None
        return cls(
            columns={str(k): str(v) for k, v in doc.get("columns", {}).items()},
            units=units,
            categorical=[str(c) for c in feats.get("categorical", [])],
            numeric=[str(c) for c in feats.get("numeric", [])],
            currency=doc.get("currency"),
            listing_year=int(ly) if ly is not None else None,
            year_from_age=doc.get("derive", {}).get("year_from_age"),
            encoding=enc,
            values=values,
            missing=missing,
            keep=keep,
            delisted_censored_from=censor,
            observed_from=when("observed_from"),
        )


def read_listings(path: str | Path, encoding: str = "utf8") -> pa.Table:
    """A CSV or Parquet file (by its suffix; a CSV may be compressed, ``.gz``,
    ``.bz2``, ``.zst``), every CSV column read as text so that the mapping,
    not the reader's guess, decides the types. ``encoding``: a CSV's (a
    German export is often latin-1)."""
    p = Path(path)
    if not p.exists():
        raise CanonicalError(f"no such file: {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pq.read_table(p)
    try:
        head = pcsv.read_csv(
            p, read_options=pcsv.ReadOptions(block_size=1 << 16, encoding=encoding)
        ).schema.names
        return pcsv.read_csv(
            p,
            read_options=pcsv.ReadOptions(encoding=encoding),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(head, pa.string()),
                strings_can_be_null=True,
                null_values=["", "NA", "N/A", "null", "NULL", "?", "-"],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        hint = "" if encoding != "utf8" else " (another encoding? the mapping's `encoding`)"
        raise CanonicalError(f"cannot read {p} as CSV: {e}{hint}") from None


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


def _dates(col: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The column as timestamps, and the rows whose cell is written but is
    not a date (they become null: the caller counts them)."""
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        # whole seconds of UTC: a feed's sub-second times (a platform's
        # microseconds) are truncated, not refused
        return col.cast(pa.timestamp("s"), safe=False).combine_chunks(), np.zeros(len(col), bool)
    vals: list[dt.datetime | None] = []
    bad = np.zeros(len(col), bool)
    for i, raw in enumerate(col.cast(pa.string()).to_pylist()):
        text = raw.strip() if raw else ""
        try:
            d = dt.datetime.fromisoformat(text) if text else None
        except ValueError:
            d, bad[i] = None, True
        if d is not None and d.tzinfo is not None:
            d = d.astimezone(dt.UTC).replace(tzinfo=None)
        vals.append(d)
    return pa.array(vals, pa.timestamp("s")), bad


def _recode(raw: pa.Table, m: Mapping, source: Any, report: dict[str, Any]) -> pa.Table:
    """The mapping's [missing] and [values] sections applied to the lender's
    columns (as text, before units), each changed cell counted."""
    for canon, sentinels in m.missing.items():
        s = source(canon)
        if s is None:
            raise CanonicalError(f"mapping [missing] names {canon!r}, not in the file")
        texts = {str(v).strip().lower() for v in sentinels}
        nums = {float(v) for v in sentinels if isinstance(v, int | float)}
        cells = raw.column(s).to_pylist()
        out, n = [], 0
        for c in cells:
            hit = c is not None and (
                str(c).strip().lower() in texts or (nums and parse_amount(c)[0] in nums)
            )
            out.append(None if hit else c)
            n += bool(hit)
        raw = raw.set_column(raw.schema.get_field_index(s), s, pa.array(out, raw.column(s).type))
        report["set_missing"][canon] = n
    for canon, table in m.values.items():
        s = source(canon)
        if s is None:
            raise CanonicalError(f"mapping [values] names {canon!r}, not in the file")
        cells = raw.column(s).cast(pa.string()).to_pylist()
        out, n = [], 0
        for c in cells:
            key = c.strip().lower() if c is not None else None
            if key is not None and key in table:
                out.append(str(table[key]))
                n += 1
            else:
                out.append(c)
        raw = raw.set_column(raw.schema.get_field_index(s), s, pa.array(out, pa.string()))
        report["values_mapped"][canon] = n
    return raw


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
    raw = (
        path_or_table
        if isinstance(path_or_table, pa.Table)
        else read_listings(path_or_table, m.encoding)
    )
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
    n = raw.num_rows
    changes: dict[str, Any] = {
        "set_missing": {},
        "values_mapped": {},
        "unreadable_cells": {},
        "unknown_values": {},
        "censored_delisted": 0,
    }
    excluded = np.zeros(n, bool)
    for col, allowed in m.keep.items():
        if col not in raw.column_names:
            raise CanonicalError(f"mapping [keep] names {col!r}, not in the file")
        want = {a.strip().lower() for a in allowed}
        cells = raw.column(col).cast(pa.string()).to_pylist()
        excluded |= np.array([c is None or c.strip().lower() not in want for c in cells], bool)
    raw = _recode(raw, m, source, changes)
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
            if c in ("fuel", "transmission"):
                if c == "transmission":
                    t = pc.replace_substring(pc.utf8_lower(t), "semi-automatic", "semi-auto")
                known: tuple[str, ...] = FUELS if c == "fuel" else TRANSMISSIONS
                low = pc.utf8_lower(t)
                # values no rule knows become "other": counted, so that a
                # feed in another language is seen, not silently lumped
                unknown = pc.filter(low, pc.invert(pc.is_in(low, pa.array(known))))
                vc = pc.value_counts(unknown.drop_null()).to_pylist()
                if vc:
                    changes["unknown_values"][c] = {d["values"]: d["counts"] for d in vc}
                t = _norm(t, known)
            cols[c] = t
            present.append(c)

    def numeric(c: str, s: str) -> np.ndarray:
        vals = _numeric(raw.column(s), c, m.units.get(c))
        written = np.asarray(pc.is_valid(raw.column(s)).to_numpy(zero_copy_only=False), bool)
        bad = int((written & ~np.isfinite(vals)).sum())
        if bad:
            changes["unreadable_cells"][c] = bad
        return vals

    for c in (*CANONICAL_NUMERIC, *SERVICE):
        s = source(c)
        if s is not None:
            cols[c] = numeric(c, s)
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
        cols[c] = numeric(c, source(c))  # type: ignore[arg-type]
        extra_num.append(c)
    bad_dates = np.zeros(n, bool)
    for c in DATES:
        s = source(c)
        if s is not None:
            cols[c], unreadable = _dates(raw.column(s))
            bad_dates |= unreadable
            if unreadable.any():
                changes["unreadable_cells"][c] = int(unreadable.sum())
    if "delisted_at" in cols and m.delisted_censored_from is not None:
        # an advert still up when the feed ended was not sold: no delisting
        gone = cols["delisted_at"]
        late = pc.fill_null(
            pc.greater_equal(gone, pa.scalar(m.delisted_censored_from, pa.timestamp("s"))), False
        )
        changes["censored_delisted"] = int(pc.sum(late).as_py() or 0)
        cols["delisted_at"] = pc.if_else(late, pa.scalar(None, pa.timestamp("s")), gone)
    if "listed_at" in cols and "delisted_at" in cols:
        before = pc.fill_null(pc.less(cols["delisted_at"], cols["listed_at"]), False)
        bad_dates |= np.asarray(before.to_numpy(zero_copy_only=False), bool)
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
    elif "listed_at" not in cols:
        raise CanonicalError(
            "ages need a listing date: give listed_at in every row or a listing_year"
        )
    # a row without a readable listing date has no age: dropped, counted
    bad_dates |= np.isnan(frac)
    age = frac - 0.5 - year
    reason = np.full(n, "", dtype=object)

    def mark(mask: np.ndarray, why: str) -> None:
        reason[(reason == "") & mask] = why

    mark(excluded, "excluded_by_mapping")
    mark(
        make_null | model_null | ~np.isfinite(year) | ~np.isfinite(km) | ~np.isfinite(price),
        "missing_required",
    )
    # a model year may be on sale from the summer before it
    mark((year < MIN_YEAR) | (year > np.floor(frac) + 1) | (age < -1), "impossible_year")
    mark(km < 0, "impossible_mileage")
    mark(price <= 0, "zero_price")
    mark(bad_dates, "bad_dates")
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
        **changes,
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
