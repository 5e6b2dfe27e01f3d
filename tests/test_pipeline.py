"""The main job end to end on a small simulated portfolio: files on disk,
ingest, monitor, and detection quality against the injected truth."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autolien.cli import main
from autolien.ledger import audit
from autolien.ledger.identity import validate_vin
from autolien.pipeline import run_portfolio
from autolien.sim.portfolio import PORTFOLIO_ANOMALIES as ANOMALIES
from autolien.sim.portfolio import write_portfolio
from autolien.telemetry import decode_gb32960, decode_jt808, decode_nmea


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pf")
    assert (
        main(
            [
                "simulate",
                str(root),
                "--vehicles",
                "20",
                "--days",
                "12",
                "--seed",
                "4",
                # one vehicle of each anomaly kind
                "--anomaly-share",
                str(len(ANOMALIES) / 20),
                "--quiet",
            ]
        )
        == 0
    )
    return root


def test_portfolio_files_are_deterministic_and_valid(portfolio: Path, tmp_path: Path) -> None:
    again = write_portfolio(tmp_path, 20, 12, seed=4, anomaly_share=len(ANOMALIES) / 20)
    assert _digest(tmp_path) == _digest(portfolio)
    book = pq.read_table(portfolio / "loan_book.parquet")
    assert book.num_rows == 20
    for vin in book.column("vin").to_pylist():
        validate_vin(vin)  # check digits per ISO 3779
    assert len(set(book.column("terminal_id").to_pylist())) == 20
    assert sum(again.anomalies.values()) == pq.read_table(portfolio / "truth.parquet").num_rows
    assert set(again.anomalies) == set(ANOMALIES)


def test_run_detects_the_injected_anomalies(
    portfolio: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    truth = pq.read_table(portfolio / "truth.parquet").to_pylist()
    db = str(tmp_path / "run.duckdb")
    capsys.readouterr()
    assert main(["run", str(portfolio), "--db", db, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ingest"]["rejects"] == {}
    rows = report["ingest"]["rows"]
    frames = {"locations": 0, "ev": 0, "fixes": 0}
    for f in sorted((portfolio / "telemetry").iterdir()):
        dec = decode_jt808 if f.suffix == ".jt808" else decode_gb32960
        frames["locations" if f.suffix == ".jt808" else "ev"] += dec(f.read_bytes()).table.num_rows
    for f in sorted((portfolio / "rtk").rglob("*.nmea")):
        frames["fixes"] += decode_nmea(f.read_bytes()).table.num_rows
    assert frames["fixes"] > 0  # one vehicle in 20 carries an RTK receiver
    assert report["fuse"] != "skipped: no RTK fixes in this portfolio"
    con = duckdb.connect(db, read_only=True)
    book = {r[0] for r in con.sql("SELECT vehicle_id FROM loan_book").fetchall()}
    alert_ids = {r[0] for r in con.sql("SELECT vehicle_id FROM alerts").fetchall()}
    con.close()
    assert alert_ids <= book  # terminal numbers and VINs were mapped to the book's ids
    assert rows == {k: v for k, v in frames.items() if v}
    det = report["detection"]
    assert {t["anomaly"] for t in truth} == set(ANOMALIES)
    for name in {t["anomaly"] for t in truth}:
        assert det["anomalies"][name]["recall"] == 1.0, name
        assert det["anomalies"][name]["level_reached"] == 1.0, name
    assert det["normal_emergencies"] == 0
    val = report["valuation"]
    assert val["valued"] == len(book)
    assert val["currency"] == "GBP"
    con = duckdb.connect(db, read_only=True)
    rows = con.sql(
        "SELECT l.vehicle_id, l.ltv, b.outstanding, v.value, l.level FROM ltv l JOIN loan_book b "
        "USING (vehicle_id) JOIN valuations v USING (vehicle_id)"
    ).fetchall()
    con.close()
    assert len(rows) == len(book)
    for _, ratio, owed, value, level in rows:
        assert ratio == pytest.approx(owed / value)
        assert level == (
            "emergency"
            if ratio >= 1
            else "alert"
            if ratio >= 0.85
            else "warning"
            if ratio >= 0.7
            else None
        )
    assert report["ledger"]["ltv_alerts"] == sum(1 for r in rows if r[4] in ("alert", "emergency"))
    led = report["ledger"]
    book_n = len(book)
    assert led["pledges"] == book_n
    n_alerts = sum(
        1
        for a in duckdb.connect(db, read_only=True).sql("SELECT level FROM alerts").fetchall()
        if a[0] != "warning"
    )
    assert led["alerts_raised"] == n_alerts
    ledger_dir = Path(db).parent / "ledger"
    assert audit(ledger_dir).ok
    note = (ledger_dir / "checkpoint.note").read_text()
    assert note.startswith("autolien.demo/pledges\n")
    assert f"\n{led['entries']}\n" in note
    # a second run over the same files adds nothing and gives the same alerts
    assert main(["run", str(portfolio), "--db", db, "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["monitor"]["alerts"] == report["monitor"]["alerts"]
    assert again["ledger"]["pledges"] == again["ledger"]["alerts_raised"] == 0
    # a re-run over the same data records nothing: no second valuation at the
    # same as-of time, no checkpoint of an unchanged tree
    assert led["valuations"] == book_n
    assert again["ledger"]["valuations"] == again["ledger"]["ltv_alerts"] == 0
    assert again["ledger"]["entries"] == led["entries"]
    assert again["ledger"]["root"] == led["root"]
    assert main(["run", str(tmp_path / "nope"), "--db", db, "--quiet"]) == 2


def test_incremental_runs_equal_one_run(
    portfolio: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    part = tmp_path / "pf"
    (part / "telemetry").mkdir(parents=True)
    for name in ("loan_book.parquet", "truth.parquet", "defaults.parquet"):
        shutil.copy(portfolio / name, part / name)
    days = sorted({p.stem for p in (portfolio / "telemetry").iterdir()})
    first, rest = days[:8], days[8:]

    def copy(stems: list[str]) -> None:
        for p in (portfolio / "telemetry").iterdir():
            if p.stem in stems:
                shutil.copy(p, part / "telemetry" / p.name)
        for p in (portfolio / "rtk").rglob("*.nmea"):
            if p.stem in stems:
                (part / "rtk" / p.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(p, part / "rtk" / p.parent.name / p.name)

    def run(db: Path, pf: Path) -> dict:
        capsys.readouterr()
        assert main(["run", str(pf), "--db", str(db), "--json", "--quiet"]) == 0
        return json.loads(capsys.readouterr().out)

    copy(first)
    run(tmp_path / "inc" / "x.duckdb", part)
    copy(rest)
    second = run(tmp_path / "inc" / "x.duckdb", part)
    full = run(tmp_path / "full" / "x.duckdb", portfolio)
    assert second["monitor"]["late_rows"] == 0
    n_first = sum(
        1
        for p in part.rglob("*")
        if p.suffix in (".jt808", ".gb32960", ".nmea") and p.stem in first
    )
    assert second["ingest"]["skipped_files"] == n_first  # only the new files were read
    assert second["monitor"]["alerts"] == full["monitor"]["alerts"]

    def alerts(db: Path) -> list:
        con = duckdb.connect(str(db), read_only=True)
        rows = con.sql("SELECT * FROM alerts ORDER BY alert_id").fetchall()
        con.close()
        return rows

    assert alerts(tmp_path / "inc" / "x.duckdb") == alerts(tmp_path / "full" / "x.duckdb")


def test_ledger_stage_keeps_each_assets_events_in_time_order(tmp_path: Path) -> None:
    # A default, an alert that closes two days later, and the disposal one day
    # after the default: the disposal must land between them, not after.
    from datetime import UTC, datetime, timedelta

    from autolien.ledger.stage import ledger_stage
    from autolien.sim.consortium import demo_consortium

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    book = pa.table(
        {
            "vehicle_id": ["v1"],
            "vin": ["LSVAU218XN2183294"],
            "loan_amount": [10_000.0],
            "currency": ["GBP"],
            "outstanding": [8_000.0],
            "pledge_date": [t0.date()],
        }
    )
    alerts = pa.table(
        {
            "alert_id": ["v1:x:1"],
            "vehicle_id": ["v1"],
            "kind": ["relocation"],
            "level": ["alert"],
            "opened": [t0 + timedelta(days=1)],
            "closed": [t0 + timedelta(days=5)],
        }
    )
    defaults = pa.table({"vehicle_id": ["v1"], "default_at": [t0 + timedelta(days=2)]})
    now = t0 + timedelta(days=11)
    members = demo_consortium(tmp_path / "led", book, now)
    out = ledger_stage(tmp_path / "led", book, alerts, defaults, now, members=members)
    assert (out["defaults"], out["disposals"], out["alerts_raised"], out["alerts_closed"]) == (
        1,
        1,
        1,
        1,
    )
    assert out["judicial_triggers"] == 1  # 7 days after the authorisation with no auction
    assert audit(tmp_path / "led").ok


def test_an_alert_that_escalated_after_an_earlier_run_is_recorded_in_time_order(
    tmp_path: Path,
) -> None:
    # Run 1 (day 3) values the car; the alert opened on day 1 as a warning and
    # reached level alert only by run 2 (day 5): it goes on the ledger at the
    # asset's last event (day 3), not back in time at day 1 (which the
    # lifecycle refuses).
    from datetime import UTC, datetime, timedelta

    from autolien.ledger.stage import ledger_stage

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    book = pa.table(
        {
            "vehicle_id": ["v1"],
            "vin": ["LSVAU218XN2183294"],
            "loan_amount": [10_000.0],
            "currency": ["GBP"],
            "outstanding": [8_000.0],
            "pledge_date": [t0.date()],
        }
    )
    values = pa.table({"vehicle_id": ["v1"], "value": [9_000.0]})
    none = pa.table(
        {
            "alert_id": pa.array([], pa.string()),
            "vehicle_id": pa.array([], pa.string()),
            "kind": pa.array([], pa.string()),
            "level": pa.array([], pa.string()),
            "opened": pa.array([], pa.timestamp("us", tz="UTC")),
            "closed": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )
    from autolien.sim.consortium import demo_consortium

    members = demo_consortium(tmp_path / "led", book, t0)
    first = ledger_stage(
        tmp_path / "led", book, none, None, t0 + timedelta(days=3), values=values, members=members
    )
    assert first["valuations"] == 1
    alerts = pa.table(
        {
            "alert_id": ["v1:x:1"],
            "vehicle_id": ["v1"],
            "kind": ["relocation"],
            "level": ["alert"],
            "opened": pa.array([t0 + timedelta(days=1)], pa.timestamp("us", tz="UTC")),
            "closed": pa.array([None], pa.timestamp("us", tz="UTC")),
        }
    )
    out = ledger_stage(
        tmp_path / "led", book, alerts, None, t0 + timedelta(days=5), members=members
    )
    assert out["alerts_raised"] == 1
    assert audit(tmp_path / "led").ok
    from autolien.ledger.assets import AssetLedger

    led = AssetLedger.open(tmp_path / "led", read_only=True)
    try:
        raised = [e for e in led.entries() if e["type"] == "alert_raised"]
    finally:
        led.close()
    assert [e["time"] for e in raised] == ["2026-10-04T00:00:00.000000Z"]


def test_a_valuation_after_the_judicial_trigger_fell_due_follows_it(tmp_path: Path) -> None:
    # default day 2, disposal authorised day 3: the 7-day trigger falls due on
    # day 10 and is recorded before the valuation and LTV alert of day 11
    from datetime import UTC, datetime, timedelta

    from autolien.ledger.stage import ledger_stage
    from autolien.sim.consortium import demo_consortium

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    book = pa.table(
        {
            "vehicle_id": ["v1"],
            "vin": ["LSVAU218XN2183294"],
            "loan_amount": [10_000.0],
            "currency": ["GBP"],
            "outstanding": [8_000.0],
            "pledge_date": [t0.date()],
        }
    )
    alerts = pa.table(
        {
            "alert_id": pa.array([], pa.string()),
            "vehicle_id": pa.array([], pa.string()),
            "kind": pa.array([], pa.string()),
            "level": pa.array([], pa.string()),
            "opened": pa.array([], pa.timestamp("us", tz="UTC")),
            "closed": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )
    defaults = pa.table({"vehicle_id": ["v1"], "default_at": [t0 + timedelta(days=2)]})
    out = ledger_stage(
        tmp_path / "led",
        book,
        alerts,
        defaults,
        t0 + timedelta(days=11),
        members=demo_consortium(tmp_path / "led", book, t0 + timedelta(days=11)),
        values=pa.table({"vehicle_id": ["v1"], "value": [7_000.0]}),
        ltv_table=pa.table({"vehicle_id": ["v1"], "level": ["emergency"], "ltv": [1.14]}),
    )
    assert (out["disposals"], out["judicial_triggers"]) == (1, 1)
    assert (out["valuations"], out["ltv_alerts"]) == (1, 1)
    from autolien.ledger import AssetLedger

    with AssetLedger.open(tmp_path / "led", read_only=True) as led:
        types = [e["type"] for e in led.entries() if e["asset"] is not None]
    assert types[-3:] == ["judicial_disposal_triggered", "valuation_updated", "alert_raised"]
    assert audit(tmp_path / "led").ok


def test_valuations_go_on_the_ledger_only_when_material(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from autolien.ledger import AssetLedger
    from autolien.ledger.stage import ledger_stage
    from autolien.sim.consortium import demo_consortium

    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    book = pa.table(
        {
            "vehicle_id": ["v1", "v2"],
            "vin": ["LSVAU218XN2183294", "1M8GDM9AXKP042788"],
            "loan_amount": [10_000.0, 8_000.0],
            "currency": ["GBP", "GBP"],
            "outstanding": [6_000.0, 5_000.0],
            "pledge_date": [t0.date(), t0.date()],
        }
    )
    no_alerts = pa.table(
        {
            "alert_id": pa.array([], pa.string()),
            "vehicle_id": pa.array([], pa.string()),
            "kind": pa.array([], pa.string()),
            "level": pa.array([], pa.string()),
            "opened": pa.array([], pa.timestamp("us", tz="UTC")),
            "closed": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )

    def run(day: int, v1: float, v2: float, level2: str | None = None) -> dict:
        values = pa.table({"vehicle_id": ["v1", "v2"], "value": [v1, v2]})
        ltv = pa.table({"vehicle_id": ["v1", "v2"], "level": [None, level2], "ltv": [0.6, 0.7]})
        return ledger_stage(
            tmp_path / "led",
            book,
            no_alerts,
            None,
            t0 + timedelta(days=day),
            members=demo_consortium(tmp_path / "led", book, t0 + timedelta(days=day)),
            values=values,
            ltv_table=ltv,
        )

    assert run(1, 10_000.0, 7_000.0)["valuations"] == 2  # the first of each
    assert run(1, 12_000.0, 9_000.0)["valuations"] == 0  # the same as-of time: never twice
    # v1 moved 1.99% (199 of 10,000): not material; v2 2.00% (140 of 7,000): material
    assert run(2, 10_199.0, 7_140.0)["valuations"] == 1
    # v2's LTV grade went from none to warning with its value unchanged
    out = run(3, 10_199.0, 7_140.0, "warning")
    assert out["valuations"] == 1
    again = run(3, 10_199.0, 7_140.0, "warning")
    assert (again["valuations"], again["entries"], again["root"]) == (
        0,
        out["entries"],
        out["root"],
    )
    with AssetLedger.open(tmp_path / "led", read_only=True) as led:
        vals = [
            (e["time"][:10], e["data"]["value_minor"], e["data"]["ltv_level"])
            for e in led.entries()
            if e["type"] == "valuation_updated"
        ]
        n_checkpoints = len(led.checkpoints())
    assert vals == [
        ("2026-10-02", 1_000_000, "none"),
        ("2026-10-02", 700_000, "none"),
        ("2026-10-03", 714_000, "none"),
        ("2026-10-04", 714_000, "warning"),
    ]
    assert n_checkpoints == 3  # runs 1, 3 and 4 grew the tree; runs 2 and 5 did not
    assert audit(tmp_path / "led").ok


def test_a_towed_rtk_vehicle_is_caught_through_its_terminals_ignition(tmp_path: Path) -> None:
    # seed 17 puts the tow on vehicle 0, which also carries an RTK receiver:
    # its fused track has no ignition, so the monitor takes the terminal's ACC bit
    write_portfolio(tmp_path, 20, 10, seed=17, anomaly_share=0.3)
    truth = pq.read_table(tmp_path / "truth.parquet").to_pylist()
    towed = [t["vehicle_id"] for t in truth if t["anomaly"] == "tow"]
    assert towed == ["VH17000000"]
    assert (tmp_path / "rtk" / towed[0]).is_dir()
    report = run_portfolio(tmp_path, db=tmp_path / "a.duckdb")
    assert report["fuse"]["vehicles"] >= 1
    tow = report["detection"]["anomalies"]["tow"]
    assert (tow["recall"], tow["level_reached"]) == (1.0, 1.0)
    con = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True)
    ev = json.loads(con.sql("SELECT evidence FROM alerts WHERE kind = 'towing'").fetchall()[0][0])
    con.close()
    assert ev["distance_m"] >= 500


def test_corrupted_and_truncated_files_are_rejected_and_the_run_completes(
    portfolio: Path, tmp_path: Path
) -> None:
    import shutil

    pf = tmp_path / "pf"
    shutil.copytree(portfolio, pf)
    jt = sorted((pf / "telemetry").glob("*.jt808"))[3]
    data = bytearray(jt.read_bytes())
    for k in range(1000, len(data) - 1, 5000):  # flip a byte every 5 kB: bad check codes
        data[k] ^= 0x55
    jt.write_bytes(bytes(data))
    gb = max((pf / "telemetry").glob("*.gb32960"))
    raw = gb.read_bytes()
    gb.write_bytes(raw[: len(raw) - 37])  # the last frame cut short
    nmea = next((pf / "rtk").rglob("*.nmea"))
    nmea.write_bytes(nmea.read_bytes() + b"$GPGGA,garbage*00\r\n\x00\xff\xfe")
    report = run_portfolio(pf, db=tmp_path / "a.duckdb")
    rej = report["ingest"]["rejects"]
    assert sum(v for k, v in rej.items() if k.startswith("jt808:")) >= 10
    assert sum(v for k, v in rej.items() if k.startswith("gb32960:")) >= 1
    assert sum(v for k, v in rej.items() if k.startswith("nmea:")) >= 1
    con = duckdb.connect(str(tmp_path / "a.duckdb"), read_only=True)
    files = {
        r[0].rsplit("/", 1)[-1]
        for r in con.sql(
            "SELECT DISTINCT source_file FROM rejects WHERE octet_length(raw) > 0"
        ).fetchall()
    }
    con.close()
    assert {jt.name, gb.name, nmea.name} <= files  # each reject keeps its raw bytes
    # the rest of the job ran on what decoded
    assert report["valuation"]["valued"] == 20
    assert report["ledger"]["checkpoint"]
    assert report["dashboard"]["alerts"] >= 1
