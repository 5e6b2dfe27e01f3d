"""``make bench-scale``: the daily job at fleet scale (issue 17).

For each fleet size N it simulates N vehicles over HISTORY + 1 days, runs
``autolien run`` on the first HISTORY days (the backfill), then adds the last
day's files and runs it again (the daily incremental run). Each run is its
own process, so its peak RSS is its own. Per run it records the wall time of
each stage (the run's ``timings_s``), the total, peak RSS and
vehicle-days/s, and the machine's load average beside them: these machines
are shared, and a figure means little without the load it was taken under.

The cost-growth exponent is the slope of log(seconds) on log(vehicle-days)
between the smallest and the largest N (1.0: cost per vehicle-day flat).

Not part of ``make test``: N = 1,000 takes minutes, N = 10,000 tens of them.

    python bench/bench_scale.py --sizes 1000 10000 [--history 14] [--json out.json]
        [--write-doc docs/pipeline.md --label after] [--profile 10000]

``--prune-sources`` deletes each simulated file as soon as the ingest's
manifest names it (just before that commit), so that the disk must hold the
store and what is not yet ingested, not the store and all 15 days of files:
100,000 vehicles are about 19 GB of files and a 23 GB store. Deleting a file
costs the run milliseconds; the figures are the same.
``--backfill-memory-limit 6GB`` bounds DuckDB in the backfill run only (its
default is 80% of the machine's memory, beside the decoders' own); the daily
run keeps each stage's own limits.

``--snapshot DIR`` keeps each size's simulated portfolio and backfilled
working directory in DIR (reused when it is there) and times the daily run
``--repeats`` times, each on a fresh copy of that directory: the daily
figures of two trees can then be compared on the same backfilled store,
and the spread of the repeats says how far one run's figure can be trusted.
The table's daily row is the fastest repeat; every repeat's wall time is
listed under it.

    python bench/bench_scale.py --sizes 3000 --snapshot /tmp/snap --repeats 3
        [--run-engine dask --run-workers 2]

With ``--run-engine dask`` both runs go through ``autolien run --engine
dask`` on a local cluster of ``--run-workers`` processes (its own
snapshot: the engines keep their monitor state apart). Worker processes
(the monitor's, or the cluster's) are sampled every 0.25 s from /proc: the
largest worker's RSS, and the largest sum of the run's and its workers'
RSS (their own ru_maxrss would start at the parent's RSS when they were
spawned, which Linux keeps from before the exec).

``--engine dask`` measures the Dask engine's monitor stage instead (the stage
it distributes; ingest, valuation, ledger and dashboard stay on the client):
for each N, the portfolio is simulated and run once locally (which also
gives the local monitor's time), then the monitor stage runs on a copy of
that database on a fresh LocalCluster per worker count and bucket size:
wall time, vehicle-days/s, scaling efficiency (T1 / (w x Tw)), each
worker's peak RSS, the sum of task times; and the scheduler's overhead per
task (no-op tasks through a one-worker cluster). ``--cache DIR`` keeps each
size's local reference database (and the local run's figures) in DIR and
reuses it, so the Dask rows can be measured again without simulating and
running the portfolio again; ``--no-local-monitor`` takes the local
monitor's time from that run instead of running the local monitor again.

    python bench/bench_scale.py --engine dask --sizes 1000 3000 10000 --history 7
        --workers 1 2 --per-bucket 250 [--cache /tmp/ref] [--no-local-monitor]
        [--write-doc docs/cluster.md --label dask]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_CHILD = r"""
import json, os, resource, sys, threading, time
from autolien.pipeline import run_portfolio
root, db, prof, out = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kw = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}

def rss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0

def children():
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == me:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out

# Worker processes' memory, sampled: their ru_maxrss starts at this
# process's RSS when they were spawned (Linux keeps the high-water mark
# from before exec), so it says nothing about the workers themselves.
peak = {"worker": 0, "tree": 0, "stage_tree": 0}
done = threading.Event()
def sample():
    while not done.wait(0.25):
        kids = [rss(k) for k in children()]
        peak["worker"] = max([peak["worker"], *kids])
        tree = rss(os.getpid()) + sum(kids)
        peak["tree"] = max(peak["tree"], tree)
        peak["stage_tree"] = max(peak["stage_tree"], tree)
threading.Thread(target=sample, daemon=True).start()

