"""The dashboard in a real headless browser (Debian chromium): the page loads
without script errors, every chart renders, and a screenshot shows them."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from autolien.cli import main
from conftest import missing

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(url: str, *args: str) -> str:
    if CHROMIUM is None:  # only the tests that open a page need it
        missing("needs Debian's chromium (make test installs it as root)")
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--virtual-time-budget=15000",
        *args,
        url,
    ]
    # the browser is not ours: keep `make sanitize`'s preloaded ASan out of it
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=180, check=True, env=env
    ).stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dash")
    assert (
        main(
            [
                "simulate",
                str(root / "pf"),
                "--vehicles",
                "20",
                "--days",
                "12",
                "--seed",
                "5",
                "--quiet",
            ]
        )
        == 0
    )
    out = root / "report"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert (
            main(
                [
                    "run",
                    str(root / "pf"),
                    "--db",
                    str(root / "x.duckdb"),
                    "--out",
                    str(out),
                    "--json",
                    "--quiet",
                ]
            )
            == 0
        )
    return out / "index.html", json.loads(buf.getvalue())


def test_overview_loads_without_errors_and_renders(report: tuple[Path, dict]) -> None:
    page, summary = report
    dom = _browser(page.as_uri(), "--dump-dom")
    assert re.search(r'<div id="errors"></div>', dom), "a script error was caught on the page"
    assert dom.count('class="main-svg"') >= 2 * 2  # two overview charts, each draws two svg layers
    rows = re.findall(r'<tr><td><a href="#vehicle=', dom)
    # every alert of the store, the battery alerts too, as the run's summary counts them
    assert len(rows) == summary["alerts"]["total"] == summary["dashboard"]["alerts"]
    assert "http://" not in page.read_text().split("<script>", 2)[1][:200]  # plotly.js is inline
    _titles_and_axes(dom, charts=3)  # alerts per day, fleet km, LTV
    # one run so far: the portfolio value is a number, not a one-point chart
    assert 'id="overview_value"' not in dom
    assert re.search(
        r"<b>Total collateral value</b>: [\d,]+ GBP as of 20\d\d-\d\d-\d\d \d\d:\d\d \(UTC\+8\)",
        dom,
    )
    # the score column says what it measures, with units
    measures = re.findall(r"<td data-v=\"[a-z_]+ [\d.]+\">([^<]+)</td></tr>", dom)
    assert len(measures) == len(rows)
    for m in measures:
        assert re.fullmatch(r"[a-zA-Z|(/) ]+ [\d,.]+( [a-zA-Z/ -]+)?", m), m
    assert any(m.endswith(" h") for m in measures) or any(m.endswith(" km") for m in measures)


def _titles_and_axes(dom: str, charts: int) -> None:
    """Every chart drawn has a title and both axis titles."""
    drawn = dom.count('class="plot-container plotly"')
    assert drawn >= charts
    assert dom.count('class="g-gtitle"') >= drawn
    titles = re.findall(r'class="gtitle"[^>]*>([^<]+)<', dom)
    assert len(titles) >= drawn
    assert all(t.strip() for t in titles)
    assert len(re.findall(r'class="x\d*title"', dom)) >= drawn
    assert len(re.findall(r'class="y\d*title"', dom)) >= drawn


def _figures(page: Path) -> dict:
    """The page's data, each trace's x as the page's script gives it to
    plotly (a vehicle page's hourly traces share its ``hours``)."""
    raw = page.read_text().split('<script id="data" type="application/json">', 1)[1]
    data = json.loads(raw.split("</script>", 1)[0])
    for p in data["vehicles"].values():
        for k in ("track", "odometer", "features", "valuation"):
            for t in p.get(k, {}).get("data", []):
                if t.get("x") == "@hours":
                    t["x"] = p["hours"]
    return data


def test_no_chart_plots_a_single_point(report: tuple[Path, dict]) -> None:
    page, _ = report
    data = _figures(page)
    figs = list(data["overview"].values()) + [
        p[k]
        for p in data["vehicles"].values()
        for k in ("track", "odometer", "features", "valuation")
        if k in p
    ]
    assert len(figs) >= 6  # three overview charts, three per vehicle page
    for fig in figs:
        lines = [t for t in fig["data"] if t["type"] in ("scatter", "scattergl")]
        for t in lines:
            xs = [x for x in t.get("x", []) if x is not None]
            assert len(set(map(str, xs))) != 1, fig["layout"].get("title")
    # each vehicle's single valuation is a sentence with its factors instead
    texts = [p["valuation_text"] for p in data["vehicles"].values() if "valuation_text" in p]
    assert texts
    assert all(re.search(r"Value [\d,]+ GBP as of .* x battery [\d.]+", t) for t in texts)


def test_vehicle_page_charts_and_ledger_proofs(report: tuple[Path, dict], tmp_path: Path) -> None:
    from PIL import Image

    page, _ = report
    vid = re.search(r"#vehicle=([A-Z0-9]+)", page.read_text()).group(1)  # type: ignore[union-attr]
    dom = _browser(page.as_uri() + f"#vehicle={vid}", "--dump-dom")
    assert '<div id="errors"></div>' in dom
    assert dom.count('class="main-svg"') >= 3 * 2  # track, features, odometer
    _titles_and_axes(dom, charts=3)
    # the hourly traces drawn at their dates (the page's shared hours put
    # back by its script), not at one category named by the reference
    assert 'data-unformatted="@hours"' not in dom
    for fig in ("vfeatures", "vodometer"):
        part = dom.split(f'id="{fig}"', 1)[1].split('<div id="v', 1)[0]
        ticks = re.findall(r'data-unformatted="([A-Z][a-z]{2} \d{1,2})', part)
        assert len(ticks) >= 2, (fig, ticks)
    # evidence reads as labelled values with units and local times, not JSON
    evidence = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", dom)
    assert evidence
    assert any(re.fullmatch(r"20\d\d-\d\d-\d\d \d\d:\d\d \(UTC\+8\)", v) for _, v in evidence)
    assert not any(re.search(r"\d\.\d{5,}|\b1[78]\d{8}\b", v) for _, v in evidence), evidence
    assert "signal_time" not in dom
    assert '{"' not in dom.split('id="valerts"', 1)[1].split("</div>", 1)[0]
    ledger = re.findall(
        r"<td>(pledge_registered|alert_raised|alert_closed)</td><td>[^<]+</td><td>(\w+)</td>", dom
    )
    assert ledger
    assert ledger[0][0] == "pledge_registered"
    assert {p for _, p in ledger} == {"verified"}
    shot = tmp_path / "vehicle.png"
    _browser(page.as_uri() + f"#vehicle={vid}", "--window-size=1200,2200", f"--screenshot={shot}")
    img = Image.open(shot).convert("RGB")
    px = img.load()
    w, h = img.size
    # plotly's default plot background (#E5ECF6) fills the chart areas, and the
    # grey track (#9e9e9e) is drawn on it
    bg = sum(1 for y in range(0, h, 4) for x in range(0, w, 4) if px[x, y] == (229, 236, 246))
    track = sum(
        1
        for y in range(0, h, 2)
        for x in range(0, w, 2)
        if abs(px[x, y][0] - 158) < 12 and px[x, y][0] == px[x, y][1] == px[x, y][2]
    )
    assert bg > 0.1 * (w // 4) * (h // 4)
    assert track > 50


def test_page_limits_keep_the_most_severe(report: tuple[Path, dict], tmp_path: Path) -> None:
    import duckdb

    from autolien.report.dashboard import build_dashboard

    _, summary = report
    db = summary["db"]
    con = duckdb.connect(db, read_only=True)
    n, vehicles = con.sql("SELECT count(*), count(DISTINCT vehicle_id) FROM alerts").fetchall()[0]
    # the vehicle whose worst alert is the most severe (ties: the latest)
    want = sorted(
        v
        for (v,) in con.sql(
            "SELECT vehicle_id FROM alerts GROUP BY vehicle_id "
            "ORDER BY max(level_code) DESC, max(opened) DESC, vehicle_id LIMIT 1"
        ).fetchall()
    )
    top_level = con.sql("SELECT max(level_code) FROM alerts").fetchall()[0][0]
    con.close()
    assert vehicles > 1
    assert n > 1  # (2 since issue 16.6: fewer false alerts) so that a page of one cuts
    got = build_dashboard(db, tmp_path, max_vehicles=1, max_alert_rows=1)
    assert (got["alerts"], got["vehicles"]) == (n, vehicles)
    assert (got["alert_rows"], got["vehicle_pages"]) == (1, 1)
    page = (tmp_path / "index.html").read_text()
    raw = page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
    data = json.loads(raw)
    assert sorted(data["vehicles"]) == want
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr>") == 1
    assert body.count(f"data-v='{top_level}'") == 1  # the one row kept is the most severe
    assert "the 1 most severe" in page


def test_vehicle_pages_show_their_own_rows(report: tuple[Path, dict], tmp_path: Path) -> None:
    """Each page's series are its own vehicle's rows as the store holds them
    (a mix-up of the per-vehicle ranges would show a neighbour's), and a
    rebuild writes the same bytes (ties in time are ordered)."""
    import math

    import duckdb

    from autolien.report.dashboard import build_dashboard
    from autolien.report.figures import FEATURES

    _, summary = report
    db = summary["db"]
    build_dashboard(db, tmp_path / "a")
    build_dashboard(db, tmp_path / "b")
    page = (tmp_path / "a" / "index.html").read_bytes()
    assert page == (tmp_path / "b" / "index.html").read_bytes()
    data = _figures(tmp_path / "a" / "index.html")
    con = duckdb.connect(db, read_only=True)
    checked = 0
    for vid, p in data["vehicles"].items():
        if "features" not in p:
            continue
        want = [
            v
            for (v,) in con.sql(
                "SELECT location_entropy FROM monitor_features WHERE vehicle_id = ? ORDER BY hour",
                params=[vid],
            ).fetchall()
        ]
        got = p["features"]["data"][2]["y"]  # band high, band low, then the feature
        assert len(got) == len(want)
        # every hourly trace at the store's hours (the page's one shared copy)
        hours = [
            h.astimezone(dt.UTC).isoformat()
            for (h,) in con.sql(
                "SELECT hour FROM monitor_features WHERE vehicle_id = ? ORDER BY hour",
                params=[vid],
            ).fetchall()
        ]
        hourly = [*p["features"]["data"], p["odometer"]["data"][-1]]
        assert len(hourly) == 3 * len(FEATURES) + 1
        assert all(t["x"] == hours for t in hourly)
        for g, w in zip(got, want, strict=True):
            if w is None or math.isnan(w):
                assert g is None
            else:
                assert g == pytest.approx(w, abs=0.6e-4)
        (n,) = con.sql(
            "SELECT count(*) FROM locations l JOIN loan_book b USING (terminal_id) "
            "WHERE b.vehicle_id = ?",
            params=[vid],
        ).fetchall()[0]
        track = p["track"]["data"][0]
        assert len(track["x"]) == min(n, 3000)
        assert (track["x"][0], track["y"][0]) == (0.0, 0.0)  # km from its own first fix
        checked += 1
    con.close()
    assert checked >= 2


def test_the_dashboards_reads_bound_duckdbs_cache(
    report: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's reads scan the stored history once; DuckDB's default
    cache (80% of RAM) was the dashboard's whole peak. Its store is opened
    with DASHBOARD_MEMORY_LIMIT, or with $AUTOLIEN_DUCKDB_MEMORY_LIMIT when
    that is set."""
    from autolien.store import dashboard as queries
    from memory_limits import memory_setting as setting
    from memory_limits import spy_store_limits

    db = report[0].parent.parent / "x.duckdb"
    seen = spy_store_limits(monkeypatch, queries)
    for env, want in ((None, queries.DASHBOARD_MEMORY_LIMIT), ("1GB", "1GB")):
        if env is None:
            monkeypatch.delenv("AUTOLIEN_DUCKDB_MEMORY_LIMIT", raising=False)
        else:
            monkeypatch.setenv("AUTOLIEN_DUCKDB_MEMORY_LIMIT", env)
        got = queries.load(db, max_vehicles=3, max_alert_rows=5)
        assert got.ids
        assert seen[-1] == setting(want)
    assert setting(queries.DASHBOARD_MEMORY_LIMIT) != setting("1GB")


def test_vehicle_ranges_and_json_values() -> None:
    import itertools
    import math

    import numpy as np
    import pyarrow as pa

    from autolien.report import figures
    from autolien.report.dashboard import _ranges

    rng = np.random.default_rng(3)
    ids = sorted(f"V{int(i):03d}" for i in rng.integers(0, 40, 500))
    want, at = {}, 0
    for k, g in itertools.groupby(ids):
        n = len(list(g))
        want[k], at = (at, n), at + n
    chunked = pa.chunked_array([ids[:123], ids[123:]])
    assert _ranges(chunked) == want
    with pytest.raises(ValueError, match="grouped"):
        _ranges(pa.chunked_array([["a", "b", "a"]]))
    # NaN and infinities become null; finite values round as Python rounds them
    v = np.r_[rng.normal(0, 50, 300), np.nan, np.inf, -np.inf]
    got = figures._nullable(v, 3)
    assert got[-3:] == [None, None, None]
    assert all(
        abs(g - round(float(x), 3)) <= 0.5e-3 * 1.0001
        for g, x in zip(got[:-3], v[:-3], strict=True)
    )
    assert all(isinstance(g, float) for g in got[:-3])
    assert not any(isinstance(g, float) and not math.isfinite(g) for g in got)


def test_iso_times_write_what_datetime_isoformat_writes() -> None:
    import datetime as dt

    import numpy as np
    import pyarrow as pa

    from autolien.report.figures import iso_times

    rng = np.random.default_rng(8)
    us = rng.integers(-2_000_000_000, 4_000_000_000, 2000) * 1_000_000
    us[::3] += rng.integers(1, 1_000_000, us[::3].size)  # some with microseconds
    for unit, div in (("us", 1), ("ms", 1000), ("s", 1_000_000)):
        # the names of UTC (DuckDB's session zone is "Etc/UTC")
        for tz in ("UTC", "Etc/UTC", "+00:00", "GMT", "Zulu"):
            arr = pa.array(us // div, pa.timestamp(unit, tz=tz))
            want = [t.isoformat() for t in arr.to_pylist()]
            assert iso_times(arr) == want, tz
            assert iso_times(pa.chunked_array([arr[:700], arr[700:]])) == want
    # nanoseconds, other zones and nulls keep datetime's own text
    ns = pa.array([1_500_000_000_123_456_789, 0], pa.timestamp("ns", tz="UTC"))
    assert iso_times(ns) == [x.isoformat() for x in ns.to_pylist()]
    other = pa.array([0, None], pa.timestamp("s", tz="Asia/Shanghai"))
    assert iso_times(other) == [
        dt.datetime(1970, 1, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat(),
        None,
    ]


def test_mapped_rows_of_a_few_vehicles_equal_the_whole_mapping_filtered(tmp_path: Path) -> None:
    """``mapped_sql(..., only=)`` (the dashboard's few vehicles) filters the
    telemetry by the keys that can map to them before the join: the rows
    equal the whole mapping filtered by vehicle id, for a terminal in the
    book, one the book lacks (its id is its own), one whose number is
    another vehicle's id but which the book maps elsewhere, and VINs."""
    import duckdb

    from autolien.store import mapped_sql

    con = duckdb.connect(str(tmp_path / "m.duckdb"))
    con.execute("CREATE TABLE loan_book (vehicle_id VARCHAR, terminal_id VARCHAR, vin VARCHAR)")
    con.execute(
        "INSERT INTO loan_book VALUES ('A', 't1', 'V1'), ('B', 't2', 'V2'), ('C', 'A', 'V3')"
    )
    con.execute("CREATE TABLE locations (terminal_id VARCHAR, time INTEGER, lat DOUBLE)")
    con.execute(
        "INSERT INTO locations SELECT k, i, i * 0.5 FROM (VALUES ('t1'), ('t2'), ('A'), ('t9'), "
        "('B')) v(k), range(5) r(i)"
    )
    con.execute("CREATE TABLE ev (vin VARCHAR, time INTEGER, soc DOUBLE)")
    con.execute(
        "INSERT INTO ev SELECT k, i, i FROM (VALUES ('V1'), ('V2'), ('V3'), ('t9')) v(k), range(3) r(i)"
    )
    con.execute("CREATE TABLE ids (v VARCHAR)")
    for src, cols in (
        ("SELECT terminal_id AS vehicle_id, time, lat FROM locations", ("time", "lat")),
        ("SELECT vin AS vehicle_id, time, soc FROM ev", ("time", "soc")),
    ):
        for ids in (["A"], ["A", "t9"], ["B", "C"], ["nobody"], []):
            con.execute("DELETE FROM ids")
            if ids:
                con.executemany("INSERT INTO ids VALUES (?)", [[i] for i in ids])
            whole = con.sql(
                f"SELECT * FROM ({mapped_sql(src, cols)}) WHERE vehicle_id IN (SELECT v FROM ids) "
                "ORDER BY ALL"
            ).fetchall()
            few = con.sql(
                f"SELECT * FROM ({mapped_sql(src, cols, only='SELECT v FROM ids')}) ORDER BY ALL"
            ).fetchall()
            assert few == whole, (src, ids)
            assert {r[0] for r in few} <= set(ids)
    # the book maps t1 to A, and terminal "A" belongs to C: A's rows are t1's
    con.execute("DELETE FROM ids")
    con.execute("INSERT INTO ids VALUES ('A')")
    loc = mapped_sql(
        "SELECT terminal_id AS vehicle_id, time, lat FROM locations",
        ("time", "lat"),
        only="SELECT v FROM ids",
    )
    assert con.sql(f"SELECT count(*) FROM ({loc})").fetchall() == [(5,)]
    con.close()
