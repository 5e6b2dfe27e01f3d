"""The Parquet layout of the telemetry store (``Store(layout="parquet")``):
the same rows as the DuckDB-table layout, the files where the layout says,
de-duplication that reads only the batch's partitions, a part written but
not committed invisible and collected, memory bounded by the batch."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autolien.pipeline import _inputs
from autolien.sim.portfolio import write_portfolio
from autolien.telemetry import decode_jt808
from autolien.telemetry.ingest import ingest_files
from autolien.telemetry.store import Store

TABLES = ("locations", "ev", "fixes", "obd", "rejects")


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pf") / "pf"
    write_portfolio(root, 12, 3, seed=1, rtk_every=4)
    return root


def _ingest(root: Path, db: Path, layout: str, *, days: slice = slice(None)) -> dict[str, int]:
    files, names, vehicles = _inputs(root)
    keep = [i for i, f in enumerate(files) if f.stem in _days(root)[days]]
    db.parent.mkdir(parents=True, exist_ok=True)
    with Store(db, layout=layout) as store:
        s = ingest_files(
            [files[i] for i in keep],
            store,
            names=[names[i] for i in keep],
            vehicle_ids=[vehicles[i] for i in keep],
        )
    return dict(s.new_rows)


def _days(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "telemetry").glob("*.jt808"))


def _tables(db: Path) -> dict[str, pa.Table]:
    with Store(db, read_only=True) as store:
        have = set(store.tables())
        return {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in TABLES if t in have}


def _bucket(key: str, n: int) -> int:
    # the layout's bucket, computed here from its definition (blake2b-64, big-endian, mod n)
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % n


def test_the_parquet_store_holds_what_the_duckdb_store_holds(
    portfolio: Path, tmp_path: Path
) -> None:
    new = {
        layout: _ingest(portfolio, tmp_path / layout / "a.duckdb", layout)
        for layout in ("duckdb", "parquet")
    }
    assert new["duckdb"] == new["parquet"]
    want, got = (
        _tables(tmp_path / "duckdb" / "a.duckdb"),
        _tables(tmp_path / "parquet" / "a.duckdb"),
    )
    assert set(want) == set(got)
    for t in want:
        assert got[t].schema == want[t].schema, t
        assert got[t].equals(want[t]), t
    # the bulk tables are views over files in the documented layout
    parts = tmp_path / "parquet" / "a.parts"
    with Store(tmp_path / "parquet" / "a.duckdb", read_only=True) as store:
        kinds = dict(
            store.con.execute(
                "SELECT table_name, table_type FROM information_schema.tables"
            ).fetchall()
        )
        assert {kinds[t] for t in ("locations", "ev", "fixes")} == {"VIEW"}
        buckets = int(store.meta("parts_buckets") or 0)
    assert buckets > 1
    files = sorted(parts.glob("locations/date=*/bucket=*/part-*.parquet"))
    assert files
    rows = 0
    for f in files:
        date = f.parent.parent.name.removeprefix("date=")
        bucket = int(f.parent.name.removeprefix("bucket="))
        t = pq.read_table(f)
        rows += t.num_rows
        for terminal, time in zip(
            t.column("terminal_id").to_pylist(), t.column("time").to_pylist(), strict=True
        ):
            assert _bucket(terminal, buckets) == bucket
            assert time.astimezone(dt.UTC).date().isoformat() == date
    assert rows == got["locations"].num_rows


def test_appending_again_adds_nothing_and_reads_only_the_batch_days(
    portfolio: Path, tmp_path: Path
) -> None:
    db = tmp_path / "a.duckdb"
    _ingest(portfolio, db, "parquet")
    before = _tables(db)
    day = _days(portfolio)[1]
    rows = decode_jt808(portfolio / "telemetry" / f"{day}.jt808").table
    days = {t.astimezone(dt.UTC).date().isoformat() for t in rows.column("time").to_pylist() if t}
    with Store(db) as store:
        assert store.append(rows, source_file=f"telemetry/{day}.jt808") == 0
        read = store.parts_read
    # it did compare with the history, and only with the batch's own days
    assert read
    assert {Path(p).parent.parent.name.removeprefix("date=") for p in read} <= days
    every_day = {
        p.parent.parent.name
        for p in (tmp_path / "a.parts" / "locations").glob("date=*/bucket=*/*.parquet")
    }
    assert len(every_day) > len(days)
    after = _tables(db)
    for t in before:
        assert after[t].equals(before[t]), t
    # and ingesting the files again: every file is known, nothing decoded
    assert _ingest(portfolio, db, "parquet") == {}


CRASH = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from autolien.pipeline import _inputs
    from autolien.telemetry.ingest import ingest_files
    from autolien.telemetry.store import Store

    root, db, days = Path(sys.argv[1]), sys.argv[2], set(json.loads(sys.argv[3]))
    files, names, vehicles = _inputs(root)
    keep = [i for i, f in enumerate(files) if f.stem in days]

    def die(*a, **k):  # the parts are written, the transaction not committed
        os._exit(9)

    store = Store(db, layout="parquet")
    store.record_files = die
    ingest_files([files[i] for i in keep], store, names=[names[i] for i in keep],
                 vehicle_ids=[vehicles[i] for i in keep])
    """
)


