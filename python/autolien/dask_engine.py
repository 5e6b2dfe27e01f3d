"""``autolien run --engine dask``: the fuse and monitor stages as Dask tasks
over vehicle buckets, with results equal to the local engine's.

The fuse stage has no state (every run filters all fixes again, as the local
engine does): the client exports the fixes per bucket, a task per bucket
fuses them, and the client renumbers the track rows as the local engine
numbers them (``store.put_fuse_outputs``).

The monitor carries state. Each vehicle lives in one bucket (``store.vehicle_bucket``: a digest of its
id modulo the bucket count, fixed at the first run). A run:

1. the client exports the monitor's new rows as Parquet per bucket
   (``store.export_monitor_inputs``: one scan of the store, no worker ever
   opens DuckDB);
2. one task per bucket, on any worker: it loads the bucket's monitor state
   of the last run (``load_bucket_state``), feeds it the bucket's rows under
   the fleet clock, saves the new state (``save_bucket_state``) and writes
   the bucket's whole alerts, features and rejects as Parquet; it returns
   counts, never the data;
3. the client reads the results into the store (``store.put_monitor_outputs``)
   and only then makes the new state generation current.

State lives in ``<work>/state/gen-<N>/`` (``<work>``: ``work_dir``, default
``<db>.dask`` beside the database), one file per bucket; ``current.json`` names the generation, the fleet clock it scored to
and the bucket count. A task writes only into the run's new generation and
each file atomically (write, then rename), so a task that Dask runs again
after its worker died (or a whole run killed and started again) reads the
same inputs and writes the same files. On a cluster ``<work>`` must be a
path every worker sees (a shared filesystem); docs/cluster.md.

The ledger stays single-writer and is not touched here: the pipeline's
ledger stage appends on the client, from the stored alerts in a total order
(opening time, vehicle, kind, id), so its root does not depend on which
worker ran which bucket or in what order they finished.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from . import __version__
from .errors import AutolienError
from .monitor.config import MonitorConfig
from .monitor.stream import Monitor

__all__ = [
    "DaskSettings",
    "EngineError",
    "dask_client",
    "fuse_stage",
    "load_bucket_state",
    "monitor_stage",
    "save_bucket_state",
]

OUTPUT_TABLES = ("alerts", "monitor_features", "monitor_rejects")
# vehicles per bucket at the first run, when the bucket count is not given:
# ~0.3 s of monitor work a task at 14 days, well above the scheduler's few ms
VEHICLES_PER_BUCKET = 250
STATE_FORMAT = "autolien.monitor-state.pickle/1"


# how long a run waits for its first worker (a cluster still scaling up)
WORKER_WAIT_S = 120.0


class EngineError(AutolienError, ValueError):
    """The Dask engine cannot run: dask missing, workers on another autolien
    version, or state that does not fit this run (``autolien run`` exits 2)."""


@dataclass
class DaskSettings:
    """Where the engine runs: a scheduler's address (a cluster), or else a
    LocalCluster of ``workers`` processes (default: one per core) started
    for the run. ``buckets`` is fixed at the first run over a database;
    ``work_dir`` (default ``<db>.dask``) holds the per-bucket inputs and
    state and must be a path every worker sees."""

    scheduler: str | None = None
    workers: int | None = None
    buckets: int | None = None
    work_dir: str | None = None


def _ensure_dask() -> None:
    try:
        import dask  # noqa: F401, PLC0415
        import distributed  # noqa: F401, PLC0415
    except ImportError as e:
        raise EngineError(
            f"--engine dask needs dask and distributed: pip install 'autolien[dask]' ({e})"
        ) from None


def _worker_version() -> str:
    return __version__


def check_workers(client: Any, timeout: float = WORKER_WAIT_S) -> None:
    """Waits for a worker (TimeoutError, an OSError, after ``timeout``), then
    refuses workers whose autolien is another version than the client's:
    their monitor could score differently."""
    client.wait_for_workers(1, timeout=timeout)
    versions = client.run(_worker_version)
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        raise EngineError(
            f"workers run another autolien than this client ({__version__}): {other}; "
            "install the same wheel on every worker (docs/cluster.md)"
        )


@contextmanager
def dask_client(settings: DaskSettings) -> Iterator[Any]:
    """A ``distributed.Client`` on the scheduler, or on a LocalCluster of
    worker processes (closed on exit)."""
    _ensure_dask()
    from distributed import Client, LocalCluster  # noqa: PLC0415

    if settings.scheduler is not None and settings.workers is not None:
        raise ValueError("give a scheduler address or a worker count, not both")
    if settings.workers is not None and settings.workers < 1:
        raise ValueError("workers must be at least 1")
    if settings.scheduler is not None:
        # distributed's own annotations are partial
        with Client(settings.scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    n = settings.workers or os.cpu_count() or 1
    # processes, one thread each: the monitor's Python loop holds the GIL; the
    # dashboard on a free port (the link is printed), never a clash on 8787
    with (
        LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,  # type: ignore[no-untyped-call]
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


# --- per-bucket state ---------------------------------------------------------
# The monitor's state is not tabular yet: it is kept as the pickled Monitor in
# an Arrow IPC file of one binary cell (with a format tag), behind this pair,
# so a tabular form can replace it without touching the engine.


def save_bucket_state(path: Path, monitor: Monitor) -> None:
    """Writes a bucket's monitor state to ``path`` atomically."""
    blob = pickle.dumps(monitor, protocol=pickle.HIGHEST_PROTOCOL)
    table = pa.table({"format": [STATE_FORMAT], "state": pa.array([blob], pa.large_binary())})
    tmp = path.with_name(path.name + ".tmp")
    with pa.OSFile(str(tmp), "wb") as f, ipc.new_file(f, table.schema) as w:
        w.write_table(table)
    tmp.replace(path)


