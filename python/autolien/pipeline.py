"""``autolien run``: the daily job over a portfolio directory.

Stages, each with a progress bar and a timing in the summary:

1. ingest: every telemetry file into the DuckDB store (idempotent);
2. the loan book into the store (it maps terminal numbers and VINs to
   vehicle ids);
3. fuse: RTK fixes into tracks, when the portfolio has NMEA/UBX logs;
4. monitor: graded alerts (``alerts``, ``monitor_features``);
5. valuation: every pledged vehicle at the run's clock (base model x usage x
   market x battery), LTV graded per loan (``valuations``, ``ltv``), and
   battery-degradation alerts from the GB/T 32960 charge segments (added to
   ``alerts``);
6. detection quality against ``truth.parquet`` when the portfolio has one
   (a simulated portfolio does);
7. ledger: pledges, alerts (level alert and up), defaults and M-of-N
   disposal authorisations as signed events in ``<db dir>/ledger``, each
   run's valuations and LTV alerts, the 7-day triggers, and a signed
   checkpoint;
8. the dashboard: ``report/index.html`` (``out``), self-contained.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["run_portfolio"]


def run_portfolio(
    portfolio: str | Path, db: str | Path, *, out: str | Path | None = None, progress: bool = False
) -> dict[str, Any]:
    from .monitor.cli import monitor_store  # noqa: PLC0415
    from .monitor.quality import detection_quality  # noqa: PLC0415
    from .telemetry import Store  # noqa: PLC0415
    from .telemetry.ingest import ingest_files  # noqa: PLC0415

    root = Path(portfolio)
    if not root.is_dir():
        raise ValueError(f"{root} is not a portfolio directory")
    files = sorted(p for p in (root / "telemetry").rglob("*") if p.is_file())
    # RTK logs, one directory per vehicle: rtk/<vehicle_id>/<day>.nmea
    files += (
        sorted(p for p in (root / "rtk").rglob("*.nmea") if p.is_file())
        if (root / "rtk").is_dir()
        else []
    )
    if not files:
        raise ValueError(f"{root / 'telemetry'} holds no telemetry files")
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm  # noqa: PLC0415 - only the CLI shows it

    # one bar over the stages (ingest, fuse and monitor add their own)
    bar = tqdm(total=7, desc="pipeline", unit="stage", disable=not progress)
    timings: dict[str, float] = _Timings(bar)
    summary: dict[str, Any] = {"portfolio": str(root), "db": str(db)}

    t0 = time.perf_counter()
    with Store(db) as store:
        # Files already in the store are not read again: an incremental run
        # processes only new files (a changed file needs a new name).
        seen: set[str] = set()
        for table in ("locations", "ev", "fixes", "obd", "rejects"):
            if table in store.tables():
                seen |= set(
                    store.query(f"SELECT DISTINCT source_file FROM {table}").column(0).to_pylist()
                )
        skipped = sum(1 for f in files if str(f) in seen)
        files = [f for f in files if str(f) not in seen]
        ing = ingest_files(files, store, progress=progress).to_json()
        ing["skipped_files"] = skipped
        timings["ingest"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        book_path = root / "loan_book.parquet"
        if book_path.exists():
            book = pq.read_table(book_path)
            store.con.register("_book", book)
            store.con.execute("CREATE OR REPLACE TABLE loan_book AS SELECT * FROM _book").fetchall()
            store.con.unregister("_book")
            summary["vehicles_in_book"] = book.num_rows
        # The market feed is a snapshot of a platform's adverts: replaced whole.
        market = sorted((root / "market").glob("*.parquet")) if (root / "market").is_dir() else []
        if market:
            listings = pa.concat_tables(
                [pq.read_table(m) for m in market], promote_options="default"
            )
            store.con.register("_listings", listings)
            store.con.execute(
                "CREATE OR REPLACE TABLE market_listings AS SELECT * FROM _listings"
            ).fetchall()
            store.con.unregister("_listings")
            summary["market_listings"] = listings.num_rows
        has_fixes = "fixes" in store.tables()
        if has_fixes:
            # NMEA carries no vehicle: the log's directory names it
            store.con.execute(
                "UPDATE fixes SET vehicle_id = regexp_extract(source_file, '[/\\\\]rtk[/\\\\]([^/\\\\]+)[/\\\\]', 1) "
                "WHERE vehicle_id IS NULL AND regexp_matches(source_file, '[/\\\\]rtk[/\\\\]')"
            ).fetchall()
        timings["loan book"] = time.perf_counter() - t1
    summary["ingest"] = {
        "files": ing["files"],
        "skipped_files": ing["skipped_files"],
        "bytes": ing["bytes"],
        "rows": ing["rows"],
        "rejects": ing["rejects"],
    }
    if has_fixes:
        from .gnss.cli import fuse_store  # noqa: PLC0415

        t2 = time.perf_counter()
        summary["fuse"] = fuse_store(str(db), progress=progress)
        timings["fuse"] = time.perf_counter() - t2
    else:
        summary["fuse"] = "skipped: no RTK fixes in this portfolio"
    t3 = time.perf_counter()
    mon = monitor_store(str(db), progress=progress, state=Path(db).parent / "monitor_state.pkl")
    timings["monitor"] = time.perf_counter() - t3
    summary["monitor"] = mon
    val = None
    if book_path.exists():
        from .valuation.stage import valuation_stage  # noqa: PLC0415

        t4 = time.perf_counter()
        # the fleet clock the monitor scored to: the newest row of any source
        now = datetime.fromisoformat(mon["clock"]) if mon["clock"] else datetime.now(UTC)
        # valuation adds its battery alerts to the monitor's
        val = valuation_stage(db, now)
        timings["value and LTV"] = time.perf_counter() - t4
        summary["valuation"] = {k: v for k, v in val.items() if not k.endswith("_table")}
    with Store(db, read_only=True) as store:
        alerts = store.query("SELECT * FROM alerts ORDER BY opened")
    truth_path = root / "truth.parquet"
    if truth_path.exists():
        truth = pq.read_table(truth_path)
        if truth.num_rows:
            start = min(truth.column("start").to_pylist())
            day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
            summary["detection"] = detection_quality(alerts, truth, eval_start=day0)
            for v in summary["detection"]["anomalies"].values():
                v.pop("delays_h", None)
    if val is not None:
        from .ledger.stage import ledger_stage  # noqa: PLC0415

        t4 = time.perf_counter()
        defaults_path = root / "defaults.parquet"
        summary["ledger"] = ledger_stage(
            Path(db).parent / "ledger",
            book,
            alerts,
            pq.read_table(defaults_path) if defaults_path.exists() else None,
            now,
            values=val["values_table"],
            ltv_table=val["ltv_table"],
        )
        timings["ledger"] = time.perf_counter() - t4
    from .report import build_dashboard  # noqa: PLC0415

    t5 = time.perf_counter()
    report_dir = Path(out) if out is not None else Path(db).parent / "report"
    summary["dashboard"] = build_dashboard(db, report_dir, ledger_dir=Path(db).parent / "ledger")
    timings["dashboard"] = time.perf_counter() - t5
    bar.close()
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    return summary


class _Timings(dict[str, float]):
    """Stage timings that advance the pipeline's progress bar as they land."""

    def __init__(self, bar: Any) -> None:
        super().__init__()
        self.bar = bar

    def __setitem__(self, stage: str, seconds: float) -> None:
        super().__setitem__(stage, seconds)
        self.bar.set_postfix_str(f"{stage} done", refresh=False)
        self.bar.update(1)
