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
   of the last run (``load_bucket_state``: Parquet, one row per vehicle, the
   monitor's ``state_table``), feeds it the bucket's rows under the fleet
   clock, saves the new state (``save_bucket_state``) and writes the
   bucket's alerts (all of them: they are state), and the feature hours and
   rejects of this run, as Parquet; it returns counts, never the data;
3. the client reads the results into the store in one transaction that also
   records the run's generation (``store.put_monitor_outputs``): that commit
   is the run's commit point. Then ``current.json`` names the new
   generation; a client that died between the two is rolled forward by the
   next run (the store says the generation is in), so feature hours are
   appended exactly once.

Everything the workers read and write is under the work directory
(``work_dir``, default ``<db>.dask`` beside the database): a local path or
any fsspec URL (``s3://...``, ``gs://...``, ``file://...``); the client and
every worker need the URL's fsspec backend (s3fs, gcsfs, ...). State lives in
``<work>/state/gen-<N>/``, one Parquet file per bucket; ``current.json``
names the generation, the fleet clock it scored to and the bucket count. A
task writes only into the run's new generation, each file whole (on a local
filesystem written then renamed; an object store's put is atomic), so a task
that Dask runs again after its worker died (or a whole run killed and
started again) reads the same inputs and writes the same files.

The ledger stays single-writer and is not touched here: the pipeline's
ledger stage appends on the client, from the stored alerts in a total order
(opening time, vehicle, kind, id), so its root does not depend on which
worker ran which bucket or in what order they finished.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import AutolienError
from .monitor.config import MonitorConfig
from .monitor.stream import Monitor
from .telemetry._common import DecodeResult
from .telemetry.ingest import decode_piece

__all__ = [
    "DaskDecode",
    "DaskScore",
    "DaskSettings",
    "EngineError",
    "WorkDir",
    "battery_stage",
    "dask_client",
    "fuse_stage",
    "load_bucket_state",
    "monitor_stage",
    "save_bucket_state",
    "work_dir",
]

OUTPUT_TABLES = ("alerts", "monitor_features", "monitor_rejects")
# vehicles per bucket at the first run, when the bucket count is not given:
# ~0.3 s of monitor work a task at 14 days, well above the scheduler's few ms
VEHICLES_PER_BUCKET = 250
# the state file's format, in its Parquet key-value metadata
STATE_FORMAT = "autolien.monitor-state.parquet/1"
_FORMAT_KEY = b"autolien.format"
_VERSION_KEY = b"autolien.version"
# the pointer's format: 1 was the pickled Monitor of the first Dask engine
POINTER_FORMAT = 2
# the store's record of the last generation whose outputs it holds
STORE_RECORD = "dask_monitor"


# how long a run waits for its first worker (a cluster still scaling up)
WORKER_WAIT_S = 120.0


T = TypeVar("T")


class EngineError(AutolienError, ValueError):
    """The Dask engine cannot run: dask missing, workers on another autolien
    version, a work directory whose fsspec backend is not installed, or state
    that does not fit this run (``autolien run`` exits 2)."""


@dataclass
class DaskSettings:
    """Where the engine runs: a scheduler's address (a cluster), or else a
    LocalCluster of ``workers`` processes (default: one per core) started
    for the run. ``buckets`` is fixed at the first run over a database;
    ``work_dir`` (default ``<db>.dask``) holds the per-bucket inputs and
    state: a path or fsspec URL that every worker reaches."""

    scheduler: str | None = None
    workers: int | None = None
    buckets: int | None = None
    work_dir: str | None = None

    def __post_init__(self) -> None:
        # a URL without its fsspec backend fails here, before a run writes anything
        if self.work_dir is not None:
            work_dir(self.work_dir)


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


# --- the work directory: a local path or an fsspec URL --------------------------


@dataclass(frozen=True)
class WorkDir:
    """A directory of the exchange, by URL (what tasks get: a string pickles
    anywhere; each process opens the filesystem itself, with its own
    credentials), and its fsspec filesystem and path in it."""

    url: str
    fs: Any
    path: str

    @property
    def local(self) -> bool:
        """On this machine's filesystem: DuckDB reads and writes it directly,
        and a file is written then renamed."""
        from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]  # noqa: PLC0415

        return isinstance(self.fs, LocalFileSystem)

    def __truediv__(self, name: str) -> WorkDir:
        # the URL's last part is the path: chained URLs (simplecache::s3://...) too
        return WorkDir(f"{self.url.rstrip('/')}/{name}", self.fs, f"{self.path.rstrip('/')}/{name}")

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def glob(self, pattern: str) -> list[str]:
        return sorted(self.fs.glob(f"{self.path.rstrip('/')}/{pattern}"))

    def rm(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)

    def makedirs(self) -> None:
        self.fs.makedirs(self.path, exist_ok=True)

    def read_text(self) -> str | None:
        if not self.fs.exists(self.path):
            return None
        return bytes(self.fs.cat_file(self.path)).decode()

    def write_bytes(self, data: bytes) -> None:
        """The file whole or not at all: written then renamed locally; an
        object store's put is atomic by itself."""
        if self.local:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # a name of its own: a task re-run while its first try still writes
            tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        else:
            self.fs.pipe_file(self.path, data)


def work_dir(url: str | os.PathLike[str]) -> WorkDir:
    """The work directory at ``url``: a local path (relative ones made
    absolute), ``file://...``, or any fsspec URL (``s3://bucket/prefix``
    with s3fs installed, ``gs://`` with gcsfs, ...). A protocol without its
    backend is an ``EngineError`` naming what to install."""
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]  # noqa: PLC0415

    text = os.fspath(url)
    if not text:
        raise EngineError("the Dask work directory must not be empty")
    try:
        fs, path = url_to_fs(text)
    except ImportError as e:
        raise EngineError(
            f"--dask-dir {text}: {e}; install that fsspec backend on the client and on every "
            "worker (docs/cluster.md)"
        ) from None
    except ValueError as e:  # an unknown protocol
        raise EngineError(f"--dask-dir {text}: {e}") from None
    if "://" not in text and "::" not in text:
        text = path  # a plain path: absolute, so that workers in other directories find it
    return WorkDir(text, fs, path)


