"""``autolien run --engine dask`` on a LocalCluster of 2 worker processes:
the same tables and ledger root as the local engine, a worker killed in the
monitor stage, incremental runs, and the kernels releasing the GIL."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from autolien.cli import main
from autolien.dask_engine import EngineError
from autolien.pipeline import run_portfolio
from autolien.sim.portfolio import PORTFOLIO_ANOMALIES as ANOMALIES
from autolien.sim.portfolio import write_portfolio
from conftest import require_module

VEHICLES = 20
DAYS = 10
BUCKETS = 5  # several tasks per worker
# the tables the two engines must give alike, each in a total order
TABLES = {
    "alerts": "alert_id",
    "valuations": "vehicle_id, time",
    "ltv": "vehicle_id",
    "monitor_features": "vehicle_id, hour",
    "monitor_rejects": "ALL",
    "gnss_track": '"row"',
    "gnss_parked": "ALL",
    "gnss_events": "ALL",
    # decoded on the workers, appended by the client
    "locations": "ALL",
    "ev": "ALL",
    "fixes": "ALL",
    "rejects": "ALL",
    "ingested_files": "ALL",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    require_module("dask")
    distributed = require_module("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pf")
    # every 4th vehicle with an RTK receiver: the fuse stage gets several buckets
    write_portfolio(
        root, VEHICLES, DAYS, seed=7, anomaly_share=len(ANOMALIES) / VEHICLES, rtk_every=4
    )
    return root


@pytest.fixture(scope="module")
def consortium(portfolio: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo consortium (keys and genesis) for every run: the ledger's
    root is comparable only between ledgers of the same members' keys."""
    import pyarrow.parquet as pq

    from autolien.sim.consortium import demo_consortium

    path = tmp_path_factory.mktemp("consortium") / "ledger"
    # a clock after every pledge: the genesis is the first pledge, as in a run
    demo_consortium(
        path, pq.read_table(portfolio / "loan_book.parquet"), datetime(2100, 1, 1, tzinfo=UTC)
    )
    return path


