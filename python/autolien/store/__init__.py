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
  ``run_outputs``, ``monitor_counts``);
* the fuse stage's batches and outputs (``store.fuse``) and the dashboard's
  reads (``store.dashboard``), each a module of this package;
* the Dask engine's exchange with its workers (``vehicle_bucket``,
  ``export_fixes``, ``put_fuse_outputs``, ``export_monitor_inputs``,
  ``put_monitor_outputs``): the fuse and monitor stages' inputs written as
  Parquet per vehicle bucket, and the workers' Parquet results read back
  into the store.

The telemetry tables themselves (append with de-duplication, the ingest
manifest, ``store_meta``) live in ``autolien.telemetry.store.Store``, which
this module opens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import shutil
import warnings
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import ipc

from .._fs import fsync_dir
from ..errors import AutolienError

# one bucket hash for the telemetry's Parquet partitions and the Dask exchange
from ..telemetry.store import Store, vehicle_bucket

__all__ = [
    "EV_ORDER",
    "MonitorExport",
    "PortfolioMismatchError",
    "StateRef",
    "ValuationInputs",
    "check_portfolio",
    "ev_frame_blocks",
    "export_ev",
    "export_fixes",
    "export_monitor_inputs",
    "mapped_sql",
    "monitor_counts",
    "open_store",
    "put_fuse_outputs",
    "put_monitor_outputs",
    "put_reference",
    "run_outputs",
    "stored_counts",
    "valuation_inputs",
    "vehicle_bucket",
    "write_valuation",
]

TELEMETRY_TABLES = ("locations", "ev", "fixes", "obd")


class PortfolioMismatchError(AutolienError, ValueError):
    """The database (or ledger) belongs to another portfolio."""


def open_store(
    db: str | Path, *, read_only: bool = False, memory_limit: str | None = None
) -> Store:
    return Store(db, read_only=read_only, memory_limit=memory_limit)


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


def monitor_counts(db: str | Path) -> tuple[pa.Table, int, int]:
    """What a monitor run left, for its summary: the alerts' level, kind and
    closing time, the feature hours and the rejects (empty without them)."""
    with open_store(db, read_only=True) as store:
        have = set(store.tables())

        def count(t: str) -> int:
            q = f"SELECT count(*) AS n FROM {t}"
            return int(store.query(q).column("n")[0].as_py()) if t in have else 0

        alerts = (
            store.query("SELECT level, kind, closed FROM alerts")
            if "alerts" in have
            else pa.table({"level": [], "kind": [], "closed": []})
        )
        return alerts, count("monitor_features"), count("monitor_rejects")


# source table -> (its key column, the key the loan book holds it under)
_KEYS = {"locations": "terminal_id", "ev": "vin"}


def mapped_sql(sql: str, columns: tuple[str, ...], *, only: str | None = None) -> str:
    """``sql`` (a SELECT from ``locations`` or ``ev`` whose first column is
    ``<terminal_id|vin> AS vehicle_id``) with the loan book's ``vehicle_id``
    in place of the terminal number or VIN; a key the book lacks stays as it
    is. ``columns`` are the other columns the SELECT gives. The one place
    where telemetry keys become vehicle ids.

    ``only`` (a query of one column of vehicle ids) keeps the rows of those
    vehicles, and filters the source by the keys that can map to them
    before the join: the dashboard's few vehicles read their rows, not a
    join over every row of the history (0.5-0.7 s -> 0.16 s for 32 M rows)."""
    key = next((k for table, k in _KEYS.items() if f"FROM {table}" in sql), None)
    if key is None:
        return sql if only is None else f"SELECT * FROM ({sql}) WHERE vehicle_id IN ({only})"
    inner = sql.replace(f"{key} AS vehicle_id", f"{key} AS _key")
    if only is not None:
        # a key maps to its book's vehicle, or is the id itself when the book lacks it
        inner = (
            f"SELECT * FROM ({inner}) WHERE _key IN (SELECT {key} FROM loan_book "
            f"WHERE vehicle_id IN ({only}) UNION ALL {only})"
        )
    rest = ", ".join(c for c in columns if c in sql.split(" FROM ", maxsplit=1)[0])
    out = (
        f"SELECT coalesce(lb.vehicle_id, s._key) AS vehicle_id, {rest} FROM ({inner}) s "
        f"LEFT JOIN loan_book lb ON lb.{key} = s._key"
    )
    return out if only is None else f"SELECT * FROM ({out}) WHERE vehicle_id IN ({only})"


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


# the EV frames in one total order, so that readings of one second reach the
# charge segments in the same order from the store and from a bucket's file
EV_ORDER = ("vin", "time", "source_file", "offset")
# rows a streamed read of the EV frames hands over at a time (ev_frame_blocks)
EV_BLOCK_ROWS = 1 << 17


def ev_frame_blocks(
    db: str | Path, *, rows: int | None = None, columns: Sequence[str] | None = None
) -> Iterator[pa.Table]:
    """The stored EV frames in ``EV_ORDER``, as tables of whole VINs of
    about ``rows`` rows each (one VIN's frames are never split), streamed:
    the valuation's battery part works VIN by VIN, so it never needs the
    whole history in memory at once (1.0 million frames, 270 MB as Arrow,
    at 10,000 vehicles after 14 days). Nothing without an ``ev`` table.
    ``rows`` defaults to ``EV_BLOCK_ROWS``; ``columns``: only those of them
    the table has (``vin`` always), else every column."""
    rows = EV_BLOCK_ROWS if rows is None else rows
    if rows < 1:
        raise ValueError("rows must be at least 1")
    with Store(db) as store:
        if "ev" not in store.tables():
            return
        cols = store.query("SELECT * FROM ev LIMIT 0")
        order = ", ".join(_quoted(c) for c in EV_ORDER if c in cols.column_names)
        if columns is not None:
            wanted = ["vin", *(c for c in columns if c != "vin" and c in cols.column_names)]
            cols = cols.select(wanted)
        # timestamps as Store.query gives them (UTC)
        schema = cols.schema
        names = ", ".join(_quoted(c) for c in schema.names)
        reader = store.con.sql(f"SELECT {names} FROM ev ORDER BY {order}").to_arrow_reader(rows)
        # the rows of the last VIN seen, which may go on in the next batch
        held: list[pa.Table] = []
        held_vin: pa.Scalar | None = None
        for batch in reader:
            if not batch.num_rows:
                continue
            t = pa.Table.from_batches([batch]).cast(schema)
            vin = t.column("vin")
            last = vin[-1]
            # where this batch's last VIN begins in it (DuckDB sorts nulls
            # last); only this batch is searched, so a VIN spread over many
            # batches costs no more than its rows
            keep = int(
                pc.index(vin, last).as_py()
                if last.is_valid
                else pc.sum(pc.is_valid(vin)).as_py() or 0
            )
            if keep > 0:
                yield pa.concat_tables([*held, t.slice(0, keep)]).combine_chunks()
                held = [t.slice(keep)]
            elif held and not _same_vin(vin[0], held_vin):
                yield pa.concat_tables(held).combine_chunks()
                held = [t]
            else:
                held.append(t)
            held_vin = last
        if held:
            yield pa.concat_tables(held).combine_chunks()


def _same_vin(a: pa.Scalar, b: pa.Scalar | None) -> bool:
    if b is None:
        return False
    if not a.is_valid or not b.is_valid:
        return not a.is_valid and not b.is_valid
    return bool(a.as_py() == b.as_py())


