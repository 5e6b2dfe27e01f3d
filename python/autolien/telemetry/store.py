"""The embedded telemetry store: one DuckDB database file.

Tables (created on first use, columns from the decoder schemas plus
``source_file``):

* ``locations``: JT/T 808 location rows;
* ``ev``: GB/T 32960 EV rows;
* ``fixes``: GNSS fixes (NMEA/UBX);
* ``obd``: OBD-II values;
* ``rejects``: every reject, with ``source_file`` and ``decoder``.

``append`` is idempotent. A row whose key is already stored is skipped:
for rows with a time, (terminal, time, reading) in ``locations``, where the
reading is the location's content (position, altitude, speed, heading,
alarm and status words, mileage): two distinct JT/T 808 frames in one second
differ in it and are both kept, while the same reading sent again, whether
as the same bytes, under a new serial after a reconnect, or later in a 0x0704
blind-area batch, is one row, (VIN, time) in ``ev``, (vehicle, time, source) in ``fixes`` (a log
without a vehicle id is its own vehicle, keyed by its file); rows without a
time by (source file, offset). Loading the same file twice therefore adds
nothing.

Two bookkeeping tables:

* ``ingested_files``: one row per file content ingested (SHA-256 digest,
  bytes, format, the name it was first stored under, rows decoded), written
  in the same transaction as the file's rows, so a file is recognised by its
  content whatever path reaches it;
* ``store_meta``: key/value facts about the store, such as the identity of
  the portfolio it belongs to.

Two layouts of the bulk tables (``locations``, ``ev``, ``fixes``), chosen
when a store gets its first telemetry row and recorded in ``store_meta``
(``telemetry_layout``); ``obd``, ``rejects`` and the bookkeeping tables are
DuckDB tables in both:

* ``duckdb``: DuckDB tables in the database file;
* ``parquet``: Parquet files beside the database,
  ``<db_dir>/<db_stem>.parts/<table>/date=YYYY-MM-DD/bucket=K/part-<digest>.parquet``
  (``date``: the row's UTC day, ``none`` for a row without a time; ``K``:
  ``vehicle_bucket`` of the row's vehicle, of its file for a row without a
  time), each table a VIEW over ``read_parquet`` of its glob that keeps the
  files a committed row of the ``parts`` manifest names. A part is written
  whole (to a temporary name, fsynced, renamed) before its manifest row goes
  in, in the caller's transaction: a process killed in between leaves a
  file no view shows, which the next writable open deletes. An append
  de-duplicates against the parts of the (date, bucket) partitions it
  touches whose time and key ranges (kept in ``parts``) overlap its own,
  never the whole history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._common import REJECT_SCHEMA
from .gb32960 import EV_SCHEMA
from .jt808 import LOCATION_SCHEMA
from .nmea import FIX_SCHEMA
from .obd import OBD_SCHEMA

__all__ = ["LAYOUTS", "MEMORY_LIMIT_ENV", "Store", "bounded_memory_limit", "vehicle_bucket"]

# the DuckDB memory limit of every Store that is not given one
MEMORY_LIMIT_ENV = "AUTOLIEN_DUCKDB_MEMORY_LIMIT"


def bounded_memory_limit(default: str) -> str | None:
    """A stage's own DuckDB memory limit, ``default``, unless
    ``$AUTOLIEN_DUCKDB_MEMORY_LIMIT`` is set (None then: the store reads
    it). For stages whose DuckDB memory is a cache of what they scanned or
    wrote once, which DuckDB's default (80% of RAM) lets grow with the book."""
    return None if os.environ.get(MEMORY_LIMIT_ENV) else default


