"""What a long-running ingest process keeps: only the open alerts' levels,
and no growing list of the monitor's set-aside rows."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from autolien.gateway.config import GatewayConfig, Log
from autolien.gateway.ingest import Ingestor
from autolien.monitor import Monitor
from autolien.schemas import ALERTS_SCHEMA

T0 = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)


def _alert(alert_id: str, level: int, closed: dt.datetime | None) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "vehicle_id": alert_id.split(":", maxsplit=1)[0],
        "kind": "towing",
        "level": ("warning", "alert", "emergency")[level],
        "level_code": level,
        "score": 1.0,
        "opened": T0,
        "updated": T0,
        "closed": closed,
        "first_signal": T0,
        "last_signal": T0,
        "n_signals": 1,
        "segment_start": None,
        "segment_end": None,
        "evidence": "{}",
        "path": None,
    }


def _ingestor(tmp_path: Path, alerts: Path | None = None) -> tuple[Ingestor, io.StringIO]:
    (tmp_path / "spool").mkdir()
    cfg = GatewayConfig(
        db=str(tmp_path / "gw.duckdb"),
        spool=str(tmp_path / "spool"),
        alerts=str(alerts) if alerts else None,
        monitor_skew=None,
    )
    out = io.StringIO()
    return Ingestor(cfg, Log(out)), out


def test_only_open_alerts_are_remembered(tmp_path: Path) -> None:
    ing, _ = _ingestor(tmp_path, tmp_path / "alerts.jsonl")
    try:
        later = T0 + dt.timedelta(hours=30)
        batches = [
            [_alert("v1:towing:1", 1, None)],  # opened
            [_alert("v1:towing:1", 2, None)],  # escalated
            # closed; v2 opened and closed within one batch
            [_alert("v1:towing:1", 2, later), _alert("v2:towing:1", 1, later)],
        ]
        sizes = []
        for b in batches:
            ing._emit(pa.Table.from_pylist(b, schema=ALERTS_SCHEMA))
            sizes.append(dict(ing._alert_levels))
    finally:
        ing.close()
    assert sizes == [{"v1:towing:1": 1}, {"v1:towing:1": 2}, {}]
    lines = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(x["alert_id"], x["event"], x["level_code"]) for x in lines] == [
        ("v1:towing:1", "opened", 1),
        ("v1:towing:1", "escalated", 2),
        ("v2:towing:1", "opened", 1),
    ]
    assert ing.stats["alerts_closed"] == 1


def test_monitor_rejects_are_counted_and_dropped(tmp_path: Path) -> None:
    ing, log = _ingestor(tmp_path)
    t = [T0 + dt.timedelta(minutes=m) for m in range(0, 180, 10)]
    n = len(t)
    lat = [31.2 + 0.001 * i for i in range(n)]
    lat[3] = float("nan")  # no position: set aside by the monitor
    loc = pa.table(
        {
            "terminal_id": ["013800000001"] * n,
            "time": pa.array(t, pa.timestamp("us", tz="UTC")),
            "lat": lat,
            "lon": [121.4] * n,
            "speed_kmh": [30.0] * n,
            "status": pa.array([1] * n, pa.uint32()),
            "mileage_km": [1000.0 + i for i in range(n)],
        }
    )
    try:
        ing._monitor_batch({"jt808": loc})
        # the same rows again: every one is now in an hour already scored
        ing._monitor_batch({"jt808": loc.slice(0, 2)})
        left = ing.monitor.rejects.num_rows
    finally:
        ing.close()
    events = [json.loads(x) for x in log.getvalue().splitlines()]
    counted = {e["reason"]: e["rows"] for e in events if e.get("event") == "monitor_rejects"}
    assert counted["missing lat/lon"] == 1
    # two late track rows and two late odometer readings
    assert counted["late: its hour was already scored"] == 4
    assert ing.stats["monitor_rejects"] == 5
    assert left == 0


def test_drain_rejects_hands_out_each_row_once() -> None:
    m = Monitor()
    tracks = pa.table(
        {
            "vehicle_id": ["a", "a", "a"],
            "time": pa.array(
                [T0, T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(hours=3)],
                pa.timestamp("us", tz="UTC"),
            ),
            "lat": [31.0, float("nan"), 31.0],
            "lon": [121.0, 121.0, 121.0],
        }
    )
    m.update(tracks)
    first = m.drain_rejects()
    assert first.column("reason").to_pylist() == ["missing lat/lon"]
    assert m.drain_rejects().num_rows == 0
    m.update(tracks.slice(0, 1))  # now late
    assert m.drain_rejects().column("reason").to_pylist() == ["late: its hour was already scored"]