def _open(url: str) -> WorkDir:
    # in a task: the URL is the client's, already checked
    return work_dir(url)


def _write_parquet(table: pa.Table, where: WorkDir) -> None:
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    pq.write_table(table, buf)
    where.write_bytes(buf.getvalue())


def _read_parquet(where: WorkDir) -> pa.Table | None:
    """Every Parquet file under ``where`` (a bucket's part of an export), or
    None when it has none."""
    files = (
        [p for p in where.fs.find(where.path) if p.endswith(".parquet")] if where.exists() else []
    )
    if not files:
        return None
    parts = []
    for p in sorted(files):
        with where.fs.open(p, "rb") as f:
            parts.append(pq.read_table(f))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _upload(local: Path, dest: WorkDir) -> None:
    """Copies a local export (DuckDB writes local files) to a remote work directory."""
    for p in sorted(local.rglob("*")):
        if p.is_file():
            dest.fs.put_file(str(p), (dest / p.relative_to(local).as_posix()).path)


def _download(files: list[str], where: WorkDir, local: Path) -> list[Path]:
    """Remote result files to local ones, for DuckDB to read."""
    out = []
    for i, f in enumerate(files):
        dst = local / f"{i:06d}-{f.rsplit('/', 1)[-1]}"
        where.fs.get_file(f, str(dst))
        out.append(dst)
    return out


# --- per-bucket state -----------------------------------------------------------
# A bucket's monitor state is the monitor's own Arrow state table (one row
# per vehicle: buffers as lists, detector scalars, alerts as JSON) in one
# Parquet file, tagged with its format and the writer's autolien version:
# any worker loads it with pyarrow, nothing is unpickled.


