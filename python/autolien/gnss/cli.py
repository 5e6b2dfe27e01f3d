"""``autolien fuse``: fuse the fixes of an ingest store, vehicle batch by batch."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .fusion import FusionConfig, FusionResult, fuse

# Tables written back into the store (replaced on every run).
OUTPUT_TABLES = ("gnss_track", "gnss_parked", "gnss_events")
# the columns of a fix that `fuse` reads (height_m, else altitude_m)
FUSE_COLUMNS = (
    "time",
    "lat",
    "lon",
    "height_m",
    "altitude_m",
    "quality",
    "sigma_n_m",
    "sigma_e_m",
    "sigma_u_m",
    "speed_kmh",
)


def fuse_store(
    db: str,
    *,
    smooth: bool = False,
    batch: int = 500,
    progress: bool = False,
    config: FusionConfig | None = None,
    plot: str | None = None,
    plot_vehicle: str | None = None,
) -> dict[str, Any]:
    """Fuses every vehicle of the store's ``fixes`` table; returns a summary.

    Fixes without a vehicle id (an NMEA or UBX log) are one vehicle per source
    file. Vehicles go through :func:`fuse` ``batch`` at a time, so memory
    stays bounded by the batch and the bar moves. ``plot`` writes an SVG of
    ``plot_vehicle`` (default: the first vehicle) there.
    """
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    from ..telemetry import Store  # noqa: PLC0415

    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.perf_counter()
    with Store(db) as store:
        if "fixes" not in store.tables():
            raise ValueError(
                f"{db} has no fixes table; run `autolien ingest` on NMEA/UBX captures first"
            )
        key = "coalesce(vehicle_id, 'file:' || source_file)"
        # only what the filter reads: the rest of a fix (its source names,
        # NMEA status strings, ...) was most of each batch's bytes
        have = store.query("SELECT * FROM fixes LIMIT 0").column_names
        cols = ", ".join(f'"{c}"' for c in FUSE_COLUMNS if c in have)
        vehicles = store.query(
            f"SELECT DISTINCT {key} AS v FROM fixes WHERE time IS NOT NULL ORDER BY v"
        )
        ids = vehicles.column("v").to_pylist()
        # Rows without a time (NMEA before any date) cannot be placed in a track.
        no_time = (
            store.query("SELECT count(*) AS n FROM fixes WHERE time IS NULL").column("n")[0].as_py()
        )
        for name in OUTPUT_TABLES:
            store.con.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
        stats: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        with tqdm(total=len(ids), unit="vehicle", desc="fuse", disable=not progress) as bar:
            for start in range(0, len(ids), batch):
                chunk = pa.table({"v": ids[start : start + batch]})
                store.con.register("_autolien_batch", chunk)
                try:
                    fixes = store.query(
                        f"""SELECT {key} AS vehicle_id, {cols} FROM fixes
                        WHERE time IS NOT NULL AND {key} IN (SELECT v FROM _autolien_batch)
                        ORDER BY vehicle_id, time, source, "offset" """
                    )
                finally:
                    store.con.unregister("_autolien_batch")
                result = fuse(fixes, smooth=smooth, config=config)
                # Stored evidence rows index gnss_track's `row` column across batches.
                offset = stats["fixes"]
                track = result.track.append_column(
                    "row",
                    pa.array(np.arange(offset, offset + result.track.num_rows, dtype=np.int64)),
                )
                events = result.events
                for col in ("evidence_first_row", "evidence_last_row"):
                    i = events.schema.get_field_index(col)
                    events = events.set_column(i, col, pc.add(events.column(col), offset))
                for name, table in zip(OUTPUT_TABLES, (track, result.parked, events), strict=True):
                    verb = "INSERT INTO" if start else "CREATE TABLE"
                    sql = f"{verb} {name} {'AS ' if not start else ''}SELECT * FROM _autolien_out"
                    # a relation, not a registered view (held until a commit)
                    store.con.from_arrow(table).query("_autolien_out", sql)
                reasons = pc.value_counts(result.track.column("reason")).to_pylist()
                stats.update({r["values"]: r["counts"] for r in reasons})
                stats["fixes"] += result.track.num_rows
                stats["parked"] += result.parked.num_rows
                kinds.update(result.events.column("kind").to_pylist())
                bar.update(chunk.num_rows)
                # before the next batch's query: else two batches' fixes and
                # tracks are held at once (a batch is 1.5 M fixes at 10,000
                # vehicles after 15 days)
                del fixes, result, track, events
        if plot is not None:
            _plot(store, plot, plot_vehicle, ids)
    seconds = time.perf_counter() - started
    return {
        "db": db,
        "vehicles": len(ids),
        "fixes": stats.pop("fixes", 0),
        "parked_episodes": stats.pop("parked", 0),
        "skipped_without_time": no_time,
        "reasons": dict(stats),
        "events": dict(kinds),
        "seconds": round(seconds, 3),
        "tables": list(OUTPUT_TABLES),
    }


def _plot(store: Any, path: str, vehicle: str | None, ids: list[str]) -> None:
    from .plot import track_svg  # noqa: PLC0415

    if not ids:
        raise ValueError("no vehicles to plot")
    vehicle = vehicle if vehicle is not None else ids[0]
    if vehicle not in ids:
        raise ValueError(f"no vehicle {vehicle!r} in the store")
    params = [vehicle]
    track = store.query('SELECT * FROM gnss_track WHERE vehicle_id = ? ORDER BY "row"', params)
    first = track.column("row")[0].as_py() if track.num_rows else 0
    events = store.query("SELECT * FROM gnss_events WHERE vehicle_id = ?", params)
    for col in ("evidence_first_row", "evidence_last_row"):
        i = events.schema.get_field_index(col)
        events = events.set_column(i, col, pc.subtract(events.column(col), first))
    parked = store.query("SELECT * FROM gnss_parked WHERE vehicle_id = ?", params)
    result = FusionResult(track.drop_columns(["row"]), parked, events)
    with open(path, "w", encoding="utf-8") as f:
        f.write(track_svg(result, vehicle=vehicle))
