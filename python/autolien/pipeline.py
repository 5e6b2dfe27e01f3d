"""``autolien run``: the daily job over a portfolio directory.

Before anything is written: the portfolio's identity (``portfolio.json``,
created on the first run) is checked against the one the database records,
and an existing ledger is audited; either failing stops the run with a typed
error and the database untouched.

Stages, in order, each with a progress bar and a timing in the summary.
Every read and write of the store that this module and the valuation stage
make goes through ``autolien.store`` (the store adapter); the stages hand
each other Arrow tables.

1. ingest (``telemetry.ingest.ingest_files``): every telemetry file into the
   store, recognised by its content digest (a file already stored is not
   read again, whatever path reaches it), source names relative to the
   portfolio, and each RTK log's vehicle (``rtk/<vehicle_id>/<day>.nmea``)
   written onto its fixes here, once; committed a million rows at a time,
   with the files finished by then;
2. identity (``store.put_reference``): the loan book (it maps terminal
   numbers and VINs to vehicle ids, through ``store.mapped_sql`` alone) and
   the market feed into the store;
3. fuse (``gnss.cli.fuse_store``): RTK fixes into tracks, when the portfolio
   has NMEA/UBX logs;
4. monitor (``monitor.cli.monitor_store``): graded alerts (``alerts``,
   ``monitor_features``);
5. value (``valuation.stage.valuation_stage``): every pledged vehicle at the
   run's clock (base model x usage x market x battery), LTV graded per loan
   (``valuations``, ``ltv``), and battery-degradation alerts from the
   GB/T 32960 charge segments (added to ``alerts``); then detection quality
   against ``truth.parquet`` when the portfolio has one (a simulated
   portfolio does);
6. ledger (``ledger.stage.ledger_stage``): pledges, alerts (level alert and
   up), defaults and M-of-N disposal authorisations as signed events in the
   ledger directory, each run's material valuations and LTV alerts, the
   7-day triggers, and a signed checkpoint when the tree grew;
7. report (``report.build_dashboard``): ``report/index.html`` (``out``),
   self-contained.

With ``engine="dask"`` (``autolien run --engine dask``), stage 1's decoding
runs as Dask tasks over file pieces, stages 3 and 4 and stage 5's pricing
as Dask tasks over vehicle buckets, and stage 5's battery health (the charge
segments, from every EV frame) as tasks over VIN buckets
(``autolien.dask_engine``), giving the same tables; the rest of each stage,
and every write to the store, runs here (docs/cluster.md).

Every stage is idempotent: a re-run over the same inputs, or after the
process was killed anywhere, leaves the store and the ledger as one clean run
would (tests/test_pipeline_crash.py kills it at every stage boundary and
inside each stage). A database without a recorded portfolio (made by
``autolien ingest``, or before identities were recorded) is adopted.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from ._memory import release_memory
from .errors import AutolienError, LedgerCorruptError
from .store import (
    PortfolioMismatchError,
    check_portfolio,
    open_store,
    put_reference,
    run_outputs,
    stored_counts,
)

if TYPE_CHECKING:
    from .ledger.log import Replay

__all__ = ["IDENTITY_FILE", "PortfolioMismatchError", "portfolio_identity", "run_portfolio"]

IDENTITY_FILE = "portfolio.json"
DB_NAME = "autolien.duckdb"


def portfolio_identity(root: Path, *, write: bool = True) -> str:
    """The portfolio's id from ``<root>/portfolio.json``; on the first run it is
    derived from the loan book's content (else the telemetry file names) and
    written there (unless ``write`` is false), so a copy of the directory
    carries it and any path to the directory reads the same one."""
    path = root / IDENTITY_FILE
    if path.exists():
        try:
            pid = json.loads(path.read_text())["portfolio_id"]
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} does not hold a portfolio_id: {e}") from None
        if not isinstance(pid, str) or not pid:
            raise ValueError(f"{path}: portfolio_id must be a non-empty string")
        return pid
    h = hashlib.sha256()
    book = root / "loan_book.parquet"
    if book.exists():
        with open(book, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    else:
        for p in sorted((root / "telemetry").rglob("*")):
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
    pid = f"pf-{h.hexdigest()[:32]}"
    if write:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"portfolio_id": pid}) + "\n")
        tmp.replace(path)
    return pid


def _check_ledger(ledger_dir: Path) -> Replay | None:
    """Audits the ledger before anything is written; returns the audit's
    replay for the ledger and report stages (None without a ledger)."""
    from .ledger import audit  # noqa: PLC0415
    from .ledger.assets import CONFIG  # noqa: PLC0415
    from .ledger.log import Replay  # noqa: PLC0415

    if not (ledger_dir / CONFIG).exists():
        if ledger_dir.is_dir() and any(ledger_dir.iterdir()):
            raise LedgerCorruptError(
                f"{ledger_dir} holds files but no {CONFIG}", path=str(ledger_dir)
            )
        return None
    replay = Replay()
    try:
        report = audit(ledger_dir, replay=replay)
    except (ValueError, OSError, KeyError, TypeError, AutolienError) as e:
        raise LedgerCorruptError(
            f"the ledger at {ledger_dir} cannot be audited: {type(e).__name__}: {e}",
            path=str(ledger_dir),
        ) from None
    if not report.ok:
        bad = report.first_bad or {}
        raise LedgerCorruptError(
            f"the ledger at {ledger_dir} fails its audit: {bad.get('reason', 'no reason given')}"
            + (
                f" (entry {bad['index']}, byte {bad['offset']})"
                if bad.get("offset") is not None
                else ""
            )
            + "; nothing was written. Run `autolien ledger audit` on it",
            path=str(ledger_dir),
            offset=bad.get("offset"),
            index=bad.get("index"),
        )
    return replay


def _inputs(root: Path) -> tuple[list[Path], list[str], list[str | None]]:
    """Telemetry files, their names relative to the portfolio, and the vehicle
    an RTK log belongs to (its directory under ``rtk/``)."""
    files = sorted(p for p in (root / "telemetry").rglob("*") if p.is_file())
    files += sorted(p for p in (root / "rtk").rglob("*.nmea") if p.is_file())
    names = [p.relative_to(root).as_posix() for p in files]
    vehicles = [
        n.split("/")[1] if n.startswith("rtk/") and n.count("/") >= 2 else None for n in names
    ]
    return files, names, vehicles


def _reference(root: Path) -> tuple[pa.Table | None, pa.Table | None]:
    """The loan book and the market feed's adverts (all its files), or None."""
    book_path = root / "loan_book.parquet"
    book = pq.read_table(book_path) if book_path.exists() else None
    market = sorted((root / "market").glob("*.parquet")) if (root / "market").is_dir() else []
    listings = (
        pa.concat_tables([pq.read_table(m) for m in market], promote_options="default")
        if market
        else None
    )
    return book, listings


