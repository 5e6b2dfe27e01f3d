"""docs/gnss.md lists the output columns, kinds and defaults the code has."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pytest

from autolien.gnss import (
    EVENTS_SCHEMA,
    GEOFENCE_EVENTS_SCHEMA,
    MOVE_KINDS,
    PARKED_SCHEMA,
    REASONS,
    TRACK_SCHEMA,
    FusionConfig,
)

DOC = (Path(__file__).parent.parent / "docs" / "gnss.md").read_text()


def columns_after(marker: str) -> list[str]:
    """The backticked, comma-separated column list that follows `marker`."""
    body = DOC[DOC.index(marker) + len(marker) :]
    m = re.search(r"`([a-z_, ()|\n.=-]+?)`", body)
    assert m is not None
    names = re.sub(r"\([^)]*\)", "", m.group(1))
    return [n.strip() for n in names.replace("\n", " ").split(",") if n.strip()]


@pytest.mark.parametrize(
    ("marker", "schema"),
    [
        ("in input order within each:", TRACK_SCHEMA),
        ("`parked` columns:", PARKED_SCHEMA),
        ("(one per episode that ended by a move):", EVENTS_SCHEMA),
        ("are skipped. Columns:", GEOFENCE_EVENTS_SCHEMA),
    ],
)
def test_documented_columns(marker: str, schema: pa.Schema) -> None:
    assert columns_after(marker) == schema.names


def test_documented_defaults_and_kinds() -> None:
    block = DOC.split("(a test keeps this block true):\n\n```text\n", 1)[1].split("```", 1)[0]
    want = [f"{k} = {v!r}" for k, v in asdict(FusionConfig()).items()]
    assert block.strip().splitlines() == want
    for kind in MOVE_KINDS.values():
        assert f"| `{kind}` |" in DOC
    sentence = DOC.split("`reason` is one", 1)[1].split(".", 1)[0]
    listed = [
        n.strip() for group in re.findall(r"`([a-z_,\s]+)`", sentence) for n in group.split(",")
    ]
    assert sorted(listed) == sorted(REASONS.values())
