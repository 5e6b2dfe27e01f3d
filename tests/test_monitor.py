"""Monitoring: features against independent references (pyproj, scipy,
antropy), detectors on hand-built series with known answers, the simulated
fleet with injected anomalies, and streaming == batch."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import antropy
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyproj
import pytest
import scipy.stats

from autolien.monitor import ALERTS_SCHEMA, Monitor, MonitorConfig, score
from autolien.monitor.engine import Signal, Vehicle
from autolien.monitor.features import EARTH_M, cell_centers, cell_ids
from autolien.monitor.quality import detection_quality
from autolien.sim import simulate_fleet

T0 = 1_790_784_000.0  # 2026-09-30T16:00Z
SPHERE = pyproj.Geod(a=EARTH_M, b=EARTH_M)


def _table(vid: str, t: np.ndarray, **cols: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "vehicle_id": pa.array([vid] * t.size),
            "time": pa.array((t * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            **{k: pa.array(v) for k, v in cols.items()},
        }
    )


def _daily_odometer(
    vid: str, days: int, km_per_day: np.ndarray, *, step_s: float = 1800.0
) -> pa.Table:
    """Odometer readings every step_s; each day's km driven evenly between 08:00 and 20:00 local."""
    t = T0 + np.arange(0, days * 86400, step_s)
    day = ((t - T0) // 86400).astype(int)
    frac = np.clip(((t - T0) % 86400 - 8 * 3600) / (12 * 3600), 0, 1)
    base = np.r_[0, np.cumsum(km_per_day)][day]
    km = 20_000 + base + frac * km_per_day[day]
    return _table(vid, t, odometer_km=np.round(km, 1))


# -- features against outside references ------------------------------------


def test_grid_is_the_sinusoidal_equal_area_projection() -> None:
    tr = pyproj.Transformer.from_crs(
        "EPSG:4326", f"+proj=sinu +R={EARTH_M} +lon_0=0 +units=m", always_xy=True
    )
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(18, 53, 50_000), rng.uniform(73, 135, 50_000)
    x, y = tr.transform(lon, lat)
    for cell in (250.0, 1000.0):
        want = (np.floor(y / cell).astype(np.int64) << 32) + (
            np.floor(x / cell).astype(np.int64) + (1 << 31)
        )
        np.testing.assert_array_equal(cell_ids(lat, lon, cell), want)
        clat, clon = cell_centers(want, cell)
        cx, cy = tr.transform(clon, clat)
        np.testing.assert_allclose(cx, (np.floor(x / cell) + 0.5) * cell, atol=1e-6)
        np.testing.assert_allclose(cy, (np.floor(y / cell) + 0.5) * cell, atol=1e-6)


def _wander(seed: int, hours: int = 30, dt_s: float = 20.0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 / dt_s)
    t = T0 + np.arange(n) * dt_s
    heading = np.cumsum(rng.normal(0, 25, n))
    speed = np.clip(rng.normal(45, 20, n), 0, 140)
    speed[rng.uniform(size=n) < 0.2] = 0.0  # standstills
    lon, lat = np.empty(n), np.empty(n)
    lon[0], lat[0] = 121.4, 31.2
    for i in range(1, n):
        lon[i], lat[i], _ = SPHERE.fwd(lon[i - 1], lat[i - 1], heading[i], speed[i] / 3.6 * dt_s)
    return t, lat, lon, speed


def test_hourly_features_match_independent_computation() -> None:
    t, lat, lon, speed = _wander(1)
    m = Monitor()
    m.update(_table("w", t, lat=lat, lon=lon, speed_kmh=speed))
    feats = m.features()
    row = feats.filter(
        pc.equal(
            feats.column("hour"),
            pa.scalar(int((T0 + 26 * 3600) * 1e6), pa.timestamp("us", tz="UTC")),
        )
    ).to_pylist()[0]
    end = T0 + 27 * 3600
    w = (t >= end - 24 * 3600) & (t < end)
    i = np.flatnonzero(w)
    # distance: pyproj's sphere inverse over the steps ending in the window
    _, _, d = SPHERE.inv(lon[i - 1], lat[i - 1], lon[i], lat[i])
    assert row["km_track_24h"] == pytest.approx(d.sum() / 1000, rel=1e-9)
    # speed entropy: moving seconds per 10 km/h bin, scipy
    mv = i[speed[i] >= 3.0]
    secs = np.rint(np.minimum(t[mv] - t[mv - 1], 120.0))
    hist = np.bincount(np.clip(speed[mv] // 10, 0, 13).astype(int), weights=secs, minlength=14)
    assert row["speed_entropy"] == pytest.approx(scipy.stats.entropy(hist, base=2), rel=1e-9)
    # turning angles from pyproj azimuths between consecutive moving steps
    moving = speed >= 3.0
    az = np.full(t.size, np.nan)
    j = np.flatnonzero(moving[1:]) + 1
    fwd, _, dist = SPHERE.inv(lon[j - 1], lat[j - 1], lon[j], lat[j])
    az[j[dist >= 5.0]] = fwd[dist >= 5.0]
    turn = (az[1:] - az[:-1] + 180.0) % 360.0 - 180.0
    turn = np.r_[np.nan, np.where(turn == -180.0, 180.0, turn)]
    tw = turn[i][~np.isnan(turn[i])]
    counts = np.bincount(np.clip(np.floor((tw + 180) / 30), 0, 11).astype(int), minlength=12)
    assert row["turn_entropy"] == pytest.approx(scipy.stats.entropy(counts, base=2), rel=1e-6)
    # heading entropy: antropy on the turn series of the 24 h before the hour's last fix
    last = i[-1]
    win = turn[(t > t[last] - 24 * 3600) & (t <= t[last])]
    pats = np.lib.stride_tricks.sliding_window_view(win, 3)
    keep = ~np.isnan(pats).any(axis=1)
    codes = np.argsort(pats[keep], axis=1, kind="stable") @ np.array([1, 3, 9])
    p = np.unique(codes, return_counts=True)[1] / keep.sum()
    assert row["heading_entropy"] == pytest.approx(-(p * np.log2(p)).sum() / np.log2(6), rel=1e-9)
    series = win[~np.isnan(win)][:50]
    assert (
        antropy.perm_entropy(series, 3, normalize=True) > 0
    )  # the peer accepts the series we feed it
    # location entropy: dwell seconds per sinusoidal cell, scipy
    tr = pyproj.Transformer.from_crs(
        "EPSG:4326", f"+proj=sinu +R={EARTH_M} +units=m", always_xy=True
    )
    x, y = tr.transform(lon[i], lat[i])
    cells = np.floor(y / 1000) * 1e7 + np.floor(x / 1000)
    dwell = np.rint(np.minimum(t[i] - t[i - 1], 600.0))
    _, inv = np.unique(cells, return_inverse=True)
    assert row["location_entropy"] == pytest.approx(
        scipy.stats.entropy(np.bincount(inv, weights=dwell), base=2), rel=1e-9
    )


def test_behaviour_coefficient_and_night_share_from_a_dense_log() -> None:
    # 1 Hz: 10 s at 130 km/h, a hard brake (-5 m/s^2), a hard launch (+4 m/s^2)
    speed = np.r_[
        np.full(600, 60.0),
        np.full(10, 130.0),
        130 - 18 * np.arange(1, 7),
        np.full(100, 22.0),
        22 + 14.4 * np.arange(1, 5),
        np.full(200, 79.6),
    ]
    n = speed.size
    t = T0 + 22 * 3600 + np.arange(n, dtype=float)  # 22:00 local: night driving
    dist = np.r_[0, np.cumsum(speed[1:] / 3.6)]
    lon = 121.4 + dist / (111_195 * math.cos(math.radians(31.2)))
    lat = np.full(n, 31.2)
    m = Monitor()
    m.update(_table("d", t, lat=lat, lon=lon, speed_kmh=speed), now=T0 + 25 * 3600)
    row = [r for r in m.features().to_pylist() if r["n_fixes"]][-1]
    km = float(np.sum(111.195 * np.abs(np.diff(lon)) * math.cos(math.radians(31.2)))) / 1000 * 1000
    accel = np.diff(speed) / 3.6
    n_launch, n_brake = int((accel >= 3.0).sum()), int((accel <= -3.5).sum())
    assert (n_launch, n_brake) == (5, 6)  # the step up to 130 km/h is a launch too
    speeding = (speed[1:] > 120).sum() / (speed[1:] >= 3).sum()
    per100 = 100 / row["km_track_24h"]
    want = math.exp(-(n_launch * per100 / 10 + n_brake * per100 / 5 + 2 * speeding))
    assert row["km_track_24h"] == pytest.approx(km, rel=2e-3)
    assert row["behaviour"] == pytest.approx(want, rel=1e-3)
    assert row["night_share"] == 1.0


# -- detectors on series with known answers ----------------------------------


def test_mileage_jump_is_an_alert_on_its_second_day() -> None:
    km = np.r_[np.full(20, 50.0), np.full(10, 50.0 + 2000 / 30)]  # +2,000 km/month from day 20
    start = T0 + 20 * 86400 + 8 * 3600  # the first extra km
    # by default the excess must hold on a second day, and then it opens as an alert
    alerts = score(None, _daily_odometer("m", 30, km)).to_pylist()
    jumps = [a for a in alerts if a["kind"] == "mileage_jump"]
    assert len(jumps) == 1
    opened = jumps[0]["opened"].timestamp()
    assert 24 * 3600 < opened - start < 48 * 3600
    assert jumps[0]["level"] == "alert"
    assert json.loads(jumps[0]["evidence"])["excess_km_month"] >= 1500
    assert {a["kind"] for a in alerts} == {"mileage_jump"}
    # unconfirmed (mileage_confirm_h=0): a warning within the first day,
    # raised to an alert by 24 h of persistence: the alert no sooner
    alerts = score(None, _daily_odometer("m", 30, km), config=MonitorConfig(mileage_confirm_h=0))
    (w,) = [a for a in alerts.to_pylist() if a["kind"] == "mileage_jump"]
    assert 0 < w["opened"].timestamp() - start < 24 * 3600
    assert w["level"] == "alert"
    assert json.loads(w["evidence"])["signal_time"] == opened  # escalated as the other opened


def test_steady_mileage_raises_nothing() -> None:
    rng = np.random.default_rng(3)
    assert score(None, _daily_odometer("s", 30, rng.normal(50, 8, 30).clip(10))).num_rows == 0


def test_rollback_is_an_emergency_and_closes_after_a_quiet_day() -> None:
    odo = _daily_odometer("r", 25, np.full(25, 40.0))
    km = odo.column("odometer_km").to_numpy().copy()
    cut = km.size // 2
    km[cut:] -= 5000.0
    odo = odo.set_column(2, "odometer_km", pa.array(km))
    (a,) = score(None, odo).to_pylist()
    assert (a["kind"], a["level"]) == ("odometer_rollback", "emergency")
    assert a["score"] == pytest.approx(5000.0 - 40.0 * 1800 / (12 * 3600), abs=2)
    assert a["closed"] is not None
    assert a["closed"].timestamp() - a["last_signal"].timestamp() <= 25 * 3600


def test_frozen_and_disagreeing_odometers() -> None:
    hours = 40
    t = T0 + np.arange(0, hours * 3600, 60.0)
    lon = 121.4 + np.cumsum(
        np.full(t.size, 800 / (111_195 * math.cos(math.radians(31.2))))
    )  # 48 km/h
    track = _table("f", t, lat=np.full(t.size, 31.2), lon=lon, speed_kmh=np.full(t.size, 48.0))
    frozen = _table("f", t, odometer_km=np.full(t.size, 12_345.0))
    kinds = {(a["kind"], a["level"]) for a in score(track, frozen).to_pylist()}
    assert ("odometer_freeze", "alert") in kinds or ("odometer_freeze", "emergency") in kinds
    half = _table("f", t, odometer_km=12_345.0 + np.arange(t.size) * 0.4)  # half the track distance
    kinds = {a["kind"] for a in score(track, half).to_pylist()}
    assert "odometer_mismatch" in kinds
    assert "odometer_freeze" not in kinds


def test_an_odometer_leap_on_a_vehicle_that_drives_little_is_a_mismatch() -> None:
    # 3 km out at 18 km/h at 09:00 local and back at 17:00: 6 km a day on the
    # track, less than freeze_track_km; fixes every 60 s, the odometer with them
    days = 6
    t = T0 + np.arange(0, days * 86400, 60.0)
    sec = (t - T0) % 86400
    out = np.clip((sec - 9 * 3600) / 600, 0, 1) - np.clip((sec - 17 * 3600) / 600, 0, 1)
    east_km = 3.0 * out
    lon = 121.4 + east_km * 1000 / (111_195 * math.cos(math.radians(31.2)))
    speed = np.where(np.diff(east_km, prepend=0.0) != 0, 18.0, 0.0)
    track = _table("d", t, lat=np.full(t.size, 31.2), lon=lon, speed_kmh=speed)
    km = 20_000 + 6.0 * ((t - T0) // 86400) + np.where(sec >= 17 * 3600, 3.0, 0) + east_km
    km = np.where(sec >= 17 * 3600, 20_000 + 6.0 * ((t - T0) // 86400) + 6.0 - east_km, km)
    odo = _table("d", t, odometer_km=np.round(km, 1))
    assert score(track, odo).num_rows == 0  # the untouched vehicle
    leap = np.where(t >= T0 + 4 * 86400 + 9.1 * 3600, km + 500.0, km)  # +500 km mid-trip
    alerts = score(track, _table("d", t, odometer_km=np.round(leap, 1))).to_pylist()
    (a,) = [a for a in alerts if a["kind"] == "odometer_mismatch"]
    assert a["opened"].timestamp() == T0 + 4 * 86400 + 10 * 3600  # at the end of its hour
    ev = json.loads(a["evidence"])
    assert ev["km_track_24h"] < 20
    assert ev["km_odo_24h"] > 500
    # an odometer-only feed has no track to compare with: no mismatch
    assert "odometer_mismatch" not in {
        a["kind"] for a in score(None, _table("d", t, odometer_km=np.round(leap, 1))).to_pylist()
    }


def test_silence_grades_by_duration_and_closes_on_resume() -> None:
    t = np.r_[T0 + np.arange(0, 10 * 3600, 600.0), T0 + 40 * 3600 + np.arange(0, 3600, 600.0)]
    track = _table(
        "q", t, lat=np.full(t.size, 31.2), lon=np.full(t.size, 121.4), speed_kmh=np.zeros(t.size)
    )
    (a,) = score(track).to_pylist()
    last = T0 + 10 * 3600 - 600
    assert (a["kind"], a["level"]) == ("device_silence", "alert")  # 30 h: past 24 h, short of 72 h
    assert a["opened"].timestamp() == pytest.approx(last + 6 * 3600)
    assert a["closed"].timestamp() == pytest.approx(T0 + 40 * 3600)
    assert json.loads(a["evidence"])["last_lat"] == pytest.approx(31.2)
    (b,) = score(
        track.slice(0, 60), now=dt.datetime.fromtimestamp(last + 80 * 3600, dt.UTC)
    ).to_pylist()
    assert (b["level"], b["closed"]) == ("emergency", None)


def test_vin_change_and_position_jump() -> None:
    t = T0 + np.arange(0, 6 * 3600, 30.0)
    lat = np.full(t.size, 31.2)
    lon = np.full(t.size, 121.4)
    lon[300:] += 1.0  # ~95 km in 30 s
    track = _table("j", t, lat=lat, lon=lon, speed_kmh=np.zeros(t.size))
    vins = _table(
        "j",
        np.array([T0 + 60, T0 + 3600, T0 + 7200]),
        vin=np.array(["LSVAU2180N2183294"] * 2 + ["LFV2A21K6A4123456"]),
    )
    alerts = {a["kind"]: a for a in score(track, vins=vins).to_pylist()}
    assert alerts["vin_change"]["level"] == "emergency"
    assert json.loads(alerts["vin_change"]["evidence"])["previous_vin"] == "LSVAU2180N2183294"
    jump = alerts["position_jump"]
    assert jump["level"] == "alert"
    assert json.loads(jump["evidence"])["distance_m"] == pytest.approx(
        SPHERE.inv(121.4, 31.2, 122.4, 31.2)[2]
    )
    assert [p["lon"] for p in jump["path"]] == [121.4, 122.4]


def test_grading_escalates_suppresses_and_closes() -> None:
    cfg = MonitorConfig()
    v = Vehicle("g", cfg)
    changed: dict = {}
    sig = [
        Signal(T0 + h * 3600, "entropy_increase", 0, float(h), {"h": h}, (0.0, 1.0))
        for h in range(1, 60)
    ]
    v.apply(sig[:5], [], changed)
    (a,) = changed.values()
    assert (a.level, a.n_signals) == (0, 5)  # four duplicates suppressed
    changed.clear()
    v.apply(sig[5:30], [], changed)
    assert a.level == 1
    assert a.updated == T0 + 25 * 3600
    changed.clear()
    v.apply(sig[30:], [], changed)
    assert a.level == 1
    assert not changed
    v.apply([], [T0 + 59 * 3600 + h * 3600 for h in range(1, 30)], changed)
    assert a.closed == T0 + 83 * 3600  # 24 h after the last signal
    # a fresh signal after closing opens a new alert
    v.apply([Signal(T0 + 90 * 3600, "entropy_increase", 0, 1.0, {}, (0.0, 1.0))], [], changed)
    assert v.open["entropy_increase"] is not a


# -- the simulated fleet -----------------------------------------------------


@pytest.fixture(scope="module")
def fleets() -> list:
    kinds = ("mileage_jump", "rollback", "relocation", "rental", "silence", "tow")
    return [
        simulate_fleet(30, 30, seed=s, anomaly_day=18, anomalies=dict.fromkeys(kinds, 2))
        for s in range(3)
    ]


def test_fleet_anomalies_are_detected_at_their_level(fleets: list) -> None:
    totals: dict[str, list[float]] = {}
    prec: dict[str, list[int]] = {}
    for f in fleets:
        q = detection_quality(
            score(f.tracks, f.odometer), f.truth, eval_start="2026-10-18T16:00:00Z"
        )
        assert q["normal_emergencies"] == 0
        for name, v in q["anomalies"].items():
            x = totals.setdefault(name, [0, 0, 0, 0])
            x[0] += v["n"]
            x[1] += v["recall"] * v["n"]
            x[2] += v["level_reached"] * v["n"]
            x[3] = max(x[3], v["max_delay_h"] or math.inf)
        for kind, v in q["alert_kinds"].items():
            p = prec.setdefault(kind, [0, 0])
            p[0] += v["true"]
            p[1] += v["true"] + v["false"]  # related alerts are neither
    for name, (n, hit, level, _worst) in totals.items():
        assert hit == n, f"{name}: recall {hit}/{n}"
        assert level == n, f"{name}: expected level reached {level}/{n}"
    assert totals["mileage_jump"][3] < 48  # the jump on its second day
    assert totals["silence"][3] < 6.5
    for kind in ("odometer_rollback", "device_silence", "relocation", "towing"):
        assert prec[kind][0] == prec[kind][1], kind
    # docs/monitor.md, "Detection quality" (3 seeds x 30 vehicles): 8/8 and 6/6
    assert prec["mileage_jump"] == [8, 8]
    assert prec["entropy_increase"] == [6, 6]
    # a tow explains the odometer standing still while the track moves
    assert "odometer_mismatch" not in prec


def test_streaming_equals_batch(fleets: list) -> None:
    f = fleets[1]
    vins = pa.table(
        {
            "vehicle_id": f.tracks.column("vehicle_id").slice(0, 3000),
            "time": f.tracks.column("time").slice(0, 3000),
            "vin": ["LSVAU2180N2183294"] * 3000,
        }
    )
    batch = score(f.tracks, f.odometer, vins=vins)
    m = Monitor()
    t = f.tracks.column("time")
    lo, hi = pc.min(t).as_py(), pc.max(t).as_py()
    step = dt.timedelta(hours=5, minutes=47)
    changes = 0
    cur = lo
    while cur <= hi:
        nxt = cur + step
        ts, tn = pa.scalar(cur, t.type), pa.scalar(nxt, t.type)

        def part(tab: pa.Table, ts: pa.Scalar = ts, tn: pa.Scalar = tn) -> pa.Table:
            c = tab.column("time")
            return tab.filter(pc.and_(pc.greater_equal(c, ts), pc.less(c, tn)))

        changes += m.update(part(f.tracks), part(f.odometer), part(vins)).num_rows
        cur = nxt
    assert m.alerts().equals(batch)
    assert changes >= batch.num_rows
    assert m.rejects.num_rows == 0
    assert batch.schema.equals(ALERTS_SCHEMA)
    paths = [a["path"] for a in batch.to_pylist() if a["kind"] == "entropy_increase"]
    assert paths
    assert all(0 < len(p) <= MonitorConfig().path_points for p in paths)


# -- input handling ----------------------------------------------------------


def test_late_rows_are_rejected_with_a_reason() -> None:
    t = T0 + np.arange(0, 5 * 3600, 60.0)
    tab = _table(
        "l", t, lat=np.full(t.size, 31.2), lon=np.full(t.size, 121.4), speed_kmh=np.zeros(t.size)
    )
    m = Monitor()
    m.update(tab)
    m.update(tab.slice(0, 10))
    rej = m.rejects
    assert rej.num_rows == 10
    assert set(rej.column("reason").to_pylist()) == {"late: its hour was already scored"}
    bad = tab.set_column(2, "lat", pa.array([None] * tab.num_rows, pa.float64()))
    m2 = Monitor()
    m2.update(bad)
    assert m2.rejects.num_rows == tab.num_rows


def test_bad_input_raises_clear_errors() -> None:
    t = T0 + np.arange(10.0)
    with pytest.raises(ValueError, match="odometer_km"):
        score(None, _table("x", t, km=t))
    with pytest.raises(ValueError, match="vehicle_id"):
        score(_table("x", t, lat=t, lon=t).drop_columns(["vehicle_id"]))
    m = Monitor()
    m.update(None, _daily_odometer("x", 2, np.full(2, 10.0)))
    with pytest.raises(ValueError, match="now"):
        m.update(now=T0)
    with pytest.raises(ValueError, match="silence"):
        MonitorConfig(silence_warning_h=30)
    with pytest.raises(ValueError, match=">= 0"):
        MonitorConfig(cooldown_h=-1)
    assert dataclasses.replace(MonitorConfig(), away_km=10).away_km == 10


def test_baseline_median_and_mad_match_numpy_nanmedian() -> None:
    """The core baseline's median and MAD per column against numpy's
    nanmedian (every row in the period, NaN for a missing value)."""
    from autolien import _core

    rng = np.random.default_rng(4)
    for rows in (1, 2, 37, 336):
        a = rng.normal(size=(rows, 7))
        a[rng.uniform(size=a.shape) < 0.3] = np.nan
        a[:, 5] = np.nan
        hour = np.arange(480_000, 480_000 + rows, dtype=np.int64)
        ones = np.ones(rows, np.int64)
        none = np.zeros(0, np.int64)
        med, mad, cnt, _, _ = _core.monitor_baseline(hour, ones, ones, a, none, none, 0, 10**9, 1)
        ok = cnt > 0
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(med[ok], np.nanmedian(a[:, ok], axis=0))
            np.testing.assert_array_equal(mad[ok], np.nanmedian(np.abs(a[:, ok] - med[ok]), axis=0))
        assert np.isnan(med[~ok]).all()
        assert np.isnan(mad[~ok]).all()
        np.testing.assert_array_equal(cnt, (~np.isnan(a)).sum(axis=0))


def test_cli_scores_a_store_in_batches_like_one_run(tmp_path, capsys) -> None:
    import duckdb

    from autolien.cli import main

    f = simulate_fleet(
        8, 24, seed=3, anomaly_day=14, anomalies={"rollback": 1, "silence": 1, "mileage_jump": 1}
    )
    db = str(tmp_path / "s.duckdb")
    con = duckdb.connect(db)
    con.register("fx", f.tracks)
    con.register("od", f.odometer)
    con.execute(
        "CREATE TABLE fixes AS SELECT vehicle_id, time, lat, lon, speed_kmh FROM fx"
    ).fetchall()
    con.execute("CREATE TABLE ev AS SELECT vehicle_id AS vin, time, odometer_km FROM od").fetchall()
    con.close()
    assert main(["monitor", "--db", db, "--batch", "3", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    con = duckdb.connect(db)
    got = (
        con.sql("SELECT * FROM alerts ORDER BY vehicle_id, opened, kind")
        .to_arrow_table()
        .to_pylist()
    )
    hours = con.sql("SELECT count(*) FROM monitor_features").fetchall()[0][0]
    con.close()
    want = score(f.tracks, f.odometer).to_pylist()
    assert got == want
    assert report["alerts"] == len(want)
    assert report["vehicles"] == 8
    assert report["hours_scored"] == hours
    assert {"odometer_rollback", "device_silence", "mileage_jump"} <= set(report["by_kind"])
    assert main(["monitor", "--db", str(tmp_path / "empty.duckdb"), "--quiet"]) == 2


def test_entropy_evidence_names_the_driving_windows(fleets: list) -> None:
    f = fleets[0]
    truth = {r["vehicle_id"]: r for r in f.truth.to_pylist()}
    rentals = [
        a
        for a in score(f.tracks, f.odometer).to_pylist()
        if a["kind"] == "entropy_increase"
        and truth.get(a["vehicle_id"], {}).get("anomaly") == "rental"
    ]
    assert rentals
    for a in rentals:
        ev = json.loads(a["evidence"])
        assert ev["windows_from"] < ev["windows_to"] <= a["last_signal"].timestamp()
        assert ev["cusum"] >= MonitorConfig().cusum_h
        # the path lies in the segment, which is the last scored window
        assert a["segment_end"].timestamp() - a["segment_start"].timestamp() == 24 * 3600
        assert all(a["segment_start"] <= p["time"] <= a["segment_end"] for p in a["path"])


def test_towing_needs_the_ignition_off_and_the_odometer_still() -> None:
    # one vehicle towed, one whose terminal never reports the ACC line (off
    # while it drives, odometer running), one without ignition data at all
    f = simulate_fleet(3, 10, seed=4, anomaly_day=8, anomalies={"tow": 1})
    towed = f.truth.column("vehicle_id")[0].as_py()
    tracks = f.tracks
    ids = tracks.column("vehicle_id").to_pylist()
    others = sorted(set(ids) - {towed})
    ign = [
        False if v == others[0] else (None if v == others[1] else x)
        for v, x in zip(ids, tracks.column("ignition").to_pylist(), strict=True)
    ]
    tracks = tracks.set_column(
        tracks.schema.get_field_index("ignition"), "ignition", pa.array(ign, pa.bool_())
    )
    alerts = score(tracks, f.odometer)
    tows = alerts.filter(pc.equal(alerts.column("kind"), "towing")).to_pylist()
    assert [a["vehicle_id"] for a in tows] == [towed]
    ev = json.loads(tows[0]["evidence"])
    assert ev["distance_m"] >= 500
    assert ev["odometer_km"] == pytest.approx(0.0, abs=0.1)
    # the always-off terminal drove the whole time: without the odometer check
    # each of its trips would have been a tow
    drives = tracks.filter(
        pc.and_(
            pc.equal(tracks.column("vehicle_id"), others[0]),
            pc.greater(tracks.column("speed_kmh"), 20),
        )
    )
    assert drives.num_rows > 100
