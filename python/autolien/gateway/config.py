"""What the acceptor and the ingest process share: the configuration, the
loan book (who may connect, and the vehicle id of each) and the JSON-line log."""

from __future__ import annotations

import csv
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["GatewayConfig", "LoanBook", "Log", "norm_terminal"]


@dataclass
class GatewayConfig:
    db: str
    spool: str
    jt808: tuple[str, int] | None = ("0.0.0.0", 8808)
    gb32960: tuple[str, int] | None = ("0.0.0.0", 32960)
    loan_book: str | None = None
    alerts: str | None = None  # a file, "-" for stdout, None for none
    max_frame: int = 8192
    idle_timeout: float = 300.0
    max_per_peer: int = 1000
    max_malformed: int = 8
    # Answers a peer has not read: past max_write_buffer the connection is
    # closed at once; past half of it the server stops reading the peer's
    # frames, and closes it if it has not read for slow_reader_timeout.
    max_write_buffer: int = 256 << 10
    slow_reader_timeout: float = 30.0
    read_size: int = 64 << 10
    segment_bytes: int = 64 << 20
    spool_bytes: int = 1 << 30
    ingest_interval: float = 0.5
    # The ingest process's nice increment (0: none). It is off the
    # acknowledgement path, so under CPU contention it yields to the acceptor
    # and falls behind instead (the spool, within spool_bytes, holds the rest).
    ingest_nice: int = 10
    # Rows timed outside [now - skew, now + 1 day] are stored but not fed to
    # the monitor: a device clock years off would make it score every hour
    # in between. None: feed every row (replaying history).
    monitor_skew: float | None = 7 * 86400.0
    # JT/T 808 multi-packet parts wait (across decode batches and restarts)
    # for the rest of their message this long, by receive time, and at most
    # this many messages at once; then they go to the decoder alone and land
    # in rejects as subpackage_timeout, raw bytes kept.
    subpackage_timeout: float = 300.0
    max_pending_messages: int = 10_000


def norm_terminal(t: str) -> str:
    t = t.strip()
    return t.lstrip("0") or "0" if t.isdigit() else t.lower()


class LoanBook:
    """Which terminals and VINs may connect, and the vehicle id of each.

    A Parquet or CSV file with a ``terminal_id`` and/or ``vin`` column (and
    optionally ``vehicle_id``), or a text file of one terminal number or VIN
    a line. Terminal numbers match without their leading zeros (a device
    sends 12 BCD digits for an 11-digit number)."""

    def __init__(self, path: str | None) -> None:
        self.open = path is None
        self.terminals: dict[str, str] = {}
        self.vins: dict[str, str] = {}
        if path is None:
            return
        p = Path(path)
        rows: list[dict[str, Any]]
        if p.suffix == ".parquet":
            import pyarrow.parquet as pq  # noqa: PLC0415

            rows = pq.read_table(p).to_pylist()
        elif p.suffix == ".csv":
            with open(p, newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = []
            for line in p.read_text().split():
                key = "vin" if len(line) == 17 and not line.isdigit() else "terminal_id"
                rows.append({key: line})
        for r in rows:
            vid = r.get("vehicle_id")
            if r.get("terminal_id"):
                t = str(r["terminal_id"])
                self.terminals[norm_terminal(t)] = str(vid) if vid else t
            if r.get("vin"):
                self.vins[str(r["vin"])] = str(vid) if vid else str(r["vin"])
        if not self.terminals and not self.vins:
            raise ValueError(f"loan book {path} lists no terminal_id or vin")

    def terminal(self, terminal_id: str) -> str | None:
        """The vehicle id of a terminal (the terminal itself when open)."""
        if self.open:
            return terminal_id
        return self.terminals.get(norm_terminal(terminal_id))

    def vin(self, vin: str) -> str | None:
        return vin if self.open else self.vins.get(vin)


class Log:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.counts: Counter[str] = Counter()

    def __call__(self, event: str, **kw: Any) -> None:
        self.counts[event] += 1
        kw = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in kw.items()}
        print(
            json.dumps({"t": round(time.time(), 3), "event": event, **kw}),
            file=self.out,
            flush=True,
        )