def save_bucket_state(where: WorkDir, monitor: Monitor) -> None:
    """Writes a bucket's monitor state to ``where`` (a file), whole or not at all."""
    table = monitor.state_table()
    meta = dict(table.schema.metadata or {})
    meta.update({_FORMAT_KEY: STATE_FORMAT.encode(), _VERSION_KEY: __version__.encode()})
    _write_parquet(table.replace_schema_metadata(meta), where)


def load_bucket_state(where: WorkDir | None, config: MonitorConfig | None = None) -> Monitor:
    """A monitor resumed from a bucket's state file, or a fresh one when
    there is none (a bucket's first run)."""
    m = Monitor(config)
    if where is None or not where.exists():
        return m
    with where.fs.open(where.path, "rb") as f:
        table = pq.read_table(f)
    meta = table.schema.metadata or {}
    fmt = meta.get(_FORMAT_KEY, b"").decode()
    if fmt != STATE_FORMAT:
        raise EngineError(f"{where.url}: not a bucket's monitor state ({fmt or 'no format tag'})")
    try:
        m.load_state(table.replace_schema_metadata(None))
    except (KeyError, ValueError, TypeError, pa.ArrowException) as e:
        wrote = meta.get(_VERSION_KEY, b"?").decode()
        raise EngineError(
            f"{where.url}: monitor state written by autolien {wrote} does not load in "
            f"{__version__} ({type(e).__name__}: {e}); delete the work directory to score "
            "the whole history again"
        ) from None
    return m


def _worker_address() -> str | None:
    try:
        from distributed import get_worker  # noqa: PLC0415

        return str(get_worker().address)
    except (ImportError, ValueError):
        return None  # not inside a worker (called directly)


def _sorted(table: pa.Table | None) -> pa.Table | None:
    if table is None:
        return None
    if "bucket" in table.column_names:
        table = table.drop_columns(["bucket"])
    # the local engine's ORDER BY ALL: readings of one second in one fixed order
    return table.sort_by([(c, "ascending") for c in table.column_names])