# each stage's own peak: this process's high-water mark (VmHWM, exact),
# reset as each stage ends (Linux: 5 into clear_refs), and the sampled peak
# of this process and its workers together
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
stage_peak = {}
import autolien.pipeline as _pl
_set = _pl._Timings.__setitem__
def _stage_done(self, stage, seconds):
    stage_peak[stage] = [hwm(), max(peak["stage_tree"], hwm())]
    peak["stage_tree"] = 0
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    _set(self, stage, seconds)
_pl._Timings.__setitem__ = _stage_done
if os.environ.get("AUTOLIEN_BENCH_PRUNE") == "1":
    # --prune-sources: a source file goes once the manifest names it (the
    # bench's own simulated copy, behind the run's symlink)
    import autolien.telemetry.store as _ts
    _record = _ts.Store.record_files
    def _record_and_prune(self, files):
        _record(self, files)
        for f in files:
            link = os.path.join(root, f[3])
            real = os.path.realpath(link)
            for x in (real, link):
                try:
                    os.unlink(x)
                except OSError:
                    pass
    _ts.Store.record_files = _record_and_prune
t0 = time.perf_counter()
if prof:
    import cProfile, pstats
    p = cProfile.Profile()
    p.enable()
s = run_portfolio(root, db, **kw)
if prof:
    p.disable()
    p.dump_stats(prof)
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
done.set()
# the monitor's workers (or a local Dask cluster's) are this process's children, ended by now
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    # ru_maxrss is the same high-water mark, which each stage's end resets
    top = max([hwm(), *(v[0] for v in stage_peak.values())])
    json.dump({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss": top,
               "timings_s": s["timings_s"], "new_rows": s["ingest"]["new_rows"],
               "worker_cpu_s": kids.ru_utime + kids.ru_stime, "worker_peak_rss": peak["worker"],
               "tree_peak_rss": peak["tree"], "stage_peak_rss": stage_peak}, f)
