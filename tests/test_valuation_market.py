"""The market factor from dated listings: market_index against the same
quantities computed independently in DuckDB SQL, the elasticity fit on
listings priced from an independent supply computation, and the join into
Valuer.value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from autolien.sim.portfolio import CATALOGUES, _listings
from autolien.valuation import MARKET_SCHEMA, Valuer, fit_market_response, market_index
from autolien.valuation.adjust import AGE_BANDS
from autolien.valuation.market import MARKET_BOUNDS_DATED

AT = dt.datetime(2026, 10, 13, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def listings() -> pa.Table:
    table, glut = _listings(5, CATALOGUES["uk"], 14)
    assert glut == "ford Fiesta"
    return table


def _band_sql(age: str) -> str:
    edges = AGE_BANDS[1:-1]
    return (
        "CASE "
        + " ".join(f"WHEN {age} < {e} THEN {i}" for i, e in enumerate(edges))
        + (f" ELSE {len(edges)} END")
    )


def reference(listings: pa.Table, at: dt.datetime, window: int, tom_window: int, norm: int) -> dict:
    """Supply and days' supply per group, written directly in SQL."""
    con = duckdb.connect()
    con.register("l", listings)
    at_s = at.strftime("%Y-%m-%d %H:%M:%S")
    age = (
        f"(year(TIMESTAMPTZ '{at_s}+00') + (dayofyear(TIMESTAMPTZ '{at_s}+00') - 1) / 365.25 "
        "- 0.5 - year)"
    )
    con.execute("SET TimeZone = 'UTC'").fetchall()
    con.execute(
        f"""CREATE TABLE a AS SELECT lower(make) AS make, lower(trim(model)) AS model,
        {_band_sql(age)} AS band, listed_at,
        CASE WHEN delisted_at > TIMESTAMPTZ '{at_s}+00' THEN NULL ELSE delisted_at END AS gone
        FROM l WHERE listed_at <= TIMESTAMPTZ '{at_s}+00'"""
    ).fetchall()

    def stock(group: str, lo: int, hi: int) -> str:
        # mean over the daily samples at - k days, k in [lo, hi)
        return f"""SELECT {group}, avg(n) AS stock FROM (
            SELECT {group}, k, count(*) FILTER (
                WHERE listed_at <= TIMESTAMPTZ '{at_s}+00' - k * INTERVAL 1 DAY
                AND (gone IS NULL OR gone > TIMESTAMPTZ '{at_s}+00' - k * INTERVAL 1 DAY)) AS n
            FROM a, range({lo}, {hi}) r(k) GROUP BY {group}, k) GROUP BY {group}"""

    supply = {
        (r[0], r[1], r[2]): r[3:]
        for r in con.execute(
            f"""SELECT s.make, s.model, s.band, s.stock, n.stock FROM ({stock("make, model, band", 0, window)}) s
            JOIN ({stock("make, model, band", window, norm)}) n USING (make, model, band)"""
        ).fetchall()
    }
    days = {}
    for make, model, s_r, s_n, sold_r, sold_n in con.execute(
        f"""SELECT s.make, s.model, s.stock, n.stock,
            (SELECT count(*) FROM a WHERE a.make = s.make AND a.model = s.model
              AND gone > TIMESTAMPTZ '{at_s}+00' - INTERVAL {tom_window} DAY),
            (SELECT count(*) FROM a WHERE a.make = s.make AND a.model = s.model
              AND gone > TIMESTAMPTZ '{at_s}+00' - INTERVAL {norm} DAY
              AND gone <= TIMESTAMPTZ '{at_s}+00' - INTERVAL {tom_window} DAY)
        FROM ({stock("make, model", 0, tom_window)}) s JOIN ({stock("make, model", tom_window, norm)}) n
        USING (make, model)"""
    ).fetchall():
        days[(make, model)] = (
            s_r / (sold_r / tom_window),
            s_n / (sold_n / (norm - tom_window)),
            sold_r,
        )
    return {"supply": supply, "days": days}


