"""autolien.gnss.fuse: real logs (rtklib-py against RTKPOST demo5, a u-blox
walk), multi-vehicle grouping and input errors. The kernel itself is checked
against pyproj and FilterPy in test_gnss_core.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolien import _core
from autolien.gnss import TRACK_SCHEMA, FusionConfig, fuse, geofence_events
from autolien.telemetry import decode_nmea
from rtklib_pos import read_pos

DATA = Path(__file__).parent / "data" / "gnss"


def col(t: pa.Table, name: str) -> np.ndarray:
    return t.column(name).to_numpy(zero_copy_only=False).astype(np.float64)


@pytest.fixture(scope="module")
def rtklib_py() -> tuple[pa.Table, pa.Table]:
    return read_pos(DATA / "rtklib_py" / "py_0315f.pos"), read_pos(
        DATA / "rtklib_py" / "demo5_b34f_f.pos"
    )


@pytest.mark.parametrize("smooth", [False, True])
def test_rtklib_py_uncertainty_is_honest(
    rtklib_py: tuple[pa.Table, pa.Table], smooth: bool
) -> None:
    fixes, ref = rtklib_py
    ref = ref.filter(
        pa.compute.equal(ref.column("quality"), 4)
    )  # the reference's fixed epochs only
    where = {t: i for i, t in enumerate(ref.column("time").to_pylist())}
    idx = np.array([where.get(t, -1) for t in fixes.column("time").to_pylist()])
    ok = idx >= 0
    assert ok.sum() > 4000
    origin = (col(ref, "lat")[0], col(ref, "lon")[0], col(ref, "height_m")[0])
    re, rn, _ = _core.geodetic_to_enu(
        *origin, col(ref, "lat"), col(ref, "lon"), col(ref, "height_m")
    )

    def inside_3sigma(table: pa.Table) -> float:
        e, n, _ = _core.geodetic_to_enu(
            *origin, col(table, "lat"), col(table, "lon"), col(table, "height_m")
        )
        de, dn = e[ok] - re[idx[ok]], n[ok] - rn[idx[ok]]
        se, sn = col(table, "sigma_e_m")[ok], col(table, "sigma_n_m")[ok]
        return float(np.mean((np.abs(de) <= 3 * se) & (np.abs(dn) <= 3 * sn)))

    # The raw stream's own sigmas are far too small (the issue: ~80 % outside 3 sigma) ...
    assert inside_3sigma(fixes) < 0.35
    track = fuse(fixes, smooth=smooth).track
    assert track.schema == TRACK_SCHEMA
    # ... the fused track's are honest.
    assert inside_3sigma(track) >= 0.95
    assert track.column("used").to_pylist().count(False) == 0


def test_ubx_walk_fuses_without_rejecting_a_fixed_epoch() -> None:
    fixes = decode_nmea(DATA / "gnss_imu" / "walk_0827_gnss_1730.ubx").table
    track = fuse(fixes, smooth=True).track
    quality = fixes.column("quality").to_pylist()
    assert quality.count(4) > 600
    rejected_fixed = [
        i
        for i, (q, used) in enumerate(zip(quality, track.column("used").to_pylist(), strict=True))
        if q == 4 and not used
    ]
    assert rejected_fixed == []


def synthetic(vehicle: str, n: int, seed: int, start: float) -> pa.Table:
    rng = np.random.default_rng(seed)
    t = start + np.cumsum(rng.uniform(0.25, 30.0, n))
    lat = 31.2 + np.cumsum(rng.normal(0, 2e-5, n))
    lon = 121.4 + np.cumsum(rng.normal(0, 2e-5, n))
    return pa.table(
        {
            "vehicle_id": [vehicle] * n,
            "time": pa.array((t * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
            "lat": lat,
            "lon": lon,
            "altitude_m": rng.normal(20, 1, n),
            "quality": pa.array(rng.choice([1, 2, 4, 5], n), pa.uint8()),
        }
    )


def test_vehicles_in_any_row_order_match_each_vehicle_alone() -> None:
    parts = [synthetic(v, 300, i, 1.7e9 + 50 * i) for i, v in enumerate(["b", "a", "c"])]
    mixed = pa.concat_tables(parts)
    # Interleave the rows by time: each vehicle's own order is kept.
    mixed = mixed.take(pa.array(np.argsort(mixed.column("time").to_numpy(), kind="stable")))
    track = fuse(mixed).track
    for part in parts:
        v = part.column("vehicle_id")[0].as_py()
        got = track.filter(pa.compute.equal(track.column("vehicle_id"), v))
        alone = fuse(part.drop_columns(["vehicle_id"])).track
        assert got.column("time").equals(alone.column("time"))
        for name in ("lat", "lon", "height_m", "sigma_e_m", "ve_mps"):
            np.testing.assert_array_equal(col(got, name), col(alone, name))
        assert got.column("reason").equals(alone.column("reason"))


def test_input_errors() -> None:
    good = synthetic("a", 20, 0, 1.7e9)
    with pytest.raises(TypeError):
        fuse(good.to_pydict())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'lat'"):
        fuse(good.drop_columns(["lat"]))
    with pytest.raises(ValueError, match="backwards"):
        fuse(good.take(pa.array(np.arange(19, -1, -1))))
    with pytest.raises(TypeError, match="timestamp"):
        fuse(good.set_column(1, "time", pa.array(np.arange(20.0))))
    ids = pa.array(["a"] * 10 + [None] * 10, pa.string())
    with pytest.raises(ValueError, match="null"):
        fuse(good.set_column(0, "vehicle_id", ids))
    with pytest.raises(ValueError, match="config"):
        fuse(good, config=FusionConfig(floor_m=[1.0]))
    with pytest.raises(ValueError, match="range"):
        fuse(good, config=FusionConfig(accel_psd=-1.0))
    assert fuse(good.slice(0, 0)).track.num_rows == 0


def test_rtklib_py_parked_position_matches_reference(rtklib_py: tuple[pa.Table, pa.Table]) -> None:
    fixes, ref = rtklib_py
    ref = ref.filter(pa.compute.equal(ref.column("quality"), 4))
    result = fuse(fixes)
    parked = result.parked
    # The car stands still for the first ~43 minutes (58 % of the epochs by the SOURCES note).
    assert parked.num_rows == 1
    assert parked.column("n_fixes")[0].as_py() >= 0.55 * fixes.num_rows
    origin = (col(ref, "lat")[0], col(ref, "lon")[0], col(ref, "height_m")[0])
    re, rn, _ = _core.geodetic_to_enu(
        *origin, col(ref, "lat"), col(ref, "lon"), col(ref, "height_m")
    )
    rt = ref.column("time").cast(pa.int64()).to_numpy()
    start, end = (parked.column(c).cast(pa.int64()).to_numpy()[0] for c in ("start", "end"))
    span = (rt >= start) & (rt <= end)
    # The reference itself is still over the episode ...
    assert np.hypot(re[span] - re[span].mean(), rn[span] - rn[span].mean()).max() < 0.03
    pe, pn, _ = _core.geodetic_to_enu(
        *origin, col(parked, "lat"), col(parked, "lon"), col(parked, "height_m")
    )
    # ... and the mostly-float input's parked estimate agrees with its mean within 3 cm.
    err = np.hypot(pe[0] - re[span].mean(), pn[0] - rn[span].mean())
    assert err < 0.03
    assert err <= 3 * np.hypot(
        parked.column("sigma_e_m")[0].as_py(), parked.column("sigma_n_m")[0].as_py()
    )
    # The one move is the drive away at the episode's end (no speed data: unexplained), metres away.
    events = result.events
    assert events.column("kind").to_pylist() == ["unexplained"]
    assert events.column("evidence_start")[0].as_py() > parked.column("end")[0].as_py()
    assert events.column("distance_m")[0].as_py() > 1.0


def still_then(
    rng: np.random.Generator, segments: list[tuple[str, float, float, float]]
) -> tuple[pa.Table, list[int]]:
    """A 1 Hz fix stream built from (kind, seconds, speed m/s, reported km/h) segments.

    "park" holds still with RTK float noise (a bias drifting over minutes plus
    white noise) and fixed epochs; "move" heads north at the given speed; "gap"
    is a silence, after which the car reappears `speed` metres north. Returns
    the table and the rows of injected multipath outliers.
    """
    t, north, quality, kmh, outliers = [], [], [], [], []
    now, pos, bias = 0.0, 0.0, 0.0
    for kind, seconds, speed, reported in segments:
        if kind == "gap":
            now += seconds
            pos += speed
            continue
        for _ in range(int(seconds)):
            now += 1.0
            if kind == "move":
                pos += speed
            fixed = rng.random() < 0.4
            bias = 0.995 * bias + rng.normal(0, 0.01)
            noise = rng.normal(0, 0.01) if fixed else bias + rng.normal(0, 0.05)
            if kind == "park" and rng.random() < 0.004:
                noise += rng.choice([-1, 1]) * rng.uniform(3, 8)  # a multipath spike
                outliers.append(len(t))
            t.append(now)
            north.append(pos + noise)
            quality.append(4 if fixed else 5)
            kmh.append(reported)
    n = len(t)
    north_arr = np.array(north)
    return (
        pa.table(
            {
                "vehicle_id": ["tow-1"] * n,
                "time": pa.array((1.76e9 + np.array(t)) * 1e6, pa.int64()).cast(
                    pa.timestamp("us", tz="UTC")
                ),
                "lat": 31.2 + north_arr / 110_900.0,
                "lon": np.full(n, 121.4),
                "height_m": np.full(n, 12.0) + rng.normal(0, 0.03, n),
                "quality": pa.array(quality, pa.uint8()),
                "speed_kmh": kmh,
            }
        ),
        outliers,
    )


def test_synthetic_still_data_outliers_caught_no_false_moves() -> None:
    table, outliers = still_then(np.random.default_rng(3), [("park", 7200, 0, 0)])
    result = fuse(table)
    assert len(outliers) > 10
    reasons = result.track.column("reason").to_pylist()
    assert all(reasons[i] == "gated" for i in outliers)
    assert result.parked.num_rows == 1
    assert result.parked.column("n_fixes")[0].as_py() == table.num_rows - len(outliers)
    assert result.events.num_rows == 0


@pytest.mark.parametrize(
    ("middle", "kind"),
    [
        (("move", 120, 1.5, 0.0), "displacement"),  # towed: the odometer says 0 km/h
        (("move", 120, 8.0, 29.0), "departure"),  # driven away
        (("gap", 3600, 500.0, 0.0), "relocated_offline"),  # silent for an hour, 500 m away
    ],
)
def test_synthetic_moves_while_parked(middle: tuple[str, float, float, float], kind: str) -> None:
    segments = [("park", 1800, 0, 0), middle, ("park", 1800, 0, 0)]
    table, outliers = still_then(np.random.default_rng(5), segments)
    if kind == "relocated_offline":
        table = table.drop_columns(["speed_kmh"])  # the terminal was off: no speed either
    result = fuse(table)
    assert len(outliers) > 0
    # Multipath spikes stay out of the episodes (which may take in the last
    # fix or two of the move, already at the new place).
    assert sum(result.parked.column("n_fixes").to_pylist()) <= 3600 - len(outliers) + 2
    assert result.parked.num_rows == 2
    events = result.events
    assert events.column("kind").to_pylist() == [kind]
    row = events.column("evidence_first_row")[0].as_py()
    # The evidence starts where the move does, within the confirmation fixes.
    assert 1800 - 1 <= row <= 1800 + 5
    assert events.column("distance_m")[0].as_py() > 10 * events.column("sigma_m")[0].as_py()


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-200, 200),
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(0, 10**6),  # time step, ms
            finite_or_not,
            finite_or_not,
            finite_or_not,
            st.one_of(st.none(), st.integers(0, 255)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=60,
    ),
    smooth=st.booleans(),
)
def test_fuse_and_fences_survive_any_values(rows: list[tuple], smooth: bool) -> None:  # type: ignore[type-arg]
    """Garbage in (NaN, inf, off-globe, unknown quality, negative sigma) never
    crashes: every row comes back, rejected ones flagged, no NaN where used."""
    times = np.cumsum([r[1] for r in rows]).astype(np.int64) * 1000
    table = pa.table(
        {
            "vehicle_id": [r[0] for r in rows],
            "time": pa.array(times, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "lat": [r[2] for r in rows],
            "lon": [r[3] for r in rows],
            "height_m": [r[4] for r in rows],
            "quality": pa.array([r[5] for r in rows], pa.uint8()),
            "sigma_e_m": pa.array([r[6] for r in rows], pa.float64()),
            "speed_kmh": pa.array([r[7] for r in rows], pa.float64()),
        }
    )
    result = fuse(table, smooth=smooth)
    track = result.track
    assert track.num_rows == len(rows)
    used = np.array(track.column("used").to_pylist(), dtype=bool)
    lat = col(track, "lat")
    assert np.isfinite(lat[used]).all()
    assert (np.abs(lat[used]) <= 90).all()
    square = pa.table(
        {
            "fence_id": ["f"],
            "kind": ["forbidden"],
            "lon": [[0.0, 1.0, 1.0, 0.0]],
            "lat": [[0.0, 0.0, 1.0, 1.0]],
        }
    )
    events = geofence_events(track, square)
    assert set(events.column("event").to_pylist()) <= {"enter", "exit"}


def test_cli_fuse_store_matches_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from autolien.cli import main
    from autolien.telemetry import Store

    ubx = DATA / "gnss_imu" / "walk_0827_gnss_1730.ubx"
    db = str(tmp_path / "t.duckdb")
    assert main(["ingest", str(ubx), "--db", db, "--quiet", "--json"]) == 0
    capsys.readouterr()
    assert main(["fuse", "--db", db, "--quiet", "--json", "--batch", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    direct = fuse(decode_nmea(ubx).table).track
    assert report["vehicles"] == 1
    assert report["fixes"] + report["skipped_without_time"] == direct.num_rows
    with Store(db, read_only=True) as store:
        stored = store.query("SELECT * FROM gnss_track ORDER BY row")
    assert stored.num_rows == report["fixes"]
    # the same filter, value for value, as the API over every decoded column
    # of the rows with a time (the store reads only the columns it needs)
    table = decode_nmea(ubx).table
    timed = fuse(table.filter(pc.is_valid(table.column("time")))).track
    for col in ("lat", "lon", "height_m", "sigma_n_m", "sigma_e_m", "sigma_u_m", "reason", "used"):
        assert stored.column(col).equals(timed.column(col)), col
    assert sorted(report["reasons"].items()) == sorted(
        {
            r: stored.column("reason").to_pylist().count(r)
            for r in set(stored.column("reason").to_pylist())
        }.items()
    )
    # An empty store is a clear error, not a crash.
    assert main(["fuse", "--db", str(tmp_path / "empty.duckdb"), "--quiet"]) == 2
