"""The replay harness's readers and day plan on the real tracks in
tests/data/tracks (tests/data/SOURCES.md): the values read are the files'
own, checked by hand; the day plan (return trip, parked heartbeat) is
counted by hand; and the monitor on the untouched Denver traces and on
the short real drives with an odometer that leaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import pytest

from autolien.monitor import score
from autolien.monitor.replay import (
    Replay,
    daily_replay,
    inject_odometer_jump,
    inject_rental,
    odometer_from_track,
    read_latlon_csv,
    read_rtklib_pos,
)

DATA = Path(__file__).parent / "data" / "tracks"
START = 1_790_380_800.0  # 2026-09-26T00:00Z


def _secs(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.int64()).to_numpy() / 1e6


def test_the_denver_traces_are_read_as_given() -> None:
    t, lat, lon = read_latlon_csv(DATA / "mappymatch_denver_trace_1.csv", every_s=1.0)
    # first and last rows of the file, and 1053 data rows
    assert (lat[0], lon[0], lat[-1], lon[-1]) == (39.655193, -104.919294, 39.742733, -104.951658)
    assert t.size == 1053
    assert (t[0], t[-1]) == (0.0, 1052.0)
    with pytest.raises(ValueError, match="every_s"):
        read_latlon_csv(DATA / "mappymatch_denver_trace_1.csv")


def test_a_csv_with_times_and_bad_rows(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(
        "time,lat,lng\n"
        "2026-09-26T14:00:00Z,39.7,-104.9\n"
        "1790431205,39.8,-104.8\n"  # Unix seconds: 14:00:05Z
        ",,\n"  # empty: dropped
        "1790431210,95.0,-104.8\n"  # latitude out of range: dropped
        "2026-09-26T14:00:15,39.9,-104.7\n"  # naive: taken as UTC
    )
    t, lat, lon = read_latlon_csv(f)
    assert t.tolist() == [1790431200.0, 1790431205.0, 1790431215.0]
    assert lat.tolist() == [39.7, 39.8, 39.9]
    assert lon.tolist() == [-104.9, -104.8, -104.7]
    f.write_text("time,lat,lon\nnoon,39.7,-104.9\n")
    with pytest.raises(ValueError, match="row 2"):
        read_latlon_csv(f)
    f.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="latitude"):
        read_latlon_csv(f)


def test_the_x20_loop_is_read_from_its_pos_file() -> None:
    t, lat, lon = read_rtklib_pos(DATA / "drive_0708_gnss_1934_sf_1hz.pos")
    # 2025/07/08 19:34:18.499 GPST (taken as UTC), 40.0966268 -105.1474483
    assert t[0] == pytest.approx(1752003258.499)
    assert (lat[0], lon[0]) == (40.0966268, -105.1474483)
    assert t.size == 550
    assert np.all(np.diff(t) == pytest.approx(1.0))


def test_a_return_trip_and_an_hourly_heartbeat() -> None:
    # 4 fixes 30 s apart going north; out at 07:00, back at 17:00, 2 days
    t = np.array([0.0, 30.0, 60.0, 90.0])
    lat = np.array([39.0, 39.001, 39.002, 39.004])
    lon = np.full(4, -105.0)
    tr = daily_replay(
        "v",
        t,
        lat,
        lon,
        days=2,
        start_day=START,
        offsets_h=(0.0, 10.0),
        start_s=7 * 3600.0,
        return_trip=True,
        heartbeat_s=3600.0,
    )
    ign = tr.column("ignition").to_pylist()
    drive = tr.filter(pa.array(ign))
    tt = _secs(drive.column("time")) - START
    assert tt.tolist() == [
        *(7 * 3600 + t),
        *(17 * 3600 + np.array([0.0, 30.0, 60.0, 90.0])),  # back: 30 s steps reversed
        *(86400 + 7 * 3600 + t),
        *(86400 + 17 * 3600 + t),
    ]
    assert drive.column("lat").to_pylist()[4:8] == [39.004, 39.002, 39.001, 39.0]
    # parked: hourly from 1 h after each trip's end until the next trip:
    # 08:01:30 ... 16:01:30 (9 beats), 18:01:30 ... 06:01:30 next day (13),
    # 08:01:30 ... 16:01:30 (9), and after the last trip to the end of the
    # day after, 18:01:30 ... 23:01:30 of the third day (6 + 24)
    parked = tr.filter(pc.invert(pa.array(ign)))
    assert parked.num_rows == 9 + 13 + 9 + 30
    pt = _secs(parked.column("time")) - START
    assert (pt[0], pt[8], pt[9], pt[21]) == (
        8 * 3600 + 90,
        16 * 3600 + 90,
        18 * 3600 + 90,
        86400 + 6 * 3600 + 90,
    )
    assert set(parked.column("lat").to_pylist()[:9]) == {39.004}  # where the trip ended
    assert set(parked.column("lat").to_pylist()[9:22]) == {39.0}  # home again
    assert np.all(np.diff(_secs(tr.column("time"))) > 0)


@pytest.mark.parametrize("heartbeat_s", [None, 3600.0])
def test_the_untouched_denver_traces_raise_nothing_above_warning(
    heartbeat_s: float | None,
) -> None:
    # three real Denver trips, out and back each day for 21 days
    parts = []
    for i in (1, 2, 3):
        t, lat, lon = read_latlon_csv(DATA / f"mappymatch_denver_trace_{i}.csv", every_s=1.0)
        parts.append(
            daily_replay(
                f"denver{i}",
                t,
                lat,
                lon,
                days=21,
                start_day=START,
                offsets_h=(0.0, 10.0),
                start_s=14 * 3600.0,
                return_trip=True,
                heartbeat_s=heartbeat_s,
            )
        )
    tracks = pa.concat_tables(parts)
    alerts = score(tracks, odometer_from_track(tracks))
    levels = alerts.column("level").to_pylist() if alerts.num_rows else []
    assert set(levels) <= {"warning"}, alerts.to_pylist()
    if heartbeat_s is not None:
        # a terminal that reports while parked: nothing at all in 63 vehicle-days
        assert alerts.num_rows == 0, alerts.to_pylist()
    else:
        # sleeping while parked: only silence warnings, before the overnight
        # gaps are learnt (the first 8 days)
        assert set(alerts.column("kind").to_pylist()) <= {"device_silence"}
        first = _secs(alerts.column("opened")) - START
        assert np.all(first < 8 * 86400)


def test_a_rental_odometer_counts_the_way_to_the_donor() -> None:
    # own vehicle parked at (40.0, -105.0) until 1 h; the donor's rows start
    # at (39.7, -104.9) and drive 0.01 deg north: the odometer runs on from
    # the last reading by the straight way there, then the donor's distance
    geod = pyproj.Geod(a=6_371_008.8, b=6_371_008.8)
    own = daily_replay(
        "v",
        np.array([0.0, 30.0]),
        np.array([40.0, 40.0]),
        np.array([-105.0, -105.0]),
        days=1,
        start_day=START,
        start_s=0.0,
    )
    donor = daily_replay(
        "d",
        np.array([0.0, 60.0]),
        np.array([39.7, 39.71]),
        np.array([-104.9, -104.9]),
        days=1,
        start_day=START,
        start_s=7200.0,
    )
    r = inject_rental(
        Replay(own, odometer_from_track(own, start_km=500.0), []), "v", START + 3600, donor
    )
    km = r.odometer.sort_by("time").column("odometer_km").to_pylist()
    hop = geod.inv(-105.0, 40.0, -104.9, 39.7)[2] / 1000
    leg = geod.inv(-104.9, 39.7, -104.9, 39.71)[2] / 1000
    assert km[:2] == [500.0, 500.0]
    assert km[2] == np.floor((500.0 + hop) * 10 + 1e-6) / 10
    assert km[3] == np.floor((500.0 + hop + leg) * 10 + 1e-6) / 10
    assert r.truth[0]["kind"] == "entropy_increase"


@pytest.mark.parametrize("heartbeat_s", [None, 3600.0])
def test_an_odometer_leap_on_the_short_real_drives_is_a_mismatch(
    heartbeat_s: float | None,
) -> None:
    # the x20 loop (3.3 km, twice a day) and Denver trace 2 (5.8 km, out and
    # back) run less than freeze_track_km a day on the track: the odometer
    # that leaps 500 km is what has run that far, and it is compared
    t, lat, lon = read_rtklib_pos(DATA / "drive_0708_gnss_1934_sf_1hz.pos")
    x20 = daily_replay(
        "x20", t, lat, lon, days=12, start_day=START, offsets_h=(0.0, 10.0), heartbeat_s=heartbeat_s
    )
    t, lat, lon = read_latlon_csv(DATA / "mappymatch_denver_trace_2.csv", every_s=1.0)
    den = daily_replay(
        "denver2",
        t,
        lat,
        lon,
        days=12,
        start_day=START,
        offsets_h=(0.0, 10.0),
        start_s=14 * 3600.0,
        return_trip=True,
        heartbeat_s=heartbeat_s,
    )
    tracks = pa.concat_tables([x20, den])
    r = Replay(tracks, odometer_from_track(tracks), [])
    for vid, tr in (("x20", x20), ("denver2", den)):
        tt = _secs(tr.column("time"))
        r = inject_odometer_jump(r, vid, float(tt[tt > START + 9 * 86400][0] + 60.0))
    alerts = score(r.tracks, r.odometer).to_pylist()
    found = {a["vehicle_id"]: a for a in alerts if a["kind"] == "odometer_mismatch"}
    assert set(found) == {"x20", "denver2"}
    for vid, a in found.items():
        at = next(x["start"] for x in r.truth if x["vehicle_id"] == vid)
        # at the end of the hour of the first reading after it (a parked
        # heartbeat comes an hour later)
        assert 0 <= a["opened"].timestamp() - at < 2 * 3600
        assert a["level"] in ("warning", "alert")
    # nothing before the leap: the untouched days raise no mismatch
    assert all(
        a["opened"].timestamp() >= START + 9 * 86400
        for a in alerts
        if a["kind"] != "device_silence"
    )
