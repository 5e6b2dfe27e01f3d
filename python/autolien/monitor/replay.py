"""Replay real trajectories through the monitor, with anomalies injected by
documented transformations of the real rows.

Nothing here uses ``autolien.sim``: the injector only edits, removes, shifts
or splices real rows, so what the monitor finds is measured on tracks nobody
here wrote, not on our own behaviour model.

* ``read_rtklib_pos``: an RTKLIB solution file as a track (time, lat, lon).
* ``read_latlon_csv``: a CSV of latitude and longitude (a GPS trace), with
  times from a time column or, where it has none, a stated fix interval.
* ``daily_replay``: a real log replayed once a day for ``days`` days at its own
  time of day (the repetition is ours, the motion and the GPS noise are real);
  a one-way trip can be driven back the same way later in the day, and an
  hourly heartbeat can be added while parked (below).
* ``odometer_from_track``: a synthetic odometer (below).
* ``inject_*``: one anomaly each; every one returns the new tables and the
  truth row for :func:`autolien.monitor.quality.detection_quality`.

**The odometer.** A vehicle's odometer counts wheel turns, which GPS does not
see. We stand it in by the great-circle length of the track (haversine on
the mean-radius sphere, R = 6,371,008.8 m) between consecutive fixes, with
two rules: a step of at most 10 min slower than 3 km/h adds nothing (GPS
wander at a standstill is not driving), and a step across a longer gap adds
its straight-line length (the vehicle went at least that far). The reading at each fix is the
running total from ``start_km``, cut down to 0.1 km, the resolution of the
JT/T 808 mileage item.

**The parked heartbeat.** A drive log has fixes only while driving, like a
terminal that sleeps while parked. A T-Box that reports while parked (JT/T
808 terminals report every 30-60 min with ACC off, GB/T 32960 vehicles at
least hourly) is stood in by ``heartbeat_s``: between trips, one fix every
``heartbeat_s`` at the position where the last trip ended, ignition off, and
the trip rows get ignition on. The parked fix carries no GPS wander: a real
parked receiver's few metres are left out, which only makes the test easier
for the towing and relocation detectors, not harder.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Replay",
    "daily_replay",
    "inject_odometer_jump",
    "inject_relocation",
    "inject_rental",
    "inject_rollback",
    "inject_silence",
    "inject_tow",
    "odometer_from_track",
    "read_latlon_csv",
    "read_rtklib_pos",
]

TS = pa.timestamp("us", tz="UTC")
_R = 6_371_008.8
_GPS_EPOCH = dt.datetime(1980, 1, 6, tzinfo=dt.UTC)


@dataclass
class Replay:
    """Tracks (vehicle_id, time, lat, lon, ignition), odometer (vehicle_id,
    time, odometer_km) and the truth rows injected so far."""

    tracks: pa.Table
    odometer: pa.Table
    truth: list[dict[str, Any]]

    def truth_table(self) -> pa.Table:
        return pa.table(
            {
                "vehicle_id": pa.array([r["vehicle_id"] for r in self.truth], pa.string()),
                "anomaly": pa.array([r["anomaly"] for r in self.truth], pa.string()),
                "kind": pa.array([r["kind"] for r in self.truth], pa.string()),
                "start": pa.array(
                    [round(float(r["start"]) * 1e6) for r in self.truth], pa.int64()
                ).cast(TS),
                "expected_level": pa.array([r["expected_level"] for r in self.truth], pa.string()),
            }
        )


def _dist_m(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    return np.asarray(2 * _R * np.arcsin(np.sqrt(np.clip(a, 0, 1))))


def _secs(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(col.cast(TS).cast(pa.int64()).to_numpy(zero_copy_only=False)) / 1e6


def _track(
    vid: str, t: np.ndarray, lat: np.ndarray, lon: np.ndarray, ign: list[bool | None]
) -> pa.Table:
    return pa.table(
        {
            "vehicle_id": pa.array([vid] * t.size, pa.string()),
            "time": pa.array(np.round(t * 1e6).astype(np.int64)).cast(TS),
            "lat": pa.array(lat, pa.float64()),
            "lon": pa.array(lon, pa.float64()),
            "ignition": pa.array(ign, pa.bool_()),
        }
    )


def read_rtklib_pos(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (s, GPS time taken as UTC), latitudes and longitudes of an
    RTKLIB .pos file in either time format (calendar or week/seconds)."""
    t, lat, lon = [], [], []
    for line in Path(path).read_text().splitlines():
        if line.startswith("%") or not line.strip():
            continue
        f = line.split()
        if "/" in f[0]:
            when = dt.datetime.strptime(f"{f[0]} {f[1]}", "%Y/%m/%d %H:%M:%S.%f").replace(
                tzinfo=dt.UTC
            )
        else:
            when = _GPS_EPOCH + dt.timedelta(weeks=int(f[0]), seconds=float(f[1]))
        t.append(when.timestamp())
        lat.append(float(f[2]))
        lon.append(float(f[3]))
    return np.array(t), np.array(lat), np.array(lon)