def load_bucket_state(path: Path | None, config: MonitorConfig | None = None) -> Monitor:
    """A bucket's monitor state from ``path``, or a fresh monitor when there
    is none (a bucket's first run)."""
    if path is None or not path.exists():
        return Monitor(config)
    with pa.memory_map(str(path)) as f:
        table = ipc.open_file(f).read_all()
    if table.column_names != ["format", "state"] or table.num_rows != 1:
        raise TypeError(f"{path} does not hold a bucket's monitor state")
    if table.column("format")[0].as_py() != STATE_FORMAT:
        raise TypeError(f"{path}: unknown state format {table.column('format')[0].as_py()!r}")
    m = pickle.loads(table.column("state")[0].as_py())  # our own file, see save_bucket_state
    if not isinstance(m, Monitor):
        raise TypeError(f"{path} does not hold monitor state")
    return m


def _read_bucket(directory: Path) -> pa.Table | None:
    if not directory.is_dir():
        return None
    table = pq.read_table(directory)
    if "bucket" in table.column_names:
        table = table.drop_columns(["bucket"])
    # the local engine's ORDER BY ALL: readings of one second in one fixed order
    return table.sort_by([(c, "ascending") for c in table.column_names])


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def monitor_bucket(
    bucket: int,
    vehicles: list[str],
    inputs: str,
    previous: str | None,
    generation: str,
    clock: datetime,
    config: MonitorConfig | None = None,
) -> dict[str, float]:
    """The task: one bucket's new rows into its monitor state (on a worker).
    Reads ``inputs/{tracks,odometer}/bucket=K``, the state file of the
    ``previous`` generation, writes the ``generation``'s state and outputs."""
    cpu = time.process_time()
    fleet = load_bucket_state(
        Path(previous) / f"bucket-{bucket}.arrow" if previous else None, config
    )
    tracks = _read_bucket(Path(inputs) / "tracks" / f"bucket={bucket}")
    odo = _read_bucket(Path(inputs) / "odometer" / f"bucket={bucket}")
    fleet.update(tracks, odo, now=clock, vehicles=vehicles)
    gen = Path(generation)
    save_bucket_state(gen / f"bucket-{bucket}.arrow", fleet)
    outputs = {
        "alerts": fleet.alerts(),
        "monitor_features": fleet.features(),
        "monitor_rejects": fleet.rejects,
    }
    for name, table in outputs.items():
        _atomic_parquet(table, gen / name / f"bucket-{bucket}.parquet")
    return {
        "bucket": bucket,
        "rows": (tracks.num_rows if tracks is not None else 0)
        + (odo.num_rows if odo is not None else 0),
        # CPU, not wall: on a shared machine the wall time is mostly waiting
        "cpu_s": round(time.process_time() - cpu, 3),
    }


# --- fuse ---------------------------------------------------------------------

FUSE_TABLES = ("gnss_track", "gnss_parked", "gnss_events")


def fuse_bucket(bucket: int, inputs: str, out: str) -> dict[str, Any]:
    """The task: one bucket's RTK fixes through the filter (on a worker).
    Track rows are numbered from 0 in the bucket; the client renumbers them."""
    import numpy as np  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    from .gnss.fusion import fuse  # noqa: PLC0415

    cpu = time.process_time()
    fixes = pq.read_table(Path(inputs) / f"bucket={bucket}")
    if "bucket" in fixes.column_names:
        fixes = fixes.drop_columns(["bucket"])
    # the local engine's ORDER BY vehicle_id, time, source, "offset"
    fixes = fixes.sort_by([(c, "ascending") for c in ("vehicle_id", "time", "source", "offset")])
    result = fuse(fixes)
    track = result.track.append_column(
        "row", pa.array(np.arange(result.track.num_rows, dtype=np.int64))
    )
    for name, table in zip(FUSE_TABLES, (track, result.parked, result.events), strict=True):
        _atomic_parquet(table, Path(out) / name / f"bucket-{bucket}.parquet")
    reasons = pc.value_counts(result.track.column("reason")).to_pylist()
    return {
        "fixes": result.track.num_rows,
        "parked": result.parked.num_rows,
        "reasons": {r["values"]: r["counts"] for r in reasons},
        "events": dict(Counter(result.events.column("kind").to_pylist())),
        "cpu_s": round(time.process_time() - cpu, 3),
    }


