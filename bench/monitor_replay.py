"""The monitor on real drive logs, untouched and with injected anomalies.

    python bench/monitor_replay.py [DAYS]

Real vehicles (tests/data/SOURCES.md), each thinned to 30 s and replayed
twice a day for DAYS days (default 28):

* ``demo5``, ``rtklibpy``: the two RTKLIB solutions of one real car drive in
  Boulder, CO, 2020 (tests/data/gnss/rtklib_py: 75 min at 1 Hz, 19.2 km), at
  their own time of day and 10 h later;
* ``x20``: a u-blox X20 on a car roof near Boulder, 2025 (rtklibexplorer
  GNSS_IMU drive_0708: a 9 min loop), likewise;
* ``denver1-3``: three NREL GPS traces in Denver (the mappymatch package's
  samples: 1 Hz, no times; 12.6, 5.8 and 20.8 km one way), out at 07:00 MST
  and back the same way 10 h later.

Each set runs twice: as logged (fixes only while driving, like a terminal
that sleeps while parked) and with an hourly parked heartbeat (a T-Box that
reports while parked). The odometer is synthesized from the track
(autolien.monitor.replay). Each anomaly is injected by
autolien.monitor.replay on its own copy of each vehicle at day 21 (after a
full baseline), and again on a 3-day copy (short history); the rental
donor is a vehicle of the other city. Prints recall, level and delay per
anomaly (detection_quality), precision per alert kind, and alerts per
vehicle-day by level and kind on the untouched vehicles. docs/monitor.md
quotes its output.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    read_latlon_csv,
    read_rtklib_pos,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
POS = {
    "demo5": "gnss/rtklib_py/demo5_b34f_f.pos",
    "rtklibpy": "gnss/rtklib_py/py_0315f.pos",
    "x20": "tracks/drive_0708_gnss_1934_sf_1hz.pos",
}
CSV = {f"denver{i}": f"tracks/mappymatch_denver_trace_{i}.csv" for i in (1, 2, 3)}
START = 1_790_380_800.0  # 2026-09-26T00:00Z, a midnight
OFFSETS = (0.0, 10.0)
# each vehicle's rental donor drives in the other city
DONOR = {
    "demo5": "denver1",
    "rtklibpy": "denver2",
    "x20": "denver3",
    "denver1": "demo5",
    "denver2": "rtklibpy",
    "denver3": "x20",
}


def vehicles(days: int, heartbeat_s: float | None = None) -> dict[str, pa.Table]:
    out = {}
    kw: dict[str, Any] = {"days": days, "start_day": START, "offsets_h": OFFSETS}
    for name, f in POS.items():
        t, lat, lon = read_rtklib_pos(DATA / f)
        out[name] = daily_replay(name, t, lat, lon, heartbeat_s=heartbeat_s, **kw)
    for name, f in CSV.items():
        t, lat, lon = read_latlon_csv(DATA / f, every_s=1.0)  # NREL traces: 1 Hz
        out[name] = daily_replay(
            name, t, lat, lon, start_s=14 * 3600.0, return_trip=True, heartbeat_s=heartbeat_s, **kw
        )
    return out


def _rename(tab: pa.Table, vid: str) -> pa.Table:
    return tab.set_column(0, "vehicle_id", pa.array([vid] * tab.num_rows, pa.string()))


def _trip_start(tr: pa.Table, t0: float) -> float:
    """``at`` for the injections: 30 min into the first trip from ``t0`` (the
    middle of a shorter one); a trip ends at a gap of over 10 min or at the
    first parked fix."""
    moving = tr.filter(pc.invert(pc.fill_null(pc.equal(tr.column("ignition"), False), False)))
    t = moving.column("time").cast(pa.int64()).to_numpy() / 1e6
    t = np.sort(t[t >= t0])
    gaps = np.flatnonzero(np.diff(t) > 600.0)
    end = t[gaps[0]] if gaps.size else t[-1]
    return float(t[0] + min(1800.0, (end - t[0]) / 2))


def injected(base: dict[str, pa.Table], day: int, days: int) -> Replay:
    """Every anomaly on its own copy of every real vehicle, at ``day``
    (during the first trip of that day, 30 min in, or in its middle)."""
    tracks, odos, truth = [], [], []
    for name, tr in base.items():
        at = _trip_start(tr, START + day * 86400)
        donor = base[DONOR[name]]
        for kind, fn in (
            ("odometer_jump", inject_odometer_jump),
            ("rollback", inject_rollback),
            ("relocation", inject_relocation),
            ("silence", inject_silence),
            ("tow", inject_tow),
            ("rental", functools.partial(inject_rental, donor=donor)),
        ):
            vid = f"{name}/{kind}"
            tr_v = _rename(tr, vid)
            r = fn(Replay(tr_v, odometer_from_track(tr_v), []), vid, at)
            tracks.append(r.tracks)
            odos.append(r.odometer)
            truth += r.truth
    return Replay(pa.concat_tables(tracks), pa.concat_tables(odos), truth)


def _levels(alerts: pa.Table) -> Counter[str]:
    return Counter(alerts.column("level").to_pylist())


def main(days: int = 28) -> dict[str, Any]:
    return {
        "as_logged": run(days, None),
        "hourly_heartbeat": run(days, 3600.0),
    }


def run(days: int, heartbeat_s: float | None) -> dict[str, Any]:
    base = vehicles(days, heartbeat_s)
    untouched = pa.concat_tables(list(base.values()))
    quiet = score(untouched, odometer_from_track(untouched))
    vdays = len(base) * days
    first_days = quiet.filter(
        pc.less(
            quiet.column("opened"),
            pa.scalar(int((START + 8 * 86400) * 1e6), pa.timestamp("us", tz="UTC")),
        )
    )
    out: dict[str, Any] = {
        "vehicles": sorted(base),
        "days": days,
        "heartbeat_s": heartbeat_s,
        "untouched_alerts_per_vehicle_day": {
            lvl: round(n / vdays, 4) for lvl, n in sorted(_levels(quiet).items())
        },
        "untouched_by_kind_level": dict(
            Counter(f"{a['kind']}/{a['level']}" for a in quiet.to_pylist())
        ),
        "untouched_in_first_8_days": first_days.num_rows,
        "untouched_alerts": [
            (a["vehicle_id"], a["kind"], a["level"], a["opened"].isoformat())
            for a in quiet.to_pylist()
        ],
    }
    for label, d, total in (("baseline", 21, days), ("short_history", 1, 3)):
        b = base if total == days else vehicles(total, heartbeat_s)
        r = injected(b, d, total)
        alerts = score(r.tracks, r.odometer)
        first = dict.fromkeys(pc.unique(r.tracks.column("vehicle_id")).to_pylist(), START)
        q = detection_quality(
            alerts,
            r.truth_table(),
            eval_start=START + d * 86400,
            first_seen=first,
        )
        for v in q["anomalies"].values():
            v.pop("delays_h")
        out[label] = {
            "anomalies": q["anomalies"],
            "alert_kinds": q["alert_kinds"],
            "alerts_by_level": dict(_levels(alerts)),
        }
        print(f"{label} (heartbeat {heartbeat_s}): done", file=sys.stderr)
    return out


if __name__ == "__main__":
    print(json.dumps(main(*[int(a) for a in sys.argv[1:2]]), indent=2, default=str))
