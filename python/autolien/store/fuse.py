"""The fuse stage's reads and writes of the store: the RTK fixes of each
batch of vehicles, and the tracks, parked episodes and events written
back (replaced whole on every run), for ``gnss.cli.fuse_store``."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

import pyarrow as pa

from ..telemetry.store import Store

__all__ = ["FUSE_OUTPUT_TABLES", "FuseStore"]

# Tables written back into the store (replaced on every run).
FUSE_OUTPUT_TABLES = ("gnss_track", "gnss_parked", "gnss_events")
# a fix without a vehicle id (an NMEA or UBX log) is its own vehicle, by its file
_KEY = "coalesce(vehicle_id, 'file:' || source_file)"


class FuseStore:
    """An open store for one fuse run: ``vehicles`` and ``undated`` to plan,
    ``batches`` to read, ``reset`` then ``append`` to write."""

    def __init__(self, db: str) -> None:
        self.db = db
        self._store = Store(db)
        if "fixes" not in self._store.tables():
            self._store.close()
            raise ValueError(
                f"{db} has no fixes table; run `autolien ingest` on NMEA/UBX captures first"
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._store.close()

    def vehicles(self) -> list[str]:
        """Every vehicle with a dated fix, in order."""
        got = self._store.query(
            f"SELECT DISTINCT {_KEY} AS v FROM fixes WHERE time IS NOT NULL ORDER BY v"
        )
        return [str(v) for v in got.column("v").to_pylist()]

    def undated(self) -> int:
        """Fixes without a time (NMEA before any date): no track can place them."""
        return int(
            self._store.query("SELECT count(*) AS n FROM fixes WHERE time IS NULL")
            .column("n")[0]
            .as_py()
        )

    def batches(
        self, ids: list[str], batch: int, columns: tuple[str, ...]
    ) -> Iterator[tuple[int, pa.Table]]:
        """(vehicles in the batch, their dated fixes ordered by vehicle and
        time) for ``batch`` vehicles at a time; only ``columns`` (those the
        store has) beside ``vehicle_id``."""
        have = self._store.query("SELECT * FROM fixes LIMIT 0").column_names
        cols = ", ".join(f'"{c}"' for c in columns if c in have)
        con = self._store.con
        for start in range(0, len(ids), batch):
            chunk = pa.table({"v": ids[start : start + batch]})
            con.register("_autolien_batch", chunk)
            try:
                fixes = self._store.query(
                    f"""SELECT {_KEY} AS vehicle_id, {cols} FROM fixes
                    WHERE time IS NOT NULL AND {_KEY} IN (SELECT v FROM _autolien_batch)
                    ORDER BY vehicle_id, time, source, "offset" """
                )
            finally:
                con.unregister("_autolien_batch")
            yield chunk.num_rows, fixes
            # the caller has dropped the batch's tables before the next
            # query: else two batches' fixes and tracks are held at once
            del fixes

    def reset(self) -> None:
        """Drops the previous run's outputs."""
        for name in FUSE_OUTPUT_TABLES:
            self._store.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()

    def append(self, tables: dict[str, pa.Table], *, first: bool) -> None:
        """Writes one batch's outputs (``first``: creates the tables)."""
        for name in FUSE_OUTPUT_TABLES:
            verb = "CREATE TABLE" if first else "INSERT INTO"
            sql = f"{verb} {name} {'AS ' if first else ''}SELECT * FROM _autolien_out"
            # a relation, not a registered view (held until a commit)
            self._store.con.from_arrow(tables[name]).query("_autolien_out", sql)

    def vehicle(self, vehicle: str) -> dict[str, pa.Table]:
        """One vehicle's stored track (by row), parked episodes and events."""
        params: list[Any] = [vehicle]
        q = self._store.query
        return {
            "gnss_track": q('SELECT * FROM gnss_track WHERE vehicle_id = ? ORDER BY "row"', params),
            "gnss_parked": q("SELECT * FROM gnss_parked WHERE vehicle_id = ?", params),
            "gnss_events": q("SELECT * FROM gnss_events WHERE vehicle_id = ?", params),
        }
