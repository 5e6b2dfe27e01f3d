"""Child process for tests/test_pipeline_crash.py: runs ``autolien run`` and,
at the named point, kills itself with SIGKILL (no clean-up, no flush, as a
power cut or the OOM killer would).

    python pipeline_crash_runner.py PORTFOLIO DB POINT

POINT is ``none`` (run to the end) or ``<where>:<n>``: the n-th call (from 1)
of the hooked function, before it runs (``before``) or after it returned
(``after``); ``,flush_rows=N`` after it makes ingest commit every N rows,
``,batch=N`` makes the monitor score N vehicles a block and commit its
staging every block. The consortium's keys are derived from the member names, so that
two ledgers of the same events have the same root; nothing else is changed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import autolien.gnss.cli
import autolien.ledger.stage
import autolien.monitor.cli
import autolien.report
import autolien.report.queries
import autolien.store
import autolien.telemetry.ingest
import autolien.telemetry.store
import autolien.valuation.stage
from autolien.ledger.assets import AssetLedger
from autolien.ledger.note import ALG_ED25519, NoteSigner
from autolien.monitor.stream import Monitor
from autolien.pipeline import run_portfolio

# point -> (owner, attribute, before or after the call)
HOOKS: dict[str, tuple[Any, str, str]] = {
    # stage boundaries: each stage's entry point returned, the next not begun
    "ingest": (autolien.telemetry.ingest, "ingest_files", "after"),
    "fuse": (autolien.gnss.cli, "fuse_store", "after"),
    "monitor": (autolien.monitor.cli, "monitor_store", "after"),
    "valuation": (autolien.valuation.stage, "valuation_stage", "after"),
    "ledger": (autolien.ledger.stage, "ledger_stage", "after"),
    "dashboard": (autolien.report, "build_dashboard", "after"),
    # inside the stages
    "ingest-append": (autolien.telemetry.store.Store, "append", "after"),
    "fuse-batch": (autolien.gnss.cli, "fuse", "after"),
    "monitor-update": (Monitor, "update", "after"),
    "monitor-block": (autolien.store.MonitorStore, "put_block", "after"),
    "monitor-state-saved": (autolien.monitor.cli, "_save_state", "after"),
    "valuation-battery": (autolien.valuation.stage, "_alert_rows", "after"),
    "ledger-pledge": (AssetLedger, "register_pledge", "after"),
    "ledger-batch": (AssetLedger, "record_many", "after"),
    "ledger-checkpoint": (AssetLedger, "checkpoint", "before"),
    "dashboard-ledger": (autolien.report.queries, "ledger_rows", "after"),
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(owner: Any, name: str, when: str, nth: int) -> None:
    original: Callable[..., Any] = getattr(owner, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if when == "before" and calls[0] == nth:
            _die()
        result = original(*args, **kwargs)
        if when == "after" and calls[0] == nth:
            _die()
        return result

    setattr(owner, name, wrapper)


def _deterministic_keys() -> None:
    def generate(cls: type[NoteSigner], name: str, alg: int = ALG_ED25519) -> NoteSigner:
        return cls(name, hashlib.sha256(name.encode()).digest(), alg)

    NoteSigner.generate = classmethod(generate)  # type: ignore[method-assign, assignment]


def main() -> None:
    portfolio, db, point = sys.argv[1:4]
    _deterministic_keys()
    if "," in point:
        # POINT,flush_rows=N: ingest commits every N rows (so a kill can
        # fall between two of its commits)
        point, opt = point.split(",", 1)
        key, _, value = opt.partition("=")
        assert key in ("flush_rows", "batch"), opt
        if key == "flush_rows":
            autolien.telemetry.ingest.FLUSH_ROWS = int(value)
        else:  # POINT,batch=N: the monitor's blocks are N vehicles, each committed
            kw = autolien.monitor.cli.monitor_store.__kwdefaults__
            assert kw is not None
            kw["batch"] = int(value)
            autolien.store.STAGE_COMMIT_VEHICLES = int(value)
    if point != "none":
        where, nth = point.rsplit(":", 1)
        owner, name, when = HOOKS[where]
        _hook(owner, name, when, int(nth))
    run_portfolio(portfolio, db)


if __name__ == "__main__":
    main()
