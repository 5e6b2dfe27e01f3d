"""``autolien fuse``: fuse the fixes of an ingest store, vehicle batch by batch."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..store.fuse import FUSE_OUTPUT_TABLES, FuseStore
from .fusion import FusionConfig, FusionResult, fuse

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

    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.perf_counter()
    with FuseStore(db) as store:
        ids = store.vehicles()
        no_time = store.undated()
        store.reset()
        stats: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        first = True
        with tqdm(total=len(ids), unit="vehicle", desc="fuse", disable=not progress) as bar:
            for n, fixes in store.batches(ids, batch, FUSE_COLUMNS):
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
                out = dict(zip(FUSE_OUTPUT_TABLES, (track, result.parked, events), strict=True))
                store.append(out, first=first)
                first = False
                reasons = pc.value_counts(result.track.column("reason")).to_pylist()
                stats.update({r["values"]: r["counts"] for r in reasons})
                stats["fixes"] += result.track.num_rows
                stats["parked"] += result.parked.num_rows
                kinds.update(result.events.column("kind").to_pylist())
                bar.update(n)
                # before the next batch's query: else two batches' fixes and
                # tracks are held at once (a batch is 1.5 M fixes at 10,000
                # vehicles after 15 days)
                del fixes, result, track, events, out
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
        "tables": list(FUSE_OUTPUT_TABLES),
    }


def _plot(store: FuseStore, path: str, vehicle: str | None, ids: list[str]) -> None:
    from .plot import track_svg  # noqa: PLC0415

    if not ids:
        raise ValueError("no vehicles to plot")
    vehicle = vehicle if vehicle is not None else ids[0]
    if vehicle not in ids:
        raise ValueError(f"no vehicle {vehicle!r} in the store")
    got = store.vehicle(vehicle)
    track = got["gnss_track"]
    first = track.column("row")[0].as_py() if track.num_rows else 0
    events = got["gnss_events"]
    for col in ("evidence_first_row", "evidence_last_row"):
        i = events.schema.get_field_index(col)
        events = events.set_column(i, col, pc.subtract(events.column(col), first))
    result = FusionResult(track.drop_columns(["row"]), got["gnss_parked"], events)
    with open(path, "w", encoding="utf-8") as f:
        f.write(track_svg(result, vehicle=vehicle))
