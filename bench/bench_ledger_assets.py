"""Asset ledger: durable appends and audit throughput.

* append: signed lifecycle events appended durably (one fsync per batch) at
  batch sizes 1, 100 and 1000. Peer: sqlite3 with synchronous=FULL, storing the
  same canonical payloads in one transaction per batch. It shows what a plain
  durable store costs, without signing, lifecycle checks or Merkle hashing.
* audit: the full audit (framing, canonical form, signatures, replay, root,
  checkpoints) on a ledger of N events: 1e5 by default,
  AUTOLIEN_BENCH_AUDIT_EVENTS=1000000 for the 1e6 figure. Ours on one process
  against ours on every core (signature checks on a process pool).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from autolien.ledger.assets import AssetLedger, Member, audit
from autolien.ledger.identity import vin_check_digit
from autolien.ledger.jcs import canonicalize
from autolien.ledger.note import NoteSigner
from conftest import sizes, tag

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OP = NoteSigner.generate("op.bench")
BANK = NoteSigner.generate("bank.bench")
APPEND_SIZES = sizes((200, 2_000, 20_000), (20, 200, 2_000))
AUDIT_SIZES = sizes((1_000, 10_000, 100_000), (100, 1_000, 10_000))
if os.environ.get("AUTOLIEN_BENCH_AUDIT_EVENTS"):  # e.g. 1000000 for the 1e6 figure
    AUDIT_SIZES = (*AUDIT_SIZES[1:], int(os.environ["AUTOLIEN_BENCH_AUDIT_EVENTS"]))
N_ASSETS = 100


def _vin(i: int) -> str:
    body = f"LSVAU2180N{i:07d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def _new_ledger(path: Path) -> tuple[AssetLedger, list[str]]:
    led = AssetLedger.create(
        path,
        origin="bench.example/log",
        operator=OP,
        members=[Member(BANK.name, BANK.vkey)],
        threshold=1,
        time=T0,
    )
    codes = [
        led.register_pledge(_vin(j), f"P{j}", actor=BANK, time=T0, loan_amount_minor=10**7).event[
            "asset"
        ]
        for j in range(N_ASSETS)
    ]
    return led, codes


def _events(
    codes: list[str], start: int, n: int
) -> Iterator[tuple[str, str, dict[str, Any], NoteSigner, datetime]]:
    for i in range(start, start + n):
        yield (
            "valuation_updated",
            codes[i % len(codes)],
            {"value_minor": 9_000_000 + i},
            BANK,
            T0 + timedelta(seconds=i),
        )


@pytest.fixture(scope="module")
def append_ledger(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AssetLedger, list[str]]]:
    led, codes = _new_ledger(tmp_path_factory.mktemp("append") / "ledger")
    yield led, codes
    led.close()


# Batch 1 does one fsync per event, so it runs at a tenth of the sizes.
APPEND_CASES = [(b, n if b > 1 else max(n // 10, 10)) for b in (1, 100) for n in APPEND_SIZES]


@pytest.mark.parametrize(("batch", "n"), APPEND_CASES)
@pytest.mark.benchmark(group="ledger-append")
def test_append_ours(
    benchmark: Any, append_ledger: tuple[AssetLedger, list[str]], batch: int, n: int
) -> None:
    led, codes = append_ledger
    kernel = f"AssetLedger.record_many, fsync per {batch}"
    tag(benchmark, "ours", kernel, n, size=n, pair=f"batch {batch}")
    counter = [led.size]

    def run() -> None:
        for k in range(0, n, batch):
            led.record_many(list(_events(codes, counter[0] + k, min(batch, n - k))))
        counter[0] += n

    benchmark.pedantic(run, rounds=3, iterations=1)


@pytest.mark.parametrize(("batch", "n"), APPEND_CASES)
@pytest.mark.benchmark(group="ledger-append")
def test_append_peer_sqlite(benchmark: Any, tmp_path: Path, batch: int, n: int) -> None:
    kernel = f"sqlite3 synchronous=FULL, commit per {batch}"
    tag(benchmark, "peer", kernel, n, size=n, pair=f"batch {batch}")
    db = sqlite3.connect(tmp_path / "peer.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    payloads = [
        canonicalize(
            {"seq": i, "type": "valuation_updated", "data": {"value_minor": i}, "sig": "x" * 88}
        )
        for i in range(n)
    ]
    counter = [0]

    def run() -> None:
        base = counter[0]
        for k in range(0, n, batch):
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO entries VALUES (?, ?)",
                [(base + k + j, payloads[k + j]) for j in range(min(batch, n - k))],
            )
            db.execute("COMMIT")
        counter[0] += n

    benchmark.pedantic(run, rounds=3, iterations=1)
    db.close()


@pytest.fixture(scope="module")
def audit_ledgers(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    out = {}
    for n in AUDIT_SIZES:
        path = tmp_path_factory.mktemp(f"audit{n}") / "ledger"
        led, codes = _new_ledger(path)
        done = led.size
        while done < n:
            chunk = min(5000, n - done)
            led.record_many(list(_events(codes, done, chunk)))
            done += chunk
        led.checkpoint()
        led.close()
        out[n] = path
    return out


@pytest.mark.parametrize("workers", [1, os.cpu_count() or 1])
@pytest.mark.parametrize("n", AUDIT_SIZES)
@pytest.mark.benchmark(group="ledger-audit")
def test_audit(
    benchmark: Any,
    audit_ledgers: dict[int, Path],
    n: int,
    workers: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import autolien.ledger.auditor as auditor_mod

    monkeypatch.setattr(auditor_mod, "PARALLEL_AUDIT_MIN", 1)
    path = audit_ledgers[n]
    tag(benchmark, "ours", f"audit, signatures on {workers} process(es)", n, size=n)
    rep = benchmark.pedantic(lambda: audit(path, workers=workers), rounds=1, iterations=1)
    assert rep.ok, rep.first_bad
    assert rep.entries >= n
