"""Child process for the crash tests: appends events and prints "ACK <seq>"
after each append returns (that is, after its fsync). The parent kills it with
SIGKILL at random points and checks that every acknowledged entry survived."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

from autolien.ledger.assets import AssetLedger
from autolien.ledger.note import NoteSigner


def main() -> None:
    path, member_skey, code, start, batch = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        int(sys.argv[5]),
    )
    member = NoteSigner.from_skey(member_skey)
    led = AssetLedger.open(path)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    i = start
    while True:
        drafts = []
        for _ in range(batch):
            # Large data makes it likely that a kill lands inside a write.
            data = {"value_minor": 1_000_000 + i, "note": "x" * 3000}
            drafts.append(("valuation_updated", code, data, member, t0 + timedelta(seconds=i)))
            i += 1
        entries = led._append(drafts)
        print(json.dumps([e.seq for e in entries]), flush=True)


if __name__ == "__main__":
    main()