# table -> (schema, vehicle expression, what else tells two readings of one
# vehicle at one time apart); {t} stands for the table alias
KINDS: dict[str, tuple[pa.Schema, str | None, str]] = {
    # The serial alone would store a retransmission twice: terminals resend
    # an unacknowledged reading under a new serial (and in 0x0704 batches).
    "locations": (
        LOCATION_SCHEMA,
        "{t}terminal_id",
        (
            "hash({t}lat, {t}lon, {t}altitude_m, {t}speed_kmh, {t}heading_deg, {t}alarm,"
            " {t}status, {t}mileage_km)"
        ),
    ),
    "ev": (EV_SCHEMA, "{t}vin", "'gb32960'"),
    "fixes": (FIX_SCHEMA, "coalesce({t}vehicle_id, 'file:' || {t}source_file)", "{t}source"),
    "obd": (OBD_SCHEMA, "{t}vehicle_id", "'obd'"),
    "rejects": (REJECT_SCHEMA.append(pa.field("decoder", pa.string())), None, "{t}decoder"),
}
MANIFEST = "ingested_files"
META = "store_meta"
PARTS = "parts"
LAYOUTS = ("duckdb", "parquet")
# the layout a new store gets (an existing one keeps its own)
DEFAULT_LAYOUT = "duckdb"
# the tables the parquet layout keeps as Parquet: the bulk of the rows
PARQUET_KINDS = ("locations", "ev", "fixes")
# vehicle buckets per day partition of a new parquet store (recorded in store_meta)
DEFAULT_BUCKETS = 16
# Part files this process wrote whose manifest rows may still be in an open
# transaction: a garbage collection in the same process must leave them.
_PENDING: set[str] = set()