def valuation_inputs(db: str | Path, *, ev: bool = True) -> ValuationInputs:
    """``ev`` False: without the EV frames (the caller has the charge
    segments from elsewhere: the Dask engine's bucket tasks)."""
    with Store(db) as store:
        have = set(store.tables())
        if "loan_book" not in have:
            raise ValueError(
                f"{db} has no loan_book; valuation needs the pledged vehicles' attributes"
            )
        book = store.query("SELECT * FROM loan_book ORDER BY vehicle_id")
        # the monitor's odometer sources, keyed as the monitor keys them,
        # each key's latest reading first; only the book's vehicles are
        # valued. Readings tied at the latest time: the larger (reruns agree).
        odo_parts = [mapped_sql(q, _MON_COLS) for t, q in _LATEST_ODOMETERS if t in have]
        km = (
            store.query(
                "SELECT vehicle_id, arg_max(odometer_km, (time, odometer_km)) AS km FROM ("
                f"{' UNION ALL '.join(odo_parts)}) WHERE vehicle_id IN "
                "(SELECT vehicle_id FROM loan_book) GROUP BY vehicle_id"
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
        frames = None
        if ev and "ev" in have:
            cols = store.query("SELECT * FROM ev LIMIT 0").column_names
            order = ", ".join(_quoted(c) for c in EV_ORDER if c in cols)
            frames = store.query(f"SELECT * FROM ev ORDER BY {order}")
        listings = (
            store.query("SELECT * FROM market_listings") if "market_listings" in have else None
        )
    return ValuationInputs(book, km, usage, frames, listings)


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
        # a total order (ties in opening time broken by vehicle, kind, id): the
        # ledger appends in this order, so its root does not depend on how
        # the rows were produced (one process or a cluster's workers)
        alerts = store.query("SELECT * FROM alerts ORDER BY opened, vehicle_id, kind, alert_id")
        span = store.query(
            "SELECT min(hour) AS first, max(hour) AS last FROM monitor_features"
        ).to_pylist()[0]
    return alerts, span


# --- the monitor stage ---------------------------------------------------------
# Where positions and odometer readings come from, best first. Tracks: the
# fused track (else raw fixes) where a vehicle has one, the terminal's own
# positions for every other vehicle. The ignition is the JT/T 808 ACC bit
# (status bit 0); RTK logs carry none.
_MON_FUSED = (
    "SELECT vehicle_id, time, lat, lon, sqrt(ve_mps * ve_mps + vn_mps * vn_mps) * 3.6 AS speed_kmh, "
    "NULL::BOOLEAN AS ignition, used FROM gnss_track WHERE vehicle_id IS NOT NULL"
)
_MON_FIXES = (
    "SELECT vehicle_id, time, lat, lon, speed_kmh, NULL::BOOLEAN AS ignition, true AS used "
    "FROM fixes WHERE vehicle_id IS NOT NULL"
)
_MON_LOCATIONS = (
    "SELECT terminal_id AS vehicle_id, time, lat, lon, speed_kmh, (status & 1) = 1 AS ignition "
    "FROM locations"
)
# (table, key, odometer column) of each odometer source
_ODOMETER_SOURCES = (("locations", "terminal_id", "mileage_km"), ("ev", "vin", "odometer_km"))
_MON_ODOMETERS = tuple(
    (t, f"SELECT {k} AS vehicle_id, time, {c} AS odometer_km FROM {t} WHERE {c} IS NOT NULL")
    for t, k, c in _ODOMETER_SOURCES
)
# Each key's latest reading, before the loan book maps keys to vehicles:
# mapping every reading of the history first made the valuation's latest
# odometer a join over all of them (0.9-1.4 s at 10,000 vehicles x 15 days;
# this is 0.2 s). Readings tied at the latest time: the largest, so that
# the choice does not depend on the scan's order (arg_max took any one).
_LATEST_ODOMETERS = tuple(
    (
        t,
        (
            f"SELECT {k} AS vehicle_id, time, max({c}) AS odometer_km FROM {t} "
            f"JOIN (SELECT {k} AS _k, max(time) AS _t FROM {t} WHERE {c} IS NOT NULL "
            f"GROUP BY {k}) ON {k} = _k AND time = _t WHERE {c} IS NOT NULL GROUP BY {k}, time"
        ),
    )
    for t, k, c in _ODOMETER_SOURCES
)
_MON_TRACK_COLS = ("vehicle_id", "time", "lat", "lon", "speed_kmh", "ignition", "used")
# how far before the last run's clock a daily run looks for the terminal
# rows that give new RTK fixes their ignition (MonitorStore._ignition_rows)
IGNITION_LOOKBACK = dt.timedelta(days=2)
_MON_ODO_COLS = ("vehicle_id", "time", "odometer_km")


def _staged_blocks(
    store: Store, table: str, cols: tuple[str, ...], n: int, rows: int, first: int = 0
) -> Generator[pa.Table, None, None]:
    """Blocks ``first``..n-1 of a staging table, in one scan on a cursor of
    its own (the run's writes go on on the store's connection meanwhile)."""
    names = ", ".join(cols)
    schema = store.query(f"SELECT {names} FROM {table} LIMIT 0").schema
    cur = store.con.cursor()
    try:
        reader = cur.sql(f"SELECT blk, {names} FROM {table}").to_arrow_reader(rows)
        held: list[pa.Table] = []  # the rows of block `blk` so far
        blk = first
        for batch in reader:
            b = batch.column(0).to_numpy()
            if not b.size:
                continue
            if b[0] < blk or (b[1:] < b[:-1]).any() or b[-1] >= n:
                raise RuntimeError(f"the monitor's staging table {table} is out of block order")
            got = pa.Table.from_batches([batch]).drop_columns(["blk"])
            start = 0
            while start < b.size:
                here = int(b[start])
                while blk < here:  # the blocks before it are complete
                    yield _block_table(held, schema)
                    held, blk = [], blk + 1
                end = int(np.searchsorted(b, here, side="right"))
                held.append(got.slice(start, end - start))
                start = end
        while blk < n:
            yield _block_table(held, schema)
            held, blk = [], blk + 1
    finally:
        cur.close()


def _block_table(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    # as Store.query gives it: timestamps in UTC
    t = pa.concat_tables(parts) if parts else schema.empty_table()
    return t.cast(schema).combine_chunks()


_MON_COLS = ("time", "lat", "lon", "speed_kmh", "ignition", "odometer_km")
MONITOR_OUTPUTS = ("alerts", "monitor_features", "monitor_rejects")
# the list-column state table of earlier versions (dropped by the next commit)
MONITOR_STATE = "monitor_state"
# where each vehicle's saved state is: (vehicle_id, batch, row) of the state file
MONITOR_STATE_INDEX = "monitor_state_index"
# the state files' directory beside the database (``<db>.monitor``)
STATE_DIR_SUFFIX = ".monitor"
# LZ4 frames: 4.5x smaller than the Arrow buffers, read and written at
# memory speed (3,000 vehicles: 214 MB of lists, 47 MB on disk, 0.3 s out
# and 0.2 s back, against 1.7 s and 1.1 s through DuckDB's list columns)
STATE_COMPRESSION = "lz4"
# a run's staged feature hours and rejects (MonitorStore.write), committed
# every STAGE_COMMIT_VEHICLES vehicles; _monitor_state_new is an earlier
# version's staged state, dropped with them
_MON_STAGING = ("_monitor_state_new", "_monitor_features_new", "_monitor_rejects_new")
STAGE_COMMIT_VEHICLES = 2000
# the run's input rows, by block (MonitorStore.read)
_MON_INPUTS = ("_mon_tracks", "_mon_odo", "_mon_tracks_new", "_mon_odo_new")
# A run that reads more new rows than this (the sources' rows newer than the
# last run's clock, all rows on a first run) stages them a slice of
# vehicle blocks at a time, each slice's rows just before its blocks are
# scored: staged whole and sorted, a 100,000-vehicle backfill's ~300 M rows
# filled the disk with DuckDB's spill. Each slice reads the sources again
# (the few slices of a backfill), so smaller runs stage once.
STAGE_SLICE_ROWS = 100_000_000
_MON_META = "monitor_state"


def _source_sql(
    have: set[str], only: str | None = None
) -> tuple[str | None, dict[str, str], str | None]:
    """The monitor's sources among the tables ``have``, as SQL: the
    terminals' positions, the odometers by table, the RTK track; with a loan
    book, terminal numbers and VINs become the book's vehicle ids. ``only``
    (a query of one column of vehicle ids) keeps those vehicles' rows. The
    local monitor and the Dask export both read through this."""
    odo = {t: q for t, q in _MON_ODOMETERS if t in have}
    loc = _MON_LOCATIONS if "locations" in have else None
    if "loan_book" in have:
        loc = loc and mapped_sql(loc, _MON_COLS, only=only)
        odo = {t: mapped_sql(q, _MON_COLS, only=only) for t, q in odo.items()}
    elif only is not None:
        loc = loc and f"SELECT * FROM ({loc}) WHERE vehicle_id IN ({only})"
        odo = {t: f"SELECT * FROM ({q}) WHERE vehicle_id IN ({only})" for t, q in odo.items()}
    rtk = _MON_FUSED if "gnss_track" in have else _MON_FIXES if "fixes" in have else None
    if rtk is not None and only is not None:
        rtk = f"SELECT * FROM ({rtk}) WHERE vehicle_id IN ({only})"
    return loc, odo, rtk


def _with_ignition(rtk: str, ign: str) -> str:
    """The RTK fixes of ``rtk`` with the ACC bit of their vehicle's latest
    terminal row (of ``ign``) at or before each. A terminal's readings of
    one second are folded first, on if any is on: among rows tied on time an
    ASOF join takes any one, so a rerun could give a fix another bit (six of
    the 729,387 buffered fixes of a 3,000-vehicle state differed between
    two runs of the same store)."""
    one = (
        f"SELECT vehicle_id, time, bool_or(ignition) AS ignition FROM ({ign}) "
        "GROUP BY vehicle_id, time"
    )
    return (
        "SELECT r.vehicle_id, r.time, r.lat, r.lon, r.speed_kmh, i.ignition, r.used "
        f"FROM ({rtk}) r ASOF LEFT JOIN ({one}) i "
        "ON r.vehicle_id = i.vehicle_id AND r.time >= i.time"
    )


@dataclass
class MonitorRead:
    """What a monitor run reads: the vehicles with rows newer than ``since``
    (sorted), the newest row's time (None without rows), each source's row
    count (by source name) and how many of its rows are newer than ``since``."""

    ids: list[str]
    clock: dt.datetime | None
    counts: dict[str, int]
    newer: dict[str, int]


def _state_rows(batch: Callable[[int], pa.RecordBatch], where: list[tuple[int, int]]) -> pa.Table:
    """The rows ``where`` ((batch, row) each) of a state file whose batches
    ``batch`` reads, in that order."""
    parts = []
    i = 0
    while i < len(where):
        b = where[i][0]
        j = i
        while j < len(where) and where[j][0] == b:
            j += 1
        got = batch(b)
        rows = [r for _, r in where[i:j]]
        if rows == list(range(rows[0], rows[0] + len(rows))):
            parts.append(got.slice(rows[0], len(rows)))  # the usual case: no copy
        else:
            parts.append(got.take(pa.array(rows, pa.int64())))
        i = j
    return pa.Table.from_batches(parts)


@dataclass(frozen=True)
class StateRef:
    """Rows of a monitor state file by (batch, row): what a worker process
    is sent in place of the rows themselves. Pickling a block's state (17 MB
    of Arrow buffers for 256 vehicles, 27 MB pickled with the buffers its
    slices share) cost the sending process 30-50 ms a block; the worker
    maps the file instead. The file is the last run's, which nothing
    changes or deletes before the run commits."""

    path: str
    where: list[tuple[int, int]]

    def read(self) -> pa.Table:
        reader = ipc.open_file(pa.memory_map(self.path))
        return _state_rows(reader.get_batch, self.where)


class MonitorStore:
    """The monitor stage's reads and writes of the store.

    ``read`` copies the rows newer than the last run's clock, once, into
    staging tables numbered by vehicle block; ``blocks`` hands out the
    blocks' rows in order from one scan of them;
    ``state`` reads the saved state of a block's vehicles. ``write`` starts
    the run's writes: the new state, the new feature hours and the rejects
    are staged as blocks come (``put_block``; the hours and rejects go into
    the staging tables a commit's worth at a time); ``commit`` moves them into
    place with the alerts and the run's meta, in one transaction. A run
    killed before ``commit`` leaves the outputs as they were.

    The saved state is not in the database: it is one Arrow IPC file per
    run in ``<db>.monitor/`` (LZ4 frames, a record batch per block, in
    block order), which the run's meta names; ``monitor_state_index`` says
    where each vehicle's row is. Rewritten whole every run, the state was
    most of what DuckDB compressed, checkpointed and held in memory (72 KB
    a vehicle; 1 GB of a 3,000-vehicle run's peak). The new file is written
    and synced before the commit that names it, so a run killed first
    leaves the last run's file named; files no meta names are deleted when
    the next run starts and after each commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.con = store.con
        self._staged: set[str] = set()  # staging tables this run created
        self._fresh = False
        # blocks' feature hours and rejects, by staging table, not yet inserted
        self._pending: dict[str, list[pa.Table]] = {}
        self._uncommitted = 0  # vehicles staged since its last commit
        self._meta: dict[str, Any] | None = None
        # the last run's state file, and each vehicle's (batch, row) in it
        self._where: dict[str, tuple[int, int]] = {}
        self._reader: ipc.RecordBatchFileReader | None = None
        self._batches: dict[int, pa.RecordBatch] = {}
        # this run's state file, written block by block
        self._file: str | None = None
        self._sink: Any = None
        self._writer: ipc.RecordBatchFileWriter | None = None
        self._index: list[pa.Table] = []
        self._tmp = ""
        # what ``read`` found for ``blocks``: a sliced run's vehicles and its
        # slices ((first, end) block ranges; None: all staged by ``read``)
        self._since: dt.datetime | None = None
        self._batch_size = 1
        self._ids: list[str] = []
        self._slices: list[tuple[int, int]] | None = None

    @property
    def state_dir(self) -> Path:
        """``<db>.monitor``: the saved state's files."""
        path = self.store.path
        if path in ("", ":memory:") or path.startswith(":memory:"):
            raise ValueError(
                "the monitor keeps its state in files beside the database: "
                "it needs a database file, not :memory:"
            )
        db = Path(path).resolve()
        return db.with_name(db.name + STATE_DIR_SUFFIX)

    def meta(self) -> dict[str, Any] | None:
        """The last committed run's meta (clock, row counts, config, state
        file), or None. A meta whose state file is gone (a database copied
        without its ``.monitor`` directory) is None, with a warning: the run
        then scores the whole history again, as a first run would."""
        if self.store.meta(_MON_META) is None:
            return None
        out = self._committed_meta()
        name = out.get("state_file")
        if name is not None and not (self.state_dir / name).is_file():
            warnings.warn(
                f"the monitor state file {self.state_dir / name} named by {self.store.path} "
                "is missing: the monitor starts afresh and scores the whole history",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        self._meta = out
        return out

    def _sources(self) -> tuple[str | None, list[str], str | None]:
        loc, odo, rtk = _source_sql(set(self.store.tables()))
        return loc, list(odo.values()), rtk

    def _ignition_rows(self, ign: str, rtk_new: str, since: dt.datetime | None) -> str:
        """The terminal rows (of ``ign``) of the RTK vehicles with new fixes
        (``_rv``) that can hold a new fix's latest ACC bit, as SQL: those
        after ``since - IGNITION_LOOKBACK``, and all rows of the few vehicles
        whose terminal sent nothing in that span before ``since`` (their
        latest row at or before ``since`` is older). Every vehicle's latest
        row at or before ``since`` and all after it are among them, as over
        the whole history, which every daily run had scanned for this
        (0.5-0.9 s of 0.75-1.2 at 10,000 vehicles after 15 days)."""
        rv = "vehicle_id IN (SELECT vehicle_id FROM _rv)"
        if since is None:
            return f"SELECT * FROM _ign WHERE {rv}"
        self.con.execute(
            "SET VARIABLE _monitor_lookback = ?", [since - IGNITION_LOOKBACK]
        ).fetchall()
        after = "time > getvariable('_monitor_lookback')"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE _mon_uncovered AS SELECT DISTINCT vehicle_id "
            f"FROM ({rtk_new}) WHERE vehicle_id IS NOT NULL AND vehicle_id NOT IN ("
            f"SELECT vehicle_id FROM ({ign}) WHERE {after} "
            "AND time <= getvariable('_monitor_since') AND vehicle_id IS NOT NULL)"
        ).fetchall()
        window = f"SELECT * FROM _ign WHERE {rv} AND {after}"
        n = self.store.query("SELECT count(*) AS n FROM _mon_uncovered").column("n")[0].as_py()
        if not n:
            return window
        # their older rows, read by their terminals' keys before the book's join
        only = "SELECT vehicle_id FROM _mon_uncovered"
        older = (
            mapped_sql(_MON_LOCATIONS, _MON_COLS, only=only)
            if "loan_book" in self.store.tables()
            else f"SELECT * FROM ({_MON_LOCATIONS}) WHERE vehicle_id IN ({only})"
        )
        return (
            f"{window} UNION ALL SELECT vehicle_id, time, ignition FROM ({older}) "
            "WHERE NOT (" + after + ")"
        )

    def _inputs_sql(
        self, since: dt.datetime | None, only: str | None = None, *, ignition: bool = True
    ) -> tuple[str, str]:
        """The run's input rows as SQL: the tracks (``_MON_TRACK_COLS``) and
        the odometer readings newer than ``since`` (all without it), of the
        vehicles ``only`` (a query of their ids) or of all. Without
        ``ignition`` the RTK fixes' ACC bit is left out (the same rows, for
        their ids and times). Call with ``_monitor_since`` set."""
        loc, odo, rtk = _source_sql(set(self.store.tables()), only)
        newer = "(getvariable('_monitor_since') IS NULL OR time > getvariable('_monitor_since'))"
        track = None
        if rtk:
            rtk_new = f"SELECT * FROM ({rtk}) WHERE {newer}"
            if loc and ignition:
                # an RTK log has no ignition: take the terminal's latest ACC
                # bit. A new fix's match is a terminal row of its vehicle at or
                # after that vehicle's last row at or before ``since``: only
                # those rows enter the join, so a daily run does not build it
                # over the whole history (the match is the same).
                ign = f"SELECT vehicle_id, time, ignition FROM ({loc})"
                ign_new = (
                    f"WITH _ign AS ({ign}), "
                    f"_rv AS (SELECT DISTINCT vehicle_id FROM ({rtk_new})), "
                    f"_i AS ({self._ignition_rows(ign, rtk_new, since)}), "
                    "_t0 AS (SELECT vehicle_id, max(time) AS t0 FROM _i "
                    "WHERE time <= getvariable('_monitor_since') GROUP BY vehicle_id) "
                    "SELECT _i.* FROM _i LEFT JOIN _t0 USING (vehicle_id) "
                    "WHERE _t0.t0 IS NULL OR _i.time >= _t0.t0"
                )
                rtk_new = _with_ignition(rtk_new, ign_new)
            track = rtk_new
        if loc:
            loc_new = f"SELECT *, true AS used FROM ({loc}) WHERE {newer}"
            # a vehicle with an RTK track (ever) is tracked by it alone
            track = (
                f"SELECT * FROM ({track}) UNION ALL SELECT * FROM ({loc_new}) "
                f"WHERE vehicle_id NOT IN (SELECT DISTINCT vehicle_id FROM ({rtk}))"
                if track
                else loc_new
            )
        cols = ", ".join(_MON_TRACK_COLS)
        track = f"SELECT {cols} FROM ({track or _EMPTY_TRACK})"
        odo_sql = (
            " UNION ALL ".join(f"SELECT * FROM ({q}) WHERE {newer}" for q in odo.values())
            if odo
            else "SELECT NULL::VARCHAR AS vehicle_id, NULL::TIMESTAMPTZ AS time, "
            "NULL::DOUBLE AS odometer_km WHERE false"
        )
        return track, odo_sql

    def _counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Each source's row count as stored (no identity join: it keeps
        every row) and how many are newer than ``_monitor_since``."""
        newer = "(getvariable('_monitor_since') IS NULL OR time > getvariable('_monitor_since'))"
        counts: dict[str, int] = {}
        new_counts: dict[str, int] = {}
        have = set(self.store.tables())
        for name, q in (
            ("gnss_track", _MON_FUSED),
            ("fixes", _MON_FIXES),
            ("locations", _MON_LOCATIONS),
            *((f"{t}_odometer", q) for t, q in _MON_ODOMETERS),
        ):
            base = name.split("_odometer")[0]
            if base not in have or (name == "fixes" and "gnss_track" in have):
                continue
            row = self.store.query(
                f"SELECT count(*) AS n, count(*) FILTER (WHERE {newer}) AS m FROM ({q})"
            ).to_pylist()[0]
            counts[name], new_counts[name] = int(row["n"]), int(row["m"])
        return counts, new_counts

    def read(self, since: dt.datetime | None, batch: int, known: list[str]) -> MonitorRead:
        """Stages the rows newer than ``since`` (all rows without it) for
        ``known`` vehicles (those with state) and every vehicle with such
        rows, ``batch`` vehicles a block.

        The staged rows are tables of the database, not temporary ones:
        committed, DuckDB holds them compressed and can write them out,
        where a temporary table stays in memory (a backfill stages every
        row: 1.3 GB at 3,000 vehicles x 14 days). ``commit`` and
        ``rollback`` drop them, and a run killed first leaves them to the
        next run, which replaces them. With more than ``STAGE_SLICE_ROWS``
        new rows, only the vehicles and the clock are read here, and
        ``blocks`` stages a slice of blocks at a time."""
        con = self.con
        loc, odo, rtk = self._sources()
        if loc is None and rtk is None and not odo:
            raise ValueError(
                f"{self.store.path} has no tracks or odometer readings; "
                "run `autolien ingest` (and `fuse`) first"
            )
        con.execute("SET VARIABLE _monitor_since = ?", [since]).fetchall()
        counts, new_counts = self._counts()
        self._since, self._batch_size, self._slices = since, batch, None
        if sum(new_counts.values()) > STAGE_SLICE_ROWS:
            return self._read_sliced(since, batch, known, counts, new_counts)
        track, odo_sql = self._inputs_sql(since)
        con.execute(f"CREATE OR REPLACE TABLE _mon_tracks_new AS {track}").fetchall()
        con.execute(f"CREATE OR REPLACE TABLE _mon_odo_new AS {odo_sql}").fetchall()
        new_ids = self.store.query(
            "SELECT DISTINCT vehicle_id AS v FROM (SELECT vehicle_id FROM _mon_tracks_new "
            "UNION ALL SELECT vehicle_id FROM _mon_odo_new) WHERE vehicle_id IS NOT NULL"
        )
        ids = sorted(set(new_ids.column("v").to_pylist()) | set(known))
        con.register("_mon_blocks", self._block_table(ids, 0))
        try:
            for name in ("tracks", "odo"):
                # block first: a block's rows lie together, so its scan is short
                con.execute(
                    f"CREATE OR REPLACE TABLE _mon_{name} AS SELECT b.blk, s.* "
                    f"FROM _mon_{name}_new s JOIN _mon_blocks b USING (vehicle_id) "
                    "ORDER BY ALL"
                ).fetchall()
                con.execute(f"DROP TABLE _mon_{name}_new").fetchall()
        finally:
            con.unregister("_mon_blocks")
        clock = self.store.query(
            "SELECT max(t) AS t FROM (SELECT max(time) AS t FROM _mon_tracks "
            "UNION ALL SELECT max(time) FROM _mon_odo)"
        ).column("t")[0]
        return MonitorRead(ids, clock.as_py() if clock.is_valid else None, counts, new_counts)

    def _block_table(self, ids: list[str], first: int) -> pa.Table:
        """``ids`` with their block numbers, the first in block ``first``."""
        batch = self._batch_size
        return pa.table(
            {
                "vehicle_id": pa.array(ids, pa.string()),
                "blk": pa.array([first + i // batch for i in range(len(ids))], pa.int64()),
            }
        )

    def _read_sliced(
        self,
        since: dt.datetime | None,
        batch: int,
        known: list[str],
        counts: dict[str, int],
        new_counts: dict[str, int],
    ) -> MonitorRead:
        """``read`` for a run too big to stage at once: the vehicles with new
        rows and the newest row's time from one pass over the sources (no
        ignition join, no sort), and the blocks cut into slices of about
        ``STAGE_SLICE_ROWS`` rows each, which ``blocks`` stages in turn."""
        track, odo_sql = self._inputs_sql(since, ignition=False)
        got = self.store.query(
            "SELECT vehicle_id AS v, max(time) AS t FROM (SELECT vehicle_id, time FROM "
            f"({track}) UNION ALL SELECT vehicle_id, time FROM ({odo_sql})) "
            "WHERE vehicle_id IS NOT NULL GROUP BY vehicle_id"
        )
        ids = sorted(set(got.column("v").to_pylist()) | set(known))
        times = got.column("t")
        clock = pc.max(times).as_py() if times.null_count < len(times) else None
        n_blocks = -(-len(ids) // batch)
        n_slices = -(-sum(new_counts.values()) // STAGE_SLICE_ROWS)
        step = max(1, -(-n_blocks // n_slices))
        self._ids = ids
        self._slices = [(b, min(b + step, n_blocks)) for b in range(0, n_blocks, step)]
        return MonitorRead(ids, clock, counts, new_counts)

    def _stage_slice(self, first: int, end: int) -> None:
        """Stages blocks ``first`` to ``end`` - 1 of a sliced run as ``read``
        stages all of a smaller one (the same rows in the same order)."""
        con = self.con
        batch = self._batch_size
        con.register(
            "_mon_blocks", self._block_table(self._ids[first * batch : end * batch], first)
        )
        try:
            con.execute("SET VARIABLE _monitor_since = ?", [self._since]).fetchall()
            track, odo_sql = self._inputs_sql(self._since, "SELECT vehicle_id FROM _mon_blocks")
            for name, sql in (("tracks", track), ("odo", odo_sql)):
                con.execute(
                    f"CREATE OR REPLACE TABLE _mon_{name} AS SELECT b.blk, s.* "
                    f"FROM ({sql}) s JOIN _mon_blocks b USING (vehicle_id) ORDER BY ALL"
                ).fetchall()
        finally:
            con.unregister("_mon_blocks")

    def blocks(
        self, n: int, *, rows: int = 1 << 16
    ) -> Generator[tuple[pa.Table, pa.Table], None, None]:
        """Blocks 0 to n - 1: each one's tracks and odometer readings in
        ORDER BY ALL (distinct readings in one second come in one fixed
        order, so a re-run or an incremental one scores the same rows the
        same way), from one pass over each staging table. A query per block
        scanned and sorted again, and its cost grew with the staged rows, so
        all of them together grew with the square of the fleet (3.4 s of a
        30,000-vehicle daily monitor). The staging tables were written in
        their ORDER BY ALL, which a scan keeps (DuckDB preserves insertion
        order unless ``preserve_insertion_order`` is off); a block number
        that goes back raises RuntimeError rather than cut wrongly. ``rows``:
        the scan's batch size. A sliced run (``read``) stages each slice
        when its first block is asked for, in place of the last slice."""
        slices = self._slices if self._slices is not None else [(0, n)]
        if slices and slices[-1][1] != n:
            raise ValueError(f"the run has {slices[-1][1]} blocks, not {n}")
        for first, end in slices:
            if self._slices is not None:
                self._stage_slice(first, end)
            tracks = _staged_blocks(self.store, "_mon_tracks", _MON_TRACK_COLS, end, rows, first)
            odo = _staged_blocks(self.store, "_mon_odo", _MON_ODO_COLS, end, rows, first)
            try:
                yield from zip(tracks, odo, strict=True)
            finally:
                # their cursors, now: a zip does not close what it reads
                tracks.close()
                odo.close()

    def state_ids(self) -> list[str]:
        """The vehicles with saved state, in the state file's order (call
        ``meta`` first: it names the file)."""
        name = (self._meta or {}).get("state_file")
        self._where = {}
        if name is None or MONITOR_STATE_INDEX not in self.store.tables():
            return []
        t = self.store.query(
            f'SELECT vehicle_id, batch, "row" FROM {MONITOR_STATE_INDEX} ORDER BY batch, "row"'
        )
        self._where = dict(
            zip(
                t.column("vehicle_id").to_pylist(),
                zip(t.column("batch").to_pylist(), t.column("row").to_pylist(), strict=True),
                strict=True,
            )
        )
        self._reader = ipc.open_file(pa.memory_map(str(self.state_dir / name)))
        return list(self._where)

    def _batch(self, b: int) -> pa.RecordBatch:
        # blocks go in vehicle order, as the file's batches do: a block needs
        # the batch it starts in and maybe the next; older ones are let go
        got = self._batches.get(b)
        if got is None:
            assert self._reader is not None
            got = self._reader.get_batch(b)
            self._batches = {k: v for k, v in self._batches.items() if k >= b - 1}
            self._batches[b] = got
        return got

    def state(self, ids: list[str]) -> pa.Table | None:
        """The saved state rows of ``ids``, in their order."""
        where = [self._where[v] for v in ids if v in self._where]
        return _state_rows(self._batch, where) if where else None

    def state_ref(self, ids: list[str]) -> StateRef | None:
        """Where the saved state rows of ``ids`` are, for another process
        to read (``StateRef.read``) instead of being sent the rows."""
        name = (self._meta or {}).get("state_file")
        where = [self._where[v] for v in ids if v in self._where]
        if name is None or not where:
            return None
        return StateRef(str(self.state_dir / name), where)

    def saved_state(self) -> pa.Table | None:
        """The whole saved state in the file's order (for checks and tools),
        or None without one."""
        if self.meta() is None:
            return None
        ids = self.state_ids()
        try:
            return self.state(ids) if ids else None
        finally:
            self._close_reader()

    def _close_reader(self) -> None:
        self._batches = {}
        self._reader = None

    # -- the write transaction --------------------------------------------------
    def write(self, fresh: bool) -> None:
        """Starts the run's writes; ``fresh``: the outputs start empty.

        Each block's state, feature hours and rejects go into staging tables,
        committed every ``STAGE_COMMIT_VEHICLES`` vehicles; ``commit`` moves
        them into place in one transaction. Committed, DuckDB keeps them as
        table data it can write out and evict; in the run's one transaction
        they were its local storage, in memory until the commit (16 MB a
        block of 200 vehicles: 1 GB of a 10,000-vehicle daily run); a commit
        every block cost a quarter more monitor time in checkpoints. A run
        killed before ``commit`` leaves the outputs and the state as they
        were; its staging tables are dropped by the next run, and its state
        file (no meta names it) here."""
        self._fresh = fresh
        self._uncommitted = 0
        self._pending = {}
        self._staged = set()
        self._drop(_MON_STAGING)
        self._collect_state_files()
        # written under a name of its own, then named by its content
        self._tmp = f"state-tmp-{os.getpid()}.arrow"
        self._file = None
        self._index = []

    def _committed_meta(self) -> dict[str, Any]:
        import json  # noqa: PLC0415

        raw = self.store.meta(_MON_META)
        out: dict[str, Any] = json.loads(raw) if raw is not None else {}
        return out

    def _named_state_file(self) -> str | None:
        name = self._committed_meta().get("state_file")
        return str(name) if name is not None else None

    def _collect_state_files(self) -> None:
        """Deletes the state files the committed meta does not name."""
        d = self.state_dir
        if not d.is_dir():
            return
        keep = self._named_state_file()
        for f in d.iterdir():
            if f.name != keep and f.name.startswith("state-") and f.is_file():
                f.unlink(missing_ok=True)

    def _put_state(self, state: pa.Table) -> None:
        """Appends a block's state to this run's file, as one record batch."""
        if state.num_rows == 0:
            return
        if self._writer is None:
            self.state_dir.mkdir(exist_ok=True)
            self._sink = pa.OSFile(str(self.state_dir / self._tmp), "wb")
            self._writer = ipc.new_file(
                self._sink,
                state.schema,
                options=ipc.IpcWriteOptions(compression=STATE_COMPRESSION),
            )
        batch = state.combine_chunks().to_batches()
        b = len(self._index)
        self._writer.write_batch(batch[0] if len(batch) == 1 else pa.concat_batches(batch))
        self._index.append(
            pa.table(
                {
                    "vehicle_id": state.column("vehicle_id").combine_chunks(),
                    "batch": pa.array([b] * state.num_rows, pa.int64()),
                    "row": pa.array(range(state.num_rows), pa.int64()),
                }
            )
        )

    def _finish_state(self) -> str | None:
        """Closes and syncs this run's state file and names it by its
        content (the same state, the same name: a re-run that changes
        nothing, or a rerun after a crash, leaves the store as one run
        does); returns the name (None: no state)."""
        import hashlib  # noqa: PLC0415

        if self._writer is None:
            return None
        self._writer.close()
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self._sink.close()
        self._writer = self._sink = None
        tmp = self.state_dir / self._tmp
        h = hashlib.blake2b(digest_size=16)
        with open(tmp, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
        self._file = f"state-{h.hexdigest()}.arrow"
        os.replace(tmp, self.state_dir / self._file)
        fsync_dir(self.state_dir)  # the name is durable before a commit names it
        return self._file

    def _abandon_state(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            with contextlib.suppress(Exception):
                self._sink.close()
        self._writer = self._sink = None
        named = self._named_state_file()
        for name in (self._tmp, self._file):
            if name and name != named:
                with contextlib.suppress(OSError, ValueError):
                    (self.state_dir / name).unlink(missing_ok=True)

    def _drop(self, names: tuple[str, ...], *, quiet: bool = False) -> None:
        """Drops the tables ``names`` that exist; ``quiet``: each on its own,
        whatever the others do (a failed run's clean-up)."""
        for name in names:
            try:
                self.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
            except duckdb.Error:
                if not quiet:
                    raise

    def _append(self, name: str, table: pa.Table, exists: bool | None = None) -> None:
        # through a relation, not a registered view: DuckDB holds a table
        # registered inside a transaction until the commit
        if exists is None:
            exists = name in self.store.tables()
        sql = (
            f"INSERT INTO {name} BY NAME SELECT * FROM _mon_in"
            if exists
            else f"CREATE TABLE {name} AS SELECT * FROM _mon_in"
        )
        self.con.from_arrow(table).query("_mon_in", sql)

    def _stage(self, name: str, table: pa.Table) -> None:
        # the staging tables were dropped by ``write``: this run knows which
        # exist without asking the catalog on every block
        self._append(name, table, exists=name in self._staged)
        self._staged.add(name)

    def put_block(self, state: pa.Table, features: pa.Table | None, rejects: pa.Table) -> None:
        """A block's new state (into this run's state file), its new feature
        hours and its rejects, staged (committed, not yet in the outputs)."""
        self._put_state(state)
        # held here and inserted once a commit's worth: an insert per block
        # was 2.5 s of a 30,000-vehicle daily monitor (150 blocks)
        if features is not None and features.num_rows:
            self._pending.setdefault("_monitor_features_new", []).append(features)
        if rejects.num_rows:
            self._pending.setdefault("_monitor_rejects_new", []).append(rejects)
        self._uncommitted += state.num_rows
        if self._uncommitted >= STAGE_COMMIT_VEHICLES:
            self._commit_staged()

    def _commit_staged(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            self.con.begin()
            try:
                for name, parts in pending.items():
                    # every block's tables have the same columns (Monitor.features)
                    self._stage(name, pa.concat_tables(parts))
            except BaseException:
                self.con.rollback()
                raise
            self.con.commit()
        self._uncommitted = 0

    def commit(self, alerts: pa.Table, empty: dict[str, pa.Table], meta: dict[str, Any]) -> None:
        """One transaction: the alerts replace the table; the staged feature
        hours and rejects are added to the outputs (which start empty in a
        fresh run; outputs that got no rows are created empty from
        ``empty``); the new state file's index replaces the old, and the meta
        names the file. The file is synced first; the old one goes after."""
        import json  # noqa: PLC0415

        self._commit_staged()
        self._close_reader()
        name = self._finish_state()
        meta = {**meta, "state_file": name}
        index = (
            pa.concat_tables(self._index)
            if self._index
            else pa.table(
                {
                    "vehicle_id": pa.array([], pa.string()),
                    "batch": pa.array([], pa.int64()),
                    "row": pa.array([], pa.int64()),
                }
            )
        )
        self.con.begin()
        try:
            self._drop(MONITOR_OUTPUTS if self._fresh else ("alerts",))
            self._append("alerts", alerts)
            have = set(self.store.tables())
            for staged, name in (
                ("_monitor_features_new", "monitor_features"),
                ("_monitor_rejects_new", "monitor_rejects"),
            ):
                if staged not in self._staged:
                    if name not in have:  # no rows this run nor before: created empty
                        self._append(name, empty[name], exists=False)
                elif name in have:
                    self.con.execute(
                        f"INSERT INTO {name} BY NAME SELECT * FROM {staged}"
                    ).fetchall()
                    self.con.execute(f"DROP TABLE {staged}").fetchall()
                else:
                    self.con.execute(f"ALTER TABLE {staged} RENAME TO {name}").fetchall()
            self._drop((MONITOR_STATE, MONITOR_STATE_INDEX))
            self._append(MONITOR_STATE_INDEX, index, exists=False)
            self._drop(_MON_INPUTS)
            self.store.set_meta(_MON_META, json.dumps(meta, sort_keys=True))
            self.con.commit()
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # none open after a failed commit
                self.con.rollback()
            self._abandon_state()
            raise
        self._meta = meta
        self._collect_state_files()

    def rollback(self) -> None:
        """Drops what a failed run staged, its input rows included (the
        outputs were never touched)."""
        self._pending = {}
        with contextlib.suppress(duckdb.Error):
            self.con.rollback()  # the staging transaction, if one was open
        self._drop((*_MON_STAGING, *_MON_INPUTS), quiet=True)
        self._close_reader()
        self._abandon_state()

    def count(self, name: str) -> int:
        return int(self.store.query(f"SELECT count(*) AS n FROM {name}").column("n")[0].as_py())


_EMPTY_TRACK = (
    "SELECT NULL::VARCHAR AS vehicle_id, NULL::TIMESTAMPTZ AS time, NULL::DOUBLE AS lat, "
    "NULL::DOUBLE AS lon, NULL::DOUBLE AS speed_kmh, NULL::BOOLEAN AS ignition, "
    "NULL::BOOLEAN AS used WHERE false"
)


# --- the Dask engine's exchange (autolien.dask_engine) -----------------------


@dataclass
class MonitorExport:
    """What ``export_monitor_inputs`` wrote: every vehicle id per bucket
    (buckets without a vehicle left out), the fleet clock (the newest row of
    any source), the rows per source, and the rows that arrived since the
    last run but are older than its clock (``late``, not scored)."""

    vehicles: dict[int, list[str]]
    buckets: int
    clock: dt.datetime | None
    counts: dict[str, int]
    late: int


def _register_buckets(
    store: Store, ids: list[str], buckets: int | None, vehicles_per_bucket: int
) -> tuple[int, dict[int, list[str]]]:
    """Each vehicle's bucket, registered as ``_export_buckets`` (v, bucket)
    for the export's join; returns the bucket count (one per
    ``vehicles_per_bucket`` vehicles when None) and the vehicles per bucket."""
    if buckets is None:
        buckets = max(1, math.ceil(len(ids) / vehicles_per_bucket))
    of = [vehicle_bucket(v, buckets) for v in ids]
    vehicles: dict[int, list[str]] = {}
    for v, b in zip(ids, of, strict=True):
        vehicles.setdefault(b, []).append(v)
    store.con.register(
        "_export_buckets",
        pa.table({"v": pa.array(ids, pa.string()), "bucket": pa.array(of, pa.int32())}),
    )
    return buckets, vehicles


def _monitor_sources(store: Store) -> tuple[str | None, dict[str, str]]:
    """The monitor's sources over the whole history, without the RTK fixes'
    ignition (the same rows: for the export's vehicles, clock and counts)."""
    loc, odo, rtk = _source_sql(set(store.tables()))
    if rtk and loc:
        track: str | None = (
            f"SELECT * FROM ({rtk}) UNION ALL SELECT *, true AS used FROM ({loc}) "
            f"WHERE vehicle_id NOT IN (SELECT DISTINCT vehicle_id FROM ({rtk}))"
        )
    elif rtk or loc:
        track = rtk or f"SELECT *, true AS used FROM ({loc})"
    else:
        track = None
    return track, {f"odometer:{t}": q for t, q in odo.items()}


def export_monitor_inputs(
    db: str | Path,
    dest: str | Path,
    buckets: int | None,
    *,
    vehicles_per_bucket: int = 250,
    since: dt.datetime | None = None,
    previous_counts: dict[str, int] | None = None,
) -> MonitorExport:
    """Writes the monitor's inputs, the rows newer than ``since`` (all rows
    without it), as Parquet per vehicle bucket, one scan of each source:
    ``dest/tracks/bucket=K/*.parquet`` (vehicle_id, time, lat, lon,
    speed_kmh, ignition, used) and ``dest/odometer/bucket=K/*.parquet``
    (vehicle_id, time, odometer_km). ``dest`` is replaced. Row order inside
    a bucket is not kept: the reader sorts (``ORDER BY ALL`` in the local
    engine). ``buckets`` None: one per ``vehicles_per_bucket`` vehicles."""
    if buckets is not None and buckets < 1:
        raise ValueError("buckets must be at least 1")
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with Store(db) as store:
        track, odo = _monitor_sources(store)
        if track is None and not odo:
            raise ValueError(
                f"{db} has no tracks or odometer readings; run `autolien ingest` (and `fuse`) first"
            )
        sources = ({"tracks": track} if track else {}) | odo
        union = " UNION ALL ".join(f"SELECT vehicle_id, time FROM ({q})" for q in sources.values())
        ids = (
            store.query(
                f"SELECT DISTINCT vehicle_id AS v FROM ({union}) WHERE vehicle_id IS NOT NULL "
                "ORDER BY v"
            )
            .column("v")
            .to_pylist()
        )
        clock = store.query(f"SELECT max(time) AS t FROM ({union})").column("t")[0].as_py()
        counts = {
            name: int(store.query(f"SELECT count(*) AS n FROM ({q})").column("n")[0].as_py())
            for name, q in sources.items()
        }
        late = 0
        if since is not None:
            store.con.execute("SET VARIABLE _export_since = ?", [since]).fetchall()
            prev = previous_counts or {}
            for name, q in sources.items():
                newer = store.query(
                    f"SELECT count(*) AS n FROM ({q}) WHERE time > getvariable('_export_since')"
                )
                late += max(0, counts[name] - prev.get(name, 0) - newer.column("n")[0].as_py())
        buckets, vehicles = _register_buckets(store, ids, buckets, vehicles_per_bucket)
        # the rows themselves as the local monitor stages them: the new ones,
        # the RTK fixes' ignition searched among the terminal rows that can
        # hold it, not joined over the whole history and then filtered
        store.con.execute("SET VARIABLE _monitor_since = ?", [since]).fetchall()
        new_track, new_odo = MonitorStore(store)._inputs_sql(since)
        try:
            parts = {"tracks": new_track if track else None, "odometer": new_odo if odo else None}
            for name, rows in parts.items():
                if rows is None:
                    continue
                target = (out / name).as_posix().replace("'", "''")
                store.con.execute(
                    f"COPY (SELECT s.*, b.bucket FROM ({rows}) s JOIN _export_buckets b "
                    f"ON b.v = s.vehicle_id) TO '{target}' "
                    "(FORMAT PARQUET, PARTITION_BY (bucket))"
                ).fetchall()
        finally:
            store.con.unregister("_export_buckets")
    return MonitorExport(vehicles, buckets, clock, counts, late)


# the monitor's tables, each in the order the local engine writes it
_MONITOR_ORDER = {
    "alerts": "vehicle_id, opened, kind",
    "monitor_features": "vehicle_id, hour",
    "monitor_rejects": "vehicle_id, time, source, reason",
}


def put_monitor_outputs(
    db: str | Path,
    parts: dict[str, list[Path]],
    *,
    fresh: bool = True,
    record: tuple[str, dict[str, Any]] | None = None,
) -> dict[str, int]:
    """The workers' Parquet files (``parts``: table -> files) into the store,
    in one transaction: ``alerts`` is replaced (every bucket's alerts, open
    and closed); ``monitor_features`` and ``monitor_rejects`` get this run's
    rows appended, or are replaced when ``fresh`` (a run from no state).
    ``record`` (key, value) goes into the store's meta in the same
    transaction: the engine's commit point. Returns each table's rows."""
    import json  # noqa: PLC0415

    rows: dict[str, int] = {}
    with Store(db) as store:
        store.con.begin()
        try:
            for name, order in _MONITOR_ORDER.items():
                files = [p.as_posix() for p in parts.get(name, [])]
                replace = fresh or name == "alerts"
                if replace:
                    store.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
                if files:
                    new = f"SELECT * FROM read_parquet(?, union_by_name = true) ORDER BY {order}"
                    if name in store.tables():
                        store.con.execute(f"INSERT INTO {name} BY NAME {new}", [files]).fetchall()
                    else:
                        store.con.execute(f"CREATE TABLE {name} AS {new}", [files]).fetchall()
                if name in store.tables():
                    n = store.con.execute(f"SELECT count(*) FROM {name}").fetchall()
                    rows[name] = int(n[0][0])
            if record is not None:
                store.set_meta(record[0], json.dumps(record[1], sort_keys=True))
            store.con.commit()
        except BaseException:
            store.con.rollback()
            raise
    return rows


# fixes without a vehicle id (a bare NMEA or UBX log) are one vehicle per file,
# as gnss.cli's fuse_store keys them
_FIX_KEY = "coalesce(f.vehicle_id, 'file:' || f.source_file)"


def export_fixes(
    db: str | Path, dest: str | Path, buckets: int | None = None, *, vehicles_per_bucket: int = 250
) -> tuple[dict[int, list[str]], int]:
    """Writes the timed RTK fixes as Parquet per vehicle bucket
    (``dest/bucket=K/*.parquet``, ``vehicle_id`` keyed as the fuse stage keys
    it); ``dest`` is replaced. Returns the vehicles per bucket and the count
    of fixes without a time (they cannot be placed in a track)."""
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with Store(db) as store:
        if "fixes" not in store.tables():
            raise ValueError(f"{db} has no fixes table")
        ids = (
            store.query(
                f"SELECT DISTINCT {_FIX_KEY} AS v FROM fixes f WHERE time IS NOT NULL ORDER BY v"
            )
            .column("v")
            .to_pylist()
        )
        no_time = store.query("SELECT count(*) AS n FROM fixes WHERE time IS NULL")
        buckets, vehicles = _register_buckets(store, ids, buckets, vehicles_per_bucket)
        try:
            target = out.as_posix().replace("'", "''")
            store.con.execute(
                f"COPY (SELECT {_FIX_KEY} AS vehicle_id, f.* EXCLUDE (vehicle_id), b.bucket "
                f"FROM fixes f JOIN _export_buckets b ON b.v = {_FIX_KEY} "
                f"WHERE f.time IS NOT NULL) TO '{target}' (FORMAT PARQUET, PARTITION_BY (bucket))"
            ).fetchall()
        finally:
            store.con.unregister("_export_buckets")
    return vehicles, int(no_time.column("n")[0].as_py())


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def export_ev(
    db: str | Path, dest: str | Path, buckets: int | None = None, *, vehicles_per_bucket: int = 250
) -> tuple[dict[int, list[str]], int]:
    """Writes the GB/T 32960 frames as Parquet per bucket of VINs
    (``dest/bucket=K/*.parquet``; the charge segments are per VIN, so the
    VIN is the key and no loan book is needed); ``dest`` is replaced.
    Returns the VINs per bucket (none when the store has no EV frames) and
    the bucket count."""
    out = Path(dest)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with Store(db) as store:
        if "ev" not in store.tables():
            return {}, 0
        key = "coalesce(e.vin, '')"
        ids = store.query(f"SELECT DISTINCT {key} AS v FROM ev e ORDER BY v").column("v")
        if not len(ids):
            return {}, 0
        buckets, vins = _register_buckets(store, ids.to_pylist(), buckets, vehicles_per_bucket)
        try:
            target = out.as_posix().replace("'", "''")
            store.con.execute(
                f"COPY (SELECT e.*, b.bucket FROM ev e JOIN _export_buckets b ON b.v = {key}) "
                f"TO '{target}' (FORMAT PARQUET, PARTITION_BY (bucket))"
            ).fetchall()
        finally:
            store.con.unregister("_export_buckets")
    return vins, buckets


def put_fuse_outputs(db: str | Path, parts: dict[str, list[Path]]) -> None:
    """Replaces ``gnss_track``, ``gnss_parked`` and ``gnss_events`` with the
    workers' Parquet files, in one transaction. Each bucket numbered its
    track rows from 0; here a vehicle's rows are renumbered to where the
    local engine puts them (every vehicle's fixes in vehicle-id order), and
    its events' evidence rows with them."""
    with Store(db) as store:
        store.con.begin()
        try:
            for name in ("gnss_track", "gnss_parked", "gnss_events"):
                store.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
            track = [p.as_posix() for p in parts.get("gnss_track", [])]
            if track:
                store.con.execute(
                    "CREATE TEMP TABLE _fuse_shift AS SELECT vehicle_id, local0, "
                    "sum(n) OVER (ORDER BY vehicle_id) - n AS global0 FROM ("
                    'SELECT vehicle_id, min("row") AS local0, count(*) AS n '
                    "FROM read_parquet(?) GROUP BY vehicle_id)",
                    [track],
                ).fetchall()
                store.con.execute(
                    'CREATE TABLE gnss_track AS SELECT t.* REPLACE (t."row" - s.local0 + s.global0 '
                    'AS "row") FROM read_parquet(?) t JOIN _fuse_shift s USING (vehicle_id) '
                    'ORDER BY "row"',
                    [track],
                ).fetchall()
                store.con.execute(
                    "CREATE TABLE gnss_parked AS SELECT * FROM read_parquet(?) "
                    "ORDER BY vehicle_id, start",
                    [[p.as_posix() for p in parts["gnss_parked"]]],
                ).fetchall()
                store.con.execute(
                    "CREATE TABLE gnss_events AS SELECT e.* REPLACE ("
                    "e.evidence_first_row - s.local0 + s.global0 AS evidence_first_row, "
                    "e.evidence_last_row - s.local0 + s.global0 AS evidence_last_row) "
                    "FROM read_parquet(?) e LEFT JOIN _fuse_shift s USING (vehicle_id) "
                    "ORDER BY vehicle_id, time, kind",
                    [[p.as_posix() for p in parts["gnss_events"]]],
                ).fetchall()
                store.con.execute("DROP TABLE _fuse_shift").fetchall()
            store.con.commit()
        except BaseException:
            store.con.rollback()
            raise
