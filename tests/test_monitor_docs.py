"""docs/monitor.md states the defaults, alert columns and kinds the code has."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

from autolien.monitor import ALERTS_SCHEMA, MonitorConfig
from autolien.monitor.engine import KIND_CAP

DOC = (Path(__file__).parent.parent / "docs" / "monitor.md").read_text()


def test_defaults_block_matches_config() -> None:
    block = DOC.split("(a test keeps this block true):\n\n```text\n", 1)[1].split("```", 1)[0]
    assert block.strip().splitlines() == [
        f"{k} = {v!r}" for k, v in asdict(MonitorConfig()).items()
    ]


def test_alert_columns_and_kinds_are_documented() -> None:
    body = DOC.split("Alerts columns (`ALERTS_SCHEMA`):", 1)[1]
    listed = re.search(r"`([a-z_,\s]+)`", body)
    assert listed is not None
    assert [c.strip() for c in listed.group(1).split(",")] == ALERTS_SCHEMA.names
    for kind in KIND_CAP:
        assert f"| `{kind}` |" in DOC
