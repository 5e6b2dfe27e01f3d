"""The pipeline's ledger stage: pledges, alerts, defaults and disposals of a
portfolio as signed lifecycle events, then a signed checkpoint.

Idempotent: a re-run records only what the ledger does not hold yet (pledges
by VIN, alerts by alert id, defaults and disposals by asset state,
valuations by the rule below), so incremental runs append and a re-run over
the same data, or after a crash part way, leaves the ledger as one clean run
would. A new checkpoint is signed only when the tree has grown.

A valuation goes on the ledger (``valuation_updated``, with ``value_minor``
and the loan's ``ltv_level``) only when it is material: the asset has no
valuation yet, the value moved by at least ``VALUE_CHANGE`` (2%) of the last
recorded one, or the LTV grade (none, warning, alert, emergency) changed; and
never a second time at the same as-of time (the run's clock).

The members' signers are passed in: the ledger must exist, and real members
hold their own keys (autolien.sim.consortium makes the demo's).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from .assets import AssetLedger
from .lifecycle import FINAL, State, parse_time
from .log import Replay
from .note import Checkpoint, NoteSigner

__all__ = ["VALUE_CHANGE", "ledger_stage", "material_valuation"]

VALUE_CHANGE = 0.02  # a valuation this far from the last recorded one is material


def material_valuation(
    last: tuple[datetime, int, str] | None, at: datetime, value_minor: int, level: str
) -> bool:
    """Whether a valuation at ``at`` goes on the ledger, given the asset's last
    recorded one (time, value in minor units, LTV level) or None."""
    if last is None:
        return True
    when, before, grade = last
    if at <= when:  # this as-of time (or a later one) is recorded already
        return False
    # in whole minor units: 2% of 7,000.00 is 140.00, not 139.99999...
    return grade != level or abs(value_minor - before) >= round(VALUE_CHANGE * abs(before))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _when(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.combine(v, datetime.min.time(), UTC)


def ledger_stage(
    path: str | Path,
    book: pa.Table,
    alerts: pa.Table,
    defaults: pa.Table | None,
    now: datetime,
    *,
    members: Sequence[NoteSigner],
    values: pa.Table | None = None,
    ltv_table: pa.Table | None = None,
    replay: Replay | None = None,
) -> dict[str, Any]:
    """Records what is new and returns counts, the tree size, root and checkpoint.

    ``members`` are the consortium's signers, in the order pledges are dealt
    to them as lenders; the first ``threshold`` approve each disposal.
    ``values`` (``vehicle_id``, ``value``) become ``valuation_updated`` events
    at ``now``; LTV levels of alert and above (``ltv_table``) become alerts
    whose id names the level, so a level is raised once. ``replay``: the
    pre-run audit's :class:`~autolien.ledger.log.Replay` slot (adopted when
    the ledger is as audited; the final state goes back into it)."""
    if not members:
        msg = "the ledger stage needs the consortium members' signers"
        raise ValueError(msg)
    root = Path(path)
    led = AssetLedger.open(root, replay=replay)
    start = led.size
    try:
        counts = {
            "pledges": 0,
            "alerts_raised": 0,
            "alerts_closed": 0,
            "defaults": 0,
            "disposals": 0,
            "valuations": 0,
            "ltv_alerts": 0,
        }
        lender = {}
        codes = {}
        for i, row in enumerate(
            book.select(["vehicle_id", "vin", "loan_amount", "currency", "pledge_date"]).to_pylist()
        ):
            actor = members[i % len(members)]
            lender[row["vehicle_id"]] = actor
            code = led.code_for_vin(row["vin"])
            if code is None:
                entry = led.register_pledge(
                    row["vin"],
                    f"P-{row['vehicle_id']}",
                    actor=actor,
                    time=_when(row["pledge_date"]),
                    loan_amount_minor=round(row["loan_amount"] * 100),
                    currency=row["currency"],
                )
                code = entry.event["asset"]
                counts["pledges"] += 1
            codes[row["vehicle_id"]] = code
        seen: set[tuple[str, str]] = set()
        valued: dict[str, tuple[datetime, int, str]] = {}
        for e in led.entries():
            if e["type"] in ("alert_raised", "alert_closed"):
                seen.add((e["type"], e["data"]["alert_id"]))
            elif e["type"] == "valuation_updated":
                valued[e["asset"]] = (
                    parse_time(e["time"]),
                    e["data"]["value_minor"],
                    e["data"].get("ltv_level", "none"),
                )
        events: list[tuple[str, str, dict[str, Any], NoteSigner, datetime]] = []
        # Alerts at level alert or above go on the shared record; warnings stay in the store.
        for a in alerts.to_pylist():
            vid = a["vehicle_id"]
            if vid not in codes or a["level"] == "warning":
                continue
            data = {"alert_id": a["alert_id"], "kind": a["kind"], "level": a["level"]}
            # An alert that opened as a warning before an earlier run's events
            # and reached level alert since is recorded when the ledger learns
            # of it: an asset's events never go back in time.
            since = led.asset(codes[vid]).last_time
            if ("alert_raised", a["alert_id"]) not in seen:
                events.append(
                    ("alert_raised", codes[vid], data, lender[vid], max(a["opened"], since))
                )
                counts["alerts_raised"] += 1
            if a["closed"] is not None and ("alert_closed", a["alert_id"]) not in seen:
                events.append(
                    (
                        "alert_closed",
                        codes[vid],
                        {"alert_id": a["alert_id"]},
                        lender[vid],
                        max(a["closed"], since),
                    )
                )
                counts["alerts_closed"] += 1
        # Valuations and LTV alerts carry the run's clock, after every default
        # and disposal: they are recorded last.
        latest: list[tuple[str, str, dict[str, Any], NoteSigner, datetime]] = []
        grades: dict[str, str] = {}
        if ltv_table is not None and "level" in ltv_table.column_names:
            for r in ltv_table.select(["vehicle_id", "level"]).to_pylist():
                grades[r["vehicle_id"]] = r["level"] or "none"
        if values is not None:
            for r in values.select(["vehicle_id", "value"]).to_pylist():
                vid = r["vehicle_id"]
                if vid not in codes or r["value"] is None:
                    continue
                minor, grade = round(r["value"] * 100), grades.get(vid, "none")
                if not material_valuation(valued.get(codes[vid]), now, minor, grade):
                    continue
                latest.append(
                    (
                        "valuation_updated",
                        codes[vid],
                        {"value_minor": minor, "ltv_level": grade},
                        lender[vid],
                        now,
                    )
                )
                counts["valuations"] += 1
        if ltv_table is not None and "level" in ltv_table.column_names:
            for r in ltv_table.select(["vehicle_id", "level", "ltv"]).to_pylist():
                aid = f"{r['vehicle_id']}:ltv:{r['level']}"
                if (
                    r["level"] in ("alert", "emergency")
                    and r["vehicle_id"] in codes
                    and ("alert_raised", aid) not in seen
                ):
                    latest.append(
                        (
                            "alert_raised",
                            codes[r["vehicle_id"]],
                            {"alert_id": aid, "kind": "ltv", "level": r["level"]},
                            lender[r["vehicle_id"]],
                            now,
                        )
                    )
                    counts["ltv_alerts"] += 1
        outstanding = dict(
            zip(
                book.column("vehicle_id").to_pylist(),
                book.column("outstanding").to_pylist(),
                strict=True,
            )
        )
        # A default, and one day later the consortium's M-of-N disposal.
        # Disposals need the recorded default, so the time-ordered events are
        # written in runs, each disposal in its place (an asset's events must
        # not go back in time).
        disposals = []
        for d in defaults.to_pylist() if defaults is not None else []:
            vid, at = d["vehicle_id"], d["default_at"]
            if vid not in codes or at > now:
                continue
            if led.asset(codes[vid]).state in (State.PLEDGED, State.OVERDUE):
                events.append(
                    (
                        "default_declared",
                        codes[vid],
                        {"outstanding_minor": round(outstanding[vid] * 100)},
                        lender[vid],
                        at,
                    )
                )
                counts["defaults"] += 1
            if at + timedelta(days=1) <= now:
                disposals.append((at + timedelta(days=1), vid))
        timeline: list[tuple[datetime, int, Any]] = [(e[4], 0, e) for e in events]
        timeline += [(w, 1, v) for w, v in disposals]
        timeline.sort(key=lambda x: (x[0], x[1]))
        batch: list[tuple[str, str, dict[str, Any], NoteSigner, datetime]] = []
        for when, kind, item in timeline:
            if kind == 0:
                batch.append(item)
                continue
            if batch:
                led.record_many(batch)
                batch = []
            vid = item
            if led.asset(codes[vid]).state == State.DEFAULTED:
                req = led.disposal_request(codes[vid], reason="loan default", time=when)
                approvals = [led.approve_disposal(req, m) for m in members[: led.threshold]]
                led.authorize_disposal(codes[vid], req, approvals, actor=lender[vid], time=when)
                counts["disposals"] += 1
        if batch:
            led.record_many(batch)
        # not on an asset whose lifecycle ended (settled or released), as this
        # run's events left it; a due 7-day trigger is recorded before them
        keep = []
        for item in latest:
            if led.asset(item[1]).state in FINAL:
                counts["valuations" if item[0] == "valuation_updated" else "ltv_alerts"] -= 1
                continue
            keep.append(item)
        if keep:
            led.record_many(keep)
        led.tick(now)
        # triggers due before one of this run's events were recorded ahead of it
        counts["judicial_triggers"] = sum(
            1
            for seq in range(start, led.size)
            if led.entry(seq)["type"] == "judicial_disposal_triggered"
        )
        # one checkpoint per tree size: a re-run that added nothing signs nothing
        body = Checkpoint(led.origin, led.size, led.root()).text()
        done = [n for n in led.checkpoints() if n.startswith(body)]
        note = done[-1] if done else led.checkpoint()
        _write_atomic(root / "checkpoint.note", note)
        return {
            **counts,
            "entries": led.size,
            "root": led.root().hex(),
            "checkpoint": str(root / "checkpoint.note"),
            "threshold": f"{led.threshold} of {len(led.members)}",
        }
    finally:
        led.close()
