"""``autolien serve``: the command line of the gateway."""

from __future__ import annotations

import argparse
from typing import Any

from .server import GatewayConfig, serve

__all__ = ["add_parser", "run"]


def _addr(text: str) -> tuple[str, int] | None:
    if text.lower() in ("", "off", "none"):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return (host or "0.0.0.0", int(port))


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="live T-Box gateway: JT/T 808 and GB/T 32960 over TCP into the store"
    )
    p.add_argument("--db", default="autolien.duckdb", help="DuckDB database file")
    p.add_argument("--spool", required=True, help="write-ahead spool directory")
    p.add_argument("--jt808", type=_addr, default=("0.0.0.0", 8808), help="HOST:PORT or off")
    p.add_argument("--gb32960", type=_addr, default=("0.0.0.0", 32960), help="HOST:PORT or off")
    p.add_argument("--loan-book", help="Parquet/CSV (terminal_id, vin) or text: who may connect")
    p.add_argument("--alerts", help="file for new/escalated alerts as JSON lines, or - (stdout)")
    p.add_argument("--max-frame", type=int, default=8192, help="bytes per frame, as sent")
    p.add_argument("--idle-timeout", type=float, default=300.0, help="seconds without data")
    p.add_argument("--max-per-peer", type=int, default=1000, help="connections per IP address")
    p.add_argument("--max-malformed", type=int, default=8, help="malformed frames before close")
    p.add_argument("--spool-mb", type=int, default=1024, help="spool disk limit (MiB)")
    p.add_argument("--segment-mb", type=int, default=64, help="spool segment size (MiB)")
    p.add_argument("--ingest-interval", type=float, default=0.5, help="seconds between batches")
    p.add_argument(
        "--slow-reader-timeout",
        type=float,
        default=30.0,
        help="seconds a peer may leave its answers unread before it is closed",
    )
    p.add_argument(
        "--subpackage-timeout",
        type=float,
        default=300.0,
        help="seconds a JT/T 808 multi-packet message may wait for its parts",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = GatewayConfig(
        db=args.db,
        spool=args.spool,
        jt808=args.jt808,
        gb32960=args.gb32960,
        loan_book=args.loan_book,
        alerts=args.alerts,
        max_frame=args.max_frame,
        idle_timeout=args.idle_timeout,
        max_per_peer=args.max_per_peer,
        max_malformed=args.max_malformed,
        spool_bytes=args.spool_mb << 20,
        segment_bytes=args.segment_mb << 20,
        ingest_interval=args.ingest_interval,
        subpackage_timeout=args.subpackage_timeout,
        slow_reader_timeout=args.slow_reader_timeout,
    )
    return serve(cfg)