def monitor_bucket(
    bucket: int,
    vehicles: list[str],
    inputs: str,
    previous: str | None,
    generation: str,
    clock: datetime,
    config: MonitorConfig | None = None,
) -> dict[str, Any]:
    """The task: one bucket's new rows into its monitor state (on a worker).
    Reads ``inputs/{tracks,odometer}/bucket=K``, the state file of the
    ``previous`` generation, writes the ``generation``'s state and outputs
    (all URLs of the work directory)."""
    cpu = time.process_time()
    fleet = load_bucket_state(
        _open(previous) / f"bucket-{bucket}.parquet" if previous else None, config
    )
    src = _open(inputs)
    tracks = _sorted(_read_parquet(src / "tracks" / f"bucket={bucket}"))
    odo = _sorted(_read_parquet(src / "odometer" / f"bucket={bucket}"))
    fleet.update(tracks, odo, now=clock, vehicles=vehicles)
    gen = _open(generation)
    outputs = {
        "alerts": fleet.alerts(),  # open and closed: the state keeps them
        "monitor_features": fleet.features(),  # this run's hours (none are state)
        "monitor_rejects": fleet.rejects,  # this run's
    }
    for name, table in outputs.items():
        _write_parquet(table, gen / name / f"bucket-{bucket}.parquet")
    # the state last: a bucket with its state file has its outputs
    save_bucket_state(gen / f"bucket-{bucket}.parquet", fleet)
    return {
        "bucket": bucket,
        "rows": (tracks.num_rows if tracks is not None else 0)
        + (odo.num_rows if odo is not None else 0),
        # CPU, not wall: on a shared machine the wall time is mostly waiting
        "cpu_s": round(time.process_time() - cpu, 3),
        "worker": _worker_address(),
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
    fixes = _read_parquet(_open(inputs) / f"bucket={bucket}")
    if fixes is None:
        raise EngineError(f"{inputs}: bucket {bucket}'s fixes are missing")
    if "bucket" in fixes.column_names:
        fixes = fixes.drop_columns(["bucket"])
    # the local engine's ORDER BY vehicle_id, time, source, "offset"
    fixes = fixes.sort_by([(c, "ascending") for c in ("vehicle_id", "time", "source", "offset")])
    result = fuse(fixes)
    track = result.track.append_column(
        "row", pa.array(np.arange(result.track.num_rows, dtype=np.int64))
    )
    dest = _open(out)
    for name, table in zip(FUSE_TABLES, (track, result.parked, result.events), strict=True):
        _write_parquet(table, dest / name / f"bucket-{bucket}.parquet")
    reasons = pc.value_counts(result.track.column("reason")).to_pylist()
    return {
        "fixes": result.track.num_rows,
        "parked": result.parked.num_rows,
        "reasons": {r["values"]: r["counts"] for r in reasons},
        "events": dict(Counter(result.events.column("kind").to_pylist())),
        "cpu_s": round(time.process_time() - cpu, 3),
    }


# --- battery (the value stage's per-vehicle part) ------------------------------


def soh_bucket(bucket: int, inputs: str) -> pa.Table:
    """The task: one bucket of VINs' GB/T 32960 frames into their charge
    segments (on a worker), in the order the store gives the frames."""
    from .store import EV_ORDER  # noqa: PLC0415
    from .valuation.stage import battery_segments  # noqa: PLC0415

    ev = _read_parquet(_open(inputs) / f"bucket={bucket}")
    if ev is None:
        raise EngineError(f"{inputs}: bucket {bucket}'s EV frames are missing")
    if "bucket" in ev.column_names:
        ev = ev.drop_columns(["bucket"])
    ev = ev.sort_by([(c, "ascending") for c in EV_ORDER if c in ev.column_names])
    seg = battery_segments(ev)
    assert seg is not None  # a bucket's file holds frames
    return seg


def battery_stage(
    db: str | Path,
    client: Any,
    *,
    buckets: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> tuple[pa.Table | None, dict[str, Any]]:
    """The packs' charge segments as one Dask task per bucket of VINs, for
    ``valuation_stage(segments=...)``: the value stage's work that grows
    with the history (every EV frame is read) runs on the workers, and the
    client gets the segments, a few rows a charge. None when the store has
    no EV frames. ``buckets`` (default: one per 250 VINs) may change from
    run to run: there is no state."""
    from tqdm import tqdm  # noqa: PLC0415

    from .store import export_ev  # noqa: PLC0415

    started = time.perf_counter()
    db = Path(db)
    inputs = _work(db, work_dir) / "ev-inputs"
    with _local_copy(inputs) as local:
        vins, _ = export_ev(db, local, buckets, vehicles_per_bucket=VEHICLES_PER_BUCKET)
    if not vins:
        inputs.rm()
        return None, {"tasks": 0, "vins": 0}
    run_id = uuid.uuid4().hex[:12]
    futures = [
        client.submit(
            soh_bucket,
            b,
            inputs.url,
            key=f"autolien-soh-bucket-{b}-{run_id}",
            pure=False,
            retries=1,
        )
        for b in sorted(vins)
    ]
    bar = tqdm(total=len(futures), unit="bucket", desc="battery (dask)", disable=not progress)
    parts = []
    for fut in futures:  # in bucket order; each VIN is in one bucket
        parts.append(fut.result())
        bar.update(1)
    bar.close()
    inputs.rm()
    # VIN order, each VIN's segments in time order as its task gave them
    # (Arrow's sort is stable): the rows soh_segments gives over all frames
    seg = pa.concat_tables(parts).sort_by([("vin", "ascending")])
    return seg, {
        "tasks": len(futures),
        "vins": sum(len(v) for v in vins.values()),
        "segments": seg.num_rows,
        "seconds": round(time.perf_counter() - started, 3),
    }


# --- value: scoring the book ---------------------------------------------------


def value_bucket(
    v: Any,
    vehicles: pa.Table,
    at: datetime,
    usage: pa.Table | None,
    market: pa.Table | None,
    battery: pa.Table | None,
) -> pa.Table:
    """The task: one bucket of the book priced (on a worker)."""
    return v.value(vehicles, at, usage=usage, market=market, battery=battery)


class DaskScore:
    """``valuation_stage``'s ``score`` on a cluster: the book split by
    vehicle bucket (``blake2b-64(vehicle_id) mod buckets``, as the monitor's),
    a task per bucket, and the rows put back in the book's order. The model
    goes to the workers once (its meta and tree arrays), each task gets its
    bucket's rows and the usage and battery rows of its vehicles; the market
    index (a few rows per make and model) goes whole."""

    def __init__(self, client: Any, buckets: int | None = None) -> None:
        self.client = client
        self.buckets = buckets
        self.tasks = 0

    def __call__(
        self,
        v: Any,
        vehicles: pa.Table,
        at: datetime,
        *,
        usage: pa.Table | None,
        market: pa.Table | None,
        battery: pa.Table | None,
    ) -> pa.Table:
        import numpy as np  # noqa: PLC0415
        import pyarrow.compute as pc  # noqa: PLC0415

        from .store import vehicle_bucket  # noqa: PLC0415

        ids = vehicles.column("vehicle_id").cast(pa.string()).to_pylist()
        n = len(ids)
        if n == 0:
            return value_bucket(v, vehicles, at, usage, market, battery)
        buckets = self.buckets or max(1, -(-n // VEHICLES_PER_BUCKET))
        of = np.array([vehicle_bucket(str(k), buckets) for k in ids], np.int64)

        def rows_of(table: pa.Table | None, members: pa.Array) -> pa.Table | None:
            if table is None:
                return None
            return table.filter(pc.is_in(table.column("vehicle_id").cast(pa.string()), members))

        model = self.client.scatter(v, broadcast=True, hash=False)
        run_id = uuid.uuid4().hex[:12]
        parts = []
        for b in np.unique(of):
            where = np.flatnonzero(of == b)
            members = pa.array([ids[i] for i in where], pa.string())
            future = self.client.submit(
                value_bucket,
                model,
                vehicles.take(pa.array(where)),
                at,
                rows_of(usage, members),
                market,
                rows_of(battery, members),
                key=f"autolien-value-bucket-{b}-{run_id}",
                pure=False,
                retries=1,
            )
            parts.append((where, future))
            self.tasks += 1
        tables = []
        order = []
        for where, future in parts:
            t = future.result()
            # each bucket numbered its rows from 0: back to the book's rows
            i = t.column_names.index("row")
            tables.append(t.set_column(i, t.schema.field(i), pa.array(where, pa.int64())))
            order.append(where)
        out = pa.concat_tables(tables)
        return out.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))


# --- decode -------------------------------------------------------------------


def decode_task(pieces: list[tuple[str, bytes]]) -> tuple[list[DecodeResult], str | None, float]:
    """The task: pieces of captures through their decoders (on a worker)."""
    cpu = time.process_time()
    results = []
    for kind, piece in pieces:
        r = decode_piece(kind, piece)
        # ingest stores the rows and rejects; the messages table (every
        # frame's body, 40% of what a JT/T 808 piece decodes to) stays here
        results.append(DecodeResult(r.table, r.rejects))
    return results, _worker_address(), time.process_time() - cpu


# pieces go to a task together until they hold this many bytes: a day's
# small per-source files one task each cost more to schedule and ship than
# to decode (364 files of 150 kB: the client's CPU rose by half)
DECODE_BATCH_BYTES = 16 << 20


class DaskDecode:
    """``ingest_files``' ``decode_map`` on a cluster: file pieces (whole
    files, or 16 MiB pieces of a big JT/T 808 day file) are decoded in
    tasks of about ``batch_bytes`` each; the client still reads the files,
    de-duplicates, and appends the rows to the store in file order, one
    writer as in the local engine.

    The pieces travel inside their task, not scattered: the scheduler keeps
    them until the result is in, so a task whose worker dies is simply run
    again elsewhere (scattered data dies with its worker). At most
    ``window`` tasks are in flight (default: two per worker thread), so the
    client's memory follows the window, not the day's files."""

    def __init__(
        self, client: Any, window: int | None = None, batch_bytes: int = DECODE_BATCH_BYTES
    ) -> None:
        self.client = client
        # two tasks per worker thread: one running, one on its way
        threads = sum(client.nthreads().values()) or 1
        self.window = window if window is not None else 2 * threads
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be at least 1")
        self.batch_bytes = batch_bytes
        self.tasks = 0
        self.pieces = 0
        self.cpu_s = 0.0
        self.workers: set[str] = set()

    def __call__(
        self, items: Iterator[tuple[T, str, bytes]], /
    ) -> Iterator[tuple[T, DecodeResult]]:
        import dask  # noqa: PLC0415

        run = uuid.uuid4().hex[:8]
        flight: deque[tuple[list[T], Any]] = deque()
        source = iter(items)
        more = True
        error: BaseException | None = None

        def submit(batch: list[tuple[T, str, bytes]]) -> None:
            # a batch of 16 MiB is a large graph by design (see above)
            with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TiB"}):
                future = self.client.submit(
                    decode_task,
                    [(kind, piece) for _, kind, piece in batch],
                    key=f"autolien-decode-{run}-{self.tasks}",
                )
            self.tasks += 1
            self.pieces += len(batch)
            flight.append(([tag for tag, _, _ in batch], future))

        try:
            while True:
                batch: list[tuple[T, str, bytes]] = []
                size = 0
                while more and error is None and len(flight) < self.window:
                    try:
                        item = next(source)
                    except StopIteration:
                        more = False
                        break
                    except Exception as e:  # noqa: BLE001 - raised once what is in flight is in
                        error = e
                        break
                    batch.append(item)
                    size += len(item[2])
                    if size >= self.batch_bytes:
                        submit(batch)
                        batch, size = [], 0
                if batch:
                    submit(batch)
                if not flight:
                    break
                tags, future = flight.popleft()
                results, worker, cpu = future.result()
                future.release()
                self.cpu_s += cpu
                if worker is not None:
                    self.workers.add(worker)
                yield from zip(tags, results, strict=True)
        finally:
            if flight:
                self.client.cancel([f for _, f in flight])
        if error is not None:
            # what was read before the error is stored: ingest's rule
            raise error

    def summary(self) -> dict[str, Any]:
        return {
            "tasks": self.tasks,
            "pieces": self.pieces,
            "window": self.window,
            "workers": len(self.workers),
            "cpu_s": round(self.cpu_s, 3),
        }


def _work(db: Path, work: str | os.PathLike[str] | None) -> WorkDir:
    return work_dir(work if work is not None else db.with_name(db.name + ".dask"))


@contextmanager
def _local_copy(where: WorkDir) -> Iterator[Path]:
    """A local directory for DuckDB to write an export into: ``where``
    itself when it is local, else a temporary one uploaded to it on success."""
    if where.local:
        yield Path(where.path)
        return
    with tempfile.TemporaryDirectory(prefix="autolien-export-") as tmp:
        yield Path(tmp)
        where.rm()
        _upload(Path(tmp), where)


@contextmanager
def _local_files(where: WorkDir, names: tuple[str, ...]) -> Iterator[dict[str, list[Path]]]:
    """Each table's result files (``<where>/<name>/bucket-*.parquet``) as
    local paths for DuckDB: downloaded first when ``where`` is remote."""
    files = {n: (where / n).glob("bucket-*.parquet") for n in names}
    if where.local:
        yield {n: [Path(f) for f in fs] for n, fs in files.items()}
        return
    with tempfile.TemporaryDirectory(prefix="autolien-results-") as tmp:
        out = {}
        for n, fs in files.items():
            (Path(tmp) / n).mkdir()
            out[n] = _download(fs, where, Path(tmp) / n)
        yield out


def fuse_stage(
    db: str | Path,
    client: Any,
    *,
    buckets: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
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
    work = _work(db, work_dir)
    inputs, out = work / "fuse-inputs", work / "fuse-outputs"
    out.rm()
    with _local_copy(inputs) as local:
        vehicles, no_time = export_fixes(
            db, local, buckets, vehicles_per_bucket=VEHICLES_PER_BUCKET
        )
    run_id = uuid.uuid4().hex[:12]
    futures = [
        client.submit(
            fuse_bucket,
            b,
            inputs.url,
            out.url,
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
    with _local_files(out, FUSE_TABLES) as parts:
        put_fuse_outputs(db, parts)
    inputs.rm()
    out.rm()
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


def _read_current(state: WorkDir) -> dict[str, Any] | None:
    text = (state / "current.json").read_text()
    if text is None:
        return None
    cur = json.loads(text)
    if not isinstance(cur, dict) or not {"generation", "clock", "buckets", "counts"} <= set(cur):
        raise EngineError(f"{(state / 'current.json').url} is not a dask engine state pointer")
    if cur.get("format") != POINTER_FORMAT:
        raise EngineError(
            f"{(state / 'current.json').url}: state of an older Dask engine (pickled monitors); "
            "delete the work directory to score the whole history again"
        )
    return cur


def _make_current(state: WorkDir, pointer: dict[str, Any]) -> None:
    """Names the generation to resume from (after the store holds its outputs)."""
    (state / "current.json").write_bytes(json.dumps(pointer, sort_keys=True).encode())


def _stored_record(db: Path) -> dict[str, Any] | None:
    from .store import open_store  # noqa: PLC0415

    if not db.exists():
        return None
    with open_store(db, read_only=True) as store:
        raw = store.meta(STORE_RECORD)
    return None if raw is None else dict(json.loads(raw))


def _resume_point(db: Path, state: WorkDir) -> dict[str, Any] | None:
    """The generation to resume from. The store's record of the last run is
    the commit point: a run whose outputs the store holds but whose pointer
    was never moved (the client died between the two) is made current now;
    state the store never took is not resumed from."""
    cur = _read_current(state)
    rec = _stored_record(db)
    have = -1 if cur is None else int(cur["generation"])
    if rec is not None and int(rec["generation"]) > have:
        if (state / f"gen-{rec['generation']}").exists():
            _make_current(state, rec)
            return rec
        if cur is None:
            return None  # the work directory was deleted: score everything again
        raise EngineError(
            f"{db} holds the outputs of generation {rec['generation']}, but its state is "
            f"missing from {state.url}; delete the work directory to score the whole history "
            "again"
        )
    if cur is not None and (rec is None or int(rec["generation"]) < have):
        raise EngineError(
            f"{state.url} holds monitor state of generation {have}, but {db} holds the outputs "
            f"of {'no Dask run' if rec is None else 'generation ' + str(rec['generation'])}: "
            "another database's work directory, or a database restored from a copy; delete "
            "the work directory to score the whole history again"
        )
    return cur


def monitor_stage(
    db: str | Path,
    client: Any,
    *,
    buckets: int | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    progress: bool = False,
    config: MonitorConfig | None = None,
    pin: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """The monitor over every vehicle of the store, as one Dask task per
    bucket on ``client``'s workers; writes ``alerts``, ``monitor_features``
    and ``monitor_rejects`` as the local engine does and returns the same
    summary (plus ``buckets``, ``tasks`` and ``placement``: the worker that
    ran each bucket). Resumes from the state of the last run over ``db``
    (``work_dir``: path or fsspec URL, default ``<db>.dask``). ``pin`` puts
    a bucket's task on the worker at that address (an operator's affinity,
    or a test that moves state between workers)."""
    from tqdm import tqdm  # noqa: PLC0415

    from .store import export_monitor_inputs, put_monitor_outputs  # noqa: PLC0415

    started = time.perf_counter()
    db = Path(db)
    work = _work(db, work_dir)
    state = work / "state"
    state.makedirs()
    cur = _resume_point(db, state)
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
    # newer generations: runs killed before they became current; older: a
    # run killed before it removed its previous one
    for old in state.glob("gen-*"):
        name = old.rstrip("/").rsplit("/", 1)[-1]
        n = name.removeprefix("gen-")
        if n.isdigit() and int(n) != gen_no - 1:
            (state / name).rm()
    inputs = work / "inputs"
    with _local_copy(inputs) as local:
        export = export_monitor_inputs(
            db,
            local,
            buckets,
            vehicles_per_bucket=VEHICLES_PER_BUCKET,
            since=since,
            previous_counts=cur["counts"] if cur else None,
        )
    buckets = export.buckets
    run_id = uuid.uuid4().hex[:12]
    gen = state / f"gen-{gen_no}"
    gen.makedirs()
    # every bucket that has a vehicle now or had state before gets its task
    had = (
        {
            int(p.rsplit("/", 1)[-1].removeprefix("bucket-").removesuffix(".parquet"))
            for p in previous.glob("bucket-*.parquet")
        }
        if previous is not None
        else set()
    )
    todo = sorted(set(export.vehicles) | had)
    rows = 0
    cpu = 0.0
    placement: dict[int, str | None] = {}
    if export.clock is not None:
        futures = {
            client.submit(
                monitor_bucket,
                b,
                export.vehicles.get(b, []),
                inputs.url,
                previous.url if previous is not None else None,
                gen.url,
                export.clock,
                config,
                key=f"autolien-monitor-bucket-{b}-{run_id}",
                pure=False,
                # a worker's death is retried by the scheduler (allowed-failures);
                # this is for an error inside the task, e.g. a shared filesystem's hiccup
                retries=1,
                workers=[pin[b]] if pin and b in pin else None,
                allow_other_workers=False,
            ): b
            for b in todo
        }
        from distributed import as_completed  # noqa: PLC0415

        bar = tqdm(total=len(futures), unit="bucket", desc="monitor (dask)", disable=not progress)
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            done = fut.result()
            rows += int(done["rows"])
            cpu += float(done["cpu_s"])
            placement[futures[fut]] = done["worker"]
            bar.update(1)
        bar.close()
    pointer = {
        "format": POINTER_FORMAT,
        "generation": gen_no,
        "clock": export.clock.isoformat() if export.clock is not None else None,
        "buckets": buckets,
        "counts": export.counts,
    }
    # the commit point: the outputs and the generation they came from, in
    # one transaction of the store (features and rejects are appended to the
    # last run's, or replace them when this run started without state)
    with _local_files(gen, OUTPUT_TABLES) as parts:
        put_monitor_outputs(db, parts, fresh=cur is None, record=(STORE_RECORD, pointer))
    # only now is the new generation the one to resume from; a kill before
    # this line is rolled forward by the next run (_resume_point)
    _make_current(state, pointer)
    if previous is not None:
        previous.rm()
    inputs.rm()
    out = _summary(db, export, rows, buckets, len(todo), started)
    out["task_cpu_s"] = round(cpu, 3)
    out["placement"] = {str(b): placement[b] for b in sorted(placement)}
    return out


def _summary(
    db: Path, export: Any, rows: int, buckets: int, tasks: int, started: float
) -> dict[str, Any]:
    from .store import monitor_counts  # noqa: PLC0415

    a, hours, rejects = monitor_counts(db)
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