def run_portfolio(
    portfolio: str | Path,
    db: str | Path | None = None,
    *,
    out: str | Path | None = None,
    ledger: str | Path | None = None,
    progress: bool = False,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    buckets: int | None = None,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Runs the job; ``db`` defaults to ``<portfolio>/autolien.duckdb``, the
    ledger to ``ledger/`` and the dashboard to ``report/`` beside the
    database. ``engine="dask"`` runs the fuse and monitor stages as Dask
    tasks over vehicle buckets (``autolien.dask_engine``) on the cluster at ``scheduler``, or on
    a local one of ``workers`` processes, its per-bucket inputs and state in
    ``work_dir`` (default ``<db>.dask``); the results equal the local
    engine's."""
    if engine not in ("local", "dask"):
        raise ValueError(f"engine must be 'local' or 'dask', not {engine!r}")
    if engine == "local" and (scheduler, workers, buckets, work_dir) != (None,) * 4:
        raise ValueError("scheduler, workers, buckets and work_dir go with engine='dask'")
    if engine == "dask":
        from .dask_engine import (  # noqa: PLC0415
            DaskSettings,
            announce,
            check_workers,
            dask_client,
            describe,
        )

        dask = DaskSettings(scheduler, workers, buckets, str(work_dir) if work_dir else None)
        with dask_client(dask) as client:
            if progress:
                announce(client)
            check_workers(client)
            return _run(portfolio, db, out, ledger, progress, (client, dask), describe(client))
    return _run(portfolio, db, out, ledger, progress, None, {"name": "local"})


def _run(
    portfolio: str | Path,
    db: str | Path | None,
    out: str | Path | None,
    ledger: str | Path | None,
    progress: bool,
    cluster: tuple[Any, Any] | None,
    engine: dict[str, Any],
) -> dict[str, Any]:
    from .monitor.cli import monitor_store  # noqa: PLC0415
    from .monitor.quality import detection_quality  # noqa: PLC0415
    from .telemetry.ingest import ingest_files  # noqa: PLC0415

    # identity never depends on how the path is spelled (".", a symlink, ...)
    root = Path(portfolio).resolve()
    if not root.is_dir():
        raise ValueError(f"{portfolio} is not a portfolio directory")
    files, names, rtk_vehicles = _inputs(root)
    if not files:
        raise ValueError(f"{root / 'telemetry'} holds no telemetry files")
    db = Path(db) if db is not None else root / DB_NAME
    ledger_dir = Path(ledger) if ledger is not None else db.parent / "ledger"
    pid = portfolio_identity(root, write=False)
    # checks first: nothing is written (store, ledger, portfolio.json) before they pass
    check_portfolio(db, pid)
    t_audit = time.perf_counter()
    # the audit's replay goes on to the ledger stage, whose final state goes
    # on to the dashboard: the ledger is replayed once a run, not three times
    ledger_replay = _check_ledger(ledger_dir)
    audit_s = time.perf_counter() - t_audit
    portfolio_identity(root)
    db.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI shows it

    # one bar over the stages (ingest, fuse and monitor add their own)
    bar = tqdm(total=8, desc="pipeline", unit="stage", disable=not progress)
    timings: dict[str, float] = _Timings(bar)
    # before the store opens: it reads the whole ledger, so it grows with its age
    timings["ledger audit"] = audit_s
    summary: dict[str, Any] = {"portfolio": str(root), "portfolio_id": pid, "db": str(db)}
    summary["engine"] = engine

    t0 = time.perf_counter()
    with open_store(db) as store:
        store.set_meta("portfolio_id", pid)
        decode: Any = None  # the Dask engine's DaskDecode
        if cluster is not None:
            from .dask_engine import DaskDecode  # noqa: PLC0415

            decode = DaskDecode(cluster[0])
        ing = ingest_files(
            files,
            store,
            progress=progress,
            names=names,
            vehicle_ids=rtk_vehicles,
            decode_map=decode,
        ).to_json()
        timings["ingest"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        book, listings = _reference(root)
        put_reference(store, book, listings)
        if book is not None:
            summary["vehicles_in_book"] = book.num_rows
        if listings is not None:
            summary["market_listings"] = listings.num_rows
        has_fixes = "fixes" in store.tables()
        stored = stored_counts(store)
        timings["loan book"] = time.perf_counter() - t1
    summary["ingest"] = {
        "files": ing["files"],
        "skipped_files": ing["skipped_files"],
        "bytes": ing["bytes"],
        # decoded by this run, new to the store, and what the store now holds
        "rows": ing["rows"],
        "new_rows": ing["new_rows"],
        "duplicate_rows": {k: v for k, v in ing["duplicate_rows"].items() if v},
        "stored_rows": stored,
        "rejects": ing["rejects"],
    }
    if decode is not None:
        summary["ingest"]["decode"] = decode.summary()
    if has_fixes:
        from .gnss.cli import fuse_store  # noqa: PLC0415

        t2 = time.perf_counter()
        if cluster is not None:
            from .dask_engine import fuse_stage  # noqa: PLC0415

            client, dask = cluster
            summary["fuse"] = fuse_stage(
                db, client, buckets=dask.buckets, work_dir=dask.work_dir, progress=progress
            )
        else:
            summary["fuse"] = fuse_store(str(db), progress=progress)
        timings["fuse"] = time.perf_counter() - t2
    else:
        summary["fuse"] = "skipped: no RTK fixes in this portfolio"
    t3 = time.perf_counter()
    if cluster is not None:
        from .dask_engine import monitor_stage  # noqa: PLC0415

        client, dask = cluster
        mon = monitor_stage(
            db, client, buckets=dask.buckets, work_dir=dask.work_dir, progress=progress
        )
    else:
        mon = monitor_store(str(db), progress=progress, state=True)
    timings["monitor"] = time.perf_counter() - t3
    summary["monitor"] = mon
    val = None
    if book is not None:
        from .valuation.stage import valuation_stage  # noqa: PLC0415

        t4 = time.perf_counter()
        # the fleet clock the monitor scored to: the newest row of any source
        now = datetime.fromisoformat(mon["clock"]) if mon["clock"] else datetime.now(UTC)
        # valuation adds its battery alerts to the monitor's
        segments = score = None
        if cluster is not None:
            from .dask_engine import DaskScore, battery_stage  # noqa: PLC0415

            client, dask = cluster
            segments, summary["battery"] = battery_stage(
                db, client, buckets=dask.buckets, work_dir=dask.work_dir, progress=progress
            )
            score = DaskScore(client, dask.buckets)
        val = valuation_stage(db, now, segments=segments, score=score)
        timings["value and LTV"] = time.perf_counter() - t4
        summary["valuation"] = {k: v for k, v in val.items() if not k.endswith("_table")}
        if score is not None:
            summary["valuation"]["tasks"] = score.tasks
    alerts, span = run_outputs(db)
    summary["alerts"] = _alert_counts(alerts)
    history_h = (span["last"] - span["first"]).total_seconds() / 3600 + 1 if span["first"] else 0.0
    summary["history_days"] = round(history_h / 24, 1)
    truth_path = root / "truth.parquet"
    if truth_path.exists():
        truth = pq.read_table(truth_path)
        if truth.num_rows:
            start = min(truth.column("start").to_pylist())
            day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
            summary["detection"] = detection_quality(
                alerts, truth, eval_start=day0, history_h=history_h
            )
            for v in summary["detection"]["anomalies"].values():
                v.pop("delays_h", None)
    if val is not None:
        from .ledger.stage import ledger_stage  # noqa: PLC0415
        from .sim.consortium import demo_consortium  # noqa: PLC0415

        t4 = time.perf_counter()
        defaults_path = root / "defaults.parquet"
        summary["ledger"] = ledger_stage(
            ledger_dir,
            book,
            alerts,
            pq.read_table(defaults_path) if defaults_path.exists() else None,
            now,
            members=demo_consortium(ledger_dir, book, now),
            values=val["values_table"],
            ltv_table=val["ltv_table"],
            replay=ledger_replay,
        )
        timings["ledger"] = time.perf_counter() - t4
    from .report import build_dashboard  # noqa: PLC0415

    t5 = time.perf_counter()
    report_dir = Path(out) if out is not None else db.parent / "report"
    summary["dashboard"] = build_dashboard(
        db,
        report_dir,
        ledger_dir=ledger_dir,
        detection=summary.get("detection"),
        history_days=summary["history_days"],
        ledger_replay=ledger_replay,
    )
    timings["dashboard"] = time.perf_counter() - t5
    bar.close()
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    return summary


def _alert_counts(alerts: pa.Table) -> dict[str, Any]:
    """The alerts table as the summary and the dashboard both count it: every
    alert of every source (the monitor's and the valuation's battery alerts)."""
    rows = alerts.select(["kind", "level", "closed"]).to_pylist()
    by_level: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for r in rows:
        by_level[r["level"]] = by_level.get(r["level"], 0) + 1
        by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
    return {
        "total": len(rows),
        "open": sum(1 for r in rows if r["closed"] is None),
        "by_level": by_level,
        "by_kind": dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))),
        "battery": by_kind.get("battery_degradation", 0),
    }


class _Timings(dict[str, float]):
    """Stage timings that advance the pipeline's progress bar as they land."""

    def __init__(self, bar: Any) -> None:
        super().__init__()
        self.bar = bar

    def __setitem__(self, stage: str, seconds: float) -> None:
        super().__setitem__(stage, seconds)
        # what the stage freed goes back before the next one allocates
        release_memory()
        self.bar.set_postfix_str(f"{stage} done", refresh=False)
        self.bar.update(1)