def test_a_part_written_but_not_committed_is_invisible_and_stored_once_on_rerun(
    portfolio: Path, tmp_path: Path
) -> None:
    days = _days(portfolio)
    ref = tmp_path / "ref" / "a.duckdb"
    _ingest(portfolio, ref, "duckdb", days=slice(0, 1))
    day1 = _tables(ref)
    _ingest(portfolio, ref, "duckdb")
    full = _tables(ref)

    db = tmp_path / "pq" / "a.duckdb"
    _ingest(portfolio, db, "parquet", days=slice(0, 1))
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(portfolio), str(db), json.dumps(days[1:])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 9, proc.stderr
    orphans = [
        p
        for d in days[1:]
        for p in (tmp_path / "pq" / "a.parts").glob(f"*/date={d}/bucket=*/*.parquet")
    ]
    assert orphans  # written before the kill
    # read-only: nothing collected, nothing of the killed run visible
    got = _tables(db)
    for t in day1:
        assert got[t].equals(day1[t]), t
    assert all(p.exists() for p in orphans)
    Store(db).close()  # a writable open collects them
    assert not any(p.exists() for p in orphans)
    _ingest(portfolio, db, "parquet")
    got = _tables(db)
    for t in full:
        assert got[t].equals(full[t]), t


def test_a_moved_store_reads_its_own_parts(portfolio: Path, tmp_path: Path) -> None:
    _ingest(portfolio, tmp_path / "a" / "a.duckdb", "parquet")
    want = _tables(tmp_path / "a" / "a.duckdb")
    shutil.move(tmp_path / "a", tmp_path / "b")
    for t, rows in _tables(tmp_path / "b" / "a.duckdb").items():  # read-only: temporary views
        assert rows.equals(want[t]), t
    with Store(tmp_path / "b" / "a.duckdb") as store:  # writable: the views are re-pointed
        views = store.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'ev'")
        assert str((tmp_path / "b" / "a.parts").resolve()) in views.fetchall()[0][0]
    for t, rows in _tables(tmp_path / "b" / "a.duckdb").items():
        assert rows.equals(want[t]), t


def test_a_store_keeps_its_layout(tmp_path: Path, portfolio: Path) -> None:
    _ingest(portfolio, tmp_path / "a.duckdb", "parquet", days=slice(0, 1))
    with Store(tmp_path / "a.duckdb") as store:
        assert store.layout == "parquet"
    with pytest.raises(ValueError, match="parquet layout"):
        Store(tmp_path / "a.duckdb", layout="duckdb")
    with pytest.raises(ValueError, match="layout must be one of"):
        Store(tmp_path / "b.duckdb", layout="csv")


MEMORY = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from autolien.telemetry import ingest
    from autolien.telemetry.store import Store

    big, small, db, chunk, flush = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    ingest.FLUSH_ROWS = flush
    store = Store(db, layout="parquet")
    ingest.ingest_files([small], store, chunk_bytes=chunk)  # warm: imports, DuckDB, Parquet
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    s = ingest.ingest_files([big], store, chunk_bytes=chunk)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": s.rows["locations"], "grew_kb": peak - base}))
    """
)


@pytest.mark.slow
def test_memory_follows_the_batch_not_the_day_file(portfolio: Path, tmp_path: Path) -> None:
    days = _days(portfolio)
    one = (portfolio / "telemetry" / f"{days[0]}.jt808").read_bytes()
    # a day file many times the batch: the day's frames again and again
    # (offsets differ, readings repeat), 400x one simulated day file
    big = tmp_path / "big.jt808"
    with open(big, "wb") as f:
        f.writelines(one for _ in range(400))
    small = portfolio / "telemetry" / f"{days[1]}.jt808"
    chunk, flush = 1 << 18, 5_000
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY,
            str(big),
            str(small),
            str(tmp_path / "m.duckdb"),
            str(chunk),
            str(flush),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout)
    frames = len(one.split(b"\x7e\x7e"))
    assert out["rows"] >= 400 * (frames - 1)
    # Bound: a piece of `chunk` bytes decodes to about chunk/60 rows (a
    # location frame is ~60 bytes), each at most a few hundred bytes in
    # Arrow, plus `flush` rows waiting, plus the de-duplication's working
    # set: kept generous (10x) so the test is about growth, not tuning. The
    # big file decoded whole would hold all its rows at once.
    row_bytes = 400
    bound_kb = 10 * (chunk // 60 + flush) * row_bytes // 1024 + 64 * 1024
    assert out["grew_kb"] < bound_kb, out
