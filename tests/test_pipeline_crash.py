"""``autolien run`` killed (SIGKILL) at every stage boundary and inside each
stage, then run again: the store (every table, as sorted rows) and the ledger
(root, size, checkpoints) equal those of one clean run. And a re-run over the
same inputs changes nothing."""

from __future__ import annotations

import math
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from autolien.ledger import audit
from autolien.sim.portfolio import write_portfolio

RUNNER = Path(__file__).parent / "pipeline_crash_runner.py"
# every stage boundary, then points inside each stage (see the runner)
POINTS = [
    "ingest:1",
    "fuse:1",
    "monitor:1",
    "valuation:1",
    "ledger:1",
    "dashboard:1",
    "ingest-append:2",
    # ingest commits every 5,000 rows here: killed after some commits
    "ingest-append:9,flush_rows=5000",
    "fuse-batch:1",
    "monitor-update:1",
    # the monitor stages 3 vehicles a block here: killed after two blocks' commits
    "monitor-block:2,batch=3",
    "monitor-state-saved:1",
    "valuation-battery:1",
    "ledger-pledge:5",
    "ledger-batch:1",
    "ledger-checkpoint:1",
    "dashboard-ledger:1",
]


def _run(portfolio: Path, point: str) -> int:
    db = portfolio / "autolien.duckdb"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(portfolio), str(db), point],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(proc.stderr[-3000:])
    return proc.returncode


def _plain(v: Any) -> Any:
    """NaN compares unequal to itself: a marker in its place (nested too)."""
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if isinstance(v, (list, tuple)):
        return tuple(_plain(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _plain(x)) for k, x in v.items()))
    return v


def _state(portfolio: Path) -> dict[str, Any]:
    con = duckdb.connect(str(portfolio / "autolien.duckdb"), read_only=True)
    try:
        tables = sorted(
            r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()
        )
        store = {
            t: [_plain(r) for r in con.sql(f"SELECT * FROM {t} ORDER BY ALL").fetchall()]
            for t in tables
        }
    finally:
        con.close()
    rep = audit(portfolio / "ledger")
    side = portfolio / "autolien.duckdb.monitor"
    return {
        # the monitor's state file, named by its content: the same state, the
        # same one file (a killed run's is gone)
        "state_files": sorted(p.name for p in side.iterdir()) if side.is_dir() else [],
        "store": store,
        "ledger": (rep.ok, rep.entries, rep.root, rep.checkpoints),
        "checkpoint": (portfolio / "ledger" / "checkpoint.note").read_text(),
    }


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "pf"
    # two RTK vehicles, EVs with a failing pack, defaults with their disposals
    write_portfolio(
        root, 10, 9, seed=2, anomaly_day=4, anomaly_share=0.8, default_share=0.3, rtk_every=5
    )
    return root


@pytest.fixture(scope="module")
def clean(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pf = tmp_path_factory.mktemp("clean") / "pf"
    shutil.copytree(pristine, pf)
    assert _run(pf, "none") == 0
    state = _state(pf)
    # what the comparison covers: every stage's tables, and a ledger with
    # pledges, alerts, defaults and disposals in it
    assert {"locations", "ev", "fixes", "gnss_track", "alerts", "valuations", "ltv"} <= set(
        state["store"]
    )
    kinds = {r[2] for r in state["store"]["alerts"]}
    assert "battery_degradation" in kinds
    assert state["ledger"][0]
    assert state["ledger"][1] > 10
    # a second run over the same inputs adds nothing anywhere
    assert _run(pf, "none") == 0
    assert _state(pf) == state
    return state


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_then_rerun_equals_a_clean_run(
    point: str, pristine: Path, clean: dict[str, Any], tmp_path: Path
) -> None:
    pf = tmp_path / "pf"
    shutil.copytree(pristine, pf)
    assert _run(pf, point) == -signal.SIGKILL, f"{point} was never reached"
    if "flush_rows" in point:
        # the kill fell between commits: some files and rows were kept
        con = duckdb.connect(str(pf / "autolien.duckdb"), read_only=True)
        try:
            kept = con.sql("SELECT count(*) FROM ingested_files").fetchall()[0][0]
            rows = con.sql("SELECT count(*) FROM locations").fetchall()[0][0]
        finally:
            con.close()
        assert 0 < kept < len(list((pf / "telemetry").iterdir()))
        assert rows > 0
    if ",batch=" in point:
        # two blocks of three vehicles were staged and committed, their
        # state written to a file no meta names; the monitor's outputs and
        # state were not touched
        con = duckdb.connect(str(pf / "autolien.duckdb"), read_only=True)
        try:
            staged = con.sql(
                "SELECT count(DISTINCT vehicle_id) FROM _monitor_features_new"
            ).fetchall()[0][0]
            names = {r[0] for r in con.sql("SHOW TABLES").fetchall()}
        finally:
            con.close()
        assert staged == 6
        assert not names & {"monitor_state_index", "monitor_features", "alerts"}
        left = [p.name for p in (pf / "autolien.duckdb.monitor").iterdir()]
        assert len(left) == 1
        assert left[0].startswith("state-tmp-")
    assert _run(pf, "none") == 0
    got = _state(pf)
    for table, rows in clean["store"].items():
        assert got["store"].get(table) == rows, table
    assert got == clean
