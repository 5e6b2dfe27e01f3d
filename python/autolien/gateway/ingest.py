"""The ingest side of the gateway: spool -> decoders -> store -> monitor -> alerts.

:class:`Ingestor` reads the spool from its checkpoint in batches, decodes
them with the C++ decoders into the store, feeds the monitor and writes the
alerts it opens or escalates as JSON lines; then it checkpoints.

JT/T 808 multi-packet messages: the decoder reassembles the parts it sees in
one input, so parts that a terminal sent across two batches (or across a
restart) would each be rejected as incomplete. The ingestor therefore holds
the parts of a message back until the message is whole and then decodes its
parts together; parts still waiting are written into the checkpoint, so they
outlive a restart even once their segment is removed. A message that stays
incomplete (``subpackage_timeout`` seconds by receive time, or when more than
``max_pending_messages`` wait) goes to the decoder as it is and lands in
rejects with its raw bytes.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..monitor import Monitor
from ..telemetry import Store, decode_gb32960, decode_jt808
from .config import GatewayConfig, LoanBook, Log
from .protocol import Frame, _jt808_unframe, parse_jt808_header
from .spool import Record, SpoolReader

__all__ = ["Ingestor", "part_key"]

_PartKey = tuple[bytes, int, int, int]


def _source(segment: int) -> str:
    return f"spool:{segment:012d}"


def part_key(rec: Record) -> tuple[_PartKey, int] | None:
    """(message key, package index) of a JT/T 808 part of a multi-packet
    message, keyed as the decoder keys it (terminal, message id, package
    count, serial of part 1); None for anything else, which is decoded as is."""
    if rec.protocol != "jt808":
        return None
    fr = _jt808_unframe(rec.frame)
    if not isinstance(fr, Frame):
        return None
    h = parse_jt808_header(fr.payload)
    if h is None or not h.subpackage:
        return None
    total, index = struct.unpack_from(">HH", fr.payload, 17 if h.v2019 else 12)
    if total < 2 or not 1 <= index <= total:
        return None  # not split, or a bad index: the decoder says which
    return (h.phone, h.msg_id, total, (h.serial - (index - 1)) & 0xFFFF), index


class _Message:
    __slots__ = ("first_us", "parts", "total")

    def __init__(self, total: int, first_us: int) -> None:
        self.total = total
        self.first_us = first_us
        self.parts: dict[int, Record] = {}


class Ingestor:
    """Spool -> store -> monitor, batch by batch (see the module docstring)."""

    def __init__(self, config: GatewayConfig, log: Log, *, store: Store | None = None) -> None:
        self.cfg = config
        self.log = log
        self.book = LoanBook(config.loan_book)
        self.store = store if store is not None else Store(config.db)
        # after the store: a predecessor holding its lock may still checkpoint
        self.reader = SpoolReader(config.spool)
        self.monitor = Monitor()
        self.stats: Counter[str] = Counter()
        self._alert_levels: dict[str, int] = {}
        self._alerts_out: IO[str] | None = None
        if config.alerts == "-":
            self._alerts_out = sys.stdout
        elif config.alerts:
            self._alerts_out = open(config.alerts, "a")  # noqa: SIM115 - held open, once
        self._waiting: dict[_PartKey, _Message] = {}
        for r in self.reader.pending:
            self._hold(r)

    def close(self) -> None:
        self.store.close()
        if self._alerts_out is not None and self._alerts_out.fileno() > 2:
            self._alerts_out.close()

    def ingest_pending(self) -> int:
        """Ingests every whole record after the checkpoint; returns how many."""
        n = 0
        while True:
            recs = self.reader.read(self.reader.stored)
            if not recs:
                return n
            self._ingest(self._reassemble(recs))
            n += len(recs)
            waiting = [r for m in self._waiting.values() for r in m.parts.values()]
            self.reader.checkpoint((recs[-1].segment, recs[-1].end), waiting)
            self.stats["parts_waiting"] = len(waiting)

    # --- multi-packet messages ---------------------------------------------
    def _hold(self, rec: Record) -> list[Record]:
        """Holds a part back; returns the message's parts once it is whole."""
        got = part_key(rec)
        if got is None:
            return [rec]
        key, index = got
        msg = self._waiting.get(key)
        if msg is None:
            msg = self._waiting[key] = _Message(key[2], rec.received_us)
        msg.parts[index] = rec  # a part sent twice counts once, as in the decoder
        if len(msg.parts) < msg.total:
            return []
        del self._waiting[key]
        self.stats["messages_reassembled"] += 1
        return [msg.parts[i] for i in sorted(msg.parts)]

    def _reassemble(self, recs: list[Record]) -> list[Record]:
        out: list[Record] = []
        for r in recs:
            out += self._hold(r)
        # what waited too long, or too many messages waiting: decoded as they
        # are, so the decoder rejects them with their raw bytes
        now_us = recs[-1].received_us
        limit_us = int(self.cfg.subpackage_timeout * 1e6)
        expired = [k for k, m in self._waiting.items() if now_us - m.first_us > limit_us]
        over = len(self._waiting) - len(expired) - self.cfg.max_pending_messages
        if over > 0:
            rest = sorted(
                (k for k in self._waiting if k not in set(expired)),
                key=lambda k: self._waiting[k].first_us,
            )
            expired += rest[:over]
        for k in expired:
            m = self._waiting.pop(k)
            self.stats["messages_expired"] += 1
            out += [m.parts[i] for i in sorted(m.parts)]
        return out

    # --- decode, store, monitor ----------------------------------------------
    def _ingest(self, recs: list[Record]) -> None:
        tables: dict[str, pa.Table] = {}
        for proto, decode in (("jt808", decode_jt808), ("gb32960", decode_gb32960)):
            mine = [r for r in recs if r.protocol == proto]
            if not mine:
                continue
            buf = b"".join(r.frame for r in mine)
            starts = [0]
            for r in mine[:-1]:
                starts.append(starts[-1] + len(r.frame))
            res = decode(buf)
            kind = "locations" if proto == "jt808" else "ev"
            table, segs = _respool(res.table, starts, mine)
            self.stats[f"{kind}_rows"] += self._append(table, segs, kind)
            if res.rejects.num_rows:
                rej, rsegs = _respool(res.rejects, starts, mine)
                rej = rej.append_column(
                    "decoder", pa.array([proto] * res.rejects.num_rows, pa.string())
                )
                self._append(rej, rsegs, "rejects")
                self.stats["rejects"] += rej.num_rows
            tables[proto] = table
        self._monitor(tables)

    def _append(self, table: pa.Table, segs: np.ndarray, kind: str) -> int:
        """Appends rows under the spool segment of the frame each came from,
        so that offsets (within a segment) with their source are unique and
        a replayed frame has the keys it had the first time."""
        if table.num_rows == 0:
            return self.store.append(table, kind=kind, source_file=_source(0))
        added = 0
        for seg in np.unique(segs).tolist():
            part = table if len(np.unique(segs)) == 1 else table.filter(pa.array(segs == seg))
            added += self.store.append(part, kind=kind, source_file=_source(seg))
        return added

    def _recent(self, table: pa.Table) -> pa.Table:
        t = table.column("time")
        keep = pc.is_valid(t)
        if self.cfg.monitor_skew is not None:
            now = time.time()
            lo = pa.scalar(int((now - self.cfg.monitor_skew) * 1e6), pa.int64()).cast(t.type)
            hi = pa.scalar(int((now + 86400) * 1e6), pa.int64()).cast(t.type)
            keep = pc.and_(keep, pc.and_(pc.greater_equal(t, lo), pc.less_equal(t, hi)))
        out = table.filter(pc.fill_null(keep, False))
        self.stats["monitor_skipped_rows"] += table.num_rows - out.num_rows
        return out

    def _monitor(self, tables: dict[str, pa.Table]) -> None:
        try:
            self._monitor_batch(tables)
        except Exception as e:  # noqa: BLE001 - a monitor error must not stop storage
            self.log("monitor_error", error=type(e).__name__, message=str(e))

    def _monitor_batch(self, tables: dict[str, pa.Table]) -> None:
        tracks = odo = None
        loc = tables.get("jt808")
        if loc is not None and loc.num_rows:
            loc = self._recent(loc)
            vid = pa.array(
                [self.book.terminal(t) or t for t in loc.column("terminal_id").to_pylist()],
                pa.string(),
            )
            ign = pc.equal(
                pc.bit_wise_and(
                    loc.column("status"), pa.scalar(1, loc.schema.field("status").type)
                ),
                pa.scalar(1, loc.schema.field("status").type),
            )
            tracks = pa.table(
                {
                    "vehicle_id": vid,
                    "time": loc.column("time"),
                    "lat": loc.column("lat"),
                    "lon": loc.column("lon"),
                    "speed_kmh": loc.column("speed_kmh"),
                    "ignition": ign,
                }
            )
            odo_parts = [
                tracks.select(["vehicle_id", "time"]).append_column(
                    "odometer_km", loc.column("mileage_km")
                )
            ]
        else:
            odo_parts = []
        ev = tables.get("gb32960")
        if ev is not None and ev.num_rows:
            ev = self._recent(ev)
            vid = pa.array(
                [self.book.vin(v) or v for v in ev.column("vin").to_pylist()], pa.string()
            )
            odo_parts.append(
                pa.table(
                    {
                        "vehicle_id": vid,
                        "time": ev.column("time"),
                        "odometer_km": ev.column("odometer_km"),
                    }
                )
            )
        if odo_parts:
            odo = pa.concat_tables(odo_parts)
            odo = odo.filter(pc.is_valid(odo.column("odometer_km")))
        if tracks is None and odo is None:
            return
        changed = self.monitor.update(tracks, odo)
        # the hourly feature rows are not the gateway's output: not kept
        self.monitor.drain_features()
        # Rows the monitor set aside (late for an hour it already scored, or
        # without a position) are in the store all the same; counted by
        # reason and logged, then dropped, so the list does not grow forever.
        rejects = self.monitor.drain_rejects()
        if rejects.num_rows:
            by = Counter(rejects.column("reason").to_pylist())
            for why, k in by.items():
                self.stats["monitor_rejects"] += k
                self.log("monitor_rejects", reason=why, rows=k)
        self._emit(changed)

    def _emit(self, changed: pa.Table) -> None:
        for a in changed.to_pylist():
            before = self._alert_levels.get(a["alert_id"])
            # An alert first seen already closed (opened and closed within one
            # batch) was still raised: it goes out as opened, with its close.
            if before is None:
                event = "opened"
            elif a["closed"] is not None:
                event = "closed"
            elif a["level_code"] > before:
                event = "escalated"
            else:
                continue
            # only open alerts are remembered: a closed one never changes
            # again (a new incident is a new alert_id), so the map stays as
            # small as the open book however long the server runs
            if a["closed"] is None:
                self._alert_levels[a["alert_id"]] = a["level_code"]
            else:
                self._alert_levels.pop(a["alert_id"], None)
            self.stats[f"alerts_{event}"] += 1
            if self._alerts_out is None or event == "closed":
                continue
            row = {
                "event": event,
                **{
                    k: (v.isoformat() if hasattr(v, "isoformat") else v)
                    for k, v in a.items()
                    if k != "path"
                },
            }
            row["evidence"] = json.loads(a["evidence"])
            print(json.dumps(row, default=str), file=self._alerts_out, flush=True)


