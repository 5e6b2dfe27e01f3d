"""The monitor on real drive logs, untouched and with injected anomalies.

    python bench/monitor_replay.py [DAYS]

Real vehicles: the two RTKLIB solutions of one real car drive in Boulder,
CO (tests/data/gnss/rtklib_py: demo5 98 % fixed, rtklib-py mostly float,
75 min at 1 Hz, 19.2 km), each thinned to 30 s and replayed twice a day
(at its own time of day and 10 h later) for DAYS days (default 28); the
odometer is synthesized from the track (autolien.monitor.replay). Each
anomaly is injected by autolien.monitor.replay on its own copy of each
vehicle at day 21 (after a full baseline), and again on a 3-day copy (short
history). Prints recall, level and delay per anomaly (detection_quality),
precision per alert kind, and alerts per vehicle-day by level on the
untouched vehicles. docs/monitor.md quotes its output.
"""

from __future__ import annotations

import functools
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

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
    read_rtklib_pos,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "gnss" / "rtklib_py"
LOGS = {"demo5": "demo5_b34f_f.pos", "rtklibpy": "py_0315f.pos"}
START = 1_790_380_800.0  # 2026-09-26T00:00Z, a midnight
OFFSETS = (0.0, 10.0)


def vehicles(days: int) -> dict[str, pa.Table]:
    out = {}
    for name, f in LOGS.items():
        t, lat, lon = read_rtklib_pos(DATA / f)
        out[name] = daily_replay(name, t, lat, lon, days=days, start_day=START, offsets_h=OFFSETS)
    return out


def _rename(tab: pa.Table, vid: str) -> pa.Table:
    return tab.set_column(0, "vehicle_id", pa.array([vid] * tab.num_rows, pa.string()))


def injected(base: dict[str, pa.Table], day: int, days: int) -> Replay:
    """Every anomaly on its own copy of every real vehicle, at ``day``
    (during the first drive of that day, 30 min in, for the track ones)."""
    tracks, odos, truth = [], [], []
    for name, tr in base.items():
        t0 = START + day * 86400
        first = (
            pc.min(
                tr.filter(
                    pc.greater_equal(
                        tr.column("time"), pa.scalar(int(t0 * 1e6), pa.timestamp("us", tz="UTC"))
                    )
                ).column("time")
            )
            .as_py()
            .timestamp()
        )
        at = first + 1800.0
        donor_name = next(n for n in base if n != name)
        # the donor's days shifted 12 h: another vehicle's trips at other hours
        donor = base[donor_name]
        donor = donor.set_column(
            1,
            "time",
            pc.add(donor.column("time").cast(pa.int64()), int(12 * 3600 * 1e6)).cast(
                pa.timestamp("us", tz="UTC")
            ),
        )
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
    base = vehicles(days)
    untouched = pa.concat_tables(list(base.values()))
    quiet = score(untouched, odometer_from_track(untouched))
    vdays = len(base) * days
    out: dict[str, Any] = {
        "vehicles": sorted(base),
        "days": days,
        "untouched_alerts_per_vehicle_day": {
            lvl: round(n / vdays, 4) for lvl, n in sorted(_levels(quiet).items())
        },
        "untouched_alerts": [
            (a["vehicle_id"], a["kind"], a["level"], a["opened"].isoformat())
            for a in quiet.to_pylist()
        ],
    }
    for label, d, total in (("baseline", 21, days), ("short_history", 1, 3)):
        b = base if total == days else vehicles(total)
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
        print(f"{label}: done", file=sys.stderr)
    return out


if __name__ == "__main__":
    print(json.dumps(main(*[int(a) for a in sys.argv[1:2]]), indent=2, default=str))
