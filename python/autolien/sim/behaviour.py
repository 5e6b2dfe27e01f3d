"""Simulated vehicle behaviour with labelled anomalies: the positions, speeds
and odometer readings a T-Box reports, as the tables the monitor consumes.

Each vehicle has home, work and a few regular places around a city; it
commutes on weekdays, runs errands at weekends and parks at night. From the
anomaly day on, an anomalous vehicle changes behaviour in one labelled way.
Deterministic for a seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ..schemas import TIME_TYPE

__all__ = [
    "ANOMALIES",
    "EPOCH",
    "EXPECTED_LEVEL",
    "Fleet",
    "simulate_fleet",
    "simulate_vehicle",
    "vehicle_tables",
]

# The monitor kind and the level each injected behaviour must reach.
ANOMALIES = {
    "mileage_jump": "mileage_jump",
    "rollback": "odometer_rollback",
    "relocation": "relocation",
    "rental": "entropy_increase",
    "silence": "device_silence",
    "tow": "towing",
}
EXPECTED_LEVEL = {
    "mileage_jump": "alert",
    "rollback": "emergency",
    "relocation": "alert",
    "rental": "alert",
    "silence": "alert",
    "tow": "alert",
}
_EPOCH = 1_790_784_000.0  # 2026-10-01T00:00:00+08:00 as UTC seconds
EPOCH = _EPOCH
_M_PER_DEG = 111_195.0
_DRIVE_DT = 30.0  # s between fixes while driving
_PARK_DT = 600.0  # s between heartbeat fixes while parked


@dataclass
class Fleet:
    tracks: pa.Table  # vehicle_id, time, lat, lon, speed_kmh, ignition
    odometer: pa.Table  # vehicle_id, time, odometer_km
    truth: pa.Table  # vehicle_id, anomaly, kind, start, expected_level


def _offset(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    return lat + north_m / _M_PER_DEG, lon + east_m / (_M_PER_DEG * math.cos(math.radians(lat)))


class _Vehicle:
    def __init__(
        self, rng: np.random.Generator, anomaly: str | None, anomaly_t: float, t0: float
    ) -> None:
        self.rng = rng
        self.anomaly = anomaly
        self.anomaly_t = anomaly_t
        c = (31.23 + rng.normal(0, 0.05), 121.47 + rng.normal(0, 0.05))
        self.home = c
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(6e3, 15e3)
        self.work = _offset(*c, d * math.cos(ang), d * math.sin(ang))
        self.places = [self._around(c, 2e3, 6e3) for _ in range(4)]
        self.odo = float(rng.uniform(1e4, 8e4))
        self.calib = float(rng.uniform(1.0, 1.03))
        self.ts: list[np.ndarray] = []
        self.lat: list[np.ndarray] = []
        self.lon: list[np.ndarray] = []
        self.spd: list[np.ndarray] = []
        self.km: list[np.ndarray] = []
        self.ign: list[np.ndarray] = []
        self.pos = c
        self.t = t0
        self.rolled = False
        self.towed = False

    def _around(self, c: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
        ang = self.rng.uniform(0, 2 * math.pi)
        d = self.rng.uniform(lo, hi)
        return _offset(*c, d * math.cos(ang), d * math.sin(ang))

    def _emit(
        self,
        t: np.ndarray,
        lat: np.ndarray,
        lon: np.ndarray,
        spd: np.ndarray,
        km: np.ndarray,
        ign: np.ndarray | None = None,
    ) -> None:
        # the terminal's ACC bit: on while driving, off while parked (or towed)
        ign = (spd > 0).astype(np.float64) if ign is None else ign
        if self.anomaly == "silence":
            keep = (t < self.anomaly_t) | (t >= self.anomaly_t + 96 * 3600.0)
            t, lat, lon, spd, km, ign = (
                t[keep],
                lat[keep],
                lon[keep],
                spd[keep],
                km[keep],
                ign[keep],
            )
        if self.anomaly == "rollback":
            km = np.where(t >= self.anomaly_t, km - 3000.0, km)
        noise = self.rng.normal(0, 3.0, (2, t.size)) / _M_PER_DEG
        self.ts.append(t)
        self.lat.append(lat + noise[0])
        self.lon.append(lon + noise[1] / math.cos(math.radians(31.2)))
        self.spd.append(spd)
        self.km.append(km)
        self.ign.append(ign)

    def park_until(self, t_end: float) -> None:
        if t_end <= self.t:
            return
        t = np.arange(self.t, t_end, _PARK_DT)
        n = t.size
        self._emit(
            t, np.full(n, self.pos[0]), np.full(n, self.pos[1]), np.zeros(n), np.full(n, self.odo)
        )
        self.t = t_end

    def tow(self, dest: tuple[float, float]) -> None:
        """Carried away on a flatbed: the terminal keeps reporting, GNSS speed
        and all, but the ignition is off and the odometer does not move."""
        (la0, lo0), (la1, lo1) = self.pos, dest
        d = math.hypot(
            (la1 - la0) * _M_PER_DEG, (lo1 - lo0) * _M_PER_DEG * math.cos(math.radians(la0))
        )
        v = 25 / 3.6
        t = self.t + np.arange(0.0, d / v, 60.0)  # a parked terminal's minute reports
        f = (t - self.t) * v / d
        n = t.size
        self._emit(
            t,
            la0 + (la1 - la0) * f,
            lo0 + (lo1 - lo0) * f,
            np.clip(25 * (1 + 0.15 * self.rng.standard_normal(n)), 5, None),
            np.full(n, self.odo),
            np.zeros(n),
        )
        self.t += d / v
        self.pos = dest

    def drive(self, dest: tuple[float, float], kmh: float) -> None:
        # a road-like path: the straight line bent through two offset waypoints
        (la0, lo0), (la1, lo1) = self.pos, dest
        pts = [self.pos]
        for f in (0.33, 0.66):
            la, lo = la0 + (la1 - la0) * f, lo0 + (lo1 - lo0) * f
            off = self.rng.normal(0, 0.08) * math.hypot(
                (la1 - la0) * _M_PER_DEG, (lo1 - lo0) * _M_PER_DEG
            )
            pts.append(
                _offset(la, lo, off * self.rng.choice([-1, 1]), off * self.rng.choice([-1, 1]))
            )
        pts.append(dest)
        plat = np.array([p[0] for p in pts])
        plon = np.array([p[1] for p in pts])
        seg = np.hypot(
            np.diff(plat) * _M_PER_DEG, np.diff(plon) * _M_PER_DEG * math.cos(math.radians(la0))
        )
        cum = np.r_[0.0, np.cumsum(seg)]
        v = kmh / 3.6 * self.rng.uniform(0.85, 1.15)
        dur = cum[-1] / v
        t = self.t + np.arange(0.0, dur, _DRIVE_DT)
        s = (t - self.t) * v
        lat = np.interp(s, cum, plat)
        lon = np.interp(s, cum, plon)
        spd = np.clip(kmh * (1 + 0.15 * self.rng.standard_normal(t.size)), 5, None)
        spd[0] = 0.0
        km = self.odo + s / 1000.0 * self.calib
        self._emit(t, lat, lon, spd, km)
        self.odo += cum[-1] / 1000.0 * self.calib
        self.t += dur
        self.pos = dest

    def trip(self, depart: float, dest: tuple[float, float], kmh: float = 40.0) -> None:
        self.park_until(max(depart, self.t))
        self.drive(dest, kmh)

    def day(self, day0: float, weekday: bool) -> None:
        rng = self.rng
        active = self.anomaly is not None and day0 + 86400 > self.anomaly_t
        if self.anomaly == "tow" and active and not self.towed:
            # taken from where it stands to a lot 5-15 km away, and kept there
            self.towed = True
            self.park_until(max(self.anomaly_t, self.t))
            self.tow(self._around(self.pos, 5e3, 15e3))
        if self.towed:
            return
        if self.anomaly == "relocation" and active and not self.rolled:
            self.rolled = True
            self.trip(max(self.anomaly_t, self.t), self._relocate(), 100.0)
        if self.anomaly == "rental" and active:
            t = max(day0 + 8 * 3600 + rng.uniform(0, 3600), self.anomaly_t, self.t)
            for _ in range(int(rng.integers(6, 12))):
                self.trip(t, self._around(self.home, 2e3, 25e3), 45.0)
                t = self.t + rng.uniform(600, 5400)
            self.trip(t, self.home)
            return
        if weekday:
            self.trip(day0 + 3600 * rng.normal(7.75, 0.4), self.work)
            self.trip(day0 + 3600 * rng.normal(17.9, 0.6), self.home)
            if rng.uniform() < 0.4:
                p = self.places[int(rng.integers(len(self.places)))]
                self.trip(day0 + 3600 * rng.uniform(19, 20), p)
                self.trip(self.t + rng.uniform(1800, 5400), self.home)
        else:
            for _ in range(int(rng.integers(1, 3))):
                far = rng.uniform() < 0.15
                p = (
                    self._around(self.home, 10e3, 20e3)
                    if far
                    else self.places[int(rng.integers(4))]
                )
                self.trip(max(self.t, day0 + 3600 * rng.uniform(10, 15)), p, 55.0 if far else 40.0)
                self.trip(self.t + rng.uniform(3600, 10800), self.home, 55.0 if far else 40.0)
        if self.anomaly == "mileage_jump" and active:
            # about +67 km a day: 2,000 km a month on top of the routine
            away = self._around(self.home, 30e3, 36e3)
            self.trip(max(self.t, day0 + 3600 * rng.uniform(10, 13), self.anomaly_t), away, 70.0)
            self.trip(self.t + rng.uniform(900, 2700), self.home, 70.0)

    def _relocate(self) -> tuple[float, float]:
        rng = self.rng
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(300e3, 400e3)
        new = _offset(*self.home, d * math.cos(ang), d * math.sin(ang))
        shift = (new[0] - self.home[0], new[1] - self.home[1])
        self.home = new
        self.work = (self.work[0] + shift[0], self.work[1] + shift[1])
        self.places = [(p[0] + shift[0], p[1] + shift[1]) for p in self.places]
        return new


def simulate_vehicle(
    seed: int, index: int, anomaly: str | None, days: int, anomaly_day: int
) -> tuple[dict[str, np.ndarray], float]:
    """One vehicle's fixes (``time`` in UTC microseconds, ``lat``, ``lon``,
    ``speed_kmh``, ``odometer_km``) and its anomaly's start (UTC seconds).
    Deterministic for (seed, index)."""
    rng = np.random.default_rng([seed, index])
    start = _EPOCH + anomaly_day * 86400 + rng.uniform(0, 86400)
    v = _Vehicle(rng, anomaly, start, _EPOCH)
    for d in range(days):
        # local (UTC+8) day d starts at _EPOCH + d days; schedules are local hours
        v.day(_EPOCH + d * 86400, weekday=(d + 3) % 7 < 5)
    v.park_until(_EPOCH + days * 86400)
    t = np.concatenate(v.ts)
    keep = t < _EPOCH + days * 86400
    cols = {
        "time": (t[keep] * 1e6).astype(np.int64),
        "lat": np.concatenate(v.lat)[keep],
        "lon": np.concatenate(v.lon)[keep],
        "speed_kmh": np.concatenate(v.spd)[keep],
        "odometer_km": np.round(np.concatenate(v.km)[keep], 1),
        "ignition": np.concatenate(v.ign)[keep],
    }
    return cols, start


def vehicle_tables(
    tracks: list[tuple[str, dict[str, np.ndarray]]],
) -> tuple[pa.Table, pa.Table]:
    """The monitor's track and odometer tables of ``(vehicle_id, columns)``
    pairs, each as ``simulate_vehicle`` returns its columns."""
    n = [c["time"].size for _, c in tracks]
    ids = pa.array(np.repeat([v for v, _ in tracks], n))
    time = pa.array(np.concatenate([c["time"] for _, c in tracks])).cast(TIME_TYPE)
    cat = {
        k: np.concatenate([c[k] for _, c in tracks])
        for k in ("lat", "lon", "speed_kmh", "odometer_km", "ignition")
    }
    track_table = pa.table(
        {
            "vehicle_id": ids,
            "time": time,
            "lat": cat["lat"],
            "lon": cat["lon"],
            "speed_kmh": cat["speed_kmh"],
            "ignition": pa.array(cat["ignition"] > 0),
        }
    )
    odo_table = pa.table({"vehicle_id": ids, "time": time, "odometer_km": cat["odometer_km"]})
    return track_table, odo_table


def simulate_fleet(
    n_vehicles: int = 30,
    days: int = 30,
    *,
    seed: int = 0,
    anomaly_day: int = 18,
    anomalies: dict[str, int] | None = None,
) -> Fleet:
    """``anomalies`` maps an anomaly name to how many vehicles get it (the
    default: one of each); the rest behave normally."""
    if anomalies is None:
        anomalies = dict.fromkeys(ANOMALIES, 1)
    unknown = set(anomalies) - set(ANOMALIES)
    if unknown:
        raise ValueError(f"unknown anomalies {sorted(unknown)}; known: {sorted(ANOMALIES)}")
    if sum(anomalies.values()) > n_vehicles:
        raise ValueError("more anomalous vehicles than vehicles")
    if not 1 <= anomaly_day < days:
        raise ValueError("anomaly_day must fall inside the simulated days")
    labels: list[str | None] = [a for a, k in anomalies.items() for _ in range(k)]
    labels += [None] * (n_vehicles - len(labels))
    order = np.random.default_rng(seed).permutation(n_vehicles)
    tracks: list[tuple[str, dict[str, np.ndarray]]] = []
    truth: list[tuple[str, str, str, int, str]] = []
    for i in range(n_vehicles):
        label = labels[int(order[i])]
        vid = f"V{seed:03d}{i:05d}"
        cols, start = simulate_vehicle(seed, i, label, days, anomaly_day)
        tracks.append((vid, cols))
        if label is not None:
            truth.append((vid, label, ANOMALIES[label], int(start * 1e6), EXPECTED_LEVEL[label]))
    track_table, odo_table = vehicle_tables(tracks)
    tv, ta, tk, ts, tl = zip(*truth, strict=True) if truth else ((), (), (), (), ())
    truth_table = pa.table(
        {
            "vehicle_id": pa.array(tv, pa.string()),
            "anomaly": pa.array(ta, pa.string()),
            "kind": pa.array(tk, pa.string()),
            "start": pa.array(ts, pa.int64()).cast(TIME_TYPE),
            "expected_level": pa.array(tl, pa.string()),
        }
    )
    return Fleet(track_table, odo_table, truth_table)