def _respool(table: pa.Table, starts: list[int], recs: list[Record]) -> tuple[pa.Table, np.ndarray]:
    """Decoder offsets (in the batch buffer) become offsets in the spool
    segment of their frame, so a replayed batch has the same keys and the
    store skips it; also returns each row's segment."""
    if "offset" not in table.column_names or table.num_rows == 0:
        return table, np.zeros(table.num_rows, np.int64)
    off = table.column("offset").to_numpy(zero_copy_only=False).astype(np.int64)
    s = np.asarray(starts, np.int64)
    i = np.searchsorted(s, off, side="right") - 1
    base = np.asarray([r.frame_offset for r in recs], np.int64)
    new = base[i] + (off - s[i])
    idx = table.column_names.index("offset")
    segs = np.asarray([r.segment for r in recs], np.int64)[i]
    return table.set_column(
        idx, "offset", pa.array(new.astype(np.uint64), table.schema.field("offset").type)
    ), segs


# --- the ingest process -------------------------------------------------------
STATE = "monitor.arrow"  # in the spool directory: Arrow IPC, one row per vehicle


def _open_store(db: str, wait_s: float = 60.0) -> Store:
    """Opens the store, waiting while an ingest process that outlived its
    acceptor (kill -9) finishes its last batch and lets the lock go."""
    import duckdb  # noqa: PLC0415

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return Store(db)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _store_id(store: Store) -> str:
    """The identity of the store: a monitor state belongs to one store."""
    sid = store.meta("gateway_store_id")
    if sid is None:
        import uuid  # noqa: PLC0415

        sid = uuid.uuid4().hex
        store.set_meta("gateway_store_id", sid)
    return sid


