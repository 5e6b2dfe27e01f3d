"""``autolien monitor``: score the vehicles of an ingest store, batch by batch."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .config import MonitorConfig
from .stream import Monitor

if TYPE_CHECKING:
    from ..store import MonitorStore

# Tables written back into the store: alerts replaced on every run, feature
# hours and rejects added (a run without saved state starts them afresh).
OUTPUT_TABLES = ("alerts", "monitor_features", "monitor_rejects")
STATE_VERSION = 1


def _save_state(io: MonitorStore, alerts: pa.Table, meta: dict[str, Any]) -> None:
    """Commits the run: the state, the outputs and the meta go in at once."""
    empty = Monitor()
    io.commit(
        alerts, {"monitor_features": empty.features(), "monitor_rejects": empty.rejects}, meta
    )


def monitor_store(
    db: str,
    *,
    batch: int = 200,
    progress: bool = False,
    config: MonitorConfig | None = None,
    state: bool = False,
) -> dict[str, Any]:
    """Scores every vehicle of the store and writes ``alerts``,
    ``monitor_features`` and ``monitor_rejects``; returns a summary.

    Tracks come from ``gnss_track`` (after ``autolien fuse``), else ``fixes``,
    else the JT/T 808 ``locations``; odometer readings from ``locations``
    (mileage) and ``ev`` (GB/T 32960). Vehicles go ``batch`` at a time against
    one fleet clock (the newest row of the store), which gives the same
    alerts as one run over all of them.

    Every run saves each vehicle's state (buffers, baselines, CUSUM, open
    alerts; ``monitor.state``) in the store's ``monitor_state`` table, one
    row per vehicle, in the transaction that writes the outputs. With
    ``state`` true the run resumes from it: only rows newer than the last
    run's clock are read (each block's own), every vehicle carries its state
    forward, new feature hours and rejects are added to those of earlier
    runs, and the result equals one run over everything. Rows that arrived
    since but are older than that clock are counted as late (``late_rows``),
    not scored."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    from ..store import MonitorStore, open_store  # noqa: PLC0415

    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.perf_counter()
    with open_store(db) as store:
        io = MonitorStore(store)
        meta = io.meta() if state else None
        if meta is not None and meta.get("version") != STATE_VERSION:
            meta = None  # a state this version cannot read: start afresh
        if meta is not None:
            config = MonitorConfig(**meta["config"])
        fleet = Monitor(config)
        known = io.state_ids() if meta is not None else []
        since = None
        if meta is not None and meta["now"] is not None:
            fleet.now = float(meta["now"])
            since = datetime.fromtimestamp(fleet.now, UTC)
        got = io.read(since, batch, known)
        late = 0
        if meta is not None:
            prev = meta["row_counts"]
            late = sum(max(0, n - prev.get(k, 0) - got.newer[k]) for k, n in got.counts.items())
        clock = got.clock if got.clock is not None else since
        ids = got.ids
        io.write(fresh=meta is None)
        alerts = []
        rows = hours = n_rejects = 0
        bar = tqdm(total=len(ids), unit="vehicle", desc="monitor", disable=not progress)
        try:
            for blk, i in enumerate(range(0, len(ids), batch)):
                part = ids[i : i + batch]
                fleet.load_state(io.state(part))
                tracks, odo = io.block(blk)
                fleet.update(tracks, odo, now=clock, vehicles=part)
                rows += tracks.num_rows + odo.num_rows
                alerts.append(fleet.alerts())
                st, feats, rej = fleet.release()
                hours += feats.num_rows
                n_rejects += rej.num_rows
                io.put_block(st, feats, rej)
                bar.update(len(part))
            bar.close()
            a = pa.concat_tables(alerts) if alerts else Monitor().alerts()
            run_meta = {
                "version": STATE_VERSION,
                "now": fleet.now,
                "row_counts": got.counts,
                "config": asdict(fleet.config),
            }
            _save_state(io, a, run_meta)
        except BaseException:
            io.rollback()
            raise
        out = {
            "alerts": a,
            "hours": io.count("monitor_features"),
            "rejects": io.count("monitor_rejects"),
        }
    a = out["alerts"]
    levels = Counter(a.column("level").to_pylist()) if a.num_rows else Counter()
    kinds = Counter(a.column("kind").to_pylist()) if a.num_rows else Counter()
    open_n = a.column("closed").null_count if a.num_rows else 0
    return {
        "vehicles": len(ids),
        "rows": rows,
        "hours_scored": out["hours"],
        "alerts": a.num_rows,
        "open": open_n,
        "by_level": dict(levels),
        "by_kind": dict(kinds),
        "rejects": out["rejects"],
        "late_rows": late,
        "clock": clock.isoformat() if clock is not None else None,
        "seconds": round(time.perf_counter() - started, 3),
        "tables": list(OUTPUT_TABLES),
    }
