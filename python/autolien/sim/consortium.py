"""The demo consortium: fifteen simulated lenders whose keys are generated
here, once, and kept in ``member_keys.json`` (mode 0600) beside the log.

Real members hold their own keys and pass their signers to
:func:`autolien.ledger.stage.ledger_stage`; only the demo and the tests make
keys for them.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..ledger import AssetLedger, Member, NoteSigner

__all__ = ["KEYS", "MEMBERS", "THRESHOLD", "demo_consortium"]

MEMBERS = 15
THRESHOLD = 10  # M of N for a disposal
KEYS = "member_keys.json"


def _when(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.combine(v, datetime.min.time(), UTC)


def demo_consortium(ledger_dir: str | Path, book: pa.Table, now: datetime) -> list[NoteSigner]:
    """The demo members' signers; on first use, generates their keys and
    creates the ledger, its genesis dated at the book's first pledge (or
    ``now`` if earlier)."""
    path = Path(ledger_dir)
    if (path / KEYS).exists():
        return [NoteSigner.from_skey(s) for s in json.loads((path / KEYS).read_text())]
    first = min((_when(d) for d in book.column("pledge_date").to_pylist()), default=now)
    path.mkdir(parents=True, exist_ok=True)
    members = [NoteSigner.generate(f"lender-{i:02d}") for i in range(MEMBERS)]
    fd = os.open(path / KEYS, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump([m.skey for m in members], f)
    AssetLedger.create(
        path,
        origin="autolien.demo/pledges",
        operator=NoteSigner.generate("autolien-operator"),
        members=[Member(m.name, m.vkey) for m in members],
        threshold=THRESHOLD,
        time=min(first, now),
    ).close()
    return members