def _read_state(path: Path) -> tuple[dict[str, Any], pa.Table] | None:
    """The saved state file: its meta (schema metadata) and the vehicle rows."""
    from pyarrow import ipc  # noqa: PLC0415

    if not path.exists():
        return None
    try:
        with open(path, "rb") as src:
            table = ipc.open_file(src).read_all()
        meta = json.loads((table.schema.metadata or {})[b"autolien_monitor"])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError):
        return None  # not a state this version wrote: the monitor starts afresh
    return meta, table


def _monitor_from(meta: dict[str, Any], table: pa.Table) -> Monitor:
    from ..monitor.config import MonitorConfig  # noqa: PLC0415

    m = Monitor(MonitorConfig(**meta["config"]))
    m.now = meta["now"]
    m.load_state(table)
    return m


def saved_monitor(spool: str) -> Monitor | None:
    """The monitor state the last ingest process left at its clean exit."""
    got = _read_state(Path(spool) / STATE)
    return None if got is None else _monitor_from(*got)


def _load_monitor(ing: Ingestor, store_id: str) -> str | None:
    """Resumes the monitor saved at the last clean exit when it belongs to
    this store and nothing was stored since; returns why not otherwise."""
    got = _read_state(Path(ing.cfg.spool) / STATE)
    if got is None:
        return None
    meta, table = got
    if meta.get("store_id") != store_id:
        return "other_store"  # e.g. the database was deleted and started afresh
    if tuple(meta.get("stored", ())) != ing.reader.stored:
        return "behind_the_store"  # not a clean exit: rows went in after it
    ing.monitor = _monitor_from(meta, table)
    ing._alert_levels = meta.get("alert_levels", {})
    return "resumed"


