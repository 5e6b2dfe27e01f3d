"""The ingest stage alone on a simulated portfolio: wall time, frames/s,
peak RSS and where the time goes (decode, de-duplicate and write, manifest
and commit). Not part of ``make test``.

    python bench/bench_ingest_store.py --vehicles 1000 --days 3 [--layout parquet|duckdb]

The portfolio is simulated once into ``--work`` (kept between runs); each
measurement runs in a fresh child process, so its peak RSS
(``resource.getrusage``) is the ingest's own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any


def _measure(root: str, db: str, layout: str | None, q: Any) -> None:
    from autolien.pipeline import _inputs
    from autolien.telemetry import ingest as ing
    from autolien.telemetry.store import Store

    spent = {"decode": 0.0, "append": 0.0, "manifest+commit": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    ing.DECODERS = {k: timed("decode", f) for k, f in ing.DECODERS.items()}
    files, names, vehicles = _inputs(Path(root))
    kw = {} if layout is None else {"layout": layout}
    store = Store(db, **kw)
    store.append = timed("append", store.append)  # type: ignore[method-assign]
    store.record_files = timed("manifest+commit", store.record_files)  # type: ignore[method-assign]
    t0 = time.perf_counter()
    summary = ing.ingest_files(files, store, names=names, vehicle_ids=vehicles)
    wall = time.perf_counter() - t0
    store.close()
    rows = sum(summary.rows.values())
    q.put(
        {
            "wall_s": round(wall, 2),
            "files": summary.files,
            "bytes": summary.bytes,
            "frames": rows,
            "frames_per_s": round(rows / wall),
            "new_rows": dict(summary.new_rows),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "seconds": {k: round(v, 2) for k, v in spent.items()},
            "load_avg": [round(x, 2) for x in os.getloadavg()],
        }
    )


def measure(root: Path, db: Path, layout: str | None) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(str(root), str(db), layout, q))
    p.start()
    out: dict[str, Any] = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--layout", default=None)
    ap.add_argument("--work", default="/tmp/autolien-bench-ingest")
    ap.add_argument("--twice", action="store_true", help="ingest again into the same store")
    args = ap.parse_args()
    from autolien.sim.portfolio import write_portfolio

    root = Path(args.work) / f"p{args.vehicles}x{args.days}"
    if not (root / "telemetry").is_dir():
        write_portfolio(root, args.vehicles, args.days, seed=1)
    dbdir = Path(args.work) / f"db-{args.vehicles}x{args.days}-{args.layout}"
    shutil.rmtree(dbdir, ignore_errors=True)
    dbdir.mkdir(parents=True)
    db = dbdir / "autolien.duckdb"
    result = {"vehicles": args.vehicles, "days": args.days, "layout": args.layout}
    result["first"] = measure(root, db, args.layout)
    if args.twice:
        result["again"] = measure(root, db, args.layout)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
