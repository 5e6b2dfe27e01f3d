"""What real tracks showed (issue 23): single-fix GPS spikes, repeated glitches,
habitual off-shift gaps and zones west of UTC, each on a hand-built track
with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from autolien.monitor import Monitor, MonitorConfig, score
from autolien.monitor.features import local_hour

T0 = 1_790_784_000.0  # 2026-09-30T16:00Z


def _table(vid: str, t: np.ndarray, **cols: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "vehicle_id": pa.array([vid] * t.size),
            "time": pa.array((t * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            **{k: pa.array(v) for k, v in cols.items()},
        }
    )


def _parked(n: int, step: float = 60.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = T0 + np.arange(n) * step
    return t, np.full(n, 31.2), np.full(n, 121.4)


@pytest.mark.parametrize("km", [52, 84, 132, 1396])
def test_a_single_fix_spike_that_comes_back_is_no_jump(km: float) -> None:
    t, lat, lon = _parked(600)
    lon[300] += km / 95.0  # ~95 km per degree of longitude at 31.2 N
    assert score(_table("s", t, lat=lat, lon=lon)).num_rows == 0


def test_a_two_fix_glitch_is_no_jump_but_a_move_that_stays_is() -> None:
    t, lat, lon = _parked(600)
    lon[300:302] += 0.3  # two bad fixes ~28 km away, then back
    assert score(_table("g", t, lat=lat, lon=lon)).num_rows == 0
    lon[400:] += 0.6  # carried off ~57 km and stays there
    (a,) = score(_table("g", t, lat=lat, lon=lon)).to_pylist()
    assert (a["kind"], a["level"]) == ("position_jump", "alert")
    ev = json.loads(a["evidence"])
    assert ev["to"] == [31.2, pytest.approx(122.0)]
    # signalled at the second fix after the jump, which confirms it
    assert a["opened"].timestamp() == pytest.approx(t[402])
    assert ev["confirmed_by_fixes"] == 2


def test_repeated_small_jumps_do_not_escalate() -> None:
    # a real move of ~3-20 km between standstills every 2 h for two days: each
    # is a warning-size jump; persistence must not raise the alert
    n = 48 * 60
    t, lat, lon = _parked(n)
    for k, h in enumerate(range(2, 48, 2)):
        lon[h * 60 :] += (0.04 + 0.17 * (k % 2)) * (-1) ** k
    speed = np.zeros(n)
    (a,) = score(_table("r", t, lat=lat, lon=lon, speed_kmh=speed)).to_pylist()
    assert a["kind"] == "position_jump"
    assert a["n_signals"] == 23
    assert a["level"] == "warning"


def _shift_track(days: int, off_h: float, extra_gap: tuple[int, float] | None = None) -> pa.Table:
    """A taxi: reports every 5 min for 24 - off_h hours a day, then is silent
    off_h hours; ``extra_gap`` = (day, hours) replaces that day's gap."""
    ts = []
    for d in range(days):
        on = 24 - off_h
        if extra_gap and d == extra_gap[0]:
            on = 24 - extra_gap[1]
        if on > 0:
            ts.append(T0 + d * 86400 + np.arange(0, on * 3600, 300.0))
    t = np.concatenate(ts)
    return _table("taxi", t, lat=np.full(t.size, 31.2), lon=np.full(t.size, 121.4))


def test_silence_thresholds_learn_a_vehicles_off_shift_gaps() -> None:
    # 10 h off every night: the first three nights warn (too little learnt), then
    # the ladder moves to 1.25 x 10 h and the habit raises nothing
    alerts = score(_shift_track(20, 10.0)).to_pylist()
    assert {a["kind"] for a in alerts} == {"device_silence"}
    assert len(alerts) == 3  # the first three gaps, before three are learnt
    assert all(a["level"] == "warning" for a in alerts)
    assert max(a["opened"].timestamp() for a in alerts) < T0 + 3 * 86400


def test_a_silence_far_beyond_the_habit_still_escalates() -> None:
    # 10 h habit; on day 14 the device stays silent 60 h in place of 10 h
    track = _shift_track(20, 10.0, extra_gap=(14, 24.0))
    t = track.column("time").cast(pa.int64()).to_numpy() / 1e6
    gap_start = t[t < T0 + 15 * 86400].max()
    keep = (t <= gap_start) | (t >= gap_start + 60 * 3600)
    alerts = score(track.filter(pa.array(keep))).to_pylist()
    late = [a for a in alerts if a["opened"].timestamp() > gap_start]
    (a,) = late
    assert a["level"] == "alert"
    ev = json.loads(a["evidence"])
    # each nightly gap is 10 h plus the 5 min step; the warning waits 1.25 x
    # that, the alert 18 h more (the default spacing of 6 h and 24 h)
    habit = 10 + 5 / 60
    assert ev["threshold_h"] == pytest.approx(1.25 * habit + 18.0)
    assert a["opened"].timestamp() == pytest.approx(gap_start + 1.25 * habit * 3600)


def test_streaming_learns_the_same_thresholds() -> None:
    track = _shift_track(12, 10.0)
    batch = score(track)
    m = Monitor()
    t = track.column("time").cast(pa.int64()).to_numpy() / 1e6
    for lo in np.arange(T0, t.max() + 1, 7 * 3600.0):
        m.update(track.filter(pa.array((t >= lo) & (t < lo + 7 * 3600))))
    assert m.alerts().equals(batch)


def test_zones_west_of_utc_and_iana_names() -> None:
    t = np.array([T0, T0 + 5 * 3600.0])  # 16:00Z and 21:00Z on 2026-09-30
    assert list(local_hour(t, MonitorConfig(tz_offset_h=-5.0))) == [11.0, 16.0]
    assert list(local_hour(t, MonitorConfig(tz_offset_h=-9.5))) == [6.0, 11.0]
    # Chicago is on daylight time (UTC-5) on 30 September, standard (UTC-6) in December
    assert list(local_hour(t, MonitorConfig(tz="America/Chicago"))) == [11.0, 16.0]
    dec = np.array([T0 + 70 * 86400])
    assert list(local_hour(dec, MonitorConfig(tz="America/Chicago"))) == [10.0]
    with pytest.raises(ValueError, match="IANA"):
        MonitorConfig(tz="Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="tz_offset_h"):
        MonitorConfig(tz_offset_h=-13.0)
    with pytest.raises(ValueError, match="cooldown_h"):
        MonitorConfig(cooldown_h=-1.0)