"""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _sim_record(src: Path) -> Path:
    return src.parent / f"{src.name}.sim.json"


def simulate(src: Path, vehicles: int, days: int, seed: int) -> float:
    """Simulates the portfolio into ``src`` and records what it is beside it
    (``<src>.sim.json``: size, days, seed, seconds), for ``--sim``."""
    from autolien.sim.portfolio import write_portfolio

    t0 = time.perf_counter()
    write_portfolio(src, vehicles, days, seed=seed)
    took = time.perf_counter() - t0
    rec = {"vehicles": vehicles, "days": days, "seed": seed, "simulate_s": took}
    _sim_record(src).write_text(json.dumps(rec))
    return took


def simulated(src: Path, vehicles: int, days: int, seed: int) -> float:
    """The seconds that simulating ``src`` took, from its record, after
    checking that it is the portfolio asked for (a 100,000-vehicle one
    takes 40 minutes: a run that failed after it need not make it again)."""
    rec = json.loads(_sim_record(src).read_text())
    want = {"vehicles": vehicles, "days": days, "seed": seed}
    got = {k: rec.get(k) for k in want}
    if got != want:
        raise SystemExit(f"--sim {src} holds {got}, not {want}")
    return float(rec["simulate_s"])


def _link_days(src: Path, work: Path, days: list[str]) -> None:
    """Links the day files of ``days`` (telemetry and RTK) into ``work``."""
    for p in src.rglob("*"):
        rel = p.relative_to(src)
        if not p.is_file() or rel.parts[0] not in ("telemetry", "rtk"):
            continue
        if p.stem not in days:
            continue
        dst = work / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(p, dst)


def run_once(
    work: Path,
    profile: Path | None = None,
    run_kw: dict[str, Any] | None = None,
    *,
    prune: bool = False,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    """One ``autolien run`` in its own process; with ``profile``, sampled by
    py-spy (collapsed stacks, ``<profile>.txt``) when it is installed, else
    under cProfile (``<profile>.prof``, which slows Python-bound stages)."""
    result = work.parent / f"{work.name}.result.json"
    cmd = [sys.executable, "-c", _CHILD, str(work), str(work / "autolien.duckdb")]
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if profile is not None and spy:
        cmd = [spy, "record", "-r", "25", "-f", "raw", "-o", f"{profile}.txt", "--", *cmd, ""]
    else:
        cmd.append(f"{profile}.prof" if profile else "")
    cmd.append(str(result))
    if run_kw:
        cmd.append(json.dumps(run_kw))
    load = _load()
    env = {**os.environ, "AUTOLIEN_BENCH_PRUNE": "1" if prune else "0"}
    if memory_limit:
        env["AUTOLIEN_DUCKDB_MEMORY_LIMIT"] = memory_limit
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        msg = f"autolien run on {work} failed ({out.returncode}):\n{out.stderr[-4000:]}"
        raise RuntimeError(msg)
    rec: dict[str, Any] = json.loads(result.read_text())
    rec["load_before"] = load
    rec["load_after"] = _load()
    return rec


def profile_summary(path: Path, top: int = 20) -> str:
    """The hottest functions of a py-spy collapsed-stack file: samples where
    the function is on the stack (inclusive) and where it runs (self)."""
    incl: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        k = int(n)
        total += k
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")"
            if " (" in f
            else f
            for f in stack.split(";")
        ]
        for f in set(frames):
            incl[f] = incl.get(f, 0) + k
        own[frames[-1]] = own.get(frames[-1], 0) + k
    lines = [f"{total} samples", "", "| function | inclusive % | self % |", "|---|---|---|"]
    for f, k in sorted(incl.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{f}` | {100 * k / total:.1f} | {100 * own.get(f, 0) / total:.1f} |")
    lines += ["", "| hottest self | self % |", "|---|---|"]
    for f, k in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{f}` | {100 * k / total:.1f} |")
    return "\n".join(lines) + "\n"


def measure(
    vehicles: int,
    history: int,
    base: Path,
    seed: int,
    profile_dir: Path | None,
    *,
    keep: bool = False,
    prune: bool = False,
    backfill_memory_limit: str | None = None,
    sim: Path | None = None,
) -> dict[str, Any]:
    if sim is not None:
        src = sim
        sim_s = simulated(src, vehicles, history + 1, seed)
    else:
        src = base / f"src{vehicles}"
        sim_s = simulate(src, vehicles, history + 1, seed)
    days = sorted(p.stem for p in (src / "telemetry").glob("*.jt808"))
    work = base / f"work{vehicles}"
    work.mkdir()
    for name in ("loan_book.parquet", "truth.parquet", "defaults.parquet", "market"):
        if (src / name).exists():
            os.symlink(src / name, work / name)
    _link_days(src, work, days[:history])
    prof = (profile_dir / f"backfill{vehicles}") if profile_dir else None
    print(f"N={vehicles:,}: simulated in {sim_s:.0f} s (load {_load()})", flush=True)
    backfill = run_once(work, prof, prune=prune, memory_limit=backfill_memory_limit)
    if prune:
        days_left = {q.stem for q in src.rglob("*") if q.suffix in (".jt808", ".nmea")}
        print(f"N={vehicles:,}: --prune-sources left the days {sorted(days_left)}", flush=True)
    print(f"N={vehicles:,} backfill done: {json.dumps(backfill)}", flush=True)
    _link_days(src, work, days[history:])
    prof = (profile_dir / f"daily{vehicles}") if profile_dir else None
    daily = run_once(work, prof, prune=prune)
    backfill["vehicle_days_per_s"] = vehicles * history / backfill["wall_s"]
    daily["vehicle_days_per_s"] = vehicles / daily["wall_s"]
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
        if sim is None:
            shutil.rmtree(src, ignore_errors=True)
    return {
        "vehicles": vehicles,
        "history_days": history,
        "simulate_s": sim_s,
        "backfill": backfill,
        "daily": daily,
    }


def measure_snapshot(
    vehicles: int,
    history: int,
    snap: Path,
    seed: int,
    profile_dir: Path | None,
    repeats: int,
    run_kw: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``measure`` with the backfill kept in ``snap`` (made there once) and
    the daily run repeated on fresh copies of it; ``run_kw`` go to
    ``run_portfolio`` (the Dask engine's runs keep their own snapshot)."""
    tag = "".join(f"-{k}{v}" for k, v in sorted((run_kw or {}).items()))
    home = snap / f"n{vehicles}x{history}s{seed}{tag}"
    src, base, facts = home / "src", home / "backfilled", home / "backfill.json"
    if not facts.exists():
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        sim_s = simulate(src, vehicles, history + 1, seed)
        base.mkdir()
        for name in ("loan_book.parquet", "truth.parquet", "defaults.parquet", "market"):
            if (src / name).exists():
                os.symlink(src / name, base / name)
        days = sorted(p.stem for p in (src / "telemetry").glob("*.jt808"))
        _link_days(src, base, days[:history])
        print(f"N={vehicles:,}: simulated in {sim_s:.0f} s (load {_load()})", flush=True)
        prof = (profile_dir / f"backfill{vehicles}") if profile_dir else None
        rec = run_once(base, prof, run_kw)
        rec["engine"] = (run_kw or {}).get("engine", "local")
        rec["vehicle_days_per_s"] = vehicles * history / rec["wall_s"]
        facts.write_text(json.dumps({"simulate_s": sim_s, "backfill": rec}))
    kept = json.loads(facts.read_text())
    days = sorted(p.stem for p in (src / "telemetry").glob("*.jt808"))
    runs = []
    for i in range(repeats):
        work = home / "daily"
        shutil.rmtree(work, ignore_errors=True)
        # the links stay links: the copy reads the same day files, so the
        # ingest's stat cache (keyed by real path) still knows them
        shutil.copytree(base, work, symlinks=True)
        _link_days(src, work, days[history:])
        prof = (profile_dir / f"daily{vehicles}") if profile_dir and i == 0 else None
        rec = run_once(work, prof, run_kw)
        rec["engine"] = (run_kw or {}).get("engine", "local")
        rec["vehicle_days_per_s"] = vehicles / rec["wall_s"]
        runs.append(rec)
        print(f"N={vehicles:,} daily repeat {i + 1}: {rec['wall_s']:.1f} s", flush=True)
        shutil.rmtree(work, ignore_errors=True)
    daily = dict(min(runs, key=lambda r: r["wall_s"]))
    daily["repeats_wall_s"] = [r["wall_s"] for r in runs]
    return {
        "vehicles": vehicles,
        "history_days": history,
        "simulate_s": kept["simulate_s"],
        "backfill": kept["backfill"],
        "daily": daily,
    }