def test_market_index_matches_sql(listings: pa.Table) -> None:
    got = market_index(listings, AT)
    assert got.schema == MARKET_SCHEMA
    ref = reference(listings, AT, 7, 28, 84)
    assert got.num_rows == len(ref["supply"])
    for r in got.to_pylist():
        s_r, s_n = ref["supply"][(r["make"], r["model"], r["age_band"])]
        assert r["active"] == pytest.approx(s_r, rel=1e-12)
        assert r["active_norm"] == pytest.approx(s_n, rel=1e-12)
        d_r, d_n, sold = ref["days"][(r["make"], r["model"])]
        assert r["sold"] == sold
        assert r["tom_days"] == pytest.approx(d_r, rel=1e-12)
        assert r["tom_norm_days"] == pytest.approx(d_n, rel=1e-12)
        supply = s_r / s_n if s_n >= 10 else 1.0
        want = np.clip(supply**-0.3 * (d_r / d_n) ** -0.15, *MARKET_BOUNDS_DATED)
        assert r["factor"] == pytest.approx(want, rel=1e-12)


def test_the_glut_is_priced_down(listings: pa.Table) -> None:
    m = market_index(listings, AT)
    m = m.filter(pc.greater_equal(m.column("active_norm"), 10))  # bands with a norm
    fiesta = pc.equal(m.column("model"), "fiesta")
    f = m.filter(fiesta).column("factor").to_numpy()
    rest = m.filter(pc.invert(fiesta)).column("factor").to_numpy()
    # adverts arrive 60% faster for 28 days: supply up 25-60%, factor ~0.9
    assert f.size >= 4
    assert (m.filter(fiesta).column("supply_ratio").to_numpy() > 1.2).all()
    assert f.max() < np.median(rest) - 0.05
    assert abs(np.median(rest) - 1.0) < 0.05


def test_more_supply_never_raises_the_factor(listings: pa.Table) -> None:
    base = market_index(listings, AT)
    golf = listings.filter(pc.equal(listings.column("model"), "Golf"))
    # the same Golfs listed again within the last week: more cars on offer
    extra = golf.slice(0, 200).set_column(
        golf.schema.get_field_index("listed_at"),
        "listed_at",
        pa.array([AT - dt.timedelta(days=3)] * 200, pa.timestamp("us", tz="UTC")),
    )
    extra = extra.set_column(
        extra.schema.get_field_index("delisted_at"),
        "delisted_at",
        pa.nulls(200, pa.timestamp("us", tz="UTC")),
    )
    more = market_index(pa.concat_tables([listings, extra]), AT)
    key = lambda t: {(r["model"], r["age_band"]): r["factor"] for r in t.to_pylist()}
    b, m = key(base), key(more)
    golfs = [k for k in b if k[0] == "golf"]
    assert any(m[k] < b[k] for k in golfs)
    assert all(m[k] <= b[k] for k in golfs)
    assert all(m[k] == b[k] for k in b if k[0] != "golf")


def test_fit_recovers_a_known_supply_response(listings: pa.Table) -> None:
    # price each advert from the supply ratio it met when listed, computed
    # here independently (numpy over the raw columns), with elasticity -0.25;
    # two models (the glut's and another) keep the plain loop quick
    listings = listings.filter(pc.is_in(listings.column("model"), pa.array(["Fiesta", "Golf"])))
    rng = np.random.default_rng(3)
    day = 86_400_000_000
    t = listings.column("listed_at").cast(pa.int64()).to_numpy()
    g = listings.column("delisted_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    g = np.where(
        pc.is_null(listings.column("delisted_at")).to_numpy(zero_copy_only=False),
        np.iinfo(np.int64).max,
        g,
    )
    model = np.array(listings.column("model").to_pylist())
    year = listings.column("year").to_numpy().astype(float)
    dates = t.astype("datetime64[us]").astype("datetime64[D]")
    y0 = dates.astype("datetime64[Y]")
    age = (
        y0.astype(int)
        + 1970
        + (dates - y0.astype("datetime64[D]")).astype(float) / 365.25
        - 0.5
        - year
    )
    band = np.digitize(age, AGE_BANDS[1:-1])
    ratio = np.full(t.size, np.nan)
    for m in np.unique(model):
        for b in np.unique(band):
            sel = np.flatnonzero((model == m) & (band == b))
            ts, gs = t[sel], g[sel]
            for i in sel:
                start = t[i] - np.arange(84) * day
                n_active = ((ts[None, :] <= start[:, None]) & (gs[None, :] > start[:, None])).sum(1)
                rec = n_active[:7].mean()
                nrm = n_active[7:].mean()
                if nrm >= 10:
                    ratio[i] = rec / nrm
    ok = np.isfinite(ratio)
    assert ok.mean() > 0.4
    resid = np.where(ok, -0.25 * np.log(np.where(ok, ratio, 1.0)), np.nan) + rng.normal(
        0, 0.02, t.size
    )
    fit = fit_market_response(listings, resid)
    assert fit["n"] == int(ok.sum())
    assert fit["elasticity"] == pytest.approx(-0.25, abs=3 * fit["stderr"] + 0.01)


