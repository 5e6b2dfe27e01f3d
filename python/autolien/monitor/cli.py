"""``autolien monitor``: score the vehicles of an ingest store, batch by batch."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyarrow import ipc

from .._spawn import main_not_rerun
from .config import MonitorConfig
from .stream import Monitor

if TYPE_CHECKING:
    from ..store import MonitorStore, StateRef

# Tables written back into the store: alerts replaced on every run, feature
# hours and rejects added (a run without saved state starts them afresh).
OUTPUT_TABLES = ("alerts", "monitor_features", "monitor_rejects")
STATE_VERSION = 2  # 2: the state in an Arrow file beside the database
# Blocks are scored on worker processes only when there are at least this
# many per worker: a worker's start (numpy, Arrow and autolien imported
# afresh) costs about a second, more than a small store's whole monitor.
MIN_BLOCKS_PER_WORKER = 4
WORKERS_ENV = "AUTOLIEN_MONITOR_WORKERS"
# The default count's ceiling: the process that reads and writes the blocks
# was busy 8.4 s of a 12 s monitor with two workers (3,000 vehicles), so
# beyond a few workers more only wait for it (and each holds ~0.3 GB).
MAX_DEFAULT_WORKERS = 4
# DuckDB's memory limit for the stage's store unless
# $AUTOLIEN_DUCKDB_MEMORY_LIMIT is set: what DuckDB holds here is mostly a
# cache of the staging tables it has written (the day's rows, sorted), which
# its default (80% of RAM) let grow with the fleet. 30,000 vehicles' daily
# monitor: peak 2.7 -> 1.5 GB; at 10,000 (under 1 GB anyway) and staging
# under 300 MB, no slower.
MONITOR_MEMORY_LIMIT = "1GB"

# (alerts, state (or the file a worker wrote it to), feature hours, rejects,
# the monitor's clock after the block)
_Scored = tuple[pa.Table, pa.Table | str, pa.Table, pa.Table, float | None]


def _score_block(
    config: MonitorConfig,
    now: float | None,
    state: pa.Table | StateRef | None,
    tracks: pa.Table,
    odo: pa.Table,
    clock: Any,
    part: list[str],
    spill: str | None = None,
) -> _Scored:
    """One block of vehicles from its saved state: what the loop of
    ``monitor_store`` does for a block, on its own monitor (vehicles are
    independent, and every block runs under the same fleet clock), so that
    it can run on a worker process. There ``state`` is where the rows are in
    the state file, and with ``spill`` the new state goes back as an Arrow
    file of that name (see ``_spilled``), not pickled."""
    from .. import store  # noqa: PLC0415

    fleet = Monitor(config)
    fleet.now = now
    fleet.load_state(state.read() if isinstance(state, store.StateRef) else state)
    fleet.update(tracks, odo, now=clock, vehicles=part)
    alerts = fleet.alerts()
    st, feats, rej = fleet.release()
    if spill is not None:
        with pa.OSFile(spill, "wb") as sink, ipc.new_file(sink, st.schema) as w:
            w.write_table(st)
        return alerts, spill, feats, rej, fleet.now
    return alerts, st, feats, rej, fleet.now


def _spilled(st: pa.Table | str) -> pa.Table:
    """A block's new state as ``_score_block`` returned it: the table, or
    the Arrow file a worker wrote it to, mapped (no copy: the state file's
    writer reads the pages). Pickled back, the state cost the worker 30-50
    ms a block and this process another 10."""
    if isinstance(st, str):
        return ipc.open_file(pa.memory_map(st)).read_all()
    return st


def default_workers() -> int:
    """``AUTOLIEN_MONITOR_WORKERS``, else the cores this process may use
    (at most ``MAX_DEFAULT_WORKERS``)."""
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{WORKERS_ENV} must be a whole number, got {env!r}") from None
        if n < 1:
            raise ValueError(f"{WORKERS_ENV} must be at least 1, got {n}")
        return n
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, MAX_DEFAULT_WORKERS))


def _save_state(io: MonitorStore, alerts: pa.Table, meta: dict[str, Any]) -> None:
    """Commits the run: the state, the outputs and the meta go in at once."""
    empty = Monitor()
    io.commit(
        alerts, {"monitor_features": empty.features(), "monitor_rejects": empty.rejects}, meta
    )


def _scored(
    io: MonitorStore,
    parts: list[list[str]],
    config: MonitorConfig,
    now: float | None,
    clock: Any,
    workers: int,
) -> Generator[tuple[_Scored, int], None, None]:
    """Each block scored, with the rows it read, in block order: here, or
    on ``workers`` processes with the next blocks' inputs read while they
    work."""

    # the blocks' rows in one pass over the staged rows, read as they are needed
    staged = io.blocks(len(parts))

    def inputs(blk: int, here: bool) -> tuple[int, tuple[Any, ...]]:
        part = parts[blk]
        tracks, odo = next(staged)
        # a worker reads its rows of the state file itself
        state = io.state(part) if here else io.state_ref(part)
        return tracks.num_rows + odo.num_rows, (config, now, state, tracks, odo, clock, part)

    try:
        yield from _scored_blocks(inputs, len(parts), workers)
    finally:
        staged.close()  # its cursors, before a rollback drops what they read


def _scored_blocks(
    inputs: Callable[[int, bool], tuple[int, tuple[Any, ...]]], n: int, workers: int
) -> Generator[tuple[_Scored, int], None, None]:
    if workers <= 1:
        for blk in range(n):
            rows, args = inputs(blk, True)
            yield _score_block(*args), rows
        return
    # spawned, not forked: this process holds DuckDB's threads and locks
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    spill = tempfile.TemporaryDirectory(prefix="autolien-monitor-")
    try:
        flight: deque[tuple[Future[_Scored], int]] = deque()
        for blk in range(n):
            rows, args = inputs(blk, False)
            out = os.path.join(spill.name, f"state-{blk}.arrow")
            with main_not_rerun():  # a submit starts a worker when none is idle
                flight.append((_submit(pool, _score_block, *args, out), rows))
            if len(flight) > workers:
                fut, k = flight.popleft()
                yield fut.result(), k
        while flight:
            fut, k = flight.popleft()
            yield fut.result(), k
    finally:
        # a failed block (or a failed write of one) stops the rest
        _end_broken_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        spill.cleanup()


def _submit(pool: ProcessPoolExecutor, fn: Callable[..., _Scored], *args: Any) -> Future[_Scored]:
    """``pool.submit``, where a worker that died while the submit started
    another (CPython 3.11 starts workers on demand) fails as the pool's
    error: the pool's teardown closes the pipes the new worker was to
    inherit, and the spawn raised ``ValueError: bad value(s) in
    fds_to_keep`` instead (seen in CI, worker killed by SIGKILL)."""
    try:
        return pool.submit(fn, *args)
    except (OSError, ValueError) as e:
        broken = getattr(pool, "_broken", False)
        if broken:
            raise BrokenProcessPool(broken) from e
        raise


def _end_broken_workers(pool: ProcessPoolExecutor) -> None:
    """Kills the workers of a pool a dead worker broke. CPython 3.11's pool
    terminates the workers it knows of when one dies, but a worker that a
    submit started in the meantime is not among them: it runs its block and
    waits to send the result, which nothing reads any more, while the pool's
    shutdown waits for its feeder thread, stuck sending it the next block.
    The run hung there, not failed (seen in CI, worker killed by SIGKILL)."""
    if not getattr(pool, "_broken", False):
        return
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            p.kill()


def monitor_store(
    db: str,
    *,
    batch: int = 200,
    progress: bool = False,
    config: MonitorConfig | None = None,
    state: bool = False,
    workers: int | None = None,
) -> dict[str, Any]:
    """Scores every vehicle of the store and writes ``alerts``,
    ``monitor_features`` and ``monitor_rejects``; returns a summary.

    Tracks come from ``gnss_track`` (after ``autolien fuse``), else ``fixes``,
    else the JT/T 808 ``locations``; odometer readings from ``locations``
    (mileage) and ``ev`` (GB/T 32960). Vehicles go ``batch`` at a time against
    one fleet clock (the newest row of the store), which gives the same
    alerts as one run over all of them.

    Every run saves each vehicle's state (buffers, baselines, CUSUM, open
    alerts; ``monitor.state``), one row per vehicle, in an Arrow file beside
    the store (``<db>.monitor/``) that the transaction writing the outputs
    names (``MonitorStore``). With
    ``state`` true the run resumes from it: only rows newer than the last
    run's clock are read (each block's own), every vehicle carries its state
    forward, new feature hours and rejects are added to those of earlier
    runs, and the result equals one run over everything. Rows that arrived
    since but are older than that clock are counted as late (``late_rows``),
    not scored.

    The blocks are scored on ``workers`` processes (default
    :func:`default_workers`: the usable cores, or
    ``AUTOLIEN_MONITOR_WORKERS``) when there are at least
    ``MIN_BLOCKS_PER_WORKER`` blocks a worker, else here; this process reads
    each block's rows and writes its results, in block order, so the store
    ends the same either way (a worker maps its saved state from the state
    file and writes its new state to a temporary Arrow file, rather than
    have them pickled). At most ``workers + 1`` blocks are
    in flight."""
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI needs it

    from ..store import MonitorStore, open_store  # noqa: PLC0415
    from ..telemetry.store import bounded_memory_limit  # noqa: PLC0415

    if batch < 1:
        raise ValueError("batch must be at least 1")
    if workers is not None and workers < 1:
        raise ValueError("workers must be at least 1")
    started = time.perf_counter()
    with open_store(db, memory_limit=bounded_memory_limit(MONITOR_MEMORY_LIMIT)) as store:
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
        parts = [ids[i : i + batch] for i in range(0, len(ids), batch)]
        n_workers = workers if workers is not None else default_workers()
        if len(parts) < MIN_BLOCKS_PER_WORKER * max(n_workers, 2):
            n_workers = 1
        start_now = fleet.now
        try:
            scored = _scored(io, parts, fleet.config, start_now, clock, n_workers)
            try:
                for part, ((al, st, feats, rej, now), n) in zip(parts, scored, strict=True):
                    rows += n
                    alerts.append(al)
                    hours += feats.num_rows
                    n_rejects += rej.num_rows
                    io.put_block(_spilled(st), feats, rej)
                    if isinstance(st, str):
                        os.unlink(st)
                    fleet.now = now
                    bar.update(len(part))
            finally:
                scored.close()  # the workers stop before the rollback
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
