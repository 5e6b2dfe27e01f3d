"""Per-vehicle monitor state as Arrow (``monitor.state``): a monitor saved
after every slice and resumed from the saved table, through Arrow IPC
bytes, in a fresh process-like object, scores exactly as one batch run;
and the store's monitor stage resumed run by run equals one run."""

from __future__ import annotations

import datetime as dt
import math
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

from autolien.monitor import Monitor, score
from autolien.monitor.cli import monitor_store
from autolien.sim import simulate_fleet


@pytest.fixture(scope="module")
def fleet():  # type: ignore[no-untyped-def]
    kinds = ("mileage_jump", "rollback", "relocation", "rental", "silence", "tow")
    return simulate_fleet(12, 26, seed=5, anomaly_day=17, anomalies=dict.fromkeys(kinds, 1))


def _rows(t: pa.Table) -> list[tuple]:
    """Rows with NaN as a marker (NaN is unequal to itself)."""
    return [
        tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in r.values())
        for r in t.to_pylist()
    ]


def _through_ipc(table: pa.Table) -> pa.Table:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return ipc.open_file(sink.getvalue()).read_all()


def _slices(f, step: dt.timedelta):  # type: ignore[no-untyped-def]
    t = f.tracks.column("time")
    cur, hi = pc.min(t).as_py(), pc.max(t).as_py()
    while cur <= hi:
        ts, tn = pa.scalar(cur, t.type), pa.scalar(cur + step, t.type)

        def part(tab: pa.Table, ts: pa.Scalar = ts, tn: pa.Scalar = tn) -> pa.Table:
            c = tab.column("time")
            return tab.filter(pc.and_(pc.greater_equal(c, ts), pc.less(c, tn)))

        yield part(f.tracks), part(f.odometer)
        cur += step


def test_a_monitor_resumed_from_its_arrow_state_at_every_slice_equals_batch(fleet) -> None:  # type: ignore[no-untyped-def]
    whole = Monitor()
    whole.update(fleet.tracks, fleet.odometer)
    m = Monitor()
    features = []
    for tracks, odo in _slices(fleet, dt.timedelta(hours=7, minutes=13)):
        m.update(tracks, odo)
        features.append(m.drain_features())
        state = _through_ipc(m.state_table())
        assert state.num_rows == len(set(state.column("vehicle_id").to_pylist()))
        resumed = Monitor()
        resumed.now = m.now
        resumed.load_state(state)
        m = resumed
    assert m.alerts().equals(whole.alerts())
    assert m.alerts().num_rows >= 6
    got = pa.concat_tables([f for f in features if f.num_rows], promote_options="default")
    got = got.sort_by([("vehicle_id", "ascending"), ("hour", "ascending")])
    want = whole.features()
    assert got.schema.equals(want.schema)
    assert _rows(got.select(want.column_names)) == _rows(want)


def test_state_keeps_only_the_context_window_of_hourly_sums(fleet) -> None:  # type: ignore[no-untyped-def]
    m = Monitor()
    m.update(fleet.tracks, fleet.odometer)
    st = m.state_table()
    k = m.config.context_h
    for name in ("hist_speed_hist", "hist_dist_km", "hist_score"):
        lens = pc.list_value_length(st.column(name)).to_pylist()
        assert max(lens) <= k * (14 if name == "hist_speed_hist" else 1)
    # the baseline's features go back over the baseline period and more
    assert max(pc.list_value_length(st.column("hist_km_24h")).to_pylist()) > 14 * 24


def _store(path: str, f, upto: dt.datetime | None) -> None:  # type: ignore[no-untyped-def]
    con = duckdb.connect(path)
    for name, tab in (("fx", f.tracks), ("od", f.odometer)):
        cut = pa.scalar(upto, tab.column("time").type) if upto is not None else None
        con.register(name, tab if cut is None else tab.filter(pc.less(tab.column("time"), cut)))
    con.execute("DROP TABLE IF EXISTS fixes").fetchall()
    con.execute("DROP TABLE IF EXISTS ev").fetchall()
    con.execute(
        "CREATE TABLE fixes AS SELECT vehicle_id, time, lat, lon, speed_kmh FROM fx"
    ).fetchall()
    con.execute("CREATE TABLE ev AS SELECT vehicle_id AS vin, time, odometer_km FROM od").fetchall()
    con.close()


def _tables(path: str) -> dict[str, list]:
    con = duckdb.connect(path, read_only=True)
    try:
        return {
            t: [
                tuple("NaN" if isinstance(x, float) and math.isnan(x) else x for x in r)
                for r in con.sql(f"SELECT * FROM {t} ORDER BY ALL").fetchall()
            ]
            for t in ("alerts", "monitor_features")
        }
    finally:
        con.close()