def vehicle_bucket(vehicle_id: str, buckets: int) -> int:
    """The bucket (0 .. buckets-1) a vehicle's rows and state live in: a
    digest of its id, the same in every process and Python version (the
    built-in ``hash`` of a string is salted per process)."""
    digest = hashlib.blake2b(vehicle_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def _buckets_of(keys: pa.Array, buckets: int) -> pa.Array:
    """``vehicle_bucket`` of each key, hashing each distinct key once."""
    uniq = pc.unique(keys)
    of = pa.array([vehicle_bucket(k, buckets) for k in uniq.to_pylist()], pa.int32())
    return pc.take(of, pc.index_in(keys, value_set=uniq))


def _stored_schema(kind: str) -> pa.Schema:
    """The columns a Parquet part holds: the decoder's schema and
    ``source_file``, every column nullable (a DuckDB table keeps no NOT NULL
    from Arrow either)."""
    schema = KINDS[kind][0].append(pa.field("source_file", pa.string()))
    return pa.schema([f.with_nullable(True) for f in schema])


_PARTS_SCHEMA = pa.schema(
    [
        ("tbl", pa.string()),
        ("path", pa.string()),
        ("date", pa.string()),
        ("bucket", pa.int32()),
        ("rows", pa.int64()),
        ("tmin", pa.timestamp("us", tz="UTC")),
        ("tmax", pa.timestamp("us", tz="UTC")),
        ("kmin", pa.string()),
        ("kmax", pa.string()),
    ]
)
_NO_DAY_CODE = 0  # partition code of date=none, bucket 0: (day + 1) * buckets + bucket
_EPOCH = dt.date(1970, 1, 1)


def _partition(code: int, buckets: int) -> tuple[str, int]:
    """(date directory value, bucket) of a partition code, (day + 1) * buckets + bucket."""
    day, bucket = divmod(code, buckets)
    return ("none" if day == 0 else (_EPOCH + dt.timedelta(days=day - 1)).isoformat()), bucket


def _write_part(job: tuple[pa.Table, Path]) -> Path:
    """Writes a part into directory ``job[1]``, named by the digest of its
    bytes (a run and its rerun write the same names, so two stores of the
    same rows are equal, manifest included), whole under a temporary name the
    views' glob skips, fsynced, then renamed: a part a commit names is complete."""
    part, directory = job
    sink = pa.BufferOutputStream()
    pq.write_table(part, sink, row_group_size=1 << 17)
    data = sink.getvalue()
    name = hashlib.blake2b(memoryview(data), digest_size=16).hexdigest()
    final = directory / f"part-{name}.parquet"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(memoryview(data))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    return final


def _kept(con: duckdb.DuckDBPyConnection, seq: pa.Table, sql: str, params: list[Any]) -> np.ndarray:
    """The batch positions (``_autolien_seq``, ascending) that ``sql`` keeps,
    with the batch registered as ``_autolien_new`` on ``con`` while it runs."""
    con.register("_autolien_new", seq)
    try:
        got = con.execute(sql, params).fetchnumpy()["s"]
    finally:
        con.unregister("_autolien_new")
    return np.sort(np.asarray(got, dtype=np.int64))


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _kind_of(table: pa.Table) -> str:
    names = set(table.schema.names) - {"source_file"}
    for kind, (schema, _, _) in KINDS.items():
        if names == set(schema.names):
            return kind
    msg = f"cannot tell which store table holds columns {sorted(names)}; pass kind="
    raise ValueError(msg)


class Store:
    """An embedded DuckDB database of decoded telemetry (``autolien.duckdb`` by default).

    ``layout`` ("duckdb" or "parquet", see the module's docstring) applies to
    a store without telemetry yet; None: ``DEFAULT_LAYOUT``. A store that
    has telemetry keeps the layout it has, and asking for the other one is a
    ValueError. ``memory_limit`` (else ``$AUTOLIEN_DUCKDB_MEMORY_LIMIT``, else
    DuckDB's default of 80% of RAM) bounds DuckDB's memory: its cache, and
    its in-memory tables, which it then spills to disk."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "autolien.duckdb",
        *,
        read_only: bool = False,
        layout: str | None = None,
        memory_limit: str | None = None,
    ) -> None:
        if layout is not None and layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.path = str(path)
        self.read_only = read_only
        # DuckDB's own default is 80% of RAM, for its cache and its
        # in-memory tables: a process that also holds Arrow data can bound it
        limit = memory_limit or os.environ.get(MEMORY_LIMIT_ENV) or None
        try:
            self.con = duckdb.connect(
                self.path,
                read_only=read_only,
                config={"memory_limit": limit} if limit else {},
            )
        except duckdb.Error as e:
            msg = str(e).lower()
            if limit and ("memory must have" in msg or "unit for memory" in msg):
                raise ValueError(
                    f"memory_limit {limit!r} (from the argument or ${MEMORY_LIMIT_ENV}) "
                    f"is not a DuckDB memory size such as '4GB' or '25%': {e}"
                ) from e
            raise
        # the part files the last append's de-duplication read: the history it touched
        self.parts_read: list[str] = []
        self._written: list[str] = []
        self._side_con: duckdb.DuckDBPyConnection | None = None
        in_memory = self.path in ("", ":memory:") or self.path.startswith(":memory:")
        db = Path(self.path).resolve()
        self.parts_root: Path | None = None if in_memory else db.with_name(db.stem + ".parts")
        self._stat_cache: Path | None = (
            None if in_memory else db.with_name(db.name + ".files.parquet")
        )
        try:
            self.layout = self._choose_layout(layout)
            if self.layout == "parquet":
                if self.parts_root is None:
                    raise ValueError("the parquet layout needs a database file, not :memory:")
                self._bind_views()
                self.collect_garbage()
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        if self._side_con is not None:
            self._side_con.close()
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # An ingest commits every million rows or so (telemetry.ingest): the
    # transaction is its to open, commit and roll back.
    def begin(self) -> None:
        self.con.begin()

    def commit(self) -> None:
        self.con.commit()

    def rollback(self) -> None:
        self.con.rollback()

    def _run(self, sql: str) -> list[Any]:
        # DuckDB results hold the connection until fetched: always consume them.
        return self.con.execute(sql).fetchall()

    # -- layout -------------------------------------------------------------
    def _choose_layout(self, requested: str | None) -> str:
        stored = self.meta("telemetry_layout")
        if stored is None:
            native = self._run(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_type = 'BASE TABLE' AND table_schema = 'main'"
            )
            # a store from before the layouts were recorded: DuckDB tables
            if any(r[0] in PARQUET_KINDS for r in native):
                stored = "duckdb"
        if stored is not None and requested is not None and requested != stored:
            raise ValueError(
                f"{self.path} keeps its telemetry in the {stored} layout, not {requested}"
            )
        return stored or requested or DEFAULT_LAYOUT

    def _root(self) -> Path:
        if self.parts_root is None:  # pragma: no cover - refused in __init__
            raise ValueError("the parquet layout needs a database file")
        return self.parts_root

    def _view_sql(self, kind: str) -> str:
        # Only files a committed manifest row names: a part written by a
        # process killed before its commit is on disk but in no view.
        root = self._root().as_posix()
        glob = _sql_str(f"{root}/{kind}/*/*/*.parquet")
        return (
            f"SELECT * EXCLUDE (filename) FROM read_parquet({glob}, filename = true, "
            f"hive_partitioning = false) WHERE filename IN (SELECT {_sql_str(root + '/')} || "
            f"path FROM {PARTS} WHERE tbl = {_sql_str(kind)})"
        )

    def _bind_views(self) -> None:
        """Points the views at this store's parts directory when the store
        has moved since they were made (temporary views when read-only)."""
        # the root is in the views' SQL only, not in store_meta: two stores
        # of the same rows in two places hold equal tables
        root = self._root().as_posix()
        stale = [
            r[0]
            for r in self._run(
                "SELECT view_name, sql FROM duckdb_views() "
                "WHERE NOT internal AND NOT temporary AND schema_name = 'main'"
            )
            if r[0] in PARQUET_KINDS and _sql_str(f"{root}/{r[0]}/*/*/*.parquet") not in r[1]
        ]
        temp = "TEMP " if self.read_only else ""
        for kind in stale:
            self._run(f"CREATE OR REPLACE {temp}VIEW {kind} AS {self._view_sql(kind)}")

    def _buckets(self) -> int:
        return int(self.meta("parts_buckets") or DEFAULT_BUCKETS)

    def collect_garbage(self) -> list[Path]:
        """Deletes the part files (and half-written temporaries) that no
        committed ``parts`` row names: what a process killed between writing
        a part and committing it left. Returns them. Read-only: nothing."""
        root = self.parts_root
        if self.read_only or root is None or not root.is_dir():
            return []
        known = (
            {r[0] for r in self._run(f"SELECT path FROM {PARTS}")}
            if PARTS in self.tables()
            else set()
        )
        gone = []
        for f in sorted(root.rglob("*")):
            if f.suffix not in (".parquet", ".tmp") or not f.is_file():
                continue
            if f.relative_to(root).as_posix() in known or str(f) in _PENDING:
                continue
            f.unlink(missing_ok=True)
            gone.append(f)
        return gone

    def discard_uncommitted(self) -> None:
        """After a rollback: deletes the parts this store wrote that no
        committed manifest row names (else the next writable open does)."""
        mine, self._written = self._written, []
        _PENDING.difference_update(mine)
        if mine:
            self.collect_garbage()

    def _ensure(self, kind: str, table: pa.Table) -> None:
        if self.layout == "parquet" and kind in PARQUET_KINDS:
            self._ensure_view(kind)
            return
        self.con.register("_autolien_schema", table.slice(0, 0))
        try:
            self._run(f"CREATE TABLE IF NOT EXISTS {kind} AS SELECT * FROM _autolien_schema")
        finally:
            self.con.unregister("_autolien_schema")

    def _ensure_view(self, kind: str) -> None:
        self._run(
            f"CREATE TABLE IF NOT EXISTS {PARTS} (tbl VARCHAR NOT NULL, path VARCHAR PRIMARY KEY,"
            " date VARCHAR NOT NULL, bucket INTEGER NOT NULL, rows BIGINT NOT NULL,"
            " tmin TIMESTAMPTZ, tmax TIMESTAMPTZ, kmin VARCHAR, kmax VARCHAR)"
        )
        if self.meta("telemetry_layout") is None:
            self.set_meta("telemetry_layout", "parquet")
            self.set_meta("parts_buckets", str(self._buckets()))
        if kind in self.tables():
            return
        # an empty part carries the schema: the view's glob then always matches
        empty = _stored_schema(kind).empty_table()
        self._write_parts(kind, [(_NO_DAY_CODE, empty, pa.array([], pa.string()))])
        self._run(f"CREATE VIEW {kind} AS {self._view_sql(kind)}")

    def _write_parts(self, kind: str, runs: list[tuple[int, pa.Table, Any]]) -> None:
        """Writes each (partition code, rows, their keys) as one part and
        notes them in the manifest (in the caller's transaction)."""
        root = self._root()
        nb = self._buckets()
        jobs = []
        manifest: dict[str, list[Any]] = {c: [] for c in _PARTS_SCHEMA.names}
        for code, part, key in runs:
            date, bucket = _partition(code, nb)
            jobs.append((part, root / kind / f"date={date}" / f"bucket={bucket}"))
            t = pc.min_max(part.column("time"))
            k = pc.min_max(key) if part.num_rows else None
            for col, v in (
                ("tbl", kind),
                ("path", ""),  # named by its bytes once written
                ("date", date),
                ("bucket", bucket),
                ("rows", part.num_rows),
                ("tmin", t["min"].as_py()),
                ("tmax", t["max"].as_py()),
                ("kmin", k["min"].as_py() if k is not None else None),
                ("kmax", k["max"].as_py() if k is not None else None),
            ):
                manifest[col].append(v)
        # Parquet encoding and fsync release the GIL: a batch's partitions in parallel
        with ThreadPoolExecutor(max_workers=min(4, len(jobs))) as pool:
            for i, final in enumerate(pool.map(_write_part, jobs)):
                _PENDING.add(str(final))
                self._written.append(str(final))
                manifest["path"][i] = final.relative_to(root).as_posix()
        # parameters, not a registered Arrow table: a registration inside the
        # caller's transaction is held by DuckDB until its commit
        self.con.executemany(
            f"INSERT INTO {PARTS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [list(r) for r in zip(*manifest.values(), strict=True)],
        )

    def append(self, table: pa.Table, *, kind: str | None = None, source_file: str = "") -> int:
        """Stores decoded rows; returns how many were new."""
        kind = kind or _kind_of(table)
        if kind not in KINDS:
            msg = f"kind must be one of {sorted(KINDS)}, got {kind!r}"
            raise ValueError(msg)
        if "source_file" not in table.schema.names:
            table = table.append_column(
                "source_file", pa.repeat(pa.scalar(source_file, pa.string()), table.num_rows)
            )
        parquet = self.layout == "parquet" and kind in PARQUET_KINDS
        if parquet:
            table = table.select(_stored_schema(kind).names).cast(_stored_schema(kind))
        self._ensure(kind, table)
        self.parts_read = []
        if table.num_rows == 0:
            return 0
        _, vehicle, source = KINDS[kind]
        has_time = "time" in table.schema.names
        params: list[Any] = []
        hist = kind
        if parquet:
            code, key_of, touched, span_, keys_ = self._place(kind, table)
            files = self._overlapping(kind, touched, span_, keys_)
            self.parts_read = files
            # no part to compare with: an empty relation of the batch's columns
            hist = (
                "read_parquet([" + ", ".join(_sql_str(f) for f in files) + "])"
                if files
                else "(SELECT * FROM _autolien_new WHERE false)"
            )
        # The history each anti-join reads is cut to where a duplicate can be:
        # a timed row's duplicate has its time, an untimed row's its file.
        # DuckDB prunes row groups on the time range (zonemaps), so an append
        # reads the rows of the batch's own span, not every row stored.
        files_sql = "(SELECT DISTINCT source_file FROM _autolien_new)"
        if has_time and vehicle is not None:
            veh = vehicle.format(t="")
            src = source.format(t="")
            part = (
                f"coalesce({veh}, ''), time, {src}, CASE WHEN time IS NULL THEN source_file END,"
                ' CASE WHEN time IS NULL THEN "offset" END'
            )
            # Rows with a time are keyed by (vehicle, time, what tells two
            # readings apart); rows without one by (file, offset).
            # Two equality anti-joins, not one OR-ed condition: an OR keeps
            # DuckDB from hashing and made each append scan the whole table.
            timed = (
                f"t.time = n.time AND coalesce({vehicle.format(t='t.')}, '') = "
                f"coalesce({vehicle.format(t='n.')}, '')"
                f" AND {source.format(t='t.')} = {source.format(t='n.')}"
            )
            untimed = "t.time IS NULL AND t.source_file = n.source_file AND t.offset = n.offset"
            times = table.column("time")
            span = pc.min_max(times)
            conds = []
            if span["min"].is_valid:
                # parameters, not a subquery: constants are what the scan prunes on
                params += [span["min"].as_py(), span["max"].as_py()]
                conds.append(
                    f"(n.time IS NOT NULL AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM {hist}"
                    f" WHERE time BETWEEN ? AND ?) t WHERE {timed}))"
                )
            if times.null_count:
                conds.append(
                    f"(n.time IS NULL AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM {hist}"
                    f" WHERE time IS NULL AND source_file IN {files_sql}) t WHERE {untimed}))"
                )
            where = " OR ".join(conds)
        else:
            if kind == "obd":
                part = 'source_file, "offset", pid'
                key = "t.source_file = n.source_file AND t.offset = n.offset AND t.pid = n.pid"
            else:
                part = 'source_file, "offset", reason'
                key = (
                    "t.source_file = n.source_file AND t.offset = n.offset AND t.reason = n.reason"
                )
            where = (
                f"NOT EXISTS (SELECT 1 FROM (SELECT * FROM {kind} WHERE source_file IN "
                f"{files_sql}) t WHERE {key})"
            )
        # input order breaks ties among duplicates: the first file appended wins
        seq = table.append_column("_autolien_seq", pa.array(np.arange(table.num_rows)))
        # Duplicates inside the batch collapse too: the first one is kept.
        # Whether a row is in the history depends on its key alone, so the
        # rows of one key all pass the anti-join or none do: the first of
        # each key among those that pass is the first of its key. Grouped
        # after the anti-join, not a window before it: 0.73 s against 1.74 s
        # for a 1.37 M-row JT/T 808 batch.
        keep_sql = (
            f"SELECT min(n._autolien_seq) AS s FROM _autolien_new n WHERE {where} GROUP BY {part}"
        )
        if parquet:
            # The comparison reads only the batch and Parquet files, so it runs
            # on a second connection outside the caller's transaction: a batch
            # registered inside a transaction stays referenced by DuckDB's
            # catalog until the commit, which held every batch of a day file.
            keep = _kept(self._side(), seq, keep_sql, params)
            # the new rows are taken from the batch itself, so the part
            # holds the decoder's values and types, not a round trip's
            if len(keep):
                self._store_new(kind, table, keep, code, key_of)
            return len(keep)
        keep = _kept(self.con, seq, keep_sql, params)
        if not len(keep):
            return 0
        # the new rows in batch order (file order: time-ordered row groups)
        new = table if len(keep) == table.num_rows else table.take(pa.array(keep))
        # through a relation, not a registered view: DuckDB holds a table
        # registered inside a transaction until the commit
        self.con.from_arrow(new).query(
            "_autolien_new_rows", f"INSERT INTO {kind} SELECT * FROM _autolien_new_rows"
        )
        return len(keep)

    def _side(self) -> duckdb.DuckDBPyConnection:
        if self._side_con is None:
            self._side_con = self.con.cursor()
        return self._side_con

    def _place(self, kind: str, table: pa.Table) -> tuple[np.ndarray, pa.Table, Any, Any, Any]:
        """Each row's partition code and the key its bucket comes from (its
        vehicle as ``KINDS`` reads it; its file when it has no time), the
        partitions the batch touches, its time range and its key range."""
        time = table.column("time")
        src = table.column("source_file")
        if kind == "fixes":
            veh = pc.coalesce(
                table.column("vehicle_id"), pc.binary_join_element_wise("file:", src, "")
            )
        else:
            veh = table.column("terminal_id" if kind == "locations" else "vin")
        key = pc.if_else(pc.is_null(time), src, pc.fill_null(veh, ""))
        nb = self._buckets()
        bucket = _buckets_of(key, nb).to_numpy()
        # days since 1970 of the UTC date (timestamps are UTC); -1: no time
        day = pc.fill_null(pc.cast(pc.cast(time, pa.date32()), pa.int32()), -1).to_numpy()
        code = (day.astype(np.int64) + 1) * nb + bucket
        parts = [_partition(int(c), nb) for c in np.unique(code)]
        touched = pa.table(
            {
                "date": pa.array([d for d, _ in parts], pa.string()),
                "bucket": pa.array([b for _, b in parts], pa.int32()),
            }
        )
        span = pc.min_max(time)
        keys = pc.min_max(key)
        return (
            code,
            key,
            touched,
            (span["min"].as_py(), span["max"].as_py()),
            (keys["min"].as_py(), keys["max"].as_py()),
        )

    def _overlapping(
        self, kind: str, touched: pa.Table, span: tuple[Any, Any], keys: tuple[Any, Any]
    ) -> list[str]:
        """The committed parts a duplicate of the batch can be in: its
        partitions, where the part's time and key ranges meet the batch's."""
        # a VALUES list, not a registered table (held until the commit)
        pairs = ", ".join(
            f"({_sql_str(d)}, {int(b)})"
            for d, b in zip(
                touched.column("date").to_pylist(),
                touched.column("bucket").to_pylist(),
                strict=True,
            )
        )
        rows = self.con.execute(
            f"SELECT p.path FROM {PARTS} p JOIN (VALUES {pairs}) t(date, bucket) "
            "ON p.date = t.date AND p.bucket = t.bucket "
            "WHERE p.tbl = ? AND p.rows > 0 AND p.kmax >= ? AND p.kmin <= ? "
            "AND (p.tmin IS NULL OR ?::TIMESTAMPTZ IS NULL "
            "OR (p.tmax >= ?::TIMESTAMPTZ AND p.tmin <= ?::TIMESTAMPTZ)) ORDER BY p.path",
            [kind, keys[0], keys[1], span[0], span[0], span[1]],
        ).fetchall()
        root = self._root().as_posix()
        return [f"{root}/{r[0]}" for r in rows]

    def _store_new(
        self, kind: str, table: pa.Table, keep: np.ndarray, code: np.ndarray, key: Any
    ) -> None:
        """The batch's new rows (``keep``, in batch order), one part per
        partition; one take of the rows, their order kept inside a part."""
        order = np.argsort(code[keep], kind="stable")
        idx = keep[order]
        codes = code[idx]
        rows = table.take(idx)
        keys = key.take(pa.array(idx))
        cuts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), len(codes)]
        self._write_parts(
            kind,
            [
                (int(codes[a]), rows.slice(a, b - a), keys.slice(a, b - a))
                for a, b in itertools.pairwise(cuts)
            ],
        )

    # -- the stat cache of ingested files ---------------------------------------
    # Ingest recognises a file by the SHA-256 of its content. Hashing every
    # file of a portfolio directory again on each daily run grows with the
    # history (a 100,000-vehicle fortnight is tens of GB), so a file whose
    # real path, size, mtime, ctime, inode and device match a file hashed
    # before is taken to hold the content it held then (as git and rsync
    # do). The cache sits beside the database, outside its tables: losing or
    # damaging it costs a re-hash, never a row, and a digest it gives counts
    # only if the manifest holds it.
    _STAT_COLUMNS = ("path", "size", "mtime_ns", "ctime_ns", "inode", "device", "digest")

    def file_stats(self) -> dict[str, tuple[int, int, int, int, int, str]]:
        """Real path -> (size, mtime_ns, ctime_ns, inode, device, digest) of the
        files ingest hashed before (empty without a cache, or with a damaged one)."""
        p = self._stat_cache
        if p is None or not p.exists():
            return {}
        try:
            t = pq.read_table(p, columns=list(self._STAT_COLUMNS))
        except (OSError, pa.ArrowException):
            return {}
        cols = [t.column(c).to_pylist() for c in self._STAT_COLUMNS]
        return {row[0]: tuple(row[1:]) for row in zip(*cols, strict=True)}

    def save_file_stats(self, stats: dict[str, tuple[int, int, int, int, int, str]]) -> None:
        """Replaces the stat cache (written whole, then renamed into place)."""
        p = self._stat_cache
        if p is None:
            return
        paths = sorted(stats)
        rows = [stats[k] for k in paths]
        types = (pa.int64(), pa.int64(), pa.int64(), pa.uint64(), pa.uint64(), pa.string())
        t = pa.table(
            {
                "path": pa.array(paths, pa.string()),
                **{
                    c: pa.array([r[i] for r in rows], types[i])
                    for i, c in enumerate(self._STAT_COLUMNS[1:])
                },
            }
        )
        tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
        try:
            pq.write_table(t, tmp)
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)

    def ingested(self) -> dict[str, str]:
        """Digest -> the name each ingested file content was first stored under."""
        if MANIFEST not in self.tables():
            return {}
        return dict(self._run(f"SELECT digest, source_file FROM {MANIFEST}"))

    def record_file(self, digest: str, size: int, fmt: str, source_file: str, rows: int) -> None:
        """Notes a file content as ingested (call inside the transaction that stored its rows)."""
        self.record_files([(digest, size, fmt, source_file, rows)])

    def record_files(self, files: list[tuple[str, int, str, str, int]]) -> None:
        """Notes file contents as ingested, (digest, bytes, format, name, rows
        decoded) each, in one statement: one per file cost 40 ms a file, and a
        fleet's RTK logs are thousands of files a day."""
        self._run(
            f"CREATE TABLE IF NOT EXISTS {MANIFEST} (digest VARCHAR PRIMARY KEY, bytes BIGINT, "
            "format VARCHAR, source_file VARCHAR, rows_decoded BIGINT)"
        )
        if not files:
            return
        cols = list(zip(*files, strict=True))
        rows = pa.table(
            {
                "digest": pa.array(cols[0], pa.string()),
                "bytes": pa.array(cols[1], pa.int64()),
                "format": pa.array(cols[2], pa.string()),
                "source_file": pa.array(cols[3], pa.string()),
                "rows_decoded": pa.array(cols[4], pa.int64()),
            }
        )
        self.con.register("_autolien_files", rows)
        try:
            self._run(
                f"INSERT INTO {MANIFEST} SELECT * FROM _autolien_files ON CONFLICT DO NOTHING"
            )
        finally:
            self.con.unregister("_autolien_files")

    def meta(self, key: str) -> str | None:
        """A fact about the store (``store_meta``), or None."""
        if META not in self.tables():
            return None
        rows = self.con.execute(f"SELECT value FROM {META} WHERE key = ?", [key]).fetchall()
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._run(f"CREATE TABLE IF NOT EXISTS {META} (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(f"INSERT OR REPLACE INTO {META} VALUES (?, ?)", [key, value]).fetchall()

    def tables(self) -> list[str]:
        # a read-only store's temporary views shadow the stored ones of the same name
        return [
            r[0] for r in self._run("SELECT DISTINCT table_name FROM information_schema.tables")
        ]

    def query(self, sql: str, params: Any = None) -> pa.Table:
        """Runs SQL and returns an Arrow table (timestamps normalised to UTC)."""
        rel = self.con.sql(sql, params=params) if params is not None else self.con.sql(sql)
        table = rel.to_arrow_table()
        fields = [
            pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable)
            if pa.types.is_timestamp(f.type) and f.type.tz
            else f
            for f in table.schema
        ]
        return table.cast(pa.schema(fields))

    def export_parquet(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Writes each table to ``directory/<table>/date=YYYY-MM-DD/*.parquet``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for kind in KINDS:
            if kind not in self.tables():
                continue
            target = out / kind
            date = "CAST(time AS DATE)" if kind in ("locations", "ev", "fixes") else "NULL::DATE"
            self._run(
                f"COPY (SELECT *, {date} AS date FROM {kind}) TO '{target}' "
                "(FORMAT PARQUET, PARTITION_BY (date), OVERWRITE_OR_IGNORE TRUE)"
            )
            written.append(target)
        return written