def fuse_stage(
    db: str | Path,
    client: Any,
    *,
    buckets: int | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """The fuse stage as one Dask task per bucket of RTK vehicles; writes
    ``gnss_track``, ``gnss_parked`` and ``gnss_events`` as the local engine's
    ``fuse_store`` does (every run recomputes them from all fixes: no state)
    and returns its summary. ``buckets`` (default: one per 250 RTK
    vehicles) may change from run to run."""
    from tqdm import tqdm  # noqa: PLC0415

    from .store import export_fixes, put_fuse_outputs  # noqa: PLC0415

    started = time.perf_counter()
    db = Path(db)
    work = Path(work_dir) if work_dir is not None else db.with_name(db.name + ".dask")
    inputs, out = work / "fuse-inputs", work / "fuse-outputs"
    shutil.rmtree(out, ignore_errors=True)
    for name in FUSE_TABLES:
        (out / name).mkdir(parents=True)
    vehicles, no_time = export_fixes(db, inputs, buckets, vehicles_per_bucket=VEHICLES_PER_BUCKET)
    run_id = uuid.uuid4().hex[:12]
    futures = [
        client.submit(
            fuse_bucket,
            b,
            str(inputs),
            str(out),
            key=f"autolien-fuse-bucket-{b}-{run_id}",
            pure=False,
            retries=1,
        )
        for b in sorted(vehicles)
    ]
    from distributed import as_completed  # noqa: PLC0415

    stats: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    fixes = parked = 0
    bar = tqdm(total=len(futures), unit="bucket", desc="fuse (dask)", disable=not progress)
    for fut in as_completed(futures):  # type: ignore[no-untyped-call]
        done = fut.result()
        fixes += int(done["fixes"])
        parked += int(done["parked"])
        stats.update(done["reasons"])
        kinds.update(done["events"])
        bar.update(1)
    bar.close()
    put_fuse_outputs(db, {n: sorted((out / n).glob("bucket-*.parquet")) for n in FUSE_TABLES})
    shutil.rmtree(inputs, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "db": str(db),
        "vehicles": sum(len(v) for v in vehicles.values()),
        "fixes": fixes,
        "parked_episodes": parked,
        "skipped_without_time": no_time,
        "reasons": dict(stats),
        "events": dict(kinds),
        "seconds": round(time.perf_counter() - started, 3),
        "tables": list(FUSE_TABLES),
        "tasks": len(futures),
    }


# --- the stage ----------------------------------------------------------------


def _read_current(state: Path) -> dict[str, Any] | None:
    path = state / "current.json"
    if not path.exists():
        return None
    cur = json.loads(path.read_text())
    if not isinstance(cur, dict) or not {"generation", "clock", "buckets", "counts"} <= set(cur):
        raise EngineError(f"{path} is not a dask engine state pointer")
    return cur


def monitor_stage(
    db: str | Path,
    client: Any,
    *,
    buckets: int | None = None,
    work_dir: str | Path | None = None,
    progress: bool = False,
    config: MonitorConfig | None = None,
) -> dict[str, Any]:
    """The monitor over every vehicle of the store, as one Dask task per
    bucket on ``client``'s workers; writes ``alerts``, ``monitor_features``
    and ``monitor_rejects`` as the local engine does and returns the same
    summary (plus ``buckets`` and ``tasks``). Resumes from the state of the
    last run over ``db`` (``work_dir``, default ``<db>.dask``)."""
    from tqdm import tqdm  # noqa: PLC0415

    from .store import export_monitor_inputs, put_monitor_outputs  # noqa: PLC0415

    started = time.perf_counter()
    db = Path(db)
    work = Path(work_dir) if work_dir is not None else db.with_name(db.name + ".dask")
    state = work / "state"
    state.mkdir(parents=True, exist_ok=True)
    cur = _read_current(state)
    if cur is not None:
        if buckets is not None and buckets != cur["buckets"]:
            raise EngineError(
                f"{db}'s monitor state is split into {cur['buckets']} buckets, not {buckets}; "
                "the bucket count is fixed at the first run"
            )
        buckets = int(cur["buckets"])
    since = datetime.fromisoformat(cur["clock"]) if cur is not None and cur["clock"] else None
    gen_no = int(cur["generation"]) + 1 if cur is not None else 1
    previous = state / f"gen-{gen_no - 1}" if cur is not None else None
    # a generation this far or newer is a run that was killed before it became current
    for stale in state.glob("gen-*"):
        if stale.name.removeprefix("gen-").isdigit() and int(stale.name[4:]) >= gen_no:
            shutil.rmtree(stale)
    inputs = work / "inputs"
    export = export_monitor_inputs(
        db,
        inputs,
        buckets,
        vehicles_per_bucket=VEHICLES_PER_BUCKET,
        since=since,
        previous_counts=cur["counts"] if cur else None,
    )
    buckets = export.buckets
    run_id = uuid.uuid4().hex[:12]
    gen = state / f"gen-{gen_no}"
    for name in OUTPUT_TABLES:
        (gen / name).mkdir(parents=True, exist_ok=True)
    # every bucket that has a vehicle now or had state before gets its task
    had = (
        {int(p.stem.removeprefix("bucket-")) for p in previous.glob("bucket-*.arrow")}
        if previous is not None
        else set()
    )
    todo = sorted(set(export.vehicles) | had)
    rows = 0
    cpu = 0.0
    if export.clock is not None:
        futures = [
            client.submit(
                monitor_bucket,
                b,
                export.vehicles.get(b, []),
                str(inputs),
                str(previous) if previous is not None else None,
                str(gen),
                export.clock,
                config,
                key=f"autolien-monitor-bucket-{b}-{run_id}",
                pure=False,
                # a worker's death is retried by the scheduler (allowed-failures);
                # this is for an error inside the task, e.g. a shared filesystem's hiccup
                retries=1,
            )
            for b in todo
        ]
        from distributed import as_completed  # noqa: PLC0415

        bar = tqdm(total=len(futures), unit="bucket", desc="monitor (dask)", disable=not progress)
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            done = fut.result()
            rows += int(done["rows"])
            cpu += float(done["cpu_s"])
            bar.update(1)
        bar.close()
    parts = {name: sorted((gen / name).glob("bucket-*.parquet")) for name in OUTPUT_TABLES}
    put_monitor_outputs(db, parts)
    # only now is the new generation the one to resume from (a kill before
    # this line re-runs from the previous one)
    tmp = state / "current.json.tmp"
    tmp.write_text(
        json.dumps(
            {
                "generation": gen_no,
                "clock": export.clock.isoformat() if export.clock is not None else None,
                "buckets": buckets,
                "counts": export.counts,
            }
        )
    )
    tmp.replace(state / "current.json")
    if previous is not None:
        shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(inputs, ignore_errors=True)
    out = _summary(db, export, rows, buckets, len(todo), started)
    out["task_cpu_s"] = round(cpu, 3)
    return out


def _summary(
    db: Path, export: Any, rows: int, buckets: int, tasks: int, started: float
) -> dict[str, Any]:
    from .store import open_store  # noqa: PLC0415

    with open_store(db, read_only=True) as store:
        have = set(store.tables())
        a = (
            store.query("SELECT level, kind, closed FROM alerts")
            if "alerts" in have
            else pa.table({"level": [], "kind": [], "closed": []})
        )
        hours = (
            store.query("SELECT count(*) AS n FROM monitor_features").column("n")[0].as_py()
            if "monitor_features" in have
            else 0
        )
        rejects = (
            store.query("SELECT count(*) AS n FROM monitor_rejects").column("n")[0].as_py()
            if "monitor_rejects" in have
            else 0
        )
    return {
        "vehicles": sum(len(v) for v in export.vehicles.values()),
        "rows": rows,
        "hours_scored": int(hours),
        "alerts": a.num_rows,
        "open": a.column("closed").null_count if a.num_rows else 0,
        "by_level": dict(Counter(a.column("level").to_pylist())),
        "by_kind": dict(Counter(a.column("kind").to_pylist())),
        "rejects": int(rejects),
        "late_rows": export.late,
        "clock": export.clock.isoformat() if export.clock is not None else None,
        "seconds": round(time.perf_counter() - started, 3),
        "tables": list(OUTPUT_TABLES),
        "buckets": buckets,
        "tasks": tasks,
    }


def describe(client: Any) -> dict[str, Any]:
    """The engine's line in the run summary: scheduler, workers, dashboard."""
    info = client.scheduler_info()
    return {
        "name": "dask",
        "scheduler": info.get("address"),
        "workers": len(info.get("workers", {})),
        "dashboard": client.dashboard_link,
    }


def announce(client: Any) -> None:
    """Prints the Dask dashboard's link (stderr: stdout may be --json)."""
    print(f"dask dashboard: {client.dashboard_link}", file=sys.stderr)
