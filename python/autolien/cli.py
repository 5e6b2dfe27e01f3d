"""The ``autolien`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__, _core
from .errors import LedgerCorruptError
from .gateway import cli as gateway_cli
from .ledger import cli as ledger_cli
from .valuation import cli as valuation_cli


def _info(_: argparse.Namespace) -> int:
    print(
        json.dumps(
            {
                "version": __version__,
                "sha256_backend": _core.sha256_backend(),
                "sha_ni": _core.sha256_shani_supported(),
                "threads": _core.get_num_threads(),
            },
            indent=2,
        )
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from .telemetry import Store  # noqa: PLC0415 - keeps `autolien info` light
    from .telemetry.ingest import ingest_files  # noqa: PLC0415

    with Store(args.db) as store:
        summary = ingest_files(
            args.files, store, fmt=args.format, progress=not args.quiet, rehash=args.rehash
        )
    report = summary.to_json()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"ingested {report['files']} file(s), {report['bytes']:,} bytes in {report['seconds']} s "
        f"({report['mb_per_s']} MB/s, {report['rows_per_s']:,} rows/s) into {args.db}"
    )
    if report["skipped_files"]:
        print(
            f"  {report['skipped_files']:,} file(s) skipped: their content is in the store already"
        )
    for table, n in sorted(report["rows"].items()):
        dup = report["duplicate_rows"].get(table, 0)
        print(
            f"  {table:10s} {n:>10,} rows decoded ({report['new_rows'].get(table, 0):,} new"
            + (f", {dup:,} duplicates of stored readings" if dup else "")
            + ")"
        )
    if report["rejects"]:
        print("  rejects by reason:")
        for reason, n in sorted(report["rejects"].items(), key=lambda kv: -kv[1]):
            print(f"    {reason:32s} {n:>8,}")
    else:
        print("  no rejects")
    return 0


def _fuse(args: argparse.Namespace) -> int:
    from .gnss.cli import fuse_store  # noqa: PLC0415

    report = fuse_store(
        args.db,
        smooth=args.smooth,
        batch=args.batch,
        progress=not args.quiet,
        plot=args.plot,
        plot_vehicle=args.vehicle,
    )
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rate = report["fixes"] / report["seconds"] if report["seconds"] else 0.0
    print(
        f"fused {report['fixes']:,} fixes of {report['vehicles']:,} vehicle(s) in {report['seconds']} s "
        f"({rate:,.0f} fixes/s); tables {', '.join(report['tables'])} in {args.db}"
    )
    print(
        "  fixes by reason: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(report["reasons"].items()))
    )
    if report["skipped_without_time"]:
        print(f"  skipped (no time): {report['skipped_without_time']:,}")
    print(f"  parked episodes: {report['parked_episodes']:,}")
    events = report["events"]
    print("  events: " + (", ".join(f"{k} {v:,}" for k, v in sorted(events.items())) or "none"))
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from .monitor.cli import monitor_store  # noqa: PLC0415

    report = monitor_store(args.db, batch=args.batch, progress=not args.quiet, workers=args.workers)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"scored {report['vehicles']:,} vehicle(s), {report['hours_scored']:,} vehicle-hours from "
        f"{report['rows']:,} rows in {report['seconds']} s; tables {', '.join(report['tables'])} in {args.db}"
    )
    order = ("emergency", "alert", "warning")
    levels = ", ".join(f"{k} {report['by_level'][k]:,}" for k in order if k in report["by_level"])
    print(
        f"  alerts: {report['alerts']:,} ({report['open']:,} open)"
        + (f": {levels}" if levels else "")
    )
    for kind, n in sorted(report["by_kind"].items(), key=lambda kv: -kv[1]):
        print(f"    {kind:20s} {n:>6,}")
    if report["rejects"]:
        print(f"  rows set aside: {report['rejects']:,} (see monitor_rejects)")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .sim.portfolio import write_portfolio  # noqa: PLC0415

    s = write_portfolio(
        args.out,
        args.vehicles,
        args.days,
        seed=args.seed,
        market=args.market,
        anomaly_share=args.anomaly_share,
        progress=not args.quiet,
    )
    print(
        f"simulated {s.vehicles:,} vehicles x {s.days} days: {s.frames:,} frames, {s.bytes / 1e6:,.1f} MB "
        f"in {args.out}; injected anomalies: {', '.join(f'{k} {v}' for k, v in sorted(s.anomalies.items()))}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from .pipeline import run_portfolio  # noqa: PLC0415

    report = run_portfolio(
        args.portfolio,
        args.db,
        out=args.out,
        ledger=args.ledger,
        progress=not args.quiet,
        engine=args.engine,
        scheduler=args.scheduler,
        workers=args.workers,
        buckets=args.buckets,
        work_dir=args.dask_dir,
    )
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    ing = report["ingest"]
    mon = report["monitor"]
    print(f"\nportfolio {report['portfolio']} ({report['portfolio_id']}) -> {report['db']}")
    print(
        f"  vehicles {report.get('vehicles_in_book', mon['vehicles']):,}; files {ing['files']:,} read, "
        f"{ing['skipped_files']:,} already stored; {ing['bytes'] / 1e6:,.1f} MB"
    )
    tables = sorted(set(ing["rows"]) | set(ing["stored_rows"]))
    print(
        "  rows decoded (new to the store) / stored: "
        + ", ".join(
            f"{k} {ing['rows'].get(k, 0):,} ({ing['new_rows'].get(k, 0):,}) / "
            f"{ing['stored_rows'].get(k, 0):,}"
            for k in tables
        )
    )
    if ing["duplicate_rows"]:
        print(
            "  duplicates not stored again (same reading: terminal, time and serial): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(ing["duplicate_rows"].items()))
        )
    rejects = sum(ing["rejects"].values())
    print(
        f"  rejects {rejects:,}"
        + (": " + ", ".join(f"{k} {v}" for k, v in ing["rejects"].items()) if rejects else "")
    )
    print(f"  fuse: {report['fuse'] if isinstance(report['fuse'], str) else 'done'}")
    order = ("emergency", "alert", "warning")
    al = report["alerts"]
    print(
        f"  alerts {al['total']:,} ({al['open']:,} open): "
        + ", ".join(f"{k} {al['by_level'].get(k, 0):,}" for k in order)
        + f"; {al['total'] - al['battery']:,} from the monitor, {al['battery']:,} battery"
        + f" (history {report['history_days']:g} d)"
    )
    det = report.get("detection")
    if det:
        print("  detection against the injected truth (recall over injected anomalies):")
        print(
            f"    {'anomaly':14s} {'kind':18s} {'n':>3s} {'recall':>7s} {'level':>6s} {'median delay':>13s}"
        )
        for name, v in sorted(det["anomalies"].items()):
            if v["recall"] is None:
                print(f"    {name:14s} {v['kind']:18s} {v['n']:3d}  {v['note']}")
                continue
            delay = "-" if v["median_delay_h"] is None else f"{v['median_delay_h']:.1f} h"
            print(
                f"    {name:14s} {v['kind']:18s} {v['n']:3d} {v['recall']:7.0%} {v['level_reached']:6.0%} {delay:>13s}"
            )
        print("    precision over alerts (true alerts / alerts; injected anomalies they cover):")
        for kind, v in sorted(det["alert_kinds"].items()):
            p = "   n/a" if v["precision"] is None else f"{v['precision']:6.0%}"
            print(
                f"    precision {kind:20s} {p} ({v['true']} true, {v['false']} false, "
                f"{v['related']} related of {v['alerts']} alerts; {v['anomalies']} anomalies)"
            )
        print(f"    emergencies on normal vehicles: {det['normal_emergencies']}")
    val = report.get("valuation")
    if val:
        print(
            f"  valuation ({val['model_version']}): {val['valued']:,} of {val['vehicles']:,} valued, "
            f"{val['flagged']:,} flagged, {val['errors']:,} errors; portfolio value "
            f"{val['portfolio_value']:,.0f} {val['currency']}"
        )
        lt = val["ltv"]
        if isinstance(lt, dict):
            print(
                f"  LTV median {lt['median']:.0%}, p90 {lt['p90']:.0%}; over 70%: {lt['warning']:,} warning, "
                f"over 85%: {lt['alert']:,} alert, over 100%: {lt['emergency']:,} emergency"
            )
        else:
            print(f"  LTV {lt}")
        mk = val.get("market")
        if mk:
            print(
                f"  market factor over {mk['groups']:,} make/model/age groups: median "
                f"{mk['factor_median']:.3f}, lowest {mk['factor_min']:.3f}"
            )
        ba = val.get("battery_alerts")
        if ba and any(ba.values()):
            print("  battery: " + ", ".join(f"{n} {lv}" for lv, n in ba.items() if n))
    led = report.get("ledger")
    if led:
        print(
            f"  ledger: {led['entries']:,} entries (root {led['root'][:16]}...), {led['pledges']:,} pledges, "
            f"{led['alerts_raised']:,} alerts raised / {led['alerts_closed']:,} closed, {led['defaults']:,} defaults, "
            f"{led['disposals']:,} disposals ({led['threshold']}), {led['judicial_triggers']:,} 7-day triggers, "
            f"{led['valuations']:,} valuations, {led['ltv_alerts']:,} LTV alerts; "
            f"signed checkpoint {led['checkpoint']}"
        )
    dash = report.get("dashboard")
    if dash:
        print(
            f"  dashboard: {dash['path']} ({dash['vehicle_pages']} vehicle pages, {dash['figures']} charts; "
            "open it in a browser, no server needed)"
        )
    print("  stage timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["timings_s"].items()))
    eng = report.get("engine", {})
    if eng.get("name") == "dask":
        mon = report["monitor"]
        dec = report["ingest"].get("decode", {})
        print(
            f"  engine: dask, {eng['workers']} workers at {eng['scheduler']}; decoding in "
            f"{dec.get('tasks', 0)} tasks; monitor in {mon['tasks']} tasks over "
            f"{mon['buckets']} buckets; dashboard {eng['dashboard']}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autolien`` script."""
    parser = argparse.ArgumentParser(prog="autolien", description=__doc__)
    parser.add_argument("--version", action="version", version=f"autolien {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="build and machine facts as JSON")
    p_info.set_defaults(func=_info)
    p_ing = sub.add_parser("ingest", help="decode T-Box captures into the DuckDB store")
    p_ing.add_argument("files", nargs="+", help="capture files (format detected per file)")
    p_ing.add_argument("--db", default="autolien.duckdb", help="DuckDB database file")
    p_ing.add_argument(
        "--format", choices=["jt808", "gb32960", "nmea", "obd"], help="skip detection"
    )
    p_ing.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_ing.add_argument("--quiet", action="store_true", help="no progress bar")
    p_ing.add_argument(
        "--rehash",
        action="store_true",
        help="hash every file, also those whose path, size and times match an earlier run's",
    )
    p_ing.set_defaults(func=_ingest)
    p_fuse = sub.add_parser(
        "fuse", help="fuse the store's GNSS fixes: tracks, parked episodes, events"
    )
    p_fuse.add_argument(
        "--db", default="autolien.duckdb", help="DuckDB database file (from `ingest`)"
    )
    p_fuse.add_argument("--smooth", action="store_true", help="RTS-smooth the tracks (offline)")
    p_fuse.add_argument("--batch", type=int, default=500, help="vehicles per batch")
    p_fuse.add_argument("--plot", metavar="SVG", help="write an SVG of one vehicle's track")
    p_fuse.add_argument("--vehicle", help="the vehicle for --plot (default: the first)")
    p_fuse.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_fuse.add_argument("--quiet", action="store_true", help="no progress bar")
    p_fuse.set_defaults(func=_fuse)
    p_mon = sub.add_parser(
        "monitor", help="score the store's vehicles: graded alerts with evidence"
    )
    p_mon.add_argument(
        "--db", default="autolien.duckdb", help="DuckDB database file (from `ingest`/`fuse`)"
    )
    p_mon.add_argument("--batch", type=int, default=200, help="vehicles per batch")
    p_mon.add_argument(
        "--workers",
        type=int,
        help="processes that score the batches (default: the usable cores, at most 4, or "
        "AUTOLIEN_MONITOR_WORKERS; a store of few batches is scored in this process)",
    )
    p_mon.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_mon.add_argument("--quiet", action="store_true", help="no progress bar")
    p_mon.set_defaults(func=_monitor)
    p_sim = sub.add_parser(
        "simulate", help="write a simulated portfolio: loan book, T-Box logs, ground truth"
    )
    p_sim.add_argument("out", help="portfolio directory to write")
    p_sim.add_argument("--vehicles", type=int, default=200)
    p_sim.add_argument("--days", type=int, default=14)
    p_sim.add_argument("--seed", type=int, default=0)
    p_sim.add_argument(
        "--anomaly-share",
        type=float,
        default=0.1,
        help="share of vehicles with one injected anomaly (kinds in turn)",
    )
    p_sim.add_argument(
        "--market",
        choices=["uk", "cn"],
        default="uk",
        help="vehicle catalogue and currency (uk: the shipped valuation model's market)",
    )
    p_sim.add_argument("--quiet", action="store_true", help="no progress bar")
    p_sim.set_defaults(func=_simulate)
    p_run = sub.add_parser(
        "run",
        help="the daily job over a portfolio: ingest, fuse, monitor, value, ledger, dashboard",
        description="Exit status 0 done; 1 the ledger failed its audit (nothing written); "
        "2 bad input (one JSON line on stderr).",
    )
    p_run.add_argument("portfolio", help="portfolio directory (telemetry/, loan_book.parquet)")
    p_run.add_argument(
        "--db",
        help="DuckDB database file (default: autolien.duckdb in the portfolio directory); "
        "a database that belongs to another portfolio is refused",
    )
    p_run.add_argument("--ledger", help="ledger directory (default: ledger/ beside the database)")
    p_run.add_argument("--out", help="dashboard directory (default: report/ beside the database)")
    p_run.add_argument("--json", action="store_true", help="print the summary as JSON")
    p_run.add_argument("--quiet", action="store_true", help="no progress bars")
    p_run.add_argument(
        "--engine",
        choices=("local", "dask"),
        default="local",
        help="local: this process; dask: decoding, fuse, monitor, battery health and pricing "
        "as tasks on a Dask cluster (needs autolien[dask]; docs/cluster.md)",
    )
    where = p_run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="--engine dask: the Dask scheduler's address")
    where.add_argument(
        "--workers",
        type=int,
        help="--engine dask: worker processes of a local cluster (default: one per core)",
    )
    p_run.add_argument(
        "--buckets",
        type=int,
        help="--engine dask: vehicle buckets (fixed at a database's first run; default: one "
        "per 250 vehicles)",
    )
    p_run.add_argument(
        "--dask-dir",
        help="--engine dask: the per-bucket inputs and monitor state: a path every worker "
        "sees, or an fsspec URL (s3://, gs://, file://; its fsspec backend installed on the "
        "client and every worker) (default: <db>.dask beside the database)",
    )
    p_run.set_defaults(func=_run)
    gateway_cli.add_parser(sub)
    ledger_cli.add_parser(sub)
    valuation_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "ledger":
        return ledger_cli.run(args)
    try:
        result: int = (valuation_cli.run if args.command == "valuation" else args.func)(args)
    except LedgerCorruptError as e:
        # the audit found a problem: status 1, as `autolien ledger audit` gives it
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        # every command's bad input: one JSON line on stderr, exit status 2
        print(json.dumps({"error": type(e).__name__, "message": str(e)}), file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
