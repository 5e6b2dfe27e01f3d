"""The pipeline's store adapter: every read and write that ``autolien run``'s
stages make of the DuckDB database (and the telemetry Parquet beside it)
goes through here, so the stages take and return Arrow tables and hold no
SQL of their own.

* the portfolio's identity recorded in the store (``check_portfolio``,
  ``open_store``);
* the reference tables a run replaces whole: the loan book and the market
  feed (``put_reference``), one transaction;
* identity: which ``vehicle_id`` a terminal number (JT/T 808) or a VIN
  (GB/T 32960) belongs to, in one place (``mapped_sql``), from the loan book;
  an RTK log's vehicle comes from its path and is written onto its fixes at
  ingest (``telemetry.ingest``);
* the valuation stage's inputs and outputs (``valuation_inputs``,
  ``write_valuation``);
* what the run reads back for its summary (``stored_counts``,
  ``run_outputs``).

The telemetry tables themselves (append with de-duplication, the ingest
manifest, ``store_meta``) live in ``autolien.telemetry.store.Store``, which
this module opens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from .errors import AutolienError
from .telemetry.store import Store

__all__ = [
    "PortfolioMismatchError",
    "ValuationInputs",
    "check_portfolio",
    "mapped_sql",
    "open_store",
    "put_reference",
    "run_outputs",
    "stored_counts",
    "valuation_inputs",
    "write_valuation",
]

TELEMETRY_TABLES = ("locations", "ev", "fixes", "obd")


class PortfolioMismatchError(AutolienError, ValueError):
    """The database (or ledger) belongs to another portfolio."""


def open_store(db: str | Path, *, read_only: bool = False) -> Store:
    return Store(db, read_only=read_only)


def check_portfolio(db: Path, pid: str) -> None:
    """Refuses a database that records another portfolio (read only: nothing written)."""
    if not db.exists():
        return
    with Store(db, read_only=True) as store:
        have = store.meta("portfolio_id")
    if have is not None and have != pid:
        raise PortfolioMismatchError(
            f"{db} belongs to portfolio {have}, not to this one ({pid}); "
            "give this portfolio its own --db"
        )


def _replace(store: Store, name: str, table: pa.Table) -> None:
    view = f"_autolien_{name}"
    store.con.register(view, table)
    try:
        store.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {view}").fetchall()
    finally:
        store.con.unregister(view)


def put_reference(store: Store, book: pa.Table | None, listings: pa.Table | None) -> None:
    """The loan book (which maps terminal numbers and VINs to vehicle ids) and
    the market feed (a snapshot of a platform's adverts), each replaced
    whole, in one transaction."""
    store.con.begin()
    try:
        if book is not None:
            _replace(store, "loan_book", book)
        if listings is not None:
            _replace(store, "market_listings", listings)
        store.con.commit()
    except BaseException:
        store.con.rollback()
        raise


def stored_counts(store: Store) -> dict[str, int]:
    """Rows each telemetry table holds."""
    have = set(store.tables())
    return {
        t: int(store.query(f"SELECT count(*) AS n FROM {t}").column("n")[0].as_py())
        for t in TELEMETRY_TABLES
        if t in have
    }


# source table -> (its key column, the key the loan book holds it under)
_KEYS = {"locations": "terminal_id", "ev": "vin"}


def mapped_sql(sql: str, columns: tuple[str, ...]) -> str:
    """``sql`` (a SELECT from ``locations`` or ``ev`` whose first column is
    ``<terminal_id|vin> AS vehicle_id``) with the loan book's ``vehicle_id``
    in place of the terminal number or VIN; a key the book lacks stays as it
    is. ``columns`` are the other columns the SELECT gives. The one place
    where telemetry keys become vehicle ids."""
    key = next((k for table, k in _KEYS.items() if f"FROM {table}" in sql), None)
    if key is None:
        return sql
    inner = sql.replace(f"{key} AS vehicle_id", f"{key} AS _key")
    rest = ", ".join(c for c in columns if c in sql.split(" FROM ", maxsplit=1)[0])
    return (
        f"SELECT coalesce(lb.vehicle_id, s._key) AS vehicle_id, {rest} FROM ({inner}) s "
        f"LEFT JOIN loan_book lb ON lb.{key} = s._key"
    )


@dataclass
class ValuationInputs:
    """What the valuation stage reads: the book (by vehicle id), each
    vehicle's latest odometer, its last 7 days of usage from the monitor,
    the EV frames and the market feed (None where the store has none)."""

    book: pa.Table
    km: pa.Table
    usage: pa.Table | None
    ev: pa.Table | None
    listings: pa.Table | None


def valuation_inputs(db: str | Path) -> ValuationInputs:
    with Store(db) as store:
        have = set(store.tables())
        if "loan_book" not in have:
            raise ValueError(
                f"{db} has no loan_book; valuation needs the pledged vehicles' attributes"
            )
        book = store.query("SELECT * FROM loan_book ORDER BY vehicle_id")
        odo_parts = []
        if "locations" in have:
            odo_parts.append(
                "SELECT lb.vehicle_id, l.time, l.mileage_km AS km FROM locations l JOIN loan_book lb "
                "ON lb.terminal_id = l.terminal_id WHERE l.mileage_km IS NOT NULL"
            )
        if "ev" in have:
            odo_parts.append(
                "SELECT lb.vehicle_id, e.time, e.odometer_km AS km FROM ev e JOIN loan_book lb "
                "ON lb.vin = e.vin WHERE e.odometer_km IS NOT NULL"
            )
        km = (
            store.query(
                f"SELECT vehicle_id, arg_max(km, time) AS km FROM ({' UNION ALL '.join(odo_parts)}) "
                "GROUP BY vehicle_id"
            )
            if odo_parts
            else pa.table({"vehicle_id": [], "km": []})
        )
        usage = (
            store.query(
                "SELECT vehicle_id, avg(behaviour) AS behaviour, avg(km_24h) AS km_per_day "
                "FROM monitor_features WHERE hour > (SELECT max(hour) FROM monitor_features) "
                "- INTERVAL 7 DAY GROUP BY vehicle_id"
            )
            if "monitor_features" in have
            else None
        )
        ev = store.query("SELECT * FROM ev") if "ev" in have else None
        listings = (
            store.query("SELECT * FROM market_listings") if "market_listings" in have else None
        )
    return ValuationInputs(book, km, usage, ev, listings)


def write_valuation(
    db: str | Path,
    at: dt.datetime,
    values: pa.Table,
    ltv: pa.Table,
    battery: pa.Table | None,
    *,
    drift: tuple[str, pa.Table | None] | None = None,
) -> None:
    """One transaction: the battery alerts replace the previous run's (beside
    the monitor's alerts, which it rewrites every run), the valuation history
    gets this clock's rows, ``drift`` (kind, rows) replaces that kind's alerts (a re-run at the same clock replaces its own), and
    ``ltv`` is replaced. A run killed here leaves the tables as they were."""
    with Store(db) as store:
        store.con.begin()
        try:
            if "alerts" in store.tables():
                store.con.execute(
                    "DELETE FROM alerts WHERE kind = 'battery_degradation'"
                ).fetchall()
                if battery is not None and battery.num_rows:
                    store.con.register("_battery", battery)
                    store.con.execute("INSERT INTO alerts SELECT * FROM _battery").fetchall()
                    store.con.unregister("_battery")
                if drift is not None:
                    kind, rows = drift
                    store.con.execute("DELETE FROM alerts WHERE kind = ?", [kind]).fetchall()
                    if rows is not None and rows.num_rows:
                        store.con.register("_drift", rows)
                        store.con.execute("INSERT INTO alerts SELECT * FROM _drift").fetchall()
                        store.con.unregister("_drift")
            store.con.register("_vals", values)
            if "valuations" in store.tables():
                store.con.execute("DELETE FROM valuations WHERE time = ?", [at]).fetchall()
                store.con.execute("INSERT INTO valuations SELECT * FROM _vals").fetchall()
            else:
                store.con.execute("CREATE TABLE valuations AS SELECT * FROM _vals").fetchall()
            store.con.unregister("_vals")
            _replace(store, "ltv", ltv)
            store.con.commit()
        except BaseException:
            store.con.rollback()
            raise


def run_outputs(db: str | Path) -> tuple[pa.Table, dict[str, Any]]:
    """Every alert (oldest first) and the span of scored hours (``first``, ``last``)."""
    with Store(db, read_only=True) as store:
        alerts = store.query("SELECT * FROM alerts ORDER BY opened")
        span = store.query(
            "SELECT min(hour) AS first, max(hour) AS last FROM monitor_features"
        ).to_pylist()[0]
    return alerts, span