def read_latlon_csv(
    path: str | Path, *, every_s: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times (s), latitudes and longitudes of a CSV with a header naming
    ``latitude``/``lat`` and ``longitude``/``lon``/``lng`` columns. A
    ``time`` column (Unix seconds or ISO 8601) gives the times; a trace
    without one needs ``every_s``, the fix interval its source states, and
    its fixes are then ``every_s`` apart from 0. Rows with a missing or
    out-of-range coordinate are dropped; a file with none left, or without
    the columns, raises ValueError."""
    import csv  # noqa: PLC0415 - only this reader needs it

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty")
    head = [h.strip().lower() for h in rows[0]]

    def col(*names: str) -> int | None:
        return next((head.index(n) for n in names if n in head), None)

    ilat, ilon, itime = col("latitude", "lat"), col("longitude", "lon", "lng"), col("time")
    if ilat is None or ilon is None:
        raise ValueError(f"{path}: no latitude/longitude columns in {rows[0]}")
    if itime is None and every_s is None:
        raise ValueError(f"{path}: no time column; give the fix interval (every_s)")
    t, lat, lon = [], [], []
    for k, r in enumerate(rows[1:]):
        try:
            la, lo = float(r[ilat]), float(r[ilon])
        except (ValueError, IndexError):
            continue
        if not (abs(la) <= 90 and abs(lo) <= 180):
            continue
        if itime is None:
            when = k * float(every_s or 0.0)
        else:
            v = r[itime].strip()
            try:
                when = float(v)
            except ValueError:
                try:
                    d = dt.datetime.fromisoformat(v)
                except ValueError:
                    raise ValueError(f"{path}: row {k + 2}: time {v!r} is not a time") from None
                when = (d if d.tzinfo else d.replace(tzinfo=dt.UTC)).timestamp()
        t.append(when)
        lat.append(la)
        lon.append(lo)
    if not t:
        raise ValueError(f"{path}: no usable fix")
    return np.array(t), np.array(lat), np.array(lon)


def daily_replay(
    vid: str,
    t: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    days: int,
    start_day: float,
    every_s: float = 30.0,
    offsets_h: tuple[float, ...] = (0.0,),
    start_s: float | None = None,
    return_trip: bool = False,
    heartbeat_s: float | None = None,
) -> pa.Table:
    """The real log thinned to one fix per ``every_s`` (a T-Box's driving
    rate), replayed on ``days`` consecutive UTC days from ``start_day`` (a
    midnight, in s) at its own time of day (or at ``start_s`` after
    midnight, for a log whose times are relative), and again ``offsets_h``
    later (a second trip the same day). With ``return_trip`` every second
    trip of a day is the log driven backwards (its fixes in reverse order,
    at the same intervals), so a one-way trip ends the day where it began.
    Ignition is unknown (null), unless ``heartbeat_s`` adds parked fixes
    (module docstring): then trips have it on and parked fixes off."""
    keep = np.r_[True, np.diff(np.floor((t - t[0]) / every_s)) > 0]
    t, lat, lon = t[keep], lat[keep], lon[keep]
    tod = t - math.floor(t[0] / 86400) * 86400 if start_s is None else t - t[0] + start_s
    starts = sorted(start_day + d * 86400 + o * 3600 for d in range(days) for o in offsets_h)
    back = np.flip(tod.max() - tod + tod.min())  # the same intervals, reversed
    per_day = len(offsets_h)
    trips = []
    for k, s0 in enumerate(starts):
        rev = return_trip and k % per_day == 1
        trips.append(
            (s0 + (back if rev else tod), lat[::-1] if rev else lat, lon[::-1] if rev else lon)
        )
    tt = np.concatenate([x[0] for x in trips])
    la = np.concatenate([x[1] for x in trips])
    lo = np.concatenate([x[2] for x in trips])
    if heartbeat_s is None:
        return _track(vid, tt, la, lo, [None] * tt.size)
    ign = [True] * tt.size
    hb_t, hb_la, hb_lo = [], [], []
    # parked fixes run to the end of the day after the last (a later trip
    # of a day may cross midnight UTC), so every vehicle reports to the end
    last_day_end = start_day + (days + 1) * 86400
    for (a, la_a, lo_a), nxt in zip(trips, [*trips[1:], None], strict=True):
        end = (nxt[0][0] if nxt is not None else last_day_end) - 1.0
        beats = np.arange(a[-1] + heartbeat_s, end, heartbeat_s)
        hb_t.append(beats)
        hb_la.append(np.full(beats.size, la_a[-1]))
        hb_lo.append(np.full(beats.size, lo_a[-1]))
    bt = np.concatenate(hb_t)
    order = np.argsort(np.r_[tt, bt], kind="stable")
    return _track(
        vid,
        np.r_[tt, bt][order],
        np.r_[la, np.concatenate(hb_la)][order],
        np.r_[lo, np.concatenate(hb_lo)][order],
        [(ign + [False] * bt.size)[i] for i in order],
    )


def odometer_from_track(tracks: pa.Table, *, start_km: float = 10_000.0) -> pa.Table:
    """One reading per fix, per vehicle (see the module docstring)."""
    parts = []
    for vid in pc.unique(tracks.column("vehicle_id")).to_pylist():
        tr = tracks.filter(pc.equal(tracks.column("vehicle_id"), vid)).sort_by("time")
        t = _secs(tr.column("time"))
        lat = tr.column("lat").to_numpy()
        lon = tr.column("lon").to_numpy()
        step = np.zeros(t.size)
        if t.size > 1:
            step[1:] = _dist_m(lat[:-1], lon[:-1], lat[1:], lon[1:])
            dt_s = np.diff(t)
            slow = (step[1:] * 3.6 < 3.0 * np.maximum(dt_s, 1e-9)) & (dt_s <= 600.0)
            step[1:][slow] = 0.0
        # cut down to 0.1 km; the 1e-6 keeps a whole 0.1 km that rounding
        # left a hair short from losing a step
        km = np.floor((start_km + np.cumsum(step) / 1000.0) * 10.0 + 1e-6) / 10.0
        parts.append(
            pa.table(
                {
                    "vehicle_id": pa.array([vid] * t.size, pa.string()),
                    "time": tr.column("time"),
                    "odometer_km": pa.array(km),
                }
            )
        )
    return pa.concat_tables(parts)


def _split(tab: pa.Table, vid: str) -> tuple[pa.Table, pa.Table]:
    mine = pc.equal(tab.column("vehicle_id"), vid)
    return tab.filter(mine).sort_by("time"), tab.filter(pc.invert(mine))


def _truth(vid: str, anomaly: str, kind: str, start: float, level: str) -> dict[str, Any]:
    return {
        "vehicle_id": vid,
        "anomaly": anomaly,
        "kind": kind,
        "start": start,
        "expected_level": level,
    }


def inject_odometer_jump(r: Replay, vid: str, at: float, km: float = 500.0) -> Replay:
    """Every reading from ``at`` on is ``km`` higher; the track is untouched.
    Meant to raise odometer_mismatch (warning): the odometer ran far ahead
    of the track in the 24 h after it."""
    mine, rest = _split(r.odometer, vid)
    t = _secs(mine.column("time"))
    km_col = mine.column("odometer_km").to_numpy() + np.where(t >= at, km, 0.0)
    mine = mine.set_column(2, "odometer_km", pa.array(km_col))
    truth = _truth(vid, "odometer_jump", "odometer_mismatch", at, "warning")
    return Replay(r.tracks, pa.concat_tables([rest, mine]), [*r.truth, truth])


def inject_rollback(r: Replay, vid: str, at: float, km: float = 3000.0) -> Replay:
    """Every reading from ``at`` on is ``km`` lower (a clocked odometer)."""
    out = inject_odometer_jump(r, vid, at, -km)
    out.truth[-1] = _truth(vid, "rollback", "odometer_rollback", at, "emergency")
    return out


def inject_relocation(
    r: Replay, vid: str, at: float, north_km: float = 250.0, east_km: float = 200.0
) -> Replay:
    """Every position from ``at`` on moves by a fixed offset (about 320 km by
    default): the vehicle lives elsewhere from then on. The odometer is
    untouched, as if it had been carried there."""
    mine, rest = _split(r.tracks, vid)
    t = _secs(mine.column("time"))
    lat = mine.column("lat").to_numpy().copy()
    lon = mine.column("lon").to_numpy().copy()
    later = t >= at
    lon[later] += east_km / (111.195 * np.cos(np.radians(lat[later])))
    lat[later] += north_km / 111.195
    mine = mine.set_column(2, "lat", pa.array(lat)).set_column(3, "lon", pa.array(lon))
    truth = _truth(vid, "relocation", "relocation", at, "alert")
    return Replay(pa.concat_tables([rest, mine]), r.odometer, [*r.truth, truth])


def inject_silence(r: Replay, vid: str, at: float, hours: float = 96.0) -> Replay:
    """Every row (track and odometer) in [at, at + hours) is removed."""
    out = []
    for tab in (r.tracks, r.odometer):
        mine, rest = _split(tab, vid)
        t = _secs(mine.column("time"))
        out.append(
            pa.concat_tables([rest, mine.filter(pa.array((t < at) | (t >= at + hours * 3600)))])
        )
    truth = _truth(vid, "silence", "device_silence", at, "alert")
    return Replay(out[0], out[1], [*r.truth, truth])


def inject_tow(
    r: Replay, vid: str, at: float, km: float = 8.0, kmh: float = 30.0, every_s: float = 30.0
) -> Replay:
    """At ``at`` the vehicle stands at its last position; it is carried
    ``km`` due east at ``kmh`` with the ignition off (fixes every
    ``every_s``, ACC bit off) and its odometer still, and every later
    position is shifted by the same offset (it stays where it was left)."""
    mine, rest = _split(r.tracks, vid)
    t = _secs(mine.column("time"))
    lat = mine.column("lat").to_numpy().copy()
    lon = mine.column("lon").to_numpy().copy()
    ign = mine.column("ignition").to_pylist()
    i0 = int(np.searchsorted(t, at, side="left")) - 1
    lat0, lon0 = float(lat[i0]), float(lon[i0])
    dur = km / kmh * 3600
    tt = at + np.arange(0.0, dur + every_s, every_s)
    frac = np.clip((tt - at) / dur, 0, 1)
    dlon = km / (111.195 * math.cos(math.radians(lat0)))
    tow_lat, tow_lon = np.full(tt.size, lat0), lon0 + frac * dlon
    later = t > tt[-1]
    lon[later] += dlon
    keep = (t < at) | later
    ins = _track(vid, tt, tow_lat, tow_lon, [False] * tt.size)
    base = _track(
        vid, t[keep], lat[keep], lon[keep], [g for g, k in zip(ign, keep, strict=True) if k]
    )
    tracks = pa.concat_tables([rest, base, ins])
    # the odometer stands still through the tow: readings stay at the last value
    omine, orest = _split(r.odometer, vid)
    ot = _secs(omine.column("time"))
    okm = omine.column("odometer_km").to_numpy()
    last = okm[ot < at][-1] if (ot < at).any() else okm[0]
    o_ins = pa.table(
        {
            "vehicle_id": pa.array([vid] * tt.size, pa.string()),
            "time": ins.column("time"),
            "odometer_km": pa.array(np.full(tt.size, last)),
        }
    )
    odo = pa.concat_tables([orest, omine.filter(pa.array((ot < at) | (ot > tt[-1]))), o_ins])
    truth = _truth(vid, "tow", "towing", at, "alert")
    return Replay(tracks, odo, [*r.truth, truth])


def inject_rental(r: Replay, vid: str, at: float, donor: pa.Table) -> Replay:
    """From ``at`` on the vehicle's track is another real vehicle's
    (``donor``: its rows on the same days, any vehicle_id), and the
    odometer continues from the last reading by the way from the vehicle's
    last own fix to the donor's first and then the donor's own distance:
    someone else's usage spliced in."""
    mine, rest = _split(r.tracks, vid)
    t = _secs(mine.column("time"))
    dt_ = _secs(donor.column("time"))
    d = donor.filter(pa.array(dt_ >= at)).sort_by("time")
    spliced = _track(
        vid,
        _secs(d.column("time")),
        d.column("lat").to_numpy(),
        d.column("lon").to_numpy(),
        [None] * d.num_rows,
    )
    tracks = pa.concat_tables([rest, mine.filter(pa.array(t < at)), spliced])
    omine, orest = _split(r.odometer, vid)
    ot = _secs(omine.column("time"))
    before = omine.filter(pa.array(ot < at))
    last = float(before.column("odometer_km").to_numpy()[-1]) if before.num_rows else 10_000.0
    # the odometer runs on from the vehicle's own last fix, so the way to
    # where the donor's rows begin is driven too (the straight line across
    # the gap, as for any gap); the first row of that count is the own fix
    own = mine.filter(pa.array(t < at))
    path = pa.concat_tables([own.slice(own.num_rows - 1), spliced]) if own.num_rows else spliced
    donor_odo = odometer_from_track(path, start_km=last)
    if own.num_rows:
        donor_odo = donor_odo.slice(1)
    truth = _truth(vid, "rental", "entropy_increase", at, "alert")
    return Replay(tracks, pa.concat_tables([orest, before, donor_odo]), [*r.truth, truth])