def _save_monitor(ing: Ingestor, store_id: str) -> None:
    """Each vehicle's monitor state as Arrow (``Monitor.state_table``), the
    rest in the schema's metadata; written beside, synced, then renamed."""
    import dataclasses  # noqa: PLC0415

    from pyarrow import ipc  # noqa: PLC0415

    path = Path(ing.cfg.spool) / STATE
    tmp = path.with_suffix(".tmp")
    meta = {
        "store_id": store_id,
        "stored": list(ing.reader.stored),
        "now": ing.monitor.now,
        "config": dataclasses.asdict(ing.monitor.config),
        "alert_levels": ing._alert_levels,
    }
    table = ing.monitor.state_table()
    table = table.replace_schema_metadata({"autolien_monitor": json.dumps(meta)})
    with open(tmp, "wb") as f:
        with ipc.new_file(f, table.schema) as w:
            w.write_table(table)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run(cfg: GatewayConfig, wake: int) -> int:
    """The ingest process: replays the spool, then ingests whenever the
    acceptor signals a commit on ``wake`` (a pipe; at most once per
    ``ingest_interval``, so that batches gather), and every interval anyway.
    End of file on ``wake`` (the acceptor stopped, or died): it stores what
    is left, saves the monitor state and exits."""
    import select  # noqa: PLC0415

    log = Log(sys.stderr)
    ing = Ingestor(cfg, log, store=_open_store(cfg.db))
    store_id = _store_id(ing.store)
    why = _load_monitor(ing, store_id)
    if why is not None:
        log("monitor_state", outcome=why)
    replayed = ing.ingest_pending()
    if replayed:
        log("spool_replayed", records=replayed)
    due: float | None = None  # when to ingest after a wake-up
    while True:
        timeout = cfg.ingest_interval if due is None else max(0.0, due - time.monotonic())
        ready, _, _ = select.select([wake], [], [], timeout)
        if ready:
            if not os.read(wake, 1 << 16):
                break
            if due is None:
                due = time.monotonic() + cfg.ingest_interval
            continue
        due = None
        try:
            ing.ingest_pending()
        except Exception as e:  # noqa: BLE001 - the process must outlive a bad batch
            log("ingest_error", error=type(e).__name__, message=str(e))
    ing.ingest_pending()
    _save_monitor(ing, store_id)
    log(
        "ingest_stopped",
        **{k: v for k, v in ing.stats.items() if k != "parts_waiting"},
        parts_waiting=ing.stats["parts_waiting"],
        spool_skipped_bytes=ing.reader.skipped_bytes,
    )
    ing.close()
    return 0


def main() -> int:
    d = json.loads(sys.argv[1])
    for k in ("jt808", "gb32960"):
        d[k] = tuple(d[k]) if d[k] is not None else None
    cfg = GatewayConfig(**d)
    if cfg.ingest_nice:
        # Acknowledgements first: when the acceptor and this process both want
        # a core, the acceptor gets it and the spool holds what waits here.
        os.nice(cfg.ingest_nice)
    return run(cfg, sys.stdin.fileno())


if __name__ == "__main__":
    sys.exit(main())
