"""The DuckDB store and `autolien ingest`: idempotence, queries, Parquet export, format detection."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from autolien.cli import main
from autolien.telemetry import Store, decode_gb32960, decode_jt808, decode_nmea
from autolien.telemetry.ingest import detect_format
from conftest import DATA

GPSD = DATA / "gnss" / "gpsd"
JT808 = [json.loads(x) for x in (DATA / "protocols" / "jt808.jsonl").read_text().splitlines()]
GB = [json.loads(x) for x in (DATA / "protocols" / "gb32960.jsonl").read_text().splitlines()]


def jt808_capture(tmp_path: Path) -> Path:
    frames = b"".join(bytes.fromhex(v["hex"]) for v in JT808 if v["level"] == "frame")
    path = tmp_path / "gateway.bin"
    path.write_bytes(frames)
    return path


def gb_capture(tmp_path: Path) -> Path:
    frames = b"".join(bytes.fromhex(v["hex"]) for v in GB if v["level"] == "frame")
    path = tmp_path / "ev.bin"
    path.write_bytes(frames)
    return path


def test_append_is_idempotent_and_queries_return_arrow(tmp_path: Path) -> None:
    res = decode_jt808(jt808_capture(tmp_path))
    with Store(tmp_path / "t.duckdb") as store:
        first = store.append(res.table, source_file="a.bin")
        assert first > 0
        assert store.append(res.table, source_file="a.bin") == 0
        # The same rows under another file name are still the same readings.
        assert store.append(res.table, source_file="copy.bin") == 0
        n = store.query("SELECT count(*) AS n FROM locations").column("n")[0].as_py()
        assert n == first
        t = store.query(
            "SELECT terminal_id, time, lat, lon FROM locations ORDER BY time NULLS LAST LIMIT 3"
        )
        assert str(t.schema.field("time").type) == "timestamp[us, tz=UTC]"
        assert t.num_rows == 3


def test_duplicate_readings_inside_one_batch_collapse(tmp_path: Path) -> None:
    one = bytes.fromhex(next(v["hex"] for v in JT808 if v["id"] == "smallchi-readme-escape"))
    res = decode_jt808(one + one)
    assert res.table.num_rows == 2
    with Store(tmp_path / "t.duckdb") as store:
        assert store.append(res.table) == 1


def test_ev_and_fixes_and_parquet_export(tmp_path: Path) -> None:
    with Store(tmp_path / "t.duckdb") as store:
        assert store.append(decode_gb32960(gb_capture(tmp_path)).table) > 0
        assert store.append(decode_nmea(GPSD / "nmea-rtk.log").table) == 122
        written = store.export_parquet(tmp_path / "pq")
    assert {p.name for p in written} == {"ev", "fixes"}
    parts = sorted(p.name for p in (tmp_path / "pq" / "fixes").iterdir())
    assert parts == ["date=2020-03-18"]
    table = pq.read_table(tmp_path / "pq" / "fixes")
    assert table.num_rows == 122


def test_detect_format(tmp_path: Path) -> None:
    assert detect_format(jt808_capture(tmp_path).read_bytes()) == "jt808"
    assert detect_format(gb_capture(tmp_path).read_bytes()) == "gb32960"
    assert detect_format((GPSD / "nmea-rtk.log").read_bytes()) == "nmea"
    assert detect_format((GPSD / "ublox-zed-f9p-rtk.log").read_bytes()) == "nmea"
    assert detect_format(b"7E8 03 41 0D 32\r41 0C 1A F8\r") == "obd"
    assert detect_format(b"anything", "x.gb32960") == "gb32960"
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format(b"hello world")


def test_cli_ingest_summary_and_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.duckdb"
    files = [str(jt808_capture(tmp_path)), str(gb_capture(tmp_path)), str(GPSD / "nmea-rtk.log")]
    assert main(["ingest", *files, "--db", str(db), "--json", "--quiet"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["formats"] == {"jt808": 1, "gb32960": 1, "nmea": 1}
    assert first["rows"]["fixes"] == 122
    assert first["rejects"]["jt808:bad_checksum"] >= 7
    assert main(["ingest", *files, "--db", str(db), "--json", "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert sum(again["new_rows"].values()) == 0
    with Store(db, read_only=True) as store:
        rejects = store.query(
            "SELECT decoder, reason, count(*) n FROM rejects GROUP BY ALL"
        ).to_pylist()
        assert {(r["decoder"], r["reason"]) for r in rejects} >= {
            ("jt808", "bad_checksum"),
            ("nmea", "junk"),
        }
        # Rejects are stored once, with their raw bytes.
        total = store.query("SELECT count(*) n FROM rejects").column("n")[0].as_py()
        assert total == sum(first["rejects"].values())
    # Human-readable output and a clear error for an unknown file.
    assert main(["ingest", str(GPSD / "nmea-rtk.log"), "--db", str(db), "--quiet"]) == 0
    assert "1 file(s) skipped: their content is in the store already" in capsys.readouterr().out
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert main(["ingest", str(bad), "--db", str(db), "--quiet"]) == 2
    assert "cannot tell" in capsys.readouterr().err


def test_a_big_jt808_file_ingested_in_pieces_equals_one_piece(tmp_path: Path) -> None:
    import numpy as np

    from autolien.sim.frames import jt808_locations
    from autolien.telemetry.ingest import ingest_files

    n = 3000
    t = 1.79e9 + np.arange(n) * 30.0
    good = jt808_locations(
        "013800000001",
        t,
        31.2 + np.arange(n) * 1e-5,
        121.4 + np.arange(n) * 1e-5,
        np.full(n, 10.0),
        np.full(n, 40.0),
        np.full(n, 90.0),
        1000 + np.arange(n) * 0.3,
    )
    # a corrupted frame (bad checksum) and a truncated one inside the stream
    frames = good.split(b"\x7e\x7e")
    bad = bytearray(frames[700])
    bad[20] ^= 0xFF
    frames[700] = bytes(bad)
    frames[1500] = frames[1500][:15]
    path = tmp_path / "day.jt808"
    path.write_bytes(b"\x7e\x7e".join(frames))
    tables = {}
    for chunk in (1 << 30, 4096, 977):
        with Store(tmp_path / f"{chunk}.duckdb") as store:
            s = ingest_files([path], store, chunk_bytes=chunk)
            assert s.bytes == path.stat().st_size
            tables[chunk] = {
                k: store.query(f'SELECT * EXCLUDE (source_file) FROM {k} ORDER BY "offset"')
                for k in ("locations", "rejects")
            }
    whole = tables[1 << 30]
    assert whole["locations"].num_rows == n - 2
    assert whole["rejects"].num_rows == 2
    for chunk in (4096, 977):
        for k in ("locations", "rejects"):
            assert tables[chunk][k].equals(whole[k]), (chunk, k)


def test_batched_appends_store_what_file_by_file_appends_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from autolien.sim.portfolio import write_portfolio
    from autolien.telemetry import ingest

    write_portfolio(tmp_path / "pf", 6, 3, seed=2)
    files = sorted((tmp_path / "pf").rglob("*.jt808")) + sorted((tmp_path / "pf").rglob("*.nmea"))
    # the same day logged twice under another name: its rows are duplicates,
    # and the first file's copy must be the one kept
    dup = tmp_path / "pf" / "zz-copy.jt808"
    shutil.copy(files[1], dup)
    files = [files[0], files[1], dup, *files[2:]]
    got = {}
    for flush_rows in (10**9, 1):  # one batch per table; one append per file
        monkeypatch.setattr(ingest, "FLUSH_ROWS", flush_rows)
        with Store(tmp_path / f"{flush_rows}.duckdb") as store:
            s = ingest.ingest_files(files, store)
            got[flush_rows] = (
                dict(s.new_rows),
                {
                    k: store.query(f"SELECT * FROM {k} ORDER BY ALL")
                    for k in ("locations", "fixes", "rejects")
                },
            )
    assert got[10**9][0] == got[1][0]
    for k, t in got[1][1].items():
        assert got[10**9][1][k].equals(t), k
    with Store(tmp_path / "1.duckdb") as store:
        (n,) = (
            store.query(f"SELECT count(*) AS n FROM locations WHERE source_file = '{dup}'")
            .column("n")
            .to_pylist()
        )
    assert n == 0


def test_known_files_are_recognised_by_their_stat_without_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import os
    import shutil
    import time

    from autolien.telemetry import ingest as ing

    hashed: list[str] = []
    digest = ing.file_digest
    monkeypatch.setattr(ing, "file_digest", lambda p: hashed.append(Path(p).name) or digest(p))
    files = [jt808_capture(tmp_path), gb_capture(tmp_path)]
    db = tmp_path / "s.duckdb"

    def ingest(**kw: bool) -> ing.IngestSummary:
        hashed.clear()
        with Store(db) as store:
            return ing.ingest_files(files, store, **kw)

    first = ingest()
    assert (first.files, first.hashed_files) == (2, 2)
    # just written: within the racy window, so not cached and hashed again
    assert ingest().hashed_files == 2
    monkeypatch.setattr(ing, "RACY_NS", -(10**12))  # every file old enough, for this test
    ingest()
    # a daily rerun over the same directory reads none of the known files
    again = ingest()
    assert (again.files, again.skipped_files, again.hashed_files, hashed) == (0, 2, 0, [])
    with Store(db) as store:
        cached = {v[5] for v in store.file_stats().values()}
    assert cached == {hashlib.sha256(Path(f).read_bytes()).hexdigest() for f in files}
    # content changed in place, its size and mtime put back: the ctime moved,
    # so it is hashed, and its new content goes in
    time.sleep(0.05)  # past the file system's timestamp granularity
    f = Path(files[0])
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x55
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = ingest()
    assert (changed.files, changed.skipped_files, hashed) == (1, 1, [f.name])
    # --rehash, a damaged cache and a cache without the store's manifest: all hash
    assert ingest(rehash=True).hashed_files == 2
    cache = Path(str(db) + ".files.parquet")
    cache.write_bytes(b"not parquet")
    assert (ingest().hashed_files, ingest().hashed_files) == (2, 0)

    # a cache that cannot be written: a warning, the rows are stored all the same
    def fail(self: Store, stats: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Store, "save_file_stats", fail)
    extra = tmp_path / "extra.bin"
    extra.write_bytes(Path(files[0]).read_bytes()[: len(data) // 3])
    files.append(extra)
    with pytest.warns(RuntimeWarning, match="stat cache"):
        assert ingest().files == 1
    monkeypatch.undo()
    monkeypatch.setattr(ing, "RACY_NS", -(10**12))
    files.pop()
    shutil.copy(cache, tmp_path / "other.duckdb.files.parquet")
    db = tmp_path / "other.duckdb"
    fresh = ingest()
    assert (fresh.files, fresh.hashed_files) == (2, 2)


def test_stat_cache_keys_are_the_real_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the cache's key and stat, with real directories cached, against
    # os.path.realpath and os.stat of each file: plain, a link, a link to a
    # link, inside a linked directory, relative, and through ".."
    import os

    from autolien.telemetry import ingest as ing

    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "a.bin").write_bytes(b"a")
    (real / "sub" / "b.bin").write_bytes(b"bb")
    (tmp_path / "link.bin").symlink_to(real / "a.bin")
    (tmp_path / "link2.bin").symlink_to(tmp_path / "link.bin")
    (tmp_path / "dirlink").symlink_to(real / "sub")
    monkeypatch.chdir(real)
    paths = [
        real / "a.bin",
        tmp_path / "link.bin",
        tmp_path / "link2.bin",
        tmp_path / "dirlink" / "b.bin",
        Path("a.bin"),
        Path("sub/../a.bin"),
        Path("sub") / "b.bin",
    ]
    cache: dict[str, str] = {}
    for p in paths:
        key, st = ing._stat(p, cache)
        ref = os.stat(p)
        assert key == os.path.realpath(p), p
        assert st == (ref.st_size, ref.st_mtime_ns, ref.st_ctime_ns, ref.st_ino, ref.st_dev)
        assert ing._stat(p) == (key, st)


def test_store_memory_limit_from_the_argument_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from autolien.telemetry.store import MEMORY_LIMIT_ENV

    def setting(con: duckdb.DuckDBPyConnection) -> str:
        return str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])

    # what DuckDB itself makes of the same setting
    peer = duckdb.connect(":memory:", config={"memory_limit": "300MB"})
    with Store(tmp_path / "a.duckdb", memory_limit="300MB") as store:
        assert setting(store.con) == setting(peer)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "300MB")
    with Store(tmp_path / "b.duckdb") as store:
        assert setting(store.con) == setting(peer)
    monkeypatch.delenv(MEMORY_LIMIT_ENV)
    with Store(tmp_path / "c.duckdb") as store:
        assert setting(store.con) == setting(duckdb.connect(":memory:"))
    with pytest.raises(ValueError, match="not a DuckDB memory size"):
        Store(tmp_path / "d.duckdb", memory_limit="lots")
    with pytest.raises(ValueError, match="not a DuckDB memory size"):
        Store(tmp_path / "d.duckdb", memory_limit="1XB")
    # another failure is DuckDB's own, even with "memory" in the path
    with pytest.raises(duckdb.Error):
        Store(tmp_path / "memory_missing.duckdb", memory_limit="1GB", read_only=True)