def test_store_runs_resumed_day_by_day_equal_one_run(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    one = str(tmp_path / "one.duckdb")
    _store(one, fleet, None)
    monitor_store(one, batch=5, state=True)
    inc = str(tmp_path / "inc.duckdb")
    t0 = pc.min(fleet.tracks.column("time")).as_py()
    for day in (20, 23, None):
        _store(inc, fleet, None if day is None else t0 + dt.timedelta(days=day))
        rep = monitor_store(inc, batch=5, state=True)
        assert rep["late_rows"] == 0
    assert _tables(inc) == _tables(one)
    # the alerts also equal the in-memory batch run's (over what the store
    # holds: its fixes carry no ignition)
    con = duckdb.connect(inc, read_only=True)
    got = con.sql("SELECT * FROM alerts ORDER BY vehicle_id, opened, kind").to_arrow_table()
    con.close()
    want = score(fleet.tracks.drop_columns(["ignition"]), fleet.odometer)
    assert got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("sliced", [False, True])
@pytest.mark.parametrize(
    ("lookback_days", "book", "drop"),
    [
        # vehicle 0 (last terminal row 2 days before since) and vehicle 5 (no
        # terminal rows) read their older rows by key; with and without a book
        (1, False, ()),
        (1, True, ()),
        # every RTK vehicle has a terminal row in the span: the span alone
        (10, False, ("T5",)),
        (10, True, ("T5",)),
    ],
)
def test_rtk_fixes_take_the_terminals_latest_ignition_when_staged(
    tmp_path, monkeypatch, lookback_days, book, drop, sliced
) -> None:  # type: ignore[no-untyped-def]
    """An RTK fix carries no ignition: staging gives it the vehicle's latest
    terminal ACC bit at or before it, read from only the rows it can match
    (the new ones and each vehicle's last at or before ``since``): the rows
    in a span before ``since`` (``IGNITION_LOOKBACK``), and for a vehicle
    whose terminal sent nothing in it, its older rows. Checked against a
    brute-force search over every terminal row, staged at once and
    ``sliced`` (a slice of vehicles at a time, each with its own search)."""
    import autolien.store as store_mod
    from autolien.store import MonitorStore, export_monitor_inputs
    from autolien.telemetry.store import Store

    monkeypatch.setattr(store_mod, "IGNITION_LOOKBACK", dt.timedelta(days=lookback_days))
    if sliced:
        monkeypatch.setattr(store_mod, "STAGE_SLICE_ROWS", 50)

    rng = np.random.default_rng(11)
    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    since = t0 + dt.timedelta(days=3)
    loc, fix = [], []
    for v in range(6):
        tid = f"T{v}"
        # vehicle 0: its last terminal row is two days before `since`, none after;
        # vehicle 5: no terminal rows at all
        n = 0 if v == 5 else 3 if v == 0 else 80
        loc += [
            (tid, t0 + dt.timedelta(seconds=round(s)), int(rng.integers(0, 2)))
            for s in sorted(rng.uniform(0, 3 * 86400 if v == 0 else 5 * 86400, n))
        ]
        fix += [
            (tid, t0 + dt.timedelta(seconds=round(s)))
            for s in sorted(rng.uniform(3 * 86400 + 1, 5 * 86400, 40))
        ]
    # readings of one second that disagree (both orders): on if either is on
    ties = [(lv, lt, 1 - ig) for lv, lt, ig in loc[::3]]
    loc += ties
    rng.shuffle(loc)
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE locations (terminal_id VARCHAR, time TIMESTAMPTZ, lat DOUBLE, lon DOUBLE, "
        "speed_kmh DOUBLE, status BIGINT, mileage_km DOUBLE)"
    )
    con.executemany(
        "INSERT INTO locations VALUES (?, ?, 30.0, 120.0, 0.0, ?, NULL)", [list(r) for r in loc]
    )
    con.execute(
        "CREATE TABLE gnss_track (vehicle_id VARCHAR, time TIMESTAMPTZ, lat DOUBLE, lon DOUBLE, "
        "ve_mps DOUBLE, vn_mps DOUBLE, used BOOLEAN)"
    )
    fix = [r for r in fix if r[0] not in drop]
    # with a loan book the fixes carry the book's vehicle ids, the terminals their numbers
    vid = (lambda tid: "V" + tid[1:]) if book else (lambda tid: tid)
    con.executemany(
        "INSERT INTO gnss_track VALUES (?, ?, 30.0, 120.0, 0.0, 0.0, true)",
        [[vid(v), t] for v, t in fix],
    )
    if book:
        con.execute("CREATE TABLE loan_book (vehicle_id VARCHAR, terminal_id VARCHAR, vin VARCHAR)")
        con.executemany(
            "INSERT INTO loan_book VALUES (?, ?, ?)",
            [[vid(f"T{v}"), f"T{v}", f"VIN{v}"] for v in range(6)],
        )
    con.close()
    with Store(db) as store:
        ms = MonitorStore(store)
        got = ms.read(since, 2, [])
        assert got.newer["gnss_track"] == len(fix)
        if sliced:
            assert ms._slices is not None
            assert len(ms._slices) == 3
            n = -(-len(got.ids) // 2)
            tracks = pa.concat_tables(t for t, _ in ms.blocks(n))
            rows = tracks.select(["vehicle_id", "time", "ignition"])
        else:
            # the vehicles whose older rows were read by key
            uncovered = store.query("SELECT vehicle_id FROM _mon_uncovered ORDER BY 1")
            assert uncovered.column(0).to_pylist() == ([] if drop else [vid("T0"), vid("T5")])
            rows = store.query("SELECT vehicle_id, time, ignition FROM _mon_tracks ORDER BY ALL")
    # the Dask engine's export stages the same rows the same way
    export_monitor_inputs(db, tmp_path / "export", 1, since=since)
    exported = (
        pq.read_table(tmp_path / "export" / "tracks")
        .select(["vehicle_id", "time", "ignition"])
        .sort_by([("vehicle_id", "ascending"), ("time", "ascending"), ("ignition", "ascending")])
    )
    want = []
    for v, t in sorted(fix):
        before = [(lt, ig) for lv, lt, ig in loc if lv == v and lt <= t]
        # the latest second's readings, the greatest bit among them
        want.append((vid(v), t, bool(max(before)[1] & 1) if before else None))
    tied = {(lv, lt) for lv, lt, _ in ties}
    latest = [(v, max(lt for lv, lt, _ in loc if lv == v and lt <= t)) for v, t in fix if v != "T5"]
    # many fixes read a tied second: which row the join takes decides them
    assert sum(x in tied for x in latest) > 20
    for got_rows in (rows, exported):
        staged = [
            (r["vehicle_id"], r["time"], r["ignition"])
            for r in got_rows.to_pylist()
            if r["vehicle_id"] in {vid(v) for v, _ in fix}
        ]
        assert staged == want
    assert {w[2] for w in want if w[0] == vid("T0")} != {None}  # the old row was found
    if "T5" not in drop:
        assert {w[2] for w in want if w[0] == vid("T5")} == {None}


@pytest.mark.parametrize("rows", [1, 7, 1 << 16])
def test_blocks_read_in_one_pass_equal_a_query_per_block(fleet, tmp_path, rows) -> None:  # type: ignore[no-untyped-def]
    """The scoring loop reads the staged rows block by block from one scan
    of each staging table (``MonitorStore.blocks``): the same tables as a
    query per block, empty blocks (vehicles with state but no
    new rows) included, whatever the scan's batch size, and a staging table
    out of block order is an error, not a wrong cut."""
    from autolien.store import MonitorStore
    from autolien.telemetry import Store

    db = str(tmp_path / "b.duckdb")
    t0 = pc.min(fleet.tracks.column("time")).as_py()
    _store(db, fleet, t0 + dt.timedelta(days=3))
    ids = sorted(set(fleet.tracks.column("vehicle_id").to_pylist()))
    # known vehicles without new rows: a block of their own at each end and between
    known = ["0-a", "0-b", "0-c", *ids[:5], "M-1", "M-2", "M-3", "zz-1", "zz-2"]
    with Store(db) as store:
        ms = MonitorStore(store)
        got = ms.read(None, 3, known)
        n = -(-len(got.ids) // 3)
        # the reference: a query per block
        track_cols = "vehicle_id, time, lat, lon, speed_kmh, ignition, used"
        want = [
            (
                store.query(
                    f"SELECT {track_cols} FROM _mon_tracks WHERE blk = ? ORDER BY ALL", [b]
                ),
                store.query(
                    "SELECT vehicle_id, time, odometer_km FROM _mon_odo WHERE blk = ? ORDER BY ALL",
                    [b],
                ),
            )
            for b in range(n)
        ]
        assert sum(t.num_rows for t, _ in want) > 0
        assert any(t.num_rows == 0 and o.num_rows == 0 for t, o in want)
        streamed = list(ms.blocks(n, rows=rows))
        assert len(streamed) == n
        for b, ((t, o), (wt, wo)) in enumerate(zip(streamed, want, strict=True)):
            assert t.schema == wt.schema, b
            assert o.schema == wo.schema, b
            assert t.equals(wt), b
            assert o.equals(wo), b
        # one block more than staged: it comes empty
        assert [x.num_rows for pair in list(ms.blocks(n + 1))[n:] for x in pair] == [0, 0]
        store.con.execute(
            "CREATE OR REPLACE TABLE _mon_odo AS SELECT * FROM _mon_odo ORDER BY blk DESC"
        ).fetchall()
        with pytest.raises(RuntimeError, match="out of block order"):
            list(ms.blocks(n))


@pytest.mark.parametrize("workers", [1, 2])
def test_runs_staged_a_slice_of_blocks_at_a_time_equal_runs_staged_at_once(
    fleet, tmp_path, monkeypatch, workers
) -> None:  # type: ignore[no-untyped-def]
    """A run with more new rows than ``STAGE_SLICE_ROWS`` stages them a
    slice of vehicle blocks at a time (a backfill's whole history staged and
    sorted at once filled a disk): the first run and the resumed day-by-day
    runs leave every output and the saved state as runs staged at once do,
    on one process and on workers."""
    import autolien.store as store_mod
    from autolien.monitor import cli
    from autolien.store import MonitorStore

    t0 = pc.min(fleet.tracks.column("time")).as_py()
    days = (20, 23, None)
    want = {}
    for day in days:
        path = str(tmp_path / "whole.duckdb")
        _store(path, fleet, None if day is None else t0 + dt.timedelta(days=day))
        monitor_store(path, batch=2, state=True, workers=1)
        want[day] = _monitor_tables(path)
    staged: list[tuple[int, int]] = []
    stage = MonitorStore._stage_slice

    def counted(self, first, end):  # type: ignore[no-untyped-def]
        staged.append((first, end))
        stage(self, first, end)

    monkeypatch.setattr(MonitorStore, "_stage_slice", counted)
    monkeypatch.setattr(cli, "MIN_BLOCKS_PER_WORKER", 1)
    # a tenth of the first run's rows: about ten slices; a few for a day's
    monkeypatch.setattr(store_mod, "STAGE_SLICE_ROWS", fleet.tracks.num_rows // 10)
    path = str(tmp_path / "sliced.duckdb")
    for day in days:
        staged.clear()
        _store(path, fleet, None if day is None else t0 + dt.timedelta(days=day))
        rep = monitor_store(path, batch=2, state=True, workers=workers)
        assert rep["vehicles"] == 12
        # the slices cover the blocks once, in order
        assert len(staged) > 1
        assert [a for a, _ in staged] == [0] + [b for _, b in staged[:-1]]
        assert staged[-1][1] == 6
        assert _monitor_tables(path) == want[day], day
    assert want[None]["alerts"]


def test_a_sliced_read_finds_the_vehicles_and_clock_a_whole_one_does(
    fleet, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The sliced read takes its vehicles and clock from the sources, not
    from staged rows: an odometer reading newer than every track row sets
    the clock, and a vehicle with readings alone gets a block, as in a read
    that stages at once."""
    import autolien.store as store_mod
    from autolien.store import MonitorStore
    from autolien.telemetry import Store

    db = str(tmp_path / "c.duckdb")
    _store(db, fleet, None)
    last = pc.max(fleet.tracks.column("time")).as_py()
    con = duckdb.connect(db)
    con.execute(
        "INSERT INTO ev VALUES ('ODO-ONLY', ?, 10.0), ('V00500000', ?, 99.0)",
        [last - dt.timedelta(days=1), last + dt.timedelta(hours=5)],
    ).fetchall()
    con.close()
    got = {}
    for limit in (10**12, 1000):
        monkeypatch.setattr(store_mod, "STAGE_SLICE_ROWS", limit)
        with Store(db) as store:
            ms = MonitorStore(store)
            got[limit] = ms.read(None, 3, ["KNOWN-1"])
            assert (ms._slices is not None) == (limit == 1000)
    assert got[1000] == got[10**12]
    assert got[1000].clock == last + dt.timedelta(hours=5)
    assert {"ODO-ONLY", "KNOWN-1"} <= set(got[1000].ids)


def test_the_monitors_store_runs_under_its_memory_limit(fleet, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """DuckDB's memory in the monitor stage is mostly a cache of the staging
    tables it wrote: its store is opened with MONITOR_MEMORY_LIMIT, or with
    $AUTOLIEN_DUCKDB_MEMORY_LIMIT when that is set."""
    import autolien.store as store_mod
    from autolien.monitor.cli import MONITOR_MEMORY_LIMIT
    from memory_limits import memory_setting as setting
    from memory_limits import spy_store_limits

    seen = spy_store_limits(monkeypatch, store_mod)
    db = str(tmp_path / "m.duckdb")
    _store(db, fleet, None)
    monkeypatch.delenv("AUTOLIEN_DUCKDB_MEMORY_LIMIT", raising=False)
    monitor_store(db, state=True, workers=1)
    assert seen[-1] == setting(MONITOR_MEMORY_LIMIT)
    monkeypatch.setenv("AUTOLIEN_DUCKDB_MEMORY_LIMIT", "3GB")
    monitor_store(db, state=True, workers=1)
    assert seen[-1] == setting("3GB")
    assert setting("3GB") != setting(MONITOR_MEMORY_LIMIT)


def test_a_first_run_without_scored_hours_does_not_stop_the_next(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A first run over too little data scores no hour; the feature table it
    creates empty must take the next run's hours (it had two columns, and
    every later run failed on the insert), and the two runs equal one."""
    f = simulate_fleet(8, 3, seed=5, anomaly_day=1)
    t0 = pc.min(f.tracks.column("time")).as_py()
    db = str(tmp_path / "m.duckdb")
    _store(db, f, t0 + dt.timedelta(minutes=20))
    assert monitor_store(db, batch=2, state=True)["hours_scored"] == 0
    _store(db, f, None)
    second = monitor_store(db, batch=2, state=True)
    one = str(tmp_path / "one.duckdb")
    _store(one, f, None)
    whole = monitor_store(one, batch=2, state=True)
    assert second["hours_scored"] == whole["hours_scored"] > 0
    assert _tables(db) == _tables(one)
    con = duckdb.connect(db, read_only=True)
    left = {r[0] for r in con.sql("SHOW TABLES").fetchall()} - {"fixes", "ev"}
    con.close()
    assert all(not t.startswith("_") for t in left), left  # no staging left behind


def _nan_marked(x: object) -> object:
    if isinstance(x, float) and math.isnan(x):
        return "NaN"
    if isinstance(x, list):
        return [_nan_marked(v) for v in x]
    if isinstance(x, dict):
        return {k: _nan_marked(v) for k, v in x.items()}
    return x


def _saved_state(path: str) -> pa.Table | None:
    """The store's saved monitor state (its file, in its order)."""
    from autolien.store import MonitorStore
    from autolien.telemetry import Store

    with Store(path, read_only=True) as s:
        return MonitorStore(s).saved_state()


def _monitor_tables(path: str) -> dict[str, list]:
    """Every monitor table of the store and its saved state, row by row in
    a total order, list values included, NaN as a marker (unequal to itself
    otherwise)."""
    state = _saved_state(path)
    if state is not None:
        state = state.sort_by("vehicle_id")
    con = duckdb.connect(path, read_only=True)
    try:
        return {
            "state": [] if state is None else _nan_marked(state.to_pylist()),  # type: ignore[dict-item]
            **{
                t: _nan_marked(
                    con.sql(f"SELECT * FROM {t} ORDER BY ALL").to_arrow_table().to_pylist()
                )  # type: ignore[misc]
                for t in ("alerts", "monitor_features", "monitor_rejects")
            },
        }
    finally:
        con.close()


def _rewrite_state(path: str, change) -> None:  # type: ignore[no-untyped-def]
    """Rewrites the store's state file in place, batch by batch (the index
    stays valid), through ``change(batch) -> batch``: damage done by hand."""
    import json

    con = duckdb.connect(path, read_only=True)
    meta = json.loads(
        con.sql("SELECT value FROM store_meta WHERE key = 'monitor_state'").fetchall()[0][0]
    )
    con.close()
    f = f"{path}.monitor/{meta['state_file']}"
    with pa.memory_map(f) as src:
        r = ipc.open_file(src)
        batches = [r.get_batch(i) for i in range(r.num_record_batches)]
        schema = r.schema
    with ipc.new_file(f, schema) as w:
        for b in batches:
            w.write_batch(change(b))


def test_blocks_scored_on_worker_processes_equal_one_process(fleet, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Blocks of vehicles scored on two spawned worker processes, resumed
    day by day, leave the store (state, alerts, feature hours, rejects) a
    run in this process leaves, value for value."""
    from concurrent.futures import ProcessPoolExecutor

    from autolien.monitor import cli

    pools = []

    class Counted(ProcessPoolExecutor):
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            pools.append(a)
            super().__init__(*a, **kw)

    monkeypatch.setattr(cli, "ProcessPoolExecutor", Counted)
    # the workers read their saved state from the file and hand the new
    # state back in files of a temporary directory, removed after the run
    import tempfile

    from autolien.store import MonitorStore

    spills: list[str] = []
    refs: list[object] = []

    class Spill(tempfile.TemporaryDirectory):  # type: ignore[type-arg]
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **kw)
            spills.append(self.name)

    state_ref = MonitorStore.state_ref

    def counted_ref(self, ids):  # type: ignore[no-untyped-def]
        got = state_ref(self, ids)
        refs.append(got)
        return got

    monkeypatch.setattr(cli.tempfile, "TemporaryDirectory", Spill)
    monkeypatch.setattr(MonitorStore, "state_ref", counted_ref)

    t0 = pc.min(fleet.tracks.column("time")).as_py()
    dbs = {}
    for workers in (1, 2):
        db = str(tmp_path / f"w{workers}.duckdb")
        for day in (21, None):  # a first run, then one resumed from its state
            _store(db, fleet, None if day is None else t0 + dt.timedelta(days=day))
            # one vehicle a block: 12 blocks, enough for two workers
            assert cli.MIN_BLOCKS_PER_WORKER * 2 <= 12
            monitor_store(db, batch=1, state=True, workers=workers)
        dbs[workers] = _monitor_tables(db)
        assert len(pools) == (0 if workers == 1 else 2)  # a pool each run, when asked
    assert dbs[2] == dbs[1]
    assert len(spills) == 2
    assert not any(os.path.exists(d) for d in spills)
    # the first worker run had no saved state; the resumed one sent every block's place
    assert len(refs) == 24
    assert refs[:12] == [None] * 12
    assert all(r is not None for r in refs[12:])
    con = duckdb.connect(str(tmp_path / "w2.duckdb"), read_only=True)
    assert con.sql("SELECT count(*) FROM alerts").fetchall()[0][0] >= 6
    con.close()


def test_a_failed_block_on_a_worker_leaves_the_store_as_it_was(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A block that fails on a worker (here: one vehicle's saved state is
    damaged) fails the run with the worker's error; the outputs and the
    state stay as the last run left them, and nothing staged is left."""
    db = str(tmp_path / "bad.duckdb")
    t0 = pc.min(fleet.tracks.column("time")).as_py()
    _store(db, fleet, t0 + dt.timedelta(days=20))
    monitor_store(db, batch=1, state=True, workers=2)
    before = _monitor_tables(db)
    last = max(r["vehicle_id"] for r in before["state"])

    def damage(b: pa.RecordBatch) -> pa.RecordBatch:
        ids = b.column(b.schema.get_field_index("vehicle_id")).to_pylist()
        i = b.schema.get_field_index("base")
        base = [
            ("{not json" if v == last else x)
            for v, x in zip(ids, b.column(i).to_pylist(), strict=True)
        ]
        return b.set_column(i, b.schema.field(i), pa.array(base, pa.string()))

    _rewrite_state(db, damage)
    damaged = _monitor_tables(db)
    assert damaged["state"] != before["state"]
    _store(db, fleet, None)
    with pytest.raises(ValueError, match="Expecting property name"):
        monitor_store(db, batch=1, state=True, workers=2)
    after = _monitor_tables(db)
    assert after == damaged
    assert after["alerts"] == before["alerts"]
    con = duckdb.connect(db, read_only=True)
    left = {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert not {t for t in left if t.startswith("_mon")}, left
    # the failed run's own state file is gone; the last run's is kept
    import pathlib

    assert len(list(pathlib.Path(db + ".monitor").iterdir())) == 1


def test_an_unguarded_script_is_not_run_again_by_the_workers(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A script without ``if __name__ == "__main__"`` that runs the monitor
    on worker processes runs once: spawned workers would otherwise execute
    it again, each on the same store."""
    import subprocess
    import sys

    db = tmp_path / "s.duckdb"
    _store(str(db), fleet, None)
    log = tmp_path / "runs.log"
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from autolien.monitor.cli import monitor_store\n"
        f"open({str(log)!r}, 'a').write('run\\n')\n"
        f"r = monitor_store({str(db)!r}, batch=1, state=True, workers=2)\n"
        "print(r['vehicles'], r['alerts'])\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert log.read_text() == "run\n"
    assert out.stdout.split()[0] == "12"


def test_worker_count_from_the_environment(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    from autolien.monitor.cli import WORKERS_ENV, default_workers

    monkeypatch.setenv(WORKERS_ENV, "3")
    assert default_workers() == 3
    for bad, why in (("0", "at least 1"), ("two", "whole number")):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(ValueError, match=why):
            default_workers()
    monkeypatch.delenv(WORKERS_ENV)
    assert default_workers() == min(len(os.sched_getaffinity(0)), 4)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        monitor_store(str(tmp_path / "x.duckdb"), workers=0)


def test_vehicles_that_appear_later_shift_the_blocks_and_resume_the_same(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Blocks are cut from the sorted vehicle ids, so vehicles first seen in
    a later run move every block after them: a block's saved rows then come
    from parts of two batches of the last run's state file, and, in the run
    after (a new vehicle's row was added after its block's saved ones), out
    of their order in the file. The resumed runs equal one run over the
    same rows."""
    from types import SimpleNamespace

    from autolien.store import MonitorStore
    from autolien.telemetry import Store

    t0 = pc.min(fleet.tracks.column("time")).as_py()
    cut = t0 + dt.timedelta(days=20)
    ids = sorted(set(fleet.tracks.column("vehicle_id").to_pylist()))
    late = pa.array([ids[1], ids[6]])

    def later(tab: pa.Table) -> pa.Table:
        # the late vehicles have no rows before the cut
        keep = pc.or_(
            pc.invert(pc.is_in(tab.column("vehicle_id"), late)),
            pc.greater_equal(tab.column("time"), pa.scalar(cut, tab.column("time").type)),
        )
        return tab.filter(keep)

    f = SimpleNamespace(tracks=later(fleet.tracks), odometer=later(fleet.odometer))
    inc, one = str(tmp_path / "inc.duckdb"), str(tmp_path / "one.duckdb")
    _store(inc, f, cut)
    monitor_store(inc, batch=3, state=True, workers=1)
    with Store(inc, read_only=True) as s:
        ms = MonitorStore(s)
        ms.meta()
        first = ms.state_ids()
        where = dict(ms._where)
    assert len(first) == len(ids) - 2
    # the second run's second block (ids[3:6]) lies across two batches
    assert {where[v][0] for v in ids[3:6]} == {0, 1}
    _store(inc, f, cut + dt.timedelta(days=2))
    monitor_store(inc, batch=3, state=True, workers=1)
    with Store(inc, read_only=True) as s:
        ms = MonitorStore(s)
        ms.meta()
        order = ms.state_ids()
    assert order[:3] != sorted(order[:3])  # the late vehicle's row came last
    _store(inc, f, None)
    monitor_store(inc, batch=3, state=True, workers=1)
    _store(one, f, None)
    monitor_store(one, batch=3, state=True, workers=1)
    assert _monitor_tables(inc) == _monitor_tables(one)
    assert len(_monitor_tables(one)["state"]) == len(ids)


def test_a_state_file_gone_missing_scores_the_history_again(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database copied without its ``.monitor`` directory names a state
    file that is not there: the next run warns and scores the whole history
    afresh (nothing is lost: the rows are in the store), which equals one
    run; state files no meta names are deleted."""
    import pathlib
    import shutil

    t0 = pc.min(fleet.tracks.column("time")).as_py()
    db, one = str(tmp_path / "m.duckdb"), str(tmp_path / "one.duckdb")
    _store(db, fleet, t0 + dt.timedelta(days=20))
    monitor_store(db, batch=4, state=True)
    shutil.rmtree(db + ".monitor")
    stray = pathlib.Path(db + ".monitor")
    stray.mkdir()
    (stray / "state-000099.arrow").write_bytes(b"left by a killed run")
    _store(db, fleet, None)
    with pytest.warns(RuntimeWarning, match="is missing"):
        monitor_store(db, batch=4, state=True)
    _store(one, fleet, None)
    monitor_store(one, batch=4, state=True)
    assert _monitor_tables(db) == _monitor_tables(one)
    left = [p.name for p in stray.iterdir()]
    assert len(left) == 1
    assert left != ["state-000099.arrow"]


def test_a_worker_killed_mid_run_fails_the_run_and_the_rerun_is_clean(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A worker process killed while it scores (the OOM killer, an
    operator) fails the run with the pool's error; the store keeps the last
    run's outputs and state, and the next run gives what one clean run
    gives."""
    import os
    import signal
    import threading
    import time
    from concurrent.futures.process import BrokenProcessPool

    def workers_of(pid: int) -> list[int]:
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        stat = f.read().rsplit(")", 1)[1].split()
                    with open(f"/proc/{d}/cmdline", "rb") as f:
                        cmd = f.read()
                except OSError:
                    continue
                if int(stat[1]) == pid and b"spawn_main" in cmd:
                    out.append(int(d))
        return out

    t0 = pc.min(fleet.tracks.column("time")).as_py()
    clean = str(tmp_path / "clean.duckdb")
    db = str(tmp_path / "killed.duckdb")
    for path in (clean, db):
        _store(path, fleet, t0 + dt.timedelta(days=20))
        monitor_store(path, batch=1, state=True, workers=1)
        _store(path, fleet, None)
    before = _monitor_tables(db)
    killed: list[int] = []

    def kill_a_worker() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end and not killed:
            for w in workers_of(os.getpid()):
                os.kill(w, signal.SIGKILL)
                killed.append(w)
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker)
    killer.start()
    with pytest.raises(BrokenProcessPool):
        monitor_store(db, batch=1, state=True, workers=2)
    killer.join()
    assert killed
    assert _monitor_tables(db) == before
    con = duckdb.connect(db, read_only=True)
    left = {r[0] for r in con.sql("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert not {t for t in left if t.startswith("_mon")}, left
    monitor_store(db, batch=1, state=True, workers=2)
    monitor_store(clean, batch=1, state=True, workers=1)
    assert _monitor_tables(db) == _monitor_tables(clean)


def _sleep_long() -> None:
    import time

    time.sleep(120)


def test_the_workers_of_a_broken_pool_are_ended_before_its_shutdown() -> None:
    """A worker a submit started after another died is not among those
    CPython 3.11's pool terminates, and the pool's shutdown then waits on
    it for ever (a CI run hung so): ``_end_broken_workers`` kills every
    worker of a broken pool, and leaves a healthy pool's alone."""
    from multiprocessing import get_context
    from types import SimpleNamespace

    from autolien.monitor.cli import _end_broken_workers

    ctx = get_context("spawn")
    for broken in (False, True):
        p = ctx.Process(target=_sleep_long, daemon=True)
        p.start()
        try:
            pool = SimpleNamespace(_broken=broken, _processes={p.pid: p})
            _end_broken_workers(pool)  # type: ignore[arg-type]
            p.join(timeout=10 if broken else 0.5)
            assert p.is_alive() is (not broken)
        finally:
            p.kill()
            p.join()


def test_a_submit_that_races_a_dead_worker_fails_as_the_broken_pool() -> None:
    """A worker killed while a submit starts another: the pool's teardown
    closes the pipes the new worker was to inherit, and the spawn raised
    ValueError (seen in CI). ``_submit`` raises the pool's error instead;
    any other failure of a submit, or of a healthy pool, is raised as it is."""
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace

    from autolien.monitor.cli import _submit

    def spawn_fails(*_: object) -> None:
        raise ValueError("bad value(s) in fds_to_keep")

    broken = SimpleNamespace(_broken="A child process terminated abruptly", submit=spawn_fails)
    with pytest.raises(BrokenProcessPool, match="terminated abruptly") as info:
        _submit(broken, print)  # type: ignore[arg-type]
    assert isinstance(info.value.__cause__, ValueError)
    healthy = SimpleNamespace(_broken=False, submit=spawn_fails)
    with pytest.raises(ValueError, match="fds_to_keep"):
        _submit(healthy, print)  # type: ignore[arg-type]


def test_the_slow_charts_state_resumes_and_an_older_state_loads_without_it(fleet) -> None:  # type: ignore[no-untyped-def]
    m = Monitor()
    m.update(fleet.tracks, fleet.odometer)
    st = m.state_table()

    def slow(mon: Monitor) -> dict[str, tuple]:
        return {
            vid: tuple("NaN" if math.isnan(x) else x for x in (v.cusum_slow, v.cusum_slow_since))
            for vid, v in mon._vehicles.items()
        }

    want = slow(m)
    assert any(c > 0 for c, _ in want.values())  # the rental's chart is running
    resumed = Monitor()
    resumed.load_state(_through_ipc(st))
    assert slow(resumed) == want
    # a state saved before the slow chart existed: it starts from zero
    older = Monitor()
    older.load_state(_through_ipc(st.drop_columns(["cusum_slow", "cusum_slow_since"])))
    assert set(slow(older).values()) == {(0.0, "NaN")}
