"""``autolien monitor``: score the vehicles of an ingest store, batch by batch."""

from __future__ import annotations

import pickle
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from .config import MonitorConfig
from .stream import Monitor

# Tables written back into the store (replaced on every run).
OUTPUT_TABLES = ("alerts", "monitor_features", "monitor_rejects")

# Where positions and odometer readings come from, best first.
# Tracks: the fused track (else raw fixes) where a vehicle has one, the
# terminal's own positions for every other vehicle.
# The ignition is the JT/T 808 ACC bit (status bit 0); RTK logs carry none.
_FUSED = (
    "SELECT vehicle_id, time, lat, lon, sqrt(ve_mps * ve_mps + vn_mps * vn_mps) * 3.6 AS speed_kmh, "
    "NULL::BOOLEAN AS ignition, used FROM gnss_track WHERE vehicle_id IS NOT NULL"
)
_FIXES = (
    "SELECT vehicle_id, time, lat, lon, speed_kmh, NULL::BOOLEAN AS ignition, true AS used "
    "FROM fixes WHERE vehicle_id IS NOT NULL"
)
_LOCATIONS = (
    "SELECT terminal_id AS vehicle_id, time, lat, lon, speed_kmh, (status & 1) = 1 AS ignition "
    "FROM locations"
)
_ODOMETERS = (
    (
        "locations",
        (
            "SELECT terminal_id AS vehicle_id, time, mileage_km AS odometer_km FROM locations "
            "WHERE mileage_km IS NOT NULL"
        ),
    ),
    ("ev", "SELECT vin AS vehicle_id, time, odometer_km FROM ev WHERE odometer_km IS NOT NULL"),
)


def _load_state(path: Path | None, config: MonitorConfig | None) -> Monitor:
    if path is None or not path.exists():
        return Monitor(config)
    with open(path, "rb") as f:
        m = pickle.load(f)  # our own state file, written by _save_state
    if not isinstance(m, Monitor):
        raise TypeError(f"{path} does not hold monitor state")
    return m


