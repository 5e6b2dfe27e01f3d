"""The value stage reads the EV frames a block of whole VINs at a time
(``store.ev_frame_blocks``), not the whole history at once (issue 17): the
blocks hold every stored frame once, in the store's total order, with no
VIN split between two, and the charge segments and the stage's values and
battery alerts are those worked out from all frames at once
(``soh_segments`` over ``valuation_inputs(db).ev``, as the stage did)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import autolien.store as store_mod
from autolien.pipeline import run_portfolio
from autolien.sim.portfolio import write_portfolio
from autolien.store import ev_frame_blocks, valuation_inputs
from autolien.telemetry import Store
from autolien.valuation.adjust import EV_COLUMNS, soh_segments
from autolien.valuation.stage import NOMINAL_KWH, valuation_stage


@pytest.fixture(scope="module")
def pf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evb") / "pf"
    # seven EVs, two of them with a failing pack
    write_portfolio(root, 60, 10, seed=2, anomaly_day=4, anomaly_share=0.8)
    run_portfolio(root)
    return root


def _whole(db: Path) -> pa.Table:
    ev = valuation_inputs(db).ev
    assert ev is not None
    return ev


@pytest.mark.parametrize("rows", [1, 7, 500, 10**7])
def test_blocks_hold_every_frame_once_in_order_and_never_split_a_vin(pf: Path, rows: int) -> None:
    db = pf / "autolien.duckdb"
    whole = _whole(db)
    blocks = list(ev_frame_blocks(db, rows=rows))
    assert pa.concat_tables(blocks).equals(whole)
    seen: set[str] = set()
    for b in blocks:
        vins = set(b.column("vin").to_pylist())
        assert not vins & seen  # a VIN lies in one block
        seen |= vins
    n_vins = len(set(whole.column("vin").to_pylist()))
    assert n_vins > 3
    if rows == 1:
        assert len(blocks) == n_vins  # one VIN a block
    assert len(blocks) <= n_vins
    # only the columns the segments read (those the table has), in the same blocks
    some = list(ev_frame_blocks(db, rows=rows, columns=EV_COLUMNS))
    names = [c for c in EV_COLUMNS if c in whole.column_names]
    assert len(names) == len(EV_COLUMNS)
    assert [b.num_rows for b in some] == [b.num_rows for b in blocks]
    assert pa.concat_tables(some).equals(whole.select(names))
    first = next(iter(ev_frame_blocks(db, rows=rows, columns=["soc_pct", "no_such"])))
    assert first.column_names == ["vin", "soc_pct"]


def test_segments_and_the_stage_equal_those_of_all_frames(
    pf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = pf / "autolien.duckdb"
    want = soh_segments(_whole(db), nominal_kwh=NOMINAL_KWH)
    assert want.num_rows > 0
    assert want.column("soh").null_count < want.num_rows
    got = pa.concat_tables(
        [soh_segments(b, nominal_kwh=NOMINAL_KWH) for b in ev_frame_blocks(db, rows=50)]
    )
    assert got.equals(want)
    narrow = ev_frame_blocks(db, rows=50, columns=EV_COLUMNS)
    assert pa.concat_tables([soh_segments(b, nominal_kwh=NOMINAL_KWH) for b in narrow]).equals(want)
    # the stage, blocks of about 50 rows, against the stage given the
    # segments of all frames (what it worked out itself before)
    with Store(db) as s:
        at: dt.datetime = s.query("SELECT max(time) AS t FROM valuations").column(0)[0].as_py()
    out: dict[str, Any] = {}
    for name in ("blocks", "whole"):
        copy = tmp_path / name
        shutil.copytree(pf, copy, symlinks=True)
        copy_db = copy / "autolien.duckdb"
        if name == "blocks":
            monkeypatch.setattr(store_mod, "EV_BLOCK_ROWS", 50)
            summary = valuation_stage(copy_db, at)
        else:
            summary = valuation_stage(copy_db, at, segments=want)
        con = duckdb.connect(str(copy_db), read_only=True)
        out[name] = (
            summary["battery_alerts"],
            con.sql("SELECT * FROM valuations ORDER BY ALL").fetchall(),
            con.sql(
                "SELECT * FROM alerts WHERE kind = 'battery_degradation' ORDER BY ALL"
            ).fetchall(),
            con.sql("SELECT * FROM ltv ORDER BY ALL").fetchall(),
        )
        con.close()
    assert out["blocks"] == out["whole"]
    assert out["whole"][2]  # battery alerts to compare


def test_a_vin_left_null_comes_last_in_its_own_block(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    con = duckdb.connect(str(db))
    con.execute(
        "CREATE TABLE ev AS SELECT * FROM (VALUES "
        "('B', TIMESTAMPTZ '2026-01-01 00:00:02+00', 'f', 2, 1.0), "
        "(NULL, TIMESTAMPTZ '2026-01-01 00:00:01+00', 'f', 5, 2.0), "
        "('A', TIMESTAMPTZ '2026-01-01 00:00:03+00', 'f', 1, 3.0), "
        "('B', TIMESTAMPTZ '2026-01-01 00:00:01+00', 'f', 3, 4.0), "
        "(NULL, TIMESTAMPTZ '2026-01-01 00:00:00+00', 'f', 4, 5.0)"
        ') t(vin, time, source_file, "offset", soc)'
    ).fetchall()
    con.close()
    blocks = list(ev_frame_blocks(db, rows=1))
    assert [b.column("vin").to_pylist() for b in blocks] == [["A"], ["B", "B"], [None, None]]
    assert [b.column("soc").to_pylist() for b in blocks] == [[3.0], [4.0, 1.0], [5.0, 2.0]]
    # batches that end inside a VIN, or inside the nulls: the same whole VINs
    for rows in (2, 3, 4):
        got = [b.column("vin").to_pylist() for b in ev_frame_blocks(db, rows=rows)]
        assert [v for g in got for v in g] == ["A", "B", "B", None, None]
        # no VIN (nor the nulls) in two blocks
        sets = [set(map(str, g)) for g in got]
        assert all(not (sets[i] & sets[j]) for i in range(len(sets)) for j in range(i))
    with pytest.raises(ValueError, match="at least 1"):
        list(ev_frame_blocks(db, rows=0))
    assert list(ev_frame_blocks(tmp_path / "none.duckdb")) == []
