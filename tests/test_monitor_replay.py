"""The monitor on a real car drive (tests/data/gnss/rtklib_py, Boulder CO),
replayed twice a day, untouched and with anomalies injected by
autolien.monitor.replay (which knows nothing of autolien.sim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import pytest

from autolien.monitor import score
from autolien.monitor.quality import detection_quality
from autolien.monitor.replay import (
    Replay,
    daily_replay,
    inject_odometer_jump,
    inject_relocation,
    inject_rental,
    inject_rollback,
    inject_silence,
    inject_tow,
    odometer_from_track,
    read_rtklib_pos,
)

DATA = Path(__file__).parent / "data" / "gnss" / "rtklib_py"
START = 1_790_380_800.0  # 2026-09-26T00:00Z
SPHERE = pyproj.Geod(a=6_371_008.8, b=6_371_008.8)
TS = pa.timestamp("us", tz="UTC")


def _secs(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.int64()).to_numpy() / 1e6


@pytest.fixture(scope="module")
def drives() -> dict[str, pa.Table]:
    out = {}
    for name, f in (("demo5", "demo5_b34f_f.pos"), ("rtklibpy", "py_0315f.pos")):
        t, lat, lon = read_rtklib_pos(DATA / f)
        out[name] = daily_replay(name, t, lat, lon, days=24, start_day=START, offsets_h=(0.0, 10.0))
    return out


def test_the_log_is_read_and_replayed_at_its_time_of_day() -> None:
    t, lat, lon = read_rtklib_pos(DATA / "demo5_b34f_f.pos")
    # first epoch of the file: 2020/12/24 21:28:42.000, 40.097025378 -105.147247371
    assert t[0] == pytest.approx(1608845322.0)
    assert (lat[0], lon[0]) == (40.097025378, -105.147247371)
    assert t.size == 4521
    tr = daily_replay("x", t, lat, lon, days=2, start_day=START)
    tt = _secs(tr.column("time"))
    assert tt[0] == START + 21 * 3600 + 28 * 60 + 42
    assert tr.num_rows == 2 * 151  # 75 min 20 s thinned to 30 s steps
    assert tt[151] - tt[0] == 86400


def test_the_odometer_is_the_track_length_with_standstills_left_out() -> None:
    # three steps: 1 km east in 60 s (moving), 1 m of GPS wander in 60 s
    # (0.06 km/h: a standstill), then 2 km north across a 2 h gap
    lat0, lon0 = 31.2, 121.4
    lon1 = SPHERE.fwd(lon0, lat0, 90, 1000.0)[0]
    lon2 = SPHERE.fwd(lon1, lat0, 90, 1.0)[0]
    lat3 = SPHERE.fwd(lon2, lat0, 0, 2000.0)[1]
    t = np.array([0.0, 60.0, 120.0, 7320.0]) + START
    tr = pa.table(
        {
            "vehicle_id": ["v"] * 4,
            "time": pa.array((t * 1e6).astype(np.int64)).cast(TS),
            "lat": [lat0, lat0, lat0, lat3],
            "lon": [lon0, lon1, lon2, lon2],
        }
    )
    odo = odometer_from_track(tr, start_km=100.0)
    # 100, 101.0, 101.0 (wander), 103.0 (cut down to 0.1 km)
    assert odo.column("odometer_km").to_pylist() == pytest.approx([100.0, 101.0, 101.0, 103.0])


def test_real_drives_raise_nothing_above_warning(drives: dict[str, pa.Table]) -> None:
    tracks = pa.concat_tables(list(drives.values()))
    alerts = score(tracks, odometer_from_track(tracks))
    assert set(alerts.column("level").to_pylist()) <= {"warning"}
    # the only warnings are the first off-duty gaps, before three are learnt
    assert set(alerts.column("kind").to_pylist()) == {"device_silence"}
    opened = _secs(alerts.column("opened"))
    assert opened.max() < START + 3 * 86400
    assert alerts.num_rows == 8


def test_injectors_do_what_they_document(drives: dict[str, pa.Table]) -> None:
    tr = drives["demo5"]
    r = Replay(tr, odometer_from_track(tr), [])
    t = _secs(tr.column("time"))
    at = float(t[t > START + 5 * 86400][0] + 1800)
    odo_t = _secs(r.odometer.column("time"))
    km = r.odometer.column("odometer_km").to_numpy()
    j = inject_odometer_jump(r, "demo5", at, 500.0)
    jk = j.odometer.sort_by("time").column("odometer_km").to_numpy()
    assert np.allclose(jk - km, np.where(odo_t >= at, 500.0, 0.0))
    s = inject_silence(r, "demo5", at, 96.0)
    st = _secs(s.tracks.column("time"))
    assert not ((st >= at) & (st < at + 96 * 3600)).any()
    assert s.tracks.num_rows == tr.num_rows - ((t >= at) & (t < at + 96 * 3600)).sum()
    rel = inject_relocation(r, "demo5", at)
    moved = rel.tracks.sort_by("time")
    i = int(np.searchsorted(t, at))
    d = SPHERE.inv(
        tr.column("lon")[i].as_py(),
        tr.column("lat")[i].as_py(),
        moved.column("lon")[i].as_py(),
        moved.column("lat")[i].as_py(),
    )[2]
    assert d == pytest.approx(np.hypot(250e3, 200e3), rel=0.01)
    tow = inject_tow(r, "demo5", at, km=8.0)
    off = tow.tracks.filter(pc.equal(tow.tracks.column("ignition"), False))
    assert off.num_rows == int(8 / 30 * 3600 / 30) + 1
    assert tow.truth[0]["kind"] == "towing"


def test_injected_anomalies_are_found_on_real_drives(drives: dict[str, pa.Table]) -> None:
    tracks, odos, truth = [], [], []
    donor = drives["rtklibpy"]
    for name, tr in drives.items():
        t = _secs(tr.column("time"))
        at = float(t[t > START + 20 * 86400][0] + 1800)  # 30 min into day 20's first drive
        for kind, fn in (
            ("odometer_jump", inject_odometer_jump),
            ("rollback", inject_rollback),
            ("relocation", inject_relocation),
            ("silence", inject_silence),
            ("tow", inject_tow),
        ):
            vid = f"{name}/{kind}"
            v = tr.set_column(0, "vehicle_id", pa.array([vid] * tr.num_rows))
            r = fn(Replay(v, odometer_from_track(v), []), vid, at)
            tracks.append(r.tracks)
            odos.append(r.odometer)
            truth += r.truth
    rep = Replay(pa.concat_tables(tracks), pa.concat_tables(odos), truth)
    alerts = score(rep.tracks, rep.odometer)
    q = detection_quality(alerts, rep.truth_table(), eval_start=START + 20 * 86400)
    for name, v in q["anomalies"].items():
        assert (v["n"], v["recall"], v["level_reached"]) == (2, 1.0, 1.0), name
    # delays (docs/monitor.md): the silence waits for the learnt habit
    # (1.25 x the 12.7 h overnight gap), the relocation for 12 away hours
    assert q["anomalies"]["silence"]["max_delay_h"] == pytest.approx(15.93, abs=0.01)
    assert q["anomalies"]["relocation"]["max_delay_h"] < 12.0
    for kind in ("odometer_mismatch", "odometer_rollback", "relocation", "towing"):
        assert q["alert_kinds"][kind]["false"] == 0, kind
    assert inject_rental(rep, "demo5/tow", START + 22 * 86400, donor).truth[-1]["kind"] == (
        "entropy_increase"
    )