def _save_state(path: Path, m: Monitor) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(m, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def monitor_store(
    db: str,
    *,
    batch: int = 200,
    progress: bool = False,
    config: MonitorConfig | None = None,
    state: str | Path | None = None,
) -> dict[str, Any]:
    """Scores every vehicle of the store and writes ``alerts``,
    ``monitor_features`` and ``monitor_rejects``; returns a summary.

    Tracks come from ``gnss_track`` (after ``autolien fuse``), else ``fixes``,
    else the JT/T 808 ``locations``; odometer readings from ``locations``
    (mileage) and ``ev`` (GB/T 32960). Vehicles go ``batch`` at a time against
    one fleet clock (the newest row of the store), which gives the same
    alerts as one run over all of them.

    With ``state`` (a file), the run resumes: only rows newer than the last
    run's clock are read, every vehicle carries its monitor state (buffers,
    baselines, CUSUM, open alerts) forward, and the result equals one run over
    everything. Rows that arrived since but are older than that clock are
    counted as late (``late_rows``), not scored."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    from ..telemetry import Store  # noqa: PLC0415

    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.perf_counter()
    with Store(db) as store:
        have = set(store.tables())
        odo_sqls = [q for t, q in _ODOMETERS if t in have]
        loc_sql = _LOCATIONS if "locations" in have else None
        if "loan_book" in have:  # terminal numbers and VINs become the book's vehicle ids
            loc_sql = loc_sql and _mapped(loc_sql)
            odo_sqls = [_mapped(q) for q in odo_sqls]
        rtk_sql = _FUSED if "gnss_track" in have else _FIXES if "fixes" in have else None
        if rtk_sql and loc_sql:
            # an RTK log has no ignition: take the terminal's latest ACC bit
            ign_sql = f"SELECT vehicle_id, time, ignition FROM ({loc_sql})"
            rtk_sql = (
                "SELECT r.vehicle_id, r.time, r.lat, r.lon, r.speed_kmh, i.ignition, r.used "
                f"FROM ({rtk_sql}) r ASOF LEFT JOIN ({ign_sql}) i "
                "ON r.vehicle_id = i.vehicle_id AND r.time >= i.time"
            )
        if rtk_sql:
            # once per run: every count and vehicle batch below reads it again
            store.con.execute(f"CREATE OR REPLACE TEMP TABLE _monitor_rtk AS {rtk_sql}").fetchall()
            rtk_sql = "SELECT * FROM _monitor_rtk"
        if rtk_sql and loc_sql:
            track_sql = (
                f"SELECT * FROM ({rtk_sql}) UNION ALL SELECT *, true AS used FROM ({loc_sql}) "
                f"WHERE vehicle_id NOT IN (SELECT DISTINCT vehicle_id FROM ({rtk_sql}))"
            )
        elif rtk_sql or loc_sql:
            track_sql = rtk_sql or f"SELECT *, true AS used FROM ({loc_sql})"
        else:
            track_sql = None
        if track_sql is None and not odo_sqls:
            raise ValueError(
                f"{db} has no tracks or odometer readings; run `autolien ingest` (and `fuse`) first"
            )
        sources = ([track_sql] if track_sql else []) + odo_sqls
        union = " UNION ALL ".join(f"SELECT vehicle_id, time FROM ({q})" for q in sources)
        ids = (
            store.query(
                f"SELECT DISTINCT vehicle_id AS v FROM ({union}) WHERE vehicle_id IS NOT NULL "
                "ORDER BY v"
            )
            .column("v")
            .to_pylist()
        )
        clock = store.query(f"SELECT max(time) AS t FROM ({union})").column("t")[0]
        state_path = Path(state) if state is not None else None
        fleet = _load_state(state_path, config)
        counts = {
            q: store.query(f"SELECT count(*) AS n FROM ({q})").column("n")[0].as_py()
            for q in sources
        }
        since = ""
        late = 0
        if fleet.now is not None:
            prev = getattr(fleet, "_row_counts", {})
            cut = datetime.fromtimestamp(fleet.now, UTC)
            store.con.execute("SET VARIABLE _monitor_since = ?", [cut]).fetchall()
            since = " AND time > getvariable('_monitor_since')"
            for q in sources:
                newer = store.query(
                    f"SELECT count(*) AS n FROM ({q}) WHERE time > getvariable('_monitor_since')"
                )
                late += max(0, counts[q] - prev.get(q, 0) - newer.column("n")[0].as_py())
        for name in OUTPUT_TABLES:
            store.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
        rows = 0
        bar = tqdm(total=len(ids), unit="vehicle", desc="monitor", disable=not progress)
        for i in range(0, len(ids), batch):
            part = pa.table({"v": pa.array(ids[i : i + batch], pa.string())})
            store.con.register("_monitor_ids", part)
            # ORDER BY ALL: distinct readings in one second come in one fixed
            # order, so a re-run (or an incremental one) scores the same rows the same way
            where = f" WHERE vehicle_id IN (SELECT v FROM _monitor_ids){since} ORDER BY ALL"
            tracks = store.query(f"SELECT * FROM ({track_sql}){where}") if track_sql else None
            odo = (
                store.query(
                    " UNION ALL ".join(
                        f"SELECT * FROM ({q}){where.split(' ORDER', maxsplit=1)[0]}"
                        for q in odo_sqls
                    )
                )
                if odo_sqls
                else None
            )
            store.con.unregister("_monitor_ids")
            fleet.update(tracks, odo, now=clock.as_py(), vehicles=ids[i : i + batch])
            rows += (tracks.num_rows if tracks is not None else 0) + (
                odo.num_rows if odo is not None else 0
            )
            bar.update(part.num_rows)
        bar.close()
        fleet._row_counts = counts  # type: ignore[attr-defined]
        if state_path is not None:
            _save_state(state_path, fleet)
        out = {
            "alerts": fleet.alerts(),
            "monitor_features": fleet.features(),
            "monitor_rejects": fleet.rejects,
        }
        for name, table in out.items():
            store.con.register("_monitor_out", table)
            store.con.execute(f"CREATE TABLE {name} AS SELECT * FROM _monitor_out").fetchall()
            store.con.unregister("_monitor_out")
    a = out["alerts"]
    levels = Counter(a.column("level").to_pylist()) if a.num_rows else Counter()
    kinds = Counter(a.column("kind").to_pylist()) if a.num_rows else Counter()
    open_n = a.column("closed").null_count if a.num_rows else 0
    return {
        "vehicles": len(ids),
        "rows": rows,
        "hours_scored": out["monitor_features"].num_rows,
        "alerts": a.num_rows,
        "open": open_n,
        "by_level": dict(levels),
        "by_kind": dict(kinds),
        "rejects": out["monitor_rejects"].num_rows,
        "late_rows": late,
        "clock": clock.as_py().isoformat() if clock.is_valid else None,
        "seconds": round(time.perf_counter() - started, 3),
        "tables": list(OUTPUT_TABLES),
    }


def _mapped(sql: str) -> str:
    # identity (terminal number / VIN -> the book's vehicle id) has one home
    from ..store import mapped_sql  # noqa: PLC0415

    return mapped_sql(sql, ("time", "lat", "lon", "speed_kmh", "ignition", "odometer_km"))
