"""Alert precision (issue 16.6): one incident, one alert; and short-reporting
devices (issue 23). Every vehicle here is built by hand from a stated routine
(commute, parked heartbeat, trips at set speeds to set places), not by the
simulator, so the expected outcome follows from the scenario itself:

* driving much more, once a day, to one far place at a new speed is a
  mileage jump, not a change of usage;
* moving 300 km away and living there is a relocation, not a change of
  usage;
* many short trips a day to many new places around home is a change of
  usage, with or without the extra mileage it brings.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from autolien.monitor import Monitor, MonitorConfig, score
from autolien.monitor.quality import detection_quality
from autolien.sim import simulate_fleet
from autolien.sim.behaviour import simulate_vehicle, vehicle_tables

T0 = 1_790_784_000.0  # 2026-09-30T16:00Z, local (UTC+8) midnight
HOME = (31.20, 121.40)
M_PER_DEG = 111_195.0


def _at(p: tuple[float, float], east_km: float, north_km: float) -> tuple[float, float]:
    return (
        p[0] + north_km * 1000 / M_PER_DEG,
        p[1] + east_km * 1000 / (M_PER_DEG * math.cos(math.radians(p[0]))),
    )


class _Log:
    """A vehicle's fixes and odometer, built trip by trip."""

    def __init__(self, seed: int, *, heartbeat_s: float | None = 600.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.heartbeat = heartbeat_s
        self.t, self.lat, self.lon, self.spd, self.km = [], [], [], [], []  # type: ignore[var-annotated]
        self.now = T0
        self.pos = HOME
        self.odo = 20_000.0

    def _emit(
        self, t: np.ndarray, lat: np.ndarray, lon: np.ndarray, v: np.ndarray, km: np.ndarray
    ) -> None:
        noise = self.rng.normal(0, 3.0, (2, t.size)) / M_PER_DEG  # 3 m GNSS noise
        self.t.append(t)
        self.lat.append(lat + noise[0])
        self.lon.append(lon + noise[1] / math.cos(math.radians(HOME[0])))
        self.spd.append(v)
        self.km.append(km)

    def park_until(self, t_end: float) -> None:
        if t_end > self.now and self.heartbeat:
            t = np.arange(self.now, t_end, self.heartbeat)
            n = t.size
            self._emit(
                t,
                np.full(n, self.pos[0]),
                np.full(n, self.pos[1]),
                np.zeros(n),
                np.full(n, self.odo),
            )
        self.now = max(self.now, t_end)

    def drive(self, dest: tuple[float, float], kmh: float, depart: float) -> None:
        self.park_until(depart)
        # one bend half way, so that the path has turns
        mid = _at(
            ((self.pos[0] + dest[0]) / 2, (self.pos[1] + dest[1]) / 2),
            self.rng.normal(0, 1.0),
            self.rng.normal(0, 1.0),
        )
        pts = np.array([self.pos, mid, dest])
        seg = np.hypot(
            np.diff(pts[:, 0]) * M_PER_DEG,
            np.diff(pts[:, 1]) * M_PER_DEG * math.cos(math.radians(HOME[0])),
        )
        cum = np.r_[0.0, np.cumsum(seg)]
        t = np.arange(0.0, cum[-1] / (kmh / 3.6), 10.0)
        s = t * kmh / 3.6
        v = np.clip(kmh * (1 + 0.1 * self.rng.standard_normal(t.size)), 5.0, None)
        self._emit(
            self.now + t,
            np.interp(s, cum, pts[:, 0]),
            np.interp(s, cum, pts[:, 1]),
            v,
            self.odo + s / 1000.0,
        )
        self.odo += cum[-1] / 1000.0
        self.now += t[-1] + 10.0 if t.size else 0.0
        self.pos = dest

    def tables(self, vid: str) -> tuple[pa.Table, pa.Table]:
        t = np.concatenate(self.t)
        us = pa.array((t * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC"))
        ids = pa.array([vid] * t.size)
        track = pa.table(
            {
                "vehicle_id": ids,
                "time": us,
                "lat": np.concatenate(self.lat),
                "lon": np.concatenate(self.lon),
                "speed_kmh": np.concatenate(self.spd),
            }
        )
        odo = pa.table(
            {"vehicle_id": ids, "time": us, "odometer_km": np.round(np.concatenate(self.km), 1)}
        )
        return track, odo


WORK = _at(HOME, 9.0, 4.0)
SHOPS = [_at(HOME, 2.5, -1.5), _at(HOME, -3.0, 1.0)]


def _routine(
    log: _Log, day: int, home: tuple[float, float], work: tuple[float, float], shops: list
) -> None:
    d0 = T0 + day * 86400
    r = log.rng
    if day % 7 in (2, 3):  # the weekend: one errand
        log.drive(shops[day % 2], 40.0, d0 + 3600 * r.uniform(10, 12))
        log.drive(home, 40.0, log.now + 3600 * r.uniform(1, 2))
    else:
        log.drive(work, 40.0, d0 + 3600 * r.normal(7.8, 0.2))
        log.drive(home, 40.0, d0 + 3600 * r.normal(17.8, 0.3))


def _kinds(track: pa.Table, odo: pa.Table) -> dict[str, str]:
    """Alert kind -> highest level opened from day 19 on."""
    out: dict[str, str] = {}
    order = ("warning", "alert", "emergency")
    for a in score(track, odo).to_pylist():
        if a["opened"].timestamp() < T0 + 19 * 86400:
            continue
        k = a["kind"]
        if k not in out or order.index(a["level"]) > order.index(out[k]):
            out[k] = a["level"]
    return out


DAYS = 28
CHANGE = 20  # the day the behaviour changes


def test_a_daily_long_fast_trip_is_a_mileage_jump_not_a_change_of_usage() -> None:
    log = _Log(1)
    far = _at(HOME, 0.0, 40.0)  # 40 km north, at 80 km/h: +80 km a day, a new speed
    for day in range(DAYS):
        _routine(log, day, HOME, WORK, SHOPS)
        if day >= CHANGE:
            log.drive(far, 80.0, max(log.now, T0 + day * 86400 + 19.5 * 3600))
            log.drive(HOME, 80.0, log.now + 1800)
        log.park_until(T0 + (day + 1) * 86400)
    kinds = _kinds(*log.tables("mj"))
    assert kinds.get("mileage_jump") == "alert"
    assert "entropy_increase" not in kinds


def test_moving_far_away_is_a_relocation_not_a_change_of_usage() -> None:
    log = _Log(2)
    new_home = _at(HOME, 250.0, 150.0)  # ~290 km away
    home, work, shops = HOME, WORK, SHOPS
    for day in range(DAYS):
        if day == CHANGE:
            log.drive(new_home, 100.0, T0 + day * 86400 + 6 * 3600)
            home = new_home
            work = _at(home, 9.0, 4.0)
            shops = [_at(home, 2.5, -1.5), _at(home, -3.0, 1.0)]
        _routine(log, day, home, work, shops)
        log.park_until(T0 + (day + 1) * 86400)
    kinds = _kinds(*log.tables("re"))
    assert kinds.get("relocation") in ("alert", "emergency")
    assert "entropy_increase" not in kinds


def _rental(log: _Log, day: int) -> None:
    d0 = T0 + day * 86400
    t = d0 + 8 * 3600
    for _ in range(9):  # nine fares a day to places all over town, with waits
        ang, dist = log.rng.uniform(0, 2 * math.pi), log.rng.uniform(3.0, 12.0)
        log.drive(_at(HOME, dist * math.cos(ang), dist * math.sin(ang)), 40.0, t)
        t = log.now + log.rng.uniform(900, 2400)
    log.drive(HOME, 40.0, t)


def test_a_change_of_usage_is_still_an_entropy_increase_while_the_mileage_jumps() -> None:
    log = _Log(3)
    for day in range(DAYS):
        if day >= CHANGE:
            _rental(log, day)
        else:
            _routine(log, day, HOME, WORK, SHOPS)
        log.park_until(T0 + (day + 1) * 86400)
    kinds = _kinds(*log.tables("rt"))
    assert kinds.get("mileage_jump") == "alert"  # it drives ~150 km a day more
    assert kinds.get("entropy_increase") == "alert"


def _streams_as_batch(track: pa.Table, odo: pa.Table) -> None:
    batch = score(track, odo)
    m = Monitor()
    t = track.column("time").cast(pa.int64()).to_numpy() / 1e6
    for lo in range(0, DAYS * 24, 7):  # 7-hour slices, not aligned to days
        sel = pa.array((t >= T0 + lo * 3600) & (t < T0 + (lo + 7) * 3600))
        m.update(track.filter(sel), odo.filter(sel))
    assert m.alerts().equals(batch)


def test_explained_features_stream_as_in_batch() -> None:
    log = _Log(1)
    far = _at(HOME, 0.0, 40.0)
    for day in range(DAYS):
        _routine(log, day, HOME, WORK, SHOPS)
        if day >= CHANGE:
            log.drive(far, 80.0, max(log.now, T0 + day * 86400 + 19.5 * 3600))
            log.drive(HOME, 80.0, log.now + 1800)
        log.park_until(T0 + (day + 1) * 86400)
    _streams_as_batch(*log.tables("mj"))


def test_the_unchanged_routine_raises_nothing() -> None:
    log = _Log(4)
    for day in range(DAYS):
        _routine(log, day, HOME, WORK, SHOPS)
        log.park_until(T0 + (day + 1) * 86400)
    assert score(*log.tables("ok")).num_rows == 0


# -- a terminal that reports only while driving ------------------------------


def test_a_driving_only_terminal_gets_a_baseline_and_a_rental_is_detected() -> None:
    # no heartbeat while parked: about an hour of fixes a day, so counting
    # hours with data never reached a week (14 days x ~1 h < 168 h)
    log = _Log(5, heartbeat_s=None)
    for day in range(DAYS):
        if day >= CHANGE:
            _rental(log, day)
        else:
            _routine(log, day, HOME, WORK, SHOPS)
    kinds = _kinds(*log.tables("dr"))
    assert kinds.get("entropy_increase") == "alert"
    _streams_as_batch(*log.tables("dr"))


def test_untouched_driving_only_terminals_raise_nothing_above_warning() -> None:
    levels = set()
    for seed in range(6, 10):
        log = _Log(seed, heartbeat_s=None)
        for day in range(DAYS):
            _routine(log, day, HOME, WORK, SHOPS)
        levels |= {a["level"] for a in score(*log.tables(f"d{seed}")).to_pylist()}
    assert levels <= {"warning"}


def test_a_short_driving_only_history_raises_nothing() -> None:
    # 9 days: the baseline detectors start scoring on days 8-9, on a thin
    # baseline of a week of commutes; that must not alert wildly
    kinds = set()
    for seed in range(11, 15):
        log = _Log(seed, heartbeat_s=None)
        for day in range(9):
            _routine(log, day, HOME, WORK, SHOPS)
        kinds |= {(a["kind"], a["level"]) for a in score(*log.tables("sh")).to_pylist()}
    assert {k for k, _ in kinds} <= {"device_silence"}
    assert {lvl for _, lvl in kinds} <= {"warning"}


def test_a_silent_device_is_a_silence_not_a_change_of_usage() -> None:
    # parked at a new place for the day, then no rows for four days: its context windows
    # empty out around the last place seen, which is no change of usage
    log = _Log(15)
    new_place = _at(HOME, -6.0, -5.0)
    for day in range(DAYS):
        if day == CHANGE:
            log.drive(new_place, 40.0, T0 + day * 86400 + 9 * 3600)
            log.park_until(T0 + day * 86400 + 20 * 3600)
            log.heartbeat, quiet = None, log.now
            log.park_until(quiet + 96 * 3600)
            log.heartbeat = 600.0
            log.drive(HOME, 40.0, log.now)
        elif CHANGE < day < CHANGE + 5:
            continue
        else:
            _routine(log, day, HOME, WORK, SHOPS)
        log.park_until(T0 + (day + 1) * 86400)
    kinds = _kinds(*log.tables("si"))
    assert kinds.get("device_silence") == "emergency"
    assert "entropy_increase" not in kinds
    _streams_as_batch(*log.tables("si"))


def test_alerts_on_a_mostly_normal_portfolio_are_all_meant() -> None:
    # 3 simulated fleets of 60 with one of each anomaly from day 18 (docs/
    # monitor.md, "Detection quality"): every rental and mileage jump found
    # at its level, and every entropy and mileage alert judged is on the
    # anomaly meant to raise it (the normal vehicles' weekend excursions
    # raised 3 false mileage warnings before a jump had to hold on a second day)
    counts = {"entropy_increase": [0, 0], "mileage_jump": [0, 0]}
    for seed in range(3):
        f = simulate_fleet(60, 30, seed=seed, anomaly_day=18)
        q = detection_quality(
            score(f.tracks, f.odometer), f.truth, eval_start="2026-10-18T16:00:00Z"
        )
        for name in ("rental", "mileage_jump"):
            assert q["anomalies"][name]["recall"] == 1.0, name
            assert q["anomalies"][name]["level_reached"] == 1.0, name
        assert q["anomalies"]["mileage_jump"]["max_delay_h"] < 48  # on its second day
        for kind, c in counts.items():
            e = q["alert_kinds"][kind]
            c[0], c[1] = c[0] + e["true"], c[1] + e["true"] + e["false"]
    assert counts == {"entropy_increase": [3, 3], "mileage_jump": [3, 3]}


def test_mileage_alerts_on_a_demo_shaped_portfolio_are_all_meant() -> None:
    # the demo's shape (200 vehicles x 14 days, 10% anomalous from day 9, a
    # 7-day baseline), seed 0: every jump starts on a Saturday, when the
    # normal vehicles' excursions are; 2 of the 3 false mileage warnings
    # of the 3 seeds were in this one (docs/monitor.md)
    kinds = ("mileage_jump", "rollback", "relocation", "rental", "silence", "tow")
    anomalies = dict.fromkeys(kinds, 3)
    anomalies["mileage_jump"] = anomalies["rollback"] = 4
    f = simulate_fleet(200, 14, seed=0, anomaly_day=9, anomalies=anomalies)
    q = detection_quality(score(f.tracks, f.odometer), f.truth, eval_start="2026-10-09T16:00:00Z")
    mj = q["anomalies"]["mileage_jump"]
    assert (mj["n"], mj["recall"], mj["level_reached"]) == (4, 1.0, 1.0)
    e = q["alert_kinds"]["mileage_jump"]
    assert (e["true"], e["false"]) == (4, 0)


def test_entropy_alerts_on_a_large_normal_fleet_stay_rare() -> None:
    # 3 fleets of 600 (1% rentals, 15 days, the rest normal): the rate of
    # false entropy alerts that the 100,000-vehicle run showed (0.56 a
    # hundred normal vehicles, 74% precision) needs a fleet this size to
    # show at all. A normal vehicle's odd weekend day feeds the 24 trailing
    # windows that hold it into the CUSUM; with one chart at k = 2.5, h = 24
    # these fleets raise 5 false alerts (78% precision), with the two charts
    # none (docs/monitor.md, "The entropy CUSUM at fleet scale"). Every
    # rental is still found at its level.
    true = false = 0
    for seed in (1, 2, 3):
        f = simulate_fleet(600, 15, seed=seed, anomaly_day=9, anomalies={"rental": 6})
        q = detection_quality(
            score(f.tracks, f.odometer), f.truth, eval_start="2026-10-09T16:00:00Z"
        )
        r = q["anomalies"]["rental"]
        assert (r["n"], r["recall"], r["level_reached"]) == (6, 1.0, 1.0)
        e = q["alert_kinds"]["entropy_increase"]
        true, false = true + e["true"], false + e["false"]
    assert true == 18
    assert false <= 1  # precision at least 18/19 = 95%


@pytest.mark.parametrize(("seed", "index"), [(1039, 148), (1198, 219)])
def test_a_weak_lasting_change_of_usage_is_found_by_the_slow_chart(seed: int, index: int) -> None:
    # two of 1,600 simulated rentals (docs/monitor.md, "The entropy CUSUM at
    # fleet scale"): their mileage jump leaves only the place features in
    # the score, which holds about 3 for days, under the fast chart's
    # allowance. The slow chart finds them at their level; without it
    # (cusum_slow_h = 0) nothing is raised for them.
    cols, start = simulate_vehicle(seed, index, "rental", 15, 9)
    tracks, odo = vehicle_tables([("R", cols)])

    def levels(cfg: MonitorConfig) -> list[tuple[str, str]]:
        return [
            (a["level"], json.loads(a["evidence"])["chart"])
            for a in score(tracks, odo, config=cfg).to_pylist()
            if a["kind"] == "entropy_increase"
            and start - 3600 <= a["opened"].timestamp() <= start + 168 * 3600
        ]

    assert levels(MonitorConfig()) == [("alert", "slow")]
    assert levels(MonitorConfig(cusum_slow_h=0.0)) == []


# -- one odd day of driving against a lasting change ------------------------


def _odometer(km_per_day: np.ndarray) -> pa.Table:
    """Readings every 30 min; each day's km driven evenly 08:00-20:00 local."""
    t = T0 + np.arange(0, km_per_day.size * 86400, 1800.0)
    day = ((t - T0) // 86400).astype(int)
    frac = np.clip(((t - T0) % 86400 - 8 * 3600) / (12 * 3600), 0, 1)
    km = 20_000 + np.r_[0, np.cumsum(km_per_day)][day] + frac * km_per_day[day]
    us = pa.array((t * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({"vehicle_id": ["o"] * t.size, "time": us, "odometer_km": np.round(km, 1)})


def test_one_odd_day_raises_nothing_and_a_lasting_jump_is_an_alert_on_its_second_day() -> None:
    odd = np.full(28, 25.0)
    odd[22] += 80.0  # one day trip: +80 km, then back to the routine
    assert score(None, _odometer(odd)).num_rows == 0
    twice = odd.copy()
    twice[15] += 80.0  # and one a week before: separate odd days, not a lasting change
    assert score(None, _odometer(twice)).num_rows == 0
    # unconfirmed (mileage_confirm_h=0) the odd day was a warning
    unconfirmed = MonitorConfig(mileage_confirm_h=0)
    (w,) = score(None, _odometer(odd), config=unconfirmed).to_pylist()
    assert (w["kind"], w["level"]) == ("mileage_jump", "warning")
    lasting = np.r_[np.full(20, 25.0), np.full(8, 25.0 + 2000 / 30)]  # +2,000 km/month
    (a,) = score(None, _odometer(lasting)).to_pylist()
    assert (a["kind"], a["level"]) == ("mileage_jump", "alert")
    start = T0 + 20 * 86400 + 8 * 3600  # the first extra km
    assert 24 * 3600 < a["opened"].timestamp() - start < 48 * 3600  # on the second day
    ev = json.loads(a["evidence"])
    assert ev["confirming_km_24h"] - ev["baseline_km_24h"] >= 50  # the first day's excess
    # unconfirmed, the same jump reaches alert by persistence no sooner
    (u,) = score(None, _odometer(lasting), config=unconfirmed).to_pylist()
    assert u["opened"].timestamp() < a["opened"].timestamp()
    assert json.loads(u["evidence"])["signal_time"] == a["opened"].timestamp()
    for bad in (12.5, 169):  # whole hours, and its earliest window still kept (baseline_h / 2)
        with pytest.raises(ValueError, match="mileage_confirm_h"):
            MonitorConfig(mileage_confirm_h=bad)


def test_a_weekend_excursion_raises_nothing_and_a_new_daily_one_does() -> None:
    # the routine's commuter drives 35 km out at 60 km/h and back one
    # Saturday (day 23: +70 km against a 20 km weekend); that is no mileage
    # jump. Driving it every day from day 20 on is one.
    far = _at(HOME, -20.0, 28.0)
    for every_day, want in ((False, None), (True, "alert")):
        log = _Log(21)
        for day in range(DAYS):
            _routine(log, day, HOME, WORK, SHOPS)
            if day == 23 or (every_day and day >= CHANGE):
                log.drive(far, 60.0, max(log.now, T0 + day * 86400 + 19 * 3600))
                log.drive(HOME, 60.0, log.now + 1800)
            log.park_until(T0 + (day + 1) * 86400)
        assert _kinds(*log.tables("we")).get("mileage_jump") == want