def exponent(results: list[dict[str, Any]], run: str) -> float | None:
    """Slope of log(seconds) against log(vehicles) between the ends."""
    if len(results) < 2:
        return None
    a, b = results[0], results[-1]
    return math.log(b[run]["wall_s"] / a[run]["wall_s"]) / math.log(b["vehicles"] / a["vehicles"])


def table(results: list[dict[str, Any]], label: str) -> str:
    # runs with worker processes (the monitor's, or a local Dask cluster's)
    workers = any(
        r[run].get("worker_peak_rss", 0) > 0 for r in results for run in ("backfill", "daily")
    )
    stages = []
    for r in results:
        for run in ("backfill", "daily"):
            for k in r[run]["timings_s"]:
                if k not in stages:
                    stages.append(k)
    head = [
        "N",
        "run",
        "wall s",
        "CPU s",
        *stages,
        "peak RSS MB",
        *(["worker peak RSS MB", "all processes' peak RSS MB"] if workers else []),
        "vehicle-days/s",
        "load 1/5/15 min",
    ]
    lines = [
        f"**{label}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in results:
        for run in ("backfill", "daily"):
            x = r[run]
            cells = [
                f"{r['vehicles']:,}",
                run,
                f"{x['wall_s']:.1f}",
                f"{x['cpu_s']:.1f}" if "cpu_s" in x else "",
                *(f"{x['timings_s'].get(s, 0):.1f}" for s in stages),
                f"{x['peak_rss'] / 2**20:.0f}",
                *(
                    [
                        f"{x.get('worker_peak_rss', 0) / 2**20:.0f}",
                        f"{x.get('tree_peak_rss', 0) / 2**20:.0f}",
                    ]
                    if workers
                    else []
                ),
                f"{x['vehicle_days_per_s']:.0f}",
                x["load_before"],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    staged = [r for r in results if r["daily"].get("stage_peak_rss")]
    if staged:
        names = list(staged[0]["daily"]["stage_peak_rss"])
        lines += [
            "",
            (
                "Peak RSS by stage, MB (this process's high-water mark, reset as each stage "
                "ends; in brackets with its worker processes, sampled every 0.25 s):"
            ),
            "",
            "| N | run | " + " | ".join(names) + " |",
            "|" + "---|" * (len(names) + 2),
        ]
        for r in staged:
            for run in ("backfill", "daily"):
                sp = r[run].get("stage_peak_rss")
                if not sp:
                    continue
                cells = [
                    f"{sp[k][0] / 2**20:.0f} ({sp[k][1] / 2**20:.0f})" if k in sp else ""
                    for k in names
                ]
                lines.append(f"| {r['vehicles']:,} | {run} | " + " | ".join(cells) + " |")
    for r in results:
        walls = r["daily"].get("repeats_wall_s")
        if walls and len(walls) > 1:
            lines.append("")
            lines.append(
                f"Daily repeats at N = {r['vehicles']:,} (fastest in the table): "
                + ", ".join(f"{w:.1f}" for w in walls)
                + " s"
            )
    for run in ("backfill", "daily"):
        e = exponent(results, run)
        if e is not None:
            lines.append("")
            lines.append(
                f"Cost-growth exponent ({run}, N {results[0]['vehicles']:,} to "
                f"{results[-1]['vehicles']:,}): {e:.2f}"
            )
    return "\n".join(lines) + "\n"


def write_doc(doc: Path, label: str, text: str) -> None:
    """Replaces the block between the markers for ``label`` (or appends it)."""
    start, end = f"<!-- bench-scale:{label} -->", f"<!-- /bench-scale:{label} -->"
    body = doc.read_text()
    block = f"{start}\n{text}{end}"
    if start in body and end in body:
        pre, rest = body.split(start, 1)
        body = pre + block + rest.split(end, 1)[1]
    else:
        body = body.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(body)


def _worker_peak_rss() -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and
    # exec, so a spawned worker would report its parent's peak
    with open("/proc/self/status") as f:
        line = next(x for x in f if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _noop(i: int) -> int:
    return i


def scheduler_overhead(tasks: int = 1000) -> float:
    """Seconds per task of no-op tasks through a one-worker LocalCluster:
    what each bucket's task costs beyond its own work."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        Client(c) as client,
    ):
        client.gather(client.map(_noop, range(10), pure=False))  # warm
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(tasks), pure=False))
        return (time.perf_counter() - t0) / tasks


def dask_monitor(db: Path, workers: int, buckets: int) -> dict[str, Any]:
    """The Dask engine's monitor stage over ``db`` (a fresh copy, no state)
    on a fresh LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster, get_task_stream

    from autolien.dask_engine import monitor_stage

    load = _load()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        Client(c) as client,
    ):
        t0 = time.perf_counter()
        with get_task_stream(client) as ts:
            mon = monitor_stage(db, client, buckets=buckets)
        wall = time.perf_counter() - t0
        rss = client.run(_worker_peak_rss)
    busy = sum(
        s["stop"] - s["start"]
        for t in ts.data
        if "autolien-monitor-bucket" in str(t["key"])
        for s in t["startstops"]
        if s["action"] == "compute"
    )
    return {
        "workers": workers,
        "buckets": buckets,
        "wall_s": wall,
        "task_compute_s": busy,
        "task_cpu_s": mon["task_cpu_s"],
        "worker_peak_rss": sorted(rss.values()),
        "alerts": mon["alerts"],
        "load_before": load,
    }


def measure_dask(
    vehicles: int,
    history: int,
    base: Path,
    seed: int,
    workers: list[int],
    per_bucket: list[int],
    cache: Path | None = None,
    *,
    local_monitor: bool = True,
) -> dict[str, Any]:
    from autolien.pipeline import run_portfolio

    # the local run's database is the reference; with --cache it is kept
    # (with the local run's figures) and reused, so the Dask rows can be
    # measured again without simulating and running the portfolio again
    # a directory per portfolio: the ledger and report go beside the database
    home = (cache if cache is not None else base) / f"dref{vehicles}x{history}s{seed}"
    home.mkdir(parents=True, exist_ok=True)
    ref = home / "ref.duckdb"
    facts = home / "local.json"
    if cache is not None and ref.exists() and facts.exists():
        known = json.loads(facts.read_text())
        print(f"N={vehicles:,}: reusing {ref} ({known})", flush=True)
    else:
        src = base / f"dsrc{vehicles}"
        sim_s = simulate(src, vehicles, history, seed)
        print(f"N={vehicles:,}: simulated in {sim_s:.0f} s (load {_load()})", flush=True)
        t0 = time.perf_counter()
        local = run_portfolio(src, ref)
        local_s = time.perf_counter() - t0
        print(f"N={vehicles:,}: local run {local_s:.0f} s {local['timings_s']}", flush=True)
        known = {
            "simulate_s": sim_s,
            "local_run_s": local_s,
            "local_timings_s": local["timings_s"],
            "alerts": local["monitor"]["alerts"],
            "load_after": _load(),
        }
        facts.write_text(json.dumps(known))
        shutil.rmtree(src, ignore_errors=True)
    local_s = known["local_run_s"]
    if local_monitor:
        # the local engine's monitor alone, again, with its CPU time beside the wall
        from autolien.monitor.cli import monitor_store

        db = base / f"dlocal{vehicles}.duckdb"
        shutil.copy(ref, db)
        t0, c0 = time.perf_counter(), time.process_time()
        monitor_store(str(db))
        local_mon: tuple[float, float | None] = (
            time.perf_counter() - t0,
            time.process_time() - c0,
        )
        db.unlink()
        shutil.rmtree(f"{db}.monitor", ignore_errors=True)  # its saved state
    else:
        # the monitor's wall time inside the local run (no CPU figure)
        local_mon = (known["local_timings_s"]["monitor"], None)
    runs = []
    for w in workers:
        for vpb in per_bucket:
            db = base / f"d{vehicles}-{w}-{vpb}.duckdb"
            shutil.copy(ref, db)
            r = dask_monitor(db, w, max(1, math.ceil(vehicles / vpb)))
            r["vehicles_per_bucket"] = vpb
            r["vehicle_days_per_s"] = vehicles * history / r["wall_s"]
            if r["alerts"] != known["alerts"]:
                msg = f"dask gave {r['alerts']} alerts, local {known['alerts']}"
                raise RuntimeError(msg)
            print(f"N={vehicles:,} dask: {json.dumps(r)}", flush=True)
            runs.append(r)
            shutil.rmtree(db.with_name(db.name + ".dask"), ignore_errors=True)
            db.unlink()
    return {
        "vehicles": vehicles,
        "days": history,
        "local_run_s": local_s,
        "local_monitor_s": local_mon[0],
        "local_monitor_cpu_s": local_mon[1],
        "runs": runs,
    }


def _cpu(x: float | None) -> str:
    return "" if x is None else f"{x:.1f}"


def dask_table(results: list[dict[str, Any]], overhead: float, label: str) -> str:
    head = [
        "N x days",
        "workers",
        "vehicles/bucket",
        "tasks",
        "monitor wall s",
        "task compute s",
        "task CPU s",
        "vehicle-days/s",
        "efficiency",
        "peak RSS per worker MB",
        "load 1/5/15 min",
    ]
    lines = [f"**{label}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        one = {x["vehicles_per_bucket"]: x["wall_s"] for x in r["runs"] if x["workers"] == 1}
        lines.append(
            f"| {r['vehicles']:,} x {r['days']} | local engine | | | {r['local_monitor_s']:.1f} |"
            f" | {_cpu(r['local_monitor_cpu_s'])} "
            f"| {r['vehicles'] * r['days'] / r['local_monitor_s']:.0f} | | | |"
        )
        for x in r["runs"]:
            t1 = one.get(x["vehicles_per_bucket"])
            eff = f"{t1 / (x['workers'] * x['wall_s']):.2f}" if t1 else ""
            rss = " / ".join(f"{v / 2**20:.0f}" for v in x["worker_peak_rss"])
            lines.append(
                f"| {r['vehicles']:,} x {r['days']} | {x['workers']} | {x['vehicles_per_bucket']} "
                f"| {x['buckets']} | {x['wall_s']:.1f} | {x['task_compute_s']:.1f} "
                f"| {x['task_cpu_s']:.1f} "
                f"| {x['vehicle_days_per_s']:.0f} | {eff} | {rss} | {x['load_before']} |"
            )
    lines += ["", f"Scheduler overhead per task (no-op tasks, one worker): {overhead * 1e3:.2f} ms"]
    return "\n".join(lines) + "\n"


def main_dask(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="autolien-dask-", dir=args.tmp))
    results = []
    try:
        overhead = scheduler_overhead()
        print(f"scheduler overhead per task: {overhead * 1e3:.2f} ms", flush=True)
        for n in sorted(args.sizes):
            results.append(
                measure_dask(
                    n,
                    args.history,
                    base,
                    args.seed,
                    args.workers,
                    args.per_bucket,
                    args.cache,
                    local_monitor=not args.no_local_monitor,
                )
            )
            if args.json:
                args.json.write_text(json.dumps({"overhead_s": overhead, "results": results}))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = dask_table(results, overhead, args.label)
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, args.label, text)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--history", type=int, default=14)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--write-doc", type=Path)
    ap.add_argument("--label", default="current")
    ap.add_argument("--tmp", type=Path, help="where the simulated portfolios go (default: $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the portfolios (for a failed run)")
    ap.add_argument("--profile", type=Path, help="directory for cProfile dumps of each run")
    ap.add_argument("--engine", choices=("local", "dask"), default="local")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="--engine dask")
    ap.add_argument(
        "--per-bucket", type=int, nargs="+", default=[250], help="--engine dask: vehicles a bucket"
    )
    ap.add_argument(
        "--cache",
        type=Path,
        help="--engine dask: keep the local reference run's database here and reuse it",
    )
    ap.add_argument(
        "--no-local-monitor",
        action="store_true",
        help="--engine dask: take the local monitor's time from the local run, not a second run",
    )
    ap.add_argument(
        "--snapshot",
        type=Path,
        help="keep each size's backfilled store here (reused) and time the daily run on copies",
    )
    ap.add_argument("--repeats", type=int, default=1, help="--snapshot: daily runs, each on a copy")
    ap.add_argument(
        "--run-engine",
        choices=("local", "dask"),
        default="local",
        help="--snapshot: the engine of the runs (dask: a local cluster of --run-workers)",
    )
    ap.add_argument("--run-workers", type=int, default=2, help="--run-engine dask")
    ap.add_argument(
        "--prune-sources",
        action="store_true",
        help="delete each simulated file once the ingest's manifest names it (a disk that "
        "holds the store, but not the store and the simulated files together)",
    )
    ap.add_argument(
        "--backfill-memory-limit",
        help="AUTOLIEN_DUCKDB_MEMORY_LIMIT for the backfill run only (e.g. 6GB); the daily "
        "run keeps each stage's own",
    )
    ap.add_argument(
        "--sim",
        type=Path,
        help="a portfolio an earlier run simulated (kept with --keep; one size, "
        "not --snapshot): its record beside it must match the size, days and seed",
    )
    args = ap.parse_args(argv)
    if args.prune_sources and (args.snapshot is not None or args.keep or args.sim):
        ap.error(
            "--prune-sources deletes the simulated files: not with --snapshot, --keep or --sim"
        )
    if args.sim is not None and (len(args.sizes) != 1 or args.snapshot is not None):
        ap.error("--sim is one portfolio: one --sizes, not with --snapshot")
    if args.engine == "dask":
        return main_dask(args)
    base = Path(tempfile.mkdtemp(prefix="autolien-scale-", dir=args.tmp))
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for n in sorted(args.sizes):
            if args.snapshot is not None:
                run_kw = (
                    {"engine": "dask", "workers": args.run_workers}
                    if args.run_engine == "dask"
                    else None
                )
                r = measure_snapshot(
                    n, args.history, args.snapshot, args.seed, args.profile, args.repeats, run_kw
                )
            else:
                r = measure(
                    n,
                    args.history,
                    base,
                    args.seed,
                    args.profile,
                    keep=args.keep,
                    prune=args.prune_sources,
                    backfill_memory_limit=args.backfill_memory_limit,
                    sim=args.sim,
                )
            results.append(r)
            for run in ("backfill", "daily"):
                x = r[run]
                print(
                    f"N={n:,} {run}: {x['wall_s']:.1f} s, peak RSS "
                    f"{x['peak_rss'] / 2**20:.0f} MB, {x['vehicle_days_per_s']:.0f} vehicle-days/s,"
                    f" stages {x['timings_s']}, load {x['load_before']}",
                    flush=True,
                )
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    for run in ("backfill", "daily"):
        e = exponent(results, run)
        if e is not None:
            print(f"cost-growth exponent ({run}): {e:.2f}")
    text = table(results, args.label)
    print(text)
    if args.write_doc:
        write_doc(args.write_doc, args.label, text)
    for prof in sorted(args.profile.glob("*.txt")) if args.profile else []:
        summary = f"**profile: {prof.stem} ({args.label})**\n\n" + profile_summary(prof)
        print(summary)
        if args.write_doc:
            write_doc(args.write_doc, f"{args.label}-profile-{prof.stem}", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
