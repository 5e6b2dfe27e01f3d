"""``autolien run`` under real use: a corrupted ledger, the same portfolio
reached by other paths, ``run .``, a database of another portfolio, distinct
frames in one second, counts that agree, and a history too short to judge."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from autolien.cli import main
from autolien.sim.portfolio import write_portfolio
from autolien.telemetry import Store


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _tables(db: Path) -> dict[str, list[Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = sorted(
            r[0] for r in con.sql("SELECT table_name FROM information_schema.tables").fetchall()
        )
        # NaN is not equal to itself: compare its text
        return {
            n: [repr(r) for r in con.sql(f"SELECT * FROM {n} ORDER BY ALL").fetchall()]
            for n in names
        }
    finally:
        con.close()


def _run(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, Any]:
    capsys.readouterr()
    got = main(["run", *args, "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert got == code, err[-2000:]
    return json.loads(out) if code == 0 else json.loads(err.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity") / "pf"
    # two vehicles with RTK receivers (rtk/<vehicle>/<day>.nmea), an EV with a failing pack
    write_portfolio(root, 10, 9, seed=2, anomaly_day=4, anomaly_share=0.8, rtk_every=5)
    return root


@pytest.fixture
def pf(pristine: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pf"
    shutil.copytree(pristine, out)
    return out


def _telemetry_files(pf: Path) -> list[Path]:
    return sorted(p for p in (pf / "telemetry").rglob("*") if p.is_file()) + sorted(
        (pf / "rtk").rglob("*.nmea")
    )


def test_run_defaults_its_database_and_ledger_to_the_portfolio(
    pf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    report = _run(capsys, str(pf))
    assert Path(report["db"]) == pf.resolve() / "autolien.duckdb"
    assert (pf / "autolien.duckdb").is_file()
    assert (pf / "ledger" / "LEDGER.json").is_file()
    assert (pf / "report" / "index.html").is_file()
    assert list(elsewhere.iterdir()) == []  # nothing lands in the working directory
    # the README's proof check: the operator's verifier key from LEDGER.json
    vkey = json.loads((pf / "ledger" / "LEDGER.json").read_text())["operator_vkey"]
    assert main(["ledger", "prove", str(pf / "ledger"), "--seq", "5"]) == 0
    proof = tmp_path / "proof.json"
    proof.write_text(capsys.readouterr().out)
    assert main(["ledger", "verify", "--proof", str(proof), "--vkey", vkey]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == [{"seq": 5, "ok": True}]


def test_a_corrupted_ledger_stops_the_run_before_anything_is_written(
    pf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, str(pf))
    entries = pf / "ledger" / "entries.dat"
    data = bytearray(entries.read_bytes())
    data[len(data) // 3] ^= 0x01  # inside an early entry: its checksum fails
    entries.write_bytes(bytes(data))
    # new telemetry that a run would ingest
    extra = pf / "telemetry" / "late.jt808"
    shutil.copy(min((pf / "telemetry").glob("*.jt808")), extra)
    extra.write_bytes(extra.read_bytes()[:-1] + b"\x00\x7e")  # other bytes: a new file
    db = pf / "autolien.duckdb"
    before = (_sha(db), _sha(entries), sorted(p.name for p in pf.iterdir()))
    err = _run(capsys, str(pf), code=1)
    assert err["error"] == "LedgerCorruptError"
    assert "fails its audit" in err["message"]
    assert "offset" not in err
    assert (_sha(db), _sha(entries), sorted(p.name for p in pf.iterdir())) == before
    assert not db.with_suffix(".duckdb.wal").exists()


def test_the_same_portfolio_by_another_path_is_not_ingested_again(
    pf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    n_files = len(_telemetry_files(pf))
    db = tmp_path / "one.duckdb"
    first = _run(capsys, str(pf), "--db", str(db))
    assert first["ingest"]["files"] == n_files
    tables = _tables(db)
    link = tmp_path / "link"
    link.symlink_to(pf)
    copy = tmp_path / "copy"
    shutil.copytree(pf, copy)
    monkeypatch.chdir(pf.parent)
    for spelling in (str(link), str(copy), "pf", "./pf/", str(pf.resolve())):
        again = _run(capsys, spelling, "--db", str(db))
        assert (again["ingest"]["files"], again["ingest"]["skipped_files"]) == (0, n_files)
        assert again["ledger"]["entries"] == first["ledger"]["entries"], spelling
        assert _tables(db) == tables, spelling


def test_run_dot_equals_run_absolute(
    pf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pf)
    dot = _run(capsys, ".", "--db", str(tmp_path / "dot" / "a.duckdb"))
    monkeypatch.chdir(tmp_path)
    absolute = _run(capsys, str(pf.resolve()), "--db", str(tmp_path / "abs" / "a.duckdb"))
    assert _tables(tmp_path / "dot" / "a.duckdb") == _tables(tmp_path / "abs" / "a.duckdb")
    assert dot["alerts"] == absolute["alerts"]
    # every RTK fix carries its vehicle: the directory it was logged in
    rtk = {p.name for p in (pf / "rtk").iterdir()}
    assert len(rtk) == 2
    con = duckdb.connect(str(tmp_path / "dot" / "a.duckdb"), read_only=True)
    ids = con.sql("SELECT vehicle_id, count(*) FROM fixes GROUP BY ALL").fetchall()
    silent = con.sql("SELECT count(*) FROM alerts WHERE kind = 'device_silence'").fetchall()
    con.close()
    assert {v for v, _ in ids} == rtk
    truth = pq.read_table(pf / "truth.parquet").to_pylist()
    silenced = sum(1 for t in truth if t["anomaly"] == "silence")
    # one silence alert per silenced vehicle; none for an RTK vehicle without id
    assert silent[0][0] == silenced == 1
    assert dot["detection"]["normal_emergencies"] == 0


def test_a_database_of_another_portfolio_is_refused(
    pf: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(capsys, str(pf))
    db = pf / "autolien.duckdb"
    other = tmp_path / "other"
    write_portfolio(other, 4, 3, seed=9)
    before = _sha(db)
    err = _run(capsys, str(other), "--db", str(db), code=2)
    assert err["error"] == "PortfolioMismatchError"
    assert "belongs to portfolio" in err["message"]
    assert _sha(db) == before
    assert not (other / "autolien.duckdb").exists()
    assert not (other / "portfolio.json").exists()  # nothing written before the checks pass
    with Store(db, read_only=True) as store:
        assert (
            store.meta("portfolio_id")
            == json.loads((pf / "portfolio.json").read_text())["portfolio_id"]
        )


# -- JT/T 808 frames built here, by the standard (JT/T 808-2013 sections 4 and 8.12)


def _bcd(digits: str) -> bytes:
    return bytes(int(digits[i : i + 2], 16) for i in range(0, len(digits), 2))


def _frame(phone: str, serial: int, when: str, speed_kmh: float, lat: float) -> bytes:
    body = (
        (0).to_bytes(4, "big")  # alarm
        + (3).to_bytes(4, "big")  # status: ACC on, positioned
        + round(lat * 1e6).to_bytes(4, "big")
        + round(121.5 * 1e6).to_bytes(4, "big")
        + (12).to_bytes(2, "big")  # altitude m
        + round(speed_kmh * 10).to_bytes(2, "big")
        + (90).to_bytes(2, "big")
        + _bcd(when)  # YYMMDDhhmmss, GMT+8
    )
    head = b"\x02\x00" + len(body).to_bytes(2, "big") + _bcd(phone) + serial.to_bytes(2, "big")
    raw = head + body
    check = 0
    for b in raw:
        check ^= b
    raw += bytes([check])
    escaped = raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + escaped + b"\x7e"


def test_distinct_frames_in_one_second_are_kept_and_true_duplicates_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _frame("013800138000", 7, "261001083015", 40.0, 31.2)
    b = _frame("013800138000", 8, "261001083015", 55.5, 31.2001)  # same second, next serial
    c = _frame("013800138000", 9, "261001083016", 56.0, 31.2002)
    (tmp_path / "day.jt808").write_bytes(a + b + c)
    (tmp_path / "resent.jt808").write_bytes(b + a)  # the gateway sent two frames again
    db = tmp_path / "t.duckdb"
    files = [str(tmp_path / "day.jt808"), str(tmp_path / "resent.jt808")]
    assert main(["ingest", *files, "--db", str(db), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == {"locations": 5}  # decoded: 3 + 2 frames
    assert report["new_rows"] == {"locations": 3}  # a, b and c
    assert report["duplicate_rows"] == {"locations": 2}  # counted, not silently dropped
    con = duckdb.connect(str(db), read_only=True)
    rows = con.sql("SELECT serial, speed_kmh FROM locations ORDER BY serial").fetchall()
    con.close()
    assert rows == [(7, 40.0), (8, 55.5), (9, 56.0)]
    # the same file content again, under another name: recognised, not decoded
    shutil.copy(tmp_path / "day.jt808", tmp_path / "copy.jt808")
    assert main(["ingest", str(tmp_path / "copy.jt808"), "--db", str(db), "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["files"], again["skipped_files"], again["rows"]) == (0, 1, {})


def test_a_reading_resent_under_a_new_serial_is_stored_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A terminal that lost its connection before the acknowledgement resends
    # the same reading under its next serial: one reading, one row.
    a = _frame("013800138000", 7, "261001083015", 40.0, 31.2)
    a_again = _frame("013800138000", 12, "261001083015", 40.0, 31.2)
    b = _frame("013800138000", 8, "261001083015", 40.0, 31.2001)  # moved: another reading
    (tmp_path / "day.jt808").write_bytes(a + a_again + b)
    db = tmp_path / "t.duckdb"
    assert main(["ingest", str(tmp_path / "day.jt808"), "--db", str(db), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["rows"], report["new_rows"]) == ({"locations": 3}, {"locations": 2})
    assert report["duplicate_rows"] == {"locations": 1}
    con = duckdb.connect(str(db), read_only=True)
    rows = con.sql("SELECT serial, lat FROM locations ORDER BY serial").fetchall()
    con.close()
    assert rows == [(7, 31.2), (8, 31.2001)]  # the first copy wins


def test_summary_and_dashboard_count_the_same_alerts(
    pf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _run(capsys, str(pf))
    con = duckdb.connect(str(pf / "autolien.duckdb"), read_only=True)
    by_kind = dict(con.sql("SELECT kind, count(*) FROM alerts GROUP BY ALL").fetchall())
    con.close()
    assert by_kind.get("battery_degradation", 0) >= 1  # the valuation's alerts are in it
    assert report["alerts"]["total"] == sum(by_kind.values()) == report["dashboard"]["alerts"]
    assert report["alerts"]["by_kind"] == by_kind
    assert report["alerts"]["battery"] == by_kind["battery_degradation"]
    html = (pf / "report" / "index.html").read_text()
    assert f"{sum(by_kind.values())} alerts on" in html
    # the printed summary: the same total, precision said to be over alerts,
    # rows labelled decoded and stored
    capsys.readouterr()
    assert main(["run", str(pf), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert f"alerts {sum(by_kind.values())} (" in text
    assert "precision over alerts" in text
    assert "rows decoded (new to the store) / stored" in text
    stored = report["ingest"]["stored_rows"]
    frames = sum(stored.values())
    assert frames == sum(report["ingest"]["new_rows"].values())  # first run: all new


def test_a_history_too_short_for_the_baselines_is_not_reported_as_zero_recall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pf = tmp_path / "short"
    # 7 days: the baselines need 7 days of data and a 1-day lag before they score
    write_portfolio(pf, 24, 7, seed=5, anomaly_share=0.5)
    truth = {t["anomaly"] for t in pq.read_table(pf / "truth.parquet").to_pylist()}
    assert {"mileage_jump", "rental"} <= truth
    report = _run(capsys, str(pf))
    assert report["history_days"] <= 7
    for name in ("mileage_jump", "rental"):
        a = report["detection"]["anomalies"][name]
        assert a["recall"] is None
        assert a["measurable"] is False
        assert a["note"].startswith("not measurable: history ")
        assert "< 8 d" in a["note"]
    # detectors without a baseline are still judged
    assert report["detection"]["anomalies"]["rollback"]["recall"] == 1.0
    capsys.readouterr()
    assert main(["run", str(pf), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "not measurable: history" in text
    assert " 0% " not in text.split("precision over alerts")[0]
    html = (pf / "report" / "index.html").read_text()
    assert "not measurable: history" in html


def test_rerun_adds_no_valuations_and_no_ledger_entries(
    pf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(capsys, str(pf))
    n_vehicles = first["vehicles_in_book"]
    again = _run(capsys, str(pf))
    assert first["ledger"]["valuations"] == n_vehicles  # the first valuation of each
    assert again["ledger"]["valuations"] == 0
    assert again["ledger"]["entries"] == first["ledger"]["entries"]
    con = duckdb.connect(str(pf / "autolien.duckdb"), read_only=True)
    n, distinct = con.sql(
        "SELECT count(*), count(DISTINCT (vehicle_id, time)) FROM valuations"
    ).fetchall()[0]
    con.close()
    assert n == distinct == n_vehicles
    assert os.path.getsize(pf / "ledger" / "checkpoints.dat") > 0