def _db(where: Path, consortium: Path) -> Path:
    """A database path whose ledger (beside it) starts as the consortium's."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copytree(consortium, where / "ledger")
    return where / "x.duckdb"


@pytest.fixture(scope="module")
def local(
    portfolio: Path, consortium: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    db = _db(tmp_path_factory.mktemp("local"), consortium)
    return {"db": db, "summary": run_portfolio(portfolio, db)}


def _cell(x: Any) -> Any:
    # NaN != NaN: a missing feature compares as itself
    return "NaN" if isinstance(x, float) and math.isnan(x) else x


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            t: [tuple(map(_cell, r)) for r in con.sql(f"SELECT * FROM {t} ORDER BY {o}").fetchall()]
            for t, o in TABLES.items()
        }
    finally:
        con.close()


def _assert_same(db: Path, summary: dict[str, Any], local: dict[str, Any]) -> None:
    want, got = _tables(local["db"]), _tables(db)
    for t in TABLES:
        assert got[t] == want[t], t
    led, want_led = summary["ledger"], local["summary"]["ledger"]
    assert led["root"] == want_led["root"]
    assert led["entries"] == want_led["entries"]
    assert summary["alerts"] == local["summary"]["alerts"]


def test_the_portfolio_exercises_every_output(local: dict[str, Any]) -> None:
    # a comparison of empty tables would prove nothing
    t = _tables(local["db"])
    assert len(t["alerts"]) >= 5
    assert len({r[2] for r in t["alerts"]}) >= 4  # kinds
    assert len(t["monitor_features"]) > VEHICLES * 24 * (DAYS - 1)
    assert len(t["gnss_track"]) > 1000
    assert len(t["gnss_events"]) > 10
    assert len(t["valuations"]) == VEHICLES
    assert local["summary"]["ledger"]["entries"] > VEHICLES


def test_dask_equals_local(
    cluster: Any, portfolio: Path, consortium: Path, local: dict[str, Any], tmp_path: Path
) -> None:
    db = _db(tmp_path, consortium)
    # the work directory as an fsspec URL (file://): the workers open it themselves
    work = tmp_path / "exchange"
    summary = run_portfolio(
        portfolio,
        db,
        engine="dask",
        scheduler=cluster.scheduler_address,
        buckets=BUCKETS,
        work_dir=work.as_uri(),
    )
    assert len(list((work / "state" / "gen-1").glob("bucket-*.parquet"))) == BUCKETS
    assert not (tmp_path / "x.duckdb.dask").exists()
    assert summary["engine"]["name"] == "dask"
    assert summary["engine"]["workers"] == 2
    assert summary["monitor"]["tasks"] == BUCKETS
    # every telemetry file decoded in a task on a worker (none here)
    files = [p for d in ("telemetry", "rtk") for p in (portfolio / d).rglob("*") if p.is_file()]
    decode = summary["ingest"]["decode"]
    assert decode["pieces"] == len(files) == summary["ingest"]["files"]
    assert 1 <= decode["tasks"] <= decode["pieces"]
    assert decode["workers"] >= 1  # counted only from inside a worker process
    assert summary["battery"]["tasks"] >= 2
    assert summary["battery"]["segments"] > 0  # the battery's health is exercised
    assert summary["valuation"]["tasks"] >= 2  # the book priced in buckets
    assert summary["fuse"]["tasks"] >= 2  # the track rows are renumbered across buckets
    assert summary["fuse"]["vehicles"] == VEHICLES // 4
    _assert_same(db, summary, local)
    # the state is split into BUCKETS buckets for good: another count is refused
    with pytest.raises(EngineError, match="fixed at the first run"):
        run_portfolio(
            portfolio,
            db,
            engine="dask",
            scheduler=cluster.scheduler_address,
            buckets=3,
            work_dir=work.as_uri(),
        )


def _kill_once(marker: str, when: str, task: str = "autolien-monitor-bucket") -> Any:
    """A worker plugin: the first ``task`` (a key prefix) to reach ``when`` (executing:
    it starts; memory: it has written its files but its result has not left
    the worker), on any worker, ends that worker's process as a crash would;
    the marker file makes it once.
    Defined here, not at module level, because its base class comes from
    distributed; cloudpickle ships it to the workers by value."""
    from distributed import WorkerPlugin

    class KillOnce(WorkerPlugin):  # type: ignore[misc]
        def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:  # noqa: ARG002
            if finish != when or task not in str(key):
                return
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, f"{os.getpid()} {key}\n".encode())
            os.close(fd)
            os._exit(1)

    return KillOnce()


@pytest.mark.parametrize(
    ("task", "when"),
    [
        ("autolien-monitor-bucket", "executing"),
        ("autolien-monitor-bucket", "memory"),
        ("autolien-decode", "executing"),
    ],
)
def test_a_worker_killed_mid_run(
    cluster: Any,
    portfolio: Path,
    consortium: Path,
    local: dict[str, Any],
    tmp_path: Path,
    task: str,
    when: str,
) -> None:
    distributed = require_module("distributed")
    marker = tmp_path / "killed"
    with distributed.Client(cluster) as client:
        client.register_plugin(_kill_once(str(marker), when, task), name="autolien-kill-once")
        try:
            db = _db(tmp_path / "run", consortium)
            summary = run_portfolio(
                portfolio, db, engine="dask", scheduler=cluster.scheduler_address, buckets=BUCKETS
            )
        finally:
            client.unregister_worker_plugin("autolien-kill-once")
    assert marker.exists()  # a worker did die, inside such a task
    dead, key = marker.read_text().split()[:2]
    assert task in key
    assert int(dead) not in [w.pid for w in cluster.workers.values() if w.process is not None]
    _assert_same(db, summary, local)
    # every ledger entry once: alert ids on the ledger are distinct
    raised = _ledger_alert_ids(db.parent / "ledger")
    assert len(raised) == len(set(raised))
    assert sorted(raised) == sorted(_ledger_alert_ids(local["db"].parent / "ledger"))


def _ledger_alert_ids(ledger_dir: Path) -> list[str]:
    from autolien.ledger.assets import AssetLedger

    led = AssetLedger.open(ledger_dir, read_only=True)
    try:
        return [e["data"]["alert_id"] for e in led.entries() if e["type"] == "alert_raised"]
    finally:
        led.close()


def _state_by_pyarrow_alone(path: Path) -> dict[str, Any]:
    """A state file read in a fresh interpreter that imports pyarrow and
    nothing of autolien (nor pickle): its vehicle ids and column types."""
    import subprocess

    code = (
        "import json, sys, pyarrow.parquet as pq\n"
        "t = pq.read_table(sys.argv[1])\n"
        "assert not any(m.startswith('autolien') for m in sys.modules), 'autolien imported'\n"
        "print(json.dumps({'ids': t.column('vehicle_id').to_pylist(),"
        " 'types': sorted({str(f.type) for f in t.schema}),"
        " 'format': (t.schema.metadata or {}).get(b'autolien.format', b'').decode()}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code, str(path)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def _bucket(vid: str, n: int) -> int:
    import hashlib

    return int.from_bytes(hashlib.blake2b(vid.encode(), digest_size=8).digest(), "big") % n


def test_incremental_runs_on_dask_equal_one_run(
    cluster: Any,
    portfolio: Path,
    consortium: Path,
    local: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import autolien.dask_engine

    part = tmp_path / "pf"
    (part / "telemetry").mkdir(parents=True)
    for name in ("loan_book.parquet", "truth.parquet", "defaults.parquet", "portfolio.json"):
        shutil.copy(portfolio / name, part / name)
    shutil.copytree(portfolio / "market", part / "market")
    days = sorted({p.stem for p in (portfolio / "telemetry").iterdir()})

    def copy(stems: list[str]) -> None:
        for p in (portfolio / "telemetry").iterdir():
            if p.stem in stems:
                shutil.copy(p, part / "telemetry" / p.name)
        for p in (portfolio / "rtk").rglob("*.nmea"):
            if p.stem in stems:
                (part / "rtk" / p.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(p, part / "rtk" / p.parent.name / p.name)

    db = _db(tmp_path / "inc", consortium)
    copy(days[:-1])
    first = run_portfolio(
        part, db, engine="dask", scheduler=cluster.scheduler_address, buckets=BUCKETS
    )
    # each bucket's state: Parquet that pyarrow alone reads (no pickle, no
    # autolien), one row per vehicle of that bucket and no opaque bytes
    gen = db.with_name(db.name + ".dask") / "state" / "gen-1"
    book = pq.read_table(part / "loan_book.parquet").column("vehicle_id").to_pylist()
    seen: list[str] = []
    for b in range(BUCKETS):
        got = _state_by_pyarrow_alone(gen / f"bucket-{b}.parquet")
        assert got["format"] == "autolien.monitor-state.parquet/1"
        assert not [t for t in got["types"] if "binary" in t]
        assert got["ids"]
        assert all(_bucket(v, BUCKETS) == b for v in got["ids"])
        seen += got["ids"]
    assert sorted(seen) == sorted(book)
    # day 2: every bucket on the other worker than the one that saved its state
    placed = first["monitor"]["placement"]
    workers = sorted(cluster.scheduler_info["workers"])
    assert len(workers) == 2
    assert set(placed.values()) <= set(workers)
    other = {int(b): next(w for w in workers if w != a) for b, a in placed.items()}
    monkeypatch.setattr(
        autolien.dask_engine,
        "monitor_stage",
        functools.partial(autolien.dask_engine.monitor_stage, pin=other),
    )
    copy(days[-1:])
    second = run_portfolio(
        part, db, engine="dask", scheduler=cluster.scheduler_address, buckets=BUCKETS
    )
    assert {int(b): a for b, a in second["monitor"]["placement"].items()} == other
    assert second["monitor"]["late_rows"] == 0
    assert second["monitor"]["clock"] > first["monitor"]["clock"]
    # the second run scored only the new day's rows
    assert second["monitor"]["rows"] < first["monitor"]["rows"]
    want, got = _tables(local["db"]), _tables(db)
    for t in ("alerts", "monitor_features", "monitor_rejects", "ltv", "gnss_track", "gnss_events"):
        assert got[t] == want[t], t
    # valuations: one row per vehicle per run; the last run's equal the one run's
    last = [r for r in got["valuations"] if r[-1] == max(x[-1] for x in got["valuations"])]
    assert sorted(last) == sorted(want["valuations"])


def test_the_cli_runs_the_dask_engine(
    cluster: Any,
    portfolio: Path,
    consortium: Path,
    local: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --workers: a LocalCluster of its own, for this run
    db = _db(tmp_path, consortium)
    capsys.readouterr()
    args = ["run", str(portfolio), "--db", str(db), "--json", "--quiet", "--engine", "dask"]
    assert main([*args, "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["engine"]["workers"] == 1
    assert summary["ledger"]["root"] == local["summary"]["ledger"]["root"]
    # the local engine takes no cluster options
    assert main(["run", str(portfolio), "--db", str(db), "--workers", "2", "--quiet"]) == 2


def test_vehicle_buckets_are_stable_and_spread() -> None:
    import hashlib

    from autolien.store import vehicle_bucket

    # blake2b-64 of the id, big-endian, mod n: fixed values, not per-process ones
    for vid in ("V0001", "LSVAU2180N2183294", "粤B12345"):
        h = int.from_bytes(hashlib.blake2b(vid.encode(), digest_size=8).digest(), "big")
        assert vehicle_bucket(vid, 7) == h % 7
    counts = np.bincount([vehicle_bucket(f"V{i:05d}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 900  # about 1,000 each


@pytest.mark.parametrize("kernel", ["shannon_bits", "entropy_rolling"])
def test_the_monitor_kernels_release_the_gil(kernel: str) -> None:
    # With a switch interval far longer than the kernel, a thread that holds
    # the GIL keeps it until it blocks or ends: the main thread gets to run
    # while the kernel is still working only if the kernel let go of it.
    from autolien import _core

    rng = np.random.default_rng(0)
    if kernel == "shannon_bits":
        counts = rng.integers(0, 50, size=(150_000, 64), dtype=np.int64)

        def call() -> None:
            _core.shannon_bits(counts)
    else:
        n = 4_000_000
        x = rng.normal(size=n)
        t = np.arange(n, dtype=np.float64)
        offsets = np.array([0, n], dtype=np.int64)

        def call() -> None:
            _core.entropy_rolling(x, t, offsets, 64, 3600.0, 3, 1, True, np.empty(0))

    state = {"done": False, "seen_running": False}
    started = threading.Event()

    def work() -> None:
        started.set()
        call()
        state["done"] = True

    before = sys.getswitchinterval()
    sys.setswitchinterval(30.0)
    try:
        th = threading.Thread(target=work)
        th.start()
        started.wait()
        state["seen_running"] = not state["done"]
        th.join()
    finally:
        sys.setswitchinterval(before)
    assert state["done"]
    assert state["seen_running"]


def test_a_run_killed_before_its_results_are_stored_reruns_cleanly(
    cluster: Any,
    portfolio: Path,
    consortium: Path,
    local: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # every bucket's task has written its new state, then the client dies
    # before the results reach the store: the next run must not resume from
    # that half-made generation
    import autolien.store

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    db = _db(tmp_path, consortium)
    with monkeypatch.context() as m:
        m.setattr(autolien.store, "put_monitor_outputs", killed)
        with pytest.raises(KeyboardInterrupt):
            run_portfolio(portfolio, db, engine="dask", scheduler=cluster.scheduler_address)
    assert list((tmp_path / "x.duckdb.dask" / "state").glob("gen-1/bucket-*.parquet"))
    assert not (tmp_path / "x.duckdb.dask" / "state" / "current.json").exists()
    summary = run_portfolio(portfolio, db, engine="dask", scheduler=cluster.scheduler_address)
    _assert_same(db, summary, local)


def test_a_run_killed_after_the_store_took_its_results_is_rolled_forward(
    cluster: Any,
    portfolio: Path,
    consortium: Path,
    local: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the store holds the run's outputs (feature hours appended) but the
    # client dies before current.json names the generation: the next run
    # must resume from that generation, not append the same hours again
    import autolien.dask_engine

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    db = _db(tmp_path, consortium)
    state = tmp_path / "x.duckdb.dask" / "state"
    with monkeypatch.context() as m:
        m.setattr(autolien.dask_engine, "_make_current", killed)
        with pytest.raises(KeyboardInterrupt):
            run_portfolio(portfolio, db, engine="dask", scheduler=cluster.scheduler_address)
    assert not (state / "current.json").exists()
    summary = run_portfolio(portfolio, db, engine="dask", scheduler=cluster.scheduler_address)
    assert json.loads((state / "current.json").read_text())["generation"] == 2
    assert summary["monitor"]["rows"] == 0  # resumed at the stored clock: nothing new
    _assert_same(db, summary, local)


def test_which_generation_a_run_resumes_from(tmp_path: Path) -> None:
    # the store's record of the last run is the commit point; the pointer
    # (current.json) follows it, and state the store disagrees with is refused
    from autolien.dask_engine import _resume_point, work_dir
    from autolien.store import open_store

    db = tmp_path / "x.duckdb"
    state = work_dir(tmp_path / "x.duckdb.dask" / "state")
    state.makedirs()

    def pointer(gen: int) -> dict[str, Any]:
        return {"format": 2, "generation": gen, "clock": None, "buckets": 3, "counts": {}}

    def record(gen: int) -> None:
        with open_store(db) as s:
            s.set_meta("dask_monitor", json.dumps(pointer(gen)))

    with open_store(db):
        pass
    assert _resume_point(db, state) is None  # first run
    # the store took generation 1 but the client died before current.json
    record(1)
    (Path(state.path) / "gen-1").mkdir()
    assert _resume_point(db, state) == pointer(1)
    assert json.loads((Path(state.path) / "current.json").read_text()) == pointer(1)
    assert _resume_point(db, state) == pointer(1)  # and from then on, as usual
    # the store is ahead and the state it names is gone: appending would double hours
    record(2)
    with pytest.raises(EngineError, match="missing"):
        _resume_point(db, state)
    # the state is ahead of the store (a database restored from a copy)
    record(0)
    with pytest.raises(EngineError, match="restored"):
        _resume_point(db, state)
    # a pointer of the first Dask engine (pickled monitors)
    (Path(state.path) / "current.json").write_text(
        json.dumps({"generation": 1, "clock": None, "buckets": 3, "counts": {}})
    )
    with pytest.raises(EngineError, match="older Dask engine"):
        _resume_point(db, state)


def test_work_directories_by_path_or_fsspec_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_module("fsspec")
    from autolien.dask_engine import work_dir

    monkeypatch.chdir(tmp_path)
    # a relative path is made absolute: workers run in other directories
    w = work_dir("rel/x.dask")
    assert w.local
    assert w.url == str(tmp_path / "rel" / "x.dask") == w.path
    assert (w / "state").path == str(tmp_path / "rel" / "x.dask" / "state")
    u = work_dir((tmp_path / "y").as_uri())
    assert u.local
    assert u.path == str(tmp_path / "y")
    assert (u / "state").url == (tmp_path / "y" / "state").as_uri()
    # a remote store's URL keeps its protocol for the workers
    m = work_dir("memory://bucket/prefix/")
    assert not m.local
    assert (m / "state" / "gen-1").url == "memory://bucket/prefix/state/gen-1"
    # a protocol whose backend is missing, or unknown: a typed error, before any work
    import importlib.util

    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(EngineError, match="s3fs"):
            work_dir("s3://bucket/portfolio.dask")
    with pytest.raises(EngineError, match="nosuchproto"):
        work_dir("nosuchproto://x/y")
    # refused before the run writes anything (no cluster is started either)
    with pytest.raises(EngineError, match="nosuchproto"):
        run_portfolio(tmp_path, tmp_path / "x.duckdb", engine="dask", work_dir="nosuchproto://x")
    assert not (tmp_path / "x.duckdb").exists()


def test_a_remote_work_directory(
    portfolio: Path, consortium: Path, local: dict[str, Any], tmp_path: Path
) -> None:
    # fsspec's memory:// as the object store: the exchange is uploaded and
    # downloaded, never read by DuckDB in place, and files are put whole.
    # Memory is per process, so this cluster's workers are threads of this one.
    distributed = require_module("distributed")
    fsspec = require_module("fsspec")
    db = _db(tmp_path, consortium)
    url = f"memory://autolien-test-{os.getpid()}/x.dask"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as c:
        summary = run_portfolio(
            portfolio, db, engine="dask", scheduler=c.scheduler_address, work_dir=url
        )
    mem = fsspec.filesystem("memory")
    try:
        assert mem.glob(f"{url.removeprefix('memory:/')}/state/gen-1/bucket-*.parquet")
        assert not (tmp_path / "x.duckdb.dask").exists()
        _assert_same(db, summary, local)
    finally:
        mem.rm(url, recursive=True)


def test_workers_on_another_version_are_refused(
    cluster: Any, portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import autolien.dask_engine

    monkeypatch.setattr(autolien.dask_engine, "__version__", "0.0.0+other")
    with pytest.raises(EngineError, match="another autolien"):
        run_portfolio(
            portfolio, tmp_path / "x.duckdb", engine="dask", scheduler=cluster.scheduler_address
        )
    assert not (tmp_path / "x.duckdb").exists()  # refused before anything was written


def test_decoding_on_the_workers_stores_what_local_decoding_stores(
    cluster: Any, portfolio: Path, tmp_path: Path
) -> None:
    """Ingest with DaskDecode: day files cut into many pieces, a piece a
    task with one in flight, and batches of pieces with three in flight,
    give the same rows, rejects and manifest as decoding here; a file that
    cannot be read after them stops ingest with the local engine's error,
    the files before it stored."""
    distributed = require_module("distributed")
    from autolien.dask_engine import DaskDecode
    from autolien.telemetry.ingest import ingest_files
    from autolien.telemetry.store import Store

    files = sorted((portfolio / "telemetry").glob("*"))[:6]
    chunk = 50_000  # a day file of the portfolio is a few hundred kB
    tables = ("locations", "ev", "rejects", "ingested_files")

    def ingest(db: Path, decode: Any, paths: list[Path]) -> dict[str, Any]:
        with Store(db) as store:
            s = ingest_files(paths, store, chunk_bytes=chunk, decode_map=decode)
            return {
                "summary": s.to_json() | {"seconds": None, "mb_per_s": None, "rows_per_s": None},
                **{t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in tables},
            }

    want = ingest(tmp_path / "here.duckdb", None, files)
    assert want["summary"]["files"] == len(files)
    with distributed.Client(cluster) as client:
        for window, batch in ((1, 1), (3, 200_000)):
            dmap = DaskDecode(client, window=window, batch_bytes=batch)
            got = ingest(tmp_path / f"dask{window}.duckdb", dmap, files)
            assert dmap.pieces > len(files)  # the day files went in pieces
            # a piece a task, or pieces batched into fewer tasks
            assert (dmap.tasks == dmap.pieces) if batch == 1 else (dmap.tasks < dmap.pieces)
            assert dmap.workers  # each result came from a worker process
            for k, v in want.items():
                assert got[k] == v if k == "summary" else got[k].equals(v), (window, k)
        bad = tmp_path / "notes.txt"
        bad.write_text("hello")
        for decode in (None, DaskDecode(client, window=3, batch_bytes=1)):
            db = tmp_path / f"bad-{decode is None}.duckdb"
            with pytest.raises(ValueError, match="cannot tell the format"):
                ingest(db, decode, [*files[:2], bad, *files[2:]])
            with Store(db) as store:
                assert store.query("SELECT count(*) AS n FROM ingested_files")["n"][0].as_py() == 2


def test_charge_segments_by_vin_bucket_equal_those_of_all_frames(
    cluster: Any, local: dict[str, Any], tmp_path: Path
) -> None:
    """The value stage's battery part on the workers: the segments of every
    bucket count equal soh_segments over all the stored frames at once."""
    distributed = require_module("distributed")
    from autolien.dask_engine import battery_stage
    from autolien.store import valuation_inputs
    from autolien.valuation.adjust import soh_segments
    from autolien.valuation.stage import NOMINAL_KWH

    db = tmp_path / "x.duckdb"
    shutil.copy(local["db"], db)
    ev = valuation_inputs(db).ev
    assert ev is not None
    want = soh_segments(ev, nominal_kwh=NOMINAL_KWH)
    assert want.num_rows > 0
    assert want.column("soh").null_count < want.num_rows
    with distributed.Client(cluster) as client:
        for buckets in (1, 3, 7):
            got, info = battery_stage(db, client, buckets=buckets, work_dir=tmp_path / "w")
            assert got is not None
            vins = set(ev.column("vin").to_pylist())
            assert info["tasks"] == len({_bucket(v, buckets) for v in vins})
            assert got.equals(want), buckets


def test_the_book_priced_by_bucket_equals_one_pass(cluster: Any, local: dict[str, Any]) -> None:
    """DaskScore: the shipped model pickled to the workers, the book split
    into 1, 4 and 9 buckets, with usage and battery health (the market index
    goes whole to every task; the whole run's test covers it), gives Valuer.value's table of the whole book, row for row."""
    distributed = require_module("distributed")
    import pickle

    import pyarrow as pa

    from autolien.dask_engine import DaskScore
    from autolien.store import valuation_inputs
    from autolien.valuation.model import Valuer

    inputs = valuation_inputs(local["db"])
    v = Valuer.load()
    again = pickle.loads(pickle.dumps(v))
    assert again.meta == v.meta
    book = inputs.book
    vehicles = book.select(
        ["vehicle_id", "make", "model", "year", "fuel", "transmission", "engine_size_l"]
    ).append_column("mileage_km", pa.array(np.linspace(5e3, 2e5, book.num_rows)))
    ids = book.column("vehicle_id").to_pylist()
    usage = pa.table(
        {
            "vehicle_id": ids[::2],
            "behaviour": np.linspace(0.0, 1.0, len(ids[::2])),
            "km_per_day": np.linspace(10.0, 300.0, len(ids[::2])),
        }
    )
    battery = pa.table({"vehicle_id": ids[1::3], "soh": np.linspace(0.7, 1.0, len(ids[1::3]))})
    at = datetime(2026, 10, 10, tzinfo=UTC)
    want = v.value(vehicles, at, usage=usage, battery=battery)
    # usage and battery health both move values here
    assert set(want.column("usage_factor").to_pylist()) != {1.0}
    assert set(want.column("battery_factor").to_pylist()) != {1.0}
    assert again.value(vehicles, at, usage=usage, battery=battery).equals(want)
    with distributed.Client(cluster) as client:
        for buckets in (1, 4, 9):
            score = DaskScore(client, buckets)
            got = score(v, vehicles, at, usage=usage, market=None, battery=battery)
            assert score.tasks == len({_bucket(k, buckets) for k in ids})
            assert got.equals(want), buckets