def test_value_joins_the_market_factor(listings: pa.Table) -> None:
    v = Valuer.load()
    cars = pa.table(
        {
            "vehicle_id": ["a", "b", "c"],
            "make": ["Ford", "ford", "tesla"],
            "model": ["Fiesta ", "Fiesta", "Model 3"],
            "year": [2019, 2013, 2021],
            "mileage_km": [40_000.0, 120_000.0, 30_000.0],
            "fuel": ["petrol", "petrol", "electric"],
            "transmission": ["manual", "manual", "automatic"],
            "engine_size_l": [1.0, 1.2, 0.0],
        }
    )
    m = market_index(listings, AT)
    out = v.value(cars, AT, market=m)
    plain = v.value(cars, AT)
    lookup = {(r["model"], r["age_band"]): r["factor"] for r in m.to_pylist()}
    # 2019 at 2026-10: 7.3 years, band 3 ([7, 10)); 2013: 13.3 years, band 4 ([10, 15))
    assert out.column("market_factor").to_pylist()[:2] == [
        lookup[("fiesta", 3)],
        lookup[("fiesta", 4)],
    ]
    assert out.column("market_factor")[2].as_py() == 1.0  # no adverts of that model
    np.testing.assert_allclose(
        out.column("value").to_numpy(),
        plain.column("value").to_numpy() * out.column("market_factor").to_numpy(),
    )


def test_market_input_errors(listings: pa.Table) -> None:
    with pytest.raises(ValueError, match="listed_at"):
        market_index(listings.drop_columns(["listed_at"]), AT)
    with pytest.raises(ValueError, match="timezone"):
        market_index(listings, dt.datetime(2026, 10, 1))
    with pytest.raises(ValueError, match="elasticities"):
        market_index(listings, AT, supply_elasticity=0.2)
    with pytest.raises(ValueError, match="window"):
        market_index(listings, AT, window_days=90)
    swapped = listings.rename_columns(
        [
            "delisted_at" if c == "listed_at" else "listed_at" if c == "delisted_at" else c
            for c in listings.column_names
        ]
    ).filter(pc.is_valid(listings.column("delisted_at")))
    with pytest.raises(ValueError, match="before it is listed"):
        market_index(swapped, AT)
    with pytest.raises(TypeError, match="timestamps"):
        market_index(
            listings.set_column(
                listings.schema.get_field_index("listed_at"),
                "listed_at",
                pa.array(np.zeros(listings.num_rows)),
            ),
            AT,
        )
    with pytest.raises(ValueError, match="market lacks"):
        Valuer.load().value(
            pa.table(
                {
                    "make": ["ford"],
                    "model": ["Fiesta"],
                    "year": [2019],
                    "mileage_km": [1.0],
                    "fuel": ["petrol"],
                    "transmission": ["manual"],
                    "engine_size_l": [1.0],
                }
            ),
            AT,
            market=pa.table({"make": ["ford"]}),
        )
    assert market_index(listings.slice(0, 0), AT).num_rows == 0


def test_listings_file_in_the_portfolio(tmp_path: Path) -> None:
    from autolien.sim.portfolio import write_portfolio

    write_portfolio(tmp_path, 3, 2, seed=1)
    t = __import__("pyarrow.parquet").parquet.read_table(tmp_path / "market" / "listings.parquet")
    assert set(t.column_names) >= {"make", "model", "year", "price", "listed_at", "delisted_at"}
    assert pc.min(t.column("listed_at")).as_py() < AT - dt.timedelta(days=200)
