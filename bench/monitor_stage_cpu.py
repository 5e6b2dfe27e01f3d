"""CPU seconds of the monitor stage alone, per vehicle-day (docs/monitor.md,
"The block kernel"). Not a pytest bench: a script.

    python bench/monitor_stage_cpu.py prep N HISTORY DIR
    python bench/monitor_stage_cpu.py run DIR {backfill,daily} [--profile OUT.prof]

``prep`` simulates N vehicles over HISTORY + 1 days (seed 1), ingests and
fuses the first HISTORY days into a store and saves a copy
(``backfill_base.duckdb``), runs the monitor on it, ingests the last day and
saves another copy (``daily_base.duckdb``). ``run`` copies one of them and
times ``monitor_store`` on the copy: CPU seconds (``time.process_time``,
DuckDB's threads included), wall seconds, the CPU inside
``Monitor.update``, per vehicle-day, the load average, and a hash of every
row of the alerts, feature hours and saved state, so that two trees can be
compared on the same store: run it once with this tree and once with the
other tree's ``python/`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def prep(n: int, history: int, base: Path) -> None:
    from autolien import pipeline
    from autolien.gnss.cli import fuse_store
    from autolien.monitor.cli import monitor_store
    from autolien.store import open_store
    from autolien.telemetry.ingest import ingest_files
    from bench_scale import _link_days, simulate

    src, work = base / "src", base / "work"
    if not src.exists():
        print(f"simulated in {simulate(src, n, history + 1, 1):.0f} s", flush=True)
    days = sorted(p.stem for p in (src / "telemetry").glob("*.jt808"))
    work.mkdir(parents=True, exist_ok=True)
    _link_days(src, work, days[:history])

    def ingest(db: Path) -> None:
        files, names, rtk = pipeline._inputs(work.resolve())
        with open_store(db) as store:
            ingest_files(files, store, names=names, vehicle_ids=rtk)
            has_fixes = "fixes" in store.tables()
        if has_fixes:
            fuse_store(str(db))

    db = work / "store.duckdb"
    ingest(db)
    _copy_store(db, base / "backfill_base.duckdb")
    monitor_store(str(db), state=True)
    _link_days(src, work, days[history:])
    ingest(db)
    _copy_store(db, base / "daily_base.duckdb")
    (base / "prep.json").write_text(json.dumps({"vehicles": n, "history_days": history}))


def _copy_store(src: Path, dst: Path) -> None:
    """A store is its database file and the monitor's state beside it."""
    shutil.copy(src, dst)
    shutil.rmtree(f"{dst}.monitor", ignore_errors=True)
    if Path(f"{src}.monitor").is_dir():
        shutil.copytree(f"{src}.monitor", f"{dst}.monitor")


def run(base: Path, which: str, profile: str | None) -> dict[str, Any]:
    import duckdb

    from autolien.monitor import stream
    from autolien.monitor.cli import monitor_store

    meta = json.loads((base / "prep.json").read_text())
    # the backfill scores the history, the daily run the day after it
    vd = meta["vehicles"] * (1 if which == "daily" else meta["history_days"])
    db = base / f"timed_{which}.duckdb"
    _copy_store(base / f"{which}_base.duckdb", db)
    inside = [0.0]
    update = stream.Monitor.update

    def timed(self: Any, *a: Any, **k: Any) -> Any:
        c0 = time.process_time()
        try:
            return update(self, *a, **k)
        finally:
            inside[0] += time.process_time() - c0

    stream.Monitor.update = timed  # type: ignore[method-assign]
    load = os.getloadavg()
    prof = cProfile.Profile() if profile else None
    c0, w0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    summary = monitor_store(str(db), state=True)
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    con = duckdb.connect(str(db), read_only=True)
    hashes = {
        t: con.execute(f"select count(*), sum(hash(x)) from {t} x").fetchone()
        for t in ("alerts", "monitor_features", "monitor_state_index")
    }
    # the saved state's file is named by its content
    hashes["state_file"] = sorted(p.name for p in Path(f"{db}.monitor").iterdir())
    con.close()
    os.remove(db)
    shutil.rmtree(f"{db}.monitor", ignore_errors=True)
    return {
        "run": which,
        "vehicle_days": vd,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "update_cpu_s": round(inside[0], 2),
        "cpu_ms_per_vehicle_day": round(1000 * cpu / vd, 3),
        "update_ms_per_vehicle_day": round(1000 * inside[0] / vd, 3),
        "alerts": summary["alerts"],
        "load": [round(x, 2) for x in load],
        "hashes": {k: [int(v[0]), str(v[1])] for k, v in hashes.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prep")
    p.add_argument("n", type=int)
    p.add_argument("history", type=int)
    p.add_argument("dir", type=Path)
    r = sub.add_parser("run")
    r.add_argument("dir", type=Path)
    r.add_argument("which", choices=("backfill", "daily"))
    r.add_argument("--profile")
    a = ap.parse_args()
    if a.cmd == "prep":
        prep(a.n, a.history, a.dir)
    else:
        print(json.dumps(run(a.dir, a.which, a.profile)))


if __name__ == "__main__":
    main()
