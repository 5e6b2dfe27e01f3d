"""The valuation's odometer input: each book vehicle's latest reading over
its terminal's JT/T 808 mileage and its VIN's GB/T 32960 odometer, mapped
through the loan book (``store.valuation_inputs``). Checked against a
brute-force search over every reading: the latest time wins, and readings
tied at that time (two in one second, or one per source) give the largest,
whatever order the store scans them in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import numpy as np

from autolien.store import valuation_inputs


def test_latest_odometer_per_book_vehicle_equals_a_brute_force_search(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    book = [(f"V{i}", f"T{i}", f"VIN{i}") for i in range(40)]
    loc: list[tuple[str, dt.datetime, float | None]] = []
    ev: list[tuple[str, dt.datetime, float | None]] = []
    for i, (_, tid, vin) in enumerate(book):
        kind = i % 5  # terminal only, VIN only, both, both tied at the end, none
        if kind in (0, 2, 3):
            secs = np.sort(rng.integers(0, 5 * 86400, 30))
            loc += [
                (tid, t0 + dt.timedelta(seconds=int(s)), float(rng.uniform(0, 9e4))) for s in secs
            ]
            loc.append((tid, t0 + dt.timedelta(days=6), None))  # no mileage: not a reading
        if kind in (1, 2, 3):
            secs = np.sort(rng.integers(0, 5 * 86400, 30))
            ev += [
                (vin, t0 + dt.timedelta(seconds=int(s)), float(rng.uniform(0, 9e4))) for s in secs
            ]
        if kind == 3:
            # the same second from both sources, and twice from the terminal
            last = t0 + dt.timedelta(days=5, hours=1)
            loc += [(tid, last, 50_000.25), (tid, last, 50_000.5)]
            ev.append((vin, last, 50_000.375))
        if i % 7 == 0:
            # an older, larger reading: time decides, not size
            loc.append((tid, t0 - dt.timedelta(days=30), 1e6))
    # a terminal and a VIN the book lacks: not valued
    loc.append(("T-stray", t0 + dt.timedelta(days=9), 5.0))
    ev.append(("VIN-stray", t0 + dt.timedelta(days=9), 5.0))
    rng.shuffle(loc)
    rng.shuffle(ev)
    db = tmp_path / "s.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE loan_book (vehicle_id VARCHAR, terminal_id VARCHAR, vin VARCHAR)")
    con.executemany("INSERT INTO loan_book VALUES (?, ?, ?)", [list(b) for b in book])
    con.execute("CREATE TABLE locations (terminal_id VARCHAR, time TIMESTAMPTZ, mileage_km DOUBLE)")
    con.executemany("INSERT INTO locations VALUES (?, ?, ?)", [list(r) for r in loc])
    con.execute("CREATE TABLE ev (vin VARCHAR, time TIMESTAMPTZ, odometer_km DOUBLE)")
    con.executemany("INSERT INTO ev VALUES (?, ?, ?)", [list(r) for r in ev])
    con.close()

    got = valuation_inputs(db, ev=False).km
    got_km = dict(
        zip(got.column("vehicle_id").to_pylist(), got.column("km").to_pylist(), strict=True)
    )
    want: dict[str, float] = {}
    for vid, tid, vin in book:
        readings = [(t, km) for k, t, km in loc if k == tid and km is not None]
        readings += [(t, km) for k, t, km in ev if k == vin and km is not None]
        if readings:
            want[vid] = max(readings)[1]  # the latest, then the largest
    assert got_km == want
    tied = [vid for i, (vid, _, _) in enumerate(book) if i % 5 == 3]
    assert tied
    assert {got_km[v] for v in tied} == {50_000.5}
    assert len(want) < len(book)  # vehicles without a reading are left out
    # time decides: the older, larger reading of a vehicle with later ones is not taken
    assert got_km["V0"] != 1e6
