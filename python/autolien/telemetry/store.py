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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._common import REJECT_SCHEMA
from .gb32960 import EV_SCHEMA
from .jt808 import LOCATION_SCHEMA
from .nmea import FIX_SCHEMA
from .obd import OBD_SCHEMA

__all__ = ["Store"]

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


def _kind_of(table: pa.Table) -> str:
    names = set(table.schema.names) - {"source_file"}
    for kind, (schema, _, _) in KINDS.items():
        if names == set(schema.names):
            return kind
    msg = f"cannot tell which store table holds columns {sorted(names)}; pass kind="
    raise ValueError(msg)


class Store:
    """An embedded DuckDB database of decoded telemetry (``autolien.duckdb`` by default)."""

    def __init__(
        self, path: str | os.PathLike[str] = "autolien.duckdb", *, read_only: bool = False
    ) -> None:
        self.path = str(path)
        self.con = duckdb.connect(self.path, read_only=read_only)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str) -> list[Any]:
        # DuckDB results hold the connection until fetched: always consume them.
        return self.con.execute(sql).fetchall()

    def _ensure(self, kind: str, table: pa.Table) -> None:
        self.con.register("_autolien_schema", table.slice(0, 0))
        try:
            self._run(f"CREATE TABLE IF NOT EXISTS {kind} AS SELECT * FROM _autolien_schema")
        finally:
            self.con.unregister("_autolien_schema")

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
        if table.num_rows == 0:
            self._ensure(kind, table)
            return 0
        self._ensure(kind, table)
        _, vehicle, source = KINDS[kind]
        has_time = "time" in table.schema.names
        params: list[Any] = []
        # The history each anti-join reads is cut to where a duplicate can be:
        # a timed row's duplicate has its time, an untimed row's its file.
        # DuckDB prunes row groups on the time range (zonemaps), so an append
        # reads the rows of the batch's own span, not every row stored.
        files = "(SELECT DISTINCT source_file FROM _autolien_new)"
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
                    f"(n.time IS NOT NULL AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM {kind}"
                    f" WHERE time BETWEEN ? AND ?) t WHERE {timed}))"
                )
            if times.null_count:
                conds.append(
                    f"(n.time IS NULL AND NOT EXISTS (SELECT 1 FROM (SELECT * FROM {kind}"
                    f" WHERE time IS NULL AND source_file IN {files}) t WHERE {untimed}))"
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
                f"NOT EXISTS (SELECT 1 FROM (SELECT * FROM {kind} WHERE source_file IN {files}) t"
                f" WHERE {key})"
            )
        # input order breaks ties among duplicates: the first file appended wins
        table = table.append_column("_autolien_seq", pa.array(np.arange(table.num_rows)))
        self.con.register("_autolien_new", table)
        try:
            # Duplicates inside the batch collapse too: the first one is kept.
            rows = self.con.execute(
                f"""INSERT INTO {kind}
                SELECT * EXCLUDE (_autolien_seq) FROM (
                    SELECT * FROM _autolien_new
                    QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY _autolien_seq) = 1
                ) n
                WHERE {where}""",
                params,
            ).fetchall()
            # DuckDB answers an INSERT with the number of rows it inserted
            return int(rows[0][0]) if rows else 0
        finally:
            self.con.unregister("_autolien_new")

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
        return [r[0] for r in self._run("SELECT table_name FROM information_schema.tables")]

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
