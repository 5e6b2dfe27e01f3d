"""Batch scoring and the streaming monitor over Arrow tables."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._tables import seconds
from ..schemas import ALERTS_SCHEMA, LEVELS, REJECTS_SCHEMA, TIME_TYPE
from .config import MonitorConfig
from .engine import FEATURE_BANDS, HOURLY_FEATURES, Alert, Vehicle, advance_block
from .features import HOUR

__all__ = ["ALERTS_SCHEMA", "REJECTS_SCHEMA", "Monitor", "score"]


_LATE = "late: its hour was already scored"
# vehicles derived per core call: large enough that the per-call costs vanish,
# small enough that a block's derived columns stay a few times its buffers
BLOCK = 256


def _ts(x: float | None) -> Any:
    return None if x is None or math.isnan(x) else round(x * 1e6)


def _split(
    table: pa.Table, vehicle_column: str, cols: dict[str, str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows per vehicle in time order: (vehicle_id, {name: numpy array})."""
    if vehicle_column not in table.column_names:
        raise ValueError(f"table has no {vehicle_column!r} column")
    vid = table.column(vehicle_column).cast(pa.string())
    if vid.null_count:
        raise ValueError(f"{vehicle_column!r} has {vid.null_count} null values")
    t = seconds(table)
    enc = pc.dictionary_encode(vid).combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((t, codes))
    codes = codes[order]
    arrays = {"t": t[order]}
    for name, col in cols.items():
        a = table.column(col).cast(pa.float64()).to_numpy(zero_copy_only=False) if col else None
        arrays[name] = a[order] if a is not None else np.full(order.size, np.nan)
    bounds = (
        np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
        if codes.size
        else np.zeros(1, np.int64)
    )
    names = enc.dictionary.to_pylist()
    for i in range(bounds.size - 1):
        a, b = bounds[i], bounds[i + 1]
        yield names[codes[a]], {k: v[a:b] for k, v in arrays.items()}


class Monitor:
    """Streaming monitor: ``update`` takes the next time slice of tracks,
    odometer readings and GB/T 32960 VIN reports and returns the alerts it
    opened, escalated or closed. Per-vehicle state (a bounded buffer,
    baselines, CUSUM and open alerts) carries between calls, so the alerts
    equal those of one ``score`` call over the same rows.

    Rows older than an hour the monitor has already scored for their vehicle
    are rejected (``rejects``), not silently merged."""

    def __init__(
        self, config: MonitorConfig | None = None, *, vehicle_column: str = "vehicle_id"
    ) -> None:
        self.config = config or MonitorConfig()
        self.vehicle_column = vehicle_column
        self.now: float | None = None
        self._vehicles: dict[str, Vehicle] = {}
        self._rejects: list[tuple[str, str | None, float | None, str]] = []

    def _vehicle(self, vid: str) -> Vehicle:
        v = self._vehicles.get(vid)
        if v is None:
            v = self._vehicles[vid] = Vehicle(vid, self.config)
        return v

    def _is_late(self, vid: str | None, t: float) -> bool:
        v = self._vehicles.get(vid) if vid is not None else None
        return v is not None and v.h_done is not None and t < v.h_done * HOUR

    def _accept(
        self, source: str, vid: str, arrays: dict[str, Any], bad: np.ndarray, reason: str
    ) -> dict[str, Any]:
        """The rows to keep: ``bad`` rows, then late ones, go to the rejects."""
        v = self._vehicles.get(vid)
        cut = v.h_done * HOUR if v is not None and v.h_done is not None else -math.inf
        late = ~bad & (arrays["t"] < cut)
        for t in arrays["t"][bad]:
            self._rejects.append((source, vid, float(t), reason))
        for t in arrays["t"][late]:
            self._rejects.append((source, vid, float(t), _LATE))
        keep = ~(bad | late)
        return arrays if keep.all() else {k: a[keep] for k, a in arrays.items()}

    def update(
        self,
        tracks: pa.Table | None = None,
        odometer: pa.Table | None = None,
        vins: pa.Table | None = None,
        *,
        now: Any = None,
        vehicles: Collection[str] | None = None,
    ) -> pa.Table:
        """Scores the rows of this slice up to ``now`` (default: its newest
        row). ``vehicles`` limits the scoring to those vehicles (and any that
        first appear here): a caller that feeds the fleet in vehicle batches
        under one clock advances each vehicle only with its own batch."""
        per: dict[str, dict[str, Any]] = {}
        latest = -math.inf
        if tracks is not None and tracks.num_rows:
            tracks = _usable(tracks)
            cols = {
                "lat": "lat",
                "lon": "lon",
                "speed": "speed_kmh" if "speed_kmh" in tracks.column_names else "",
                # the terminal's ACC bit; null or absent: unknown
                "ignition": "ignition" if "ignition" in tracks.column_names else "",
            }
            for vid, arr in _split(tracks, self.vehicle_column, cols):
                latest = max(latest, float(arr["t"][-1]))
                bad = np.isnan(arr["lat"]) | np.isnan(arr["lon"])
                per.setdefault(vid, {})["track"] = self._accept(
                    "track", vid, arr, bad, "missing lat/lon"
                )
        if odometer is not None and odometer.num_rows:
            col = next(
                (c for c in ("odometer_km", "mileage_km") if c in odometer.column_names), None
            )
            if col is None:
                raise ValueError("odometer table needs an 'odometer_km' or 'mileage_km' column")
            for vid, arr in _split(odometer, self.vehicle_column, {"km": col}):
                latest = max(latest, float(arr["t"][-1]))
                bad = np.isnan(arr["km"])
                per.setdefault(vid, {})["odo"] = self._accept(
                    "odometer", vid, arr, bad, f"null {col}"
                )
        if vins is not None and vins.num_rows:
            t = seconds(vins)
            ids = vins.column(self.vehicle_column).cast(pa.string()).to_pylist()
            vv = vins.column("vin").cast(pa.string()).to_pylist()
            for i in np.argsort(t, kind="stable"):
                latest = max(latest, float(t[i]))
                if ids[i] is None or vv[i] is None:
                    self._rejects.append(("vin", ids[i], float(t[i]), "null vehicle_id or vin"))
                    continue
                if self._is_late(ids[i], float(t[i])):
                    self._rejects.append(("vin", ids[i], float(t[i]), _LATE))
                    continue
                per.setdefault(ids[i], {}).setdefault("vins", []).append((float(t[i]), vv[i]))
        clock = _clock(now) if now is not None else latest
        if self.now is not None:
            if now is not None and clock < self.now:
                raise ValueError("now must not go back between updates")
            clock = max(clock, self.now)
        if not math.isfinite(clock):
            return _alerts_table([])
        self.now = clock
        h_end = math.floor(clock / HOUR)
        changed: dict[str, Alert] = {}
        known = (
            list(self._vehicles)
            if vehicles is None
            else [v for v in vehicles if v in self._vehicles]
        )
        order = known + [v for v in per if v not in self._vehicles]
        # Vehicles are independent: each takes its rows and its silence
        # signals, then the due ones are derived and scored BLOCK at a time
        # (a core call each), then each applies its signals in turn, in the
        # same order.
        for i in range(0, len(order), BLOCK):
            part = []
            for vid in order[i : i + BLOCK]:
                veh = self._vehicle(vid)
                new = per.get(vid, {})
                signals = veh.add(new.get("track"), new.get("odo"), new.get("vins"))
                signals += veh.silence_until(clock)
                part.append((veh, signals, veh.h_done))
            due = [veh for veh, _, _ in part if veh.due(h_end)]
            scored = dict(zip(map(id, due), advance_block(due, h_end), strict=True))
            for veh, early, h_a in part:
                signals = early + scored.get(id(veh), [])
                ends = [float((h + 1) * HOUR) for h in range(h_a, h_end)] if h_a is not None else []
                signals.sort(key=lambda s: s.time)
                veh.apply(signals, ends, changed)
        return _alerts_table(list(changed.values()))

    def alerts(self) -> pa.Table:
        """Every alert so far, open and closed, ordered by vehicle and opening time."""
        rows = [a for v in self._vehicles.values() for a in (*v.closed, *v.open.values())]
        rows.sort(key=lambda a: (a.vehicle_id, a.opened, a.kind))
        return _alerts_table(rows)

    def features(self) -> pa.Table:
        """The hourly feature rows scored so far (one row per vehicle-hour)."""
        # columns joined across vehicles first, then one table: a table per
        # vehicle cost more than the rows did
        chunks = [
            (vid, rows)
            for vid, v in self._vehicles.items()
            for rows in v.feature_rows
            if rows["hour"].size
        ]
        if not chunks:
            # every column, as scored hours have them: a store's table created
            # from no hours takes later runs' hours
            floats = ("km_track", *HOURLY_FEATURES, *FEATURE_BANDS)
            return pa.table(
                {
                    "vehicle_id": pa.array([], pa.string()),
                    "hour": pa.array([], TIME_TYPE),
                    "n_fixes": pa.array([], pa.int64()),
                    **{f: pa.array([], pa.float64()) for f in floats},
                }
            )
        names = list(chunks[0][1])
        if any(list(rows) != names for _, rows in chunks):
            raise ValueError("feature rows of one monitor must have the same columns")
        sizes = [rows["hour"].size for _, rows in chunks]
        vids = pa.array([vid for vid, _ in chunks], pa.string())
        hour = np.concatenate([rows["hour"] for _, rows in chunks])
        cols: dict[str, Any] = {
            "vehicle_id": vids.take(pa.array(np.repeat(np.arange(len(chunks)), sizes))),
            "hour": pa.array(hour * HOUR * 1_000_000, pa.int64()).cast(TIME_TYPE),
        }
        for k in names:
            if k != "hour":
                cols[k] = pa.array(np.concatenate([rows[k] for _, rows in chunks]))
        return pa.table(cols).sort_by([("vehicle_id", "ascending"), ("hour", "ascending")])

    # -- state as Arrow ----------------------------------------------------
    def state_table(self) -> pa.Table:
        """Every vehicle's state, one row each, keyed by ``vehicle_id``
        (``monitor.state``): any monitor with the same config resumes any of
        them with ``load_state``. Feature rows already handed out are not
        state."""
        from .state import vehicle_table  # noqa: PLC0415

        return vehicle_table(list(self._vehicles.values()))

    def load_state(self, table: pa.Table | None) -> None:
        """Adds (or replaces) the vehicles saved in ``table``."""
        from .state import load_vehicles  # noqa: PLC0415

        if table is None:
            return
        for v in load_vehicles(table, self.config):
            self._vehicles[v.id] = v

    def release(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        """Hands out and forgets what a block of vehicles produced: their
        state, the feature hours scored since the last release, and the
        rejects; the monitor keeps its clock and nothing else, so the next
        block starts empty."""
        state, features, rejects = self.state_table(), self.features(), self.rejects
        self._vehicles = {}
        self._rejects = []
        return state, features, rejects

    def drain_features(self) -> pa.Table:
        """The feature hours scored since the last call, which the monitor then forgets."""
        out = self.features()
        for v in self._vehicles.values():
            v.feature_rows = []
        return out

    def drain_rejects(self) -> pa.Table:
        """The rows set aside since the last call, which the monitor then
        forgets (a long-running caller stores or counts them)."""
        out = self.rejects
        self._rejects = []
        return out

    @property
    def rejects(self) -> pa.Table:
        """Rows set aside, with their reason (late, missing position or reading)."""
        src, vid, t, why = zip(*self._rejects, strict=True) if self._rejects else ((), (), (), ())
        return pa.table(
            {
                "source": pa.array(src, pa.string()),
                "vehicle_id": pa.array(vid, pa.string()),
                "time": pa.array([_ts(x) for x in t], pa.int64()).cast(TIME_TYPE),
                "reason": pa.array(why, pa.string()),
            },
            schema=REJECTS_SCHEMA,
        )


def score(
    tracks: pa.Table | None,
    odometer: pa.Table | None = None,
    *,
    vins: pa.Table | None = None,
    config: MonitorConfig | None = None,
    now: Any = None,
    vehicle_column: str = "vehicle_id",
) -> pa.Table:
    """Alerts for a whole period in one call: the batch form of Monitor."""
    m = Monitor(config, vehicle_column=vehicle_column)
    m.update(tracks, odometer, vins, now=now)
    return m.alerts()


def _clock(now: Any) -> float:
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        return float(now)
    arr = pa.array([now]).cast(TIME_TYPE)
    return float(arr.cast(pa.int64())[0].as_py()) / 1e6


def _usable(tracks: pa.Table) -> pa.Table:
    # Fused tracks flag rejected fixes (only used ones describe the path) and
    # carry ENU velocity instead of a speed column.
    if "used" in tracks.column_names:
        tracks = tracks.filter(pc.fill_null(tracks.column("used"), False))
    if "speed_kmh" not in tracks.column_names and {"ve_mps", "vn_mps"} <= set(tracks.column_names):
        ve = tracks.column("ve_mps").to_numpy(zero_copy_only=False)
        vn = tracks.column("vn_mps").to_numpy(zero_copy_only=False)
        tracks = tracks.append_column("speed_kmh", pa.array(np.hypot(ve, vn) * 3.6))
    return tracks


def _alerts_table(alerts: list[Alert]) -> pa.Table:
    cols: dict[str, list[Any]] = {f.name: [] for f in ALERTS_SCHEMA}
    for a in alerts:
        cols["alert_id"].append(a.alert_id)
        cols["vehicle_id"].append(a.vehicle_id)
        cols["kind"].append(a.kind)
        cols["level"].append(LEVELS[a.level])
        cols["level_code"].append(a.level)
        cols["score"].append(float(a.score))
        cols["opened"].append(_ts(a.opened))
        cols["updated"].append(_ts(a.updated))
        cols["closed"].append(_ts(a.closed))
        cols["first_signal"].append(_ts(a.first_signal))
        cols["last_signal"].append(_ts(a.last_signal))
        cols["n_signals"].append(a.n_signals)
        cols["segment_start"].append(_ts(a.segment[0]))
        cols["segment_end"].append(_ts(a.segment[1]))
        cols["evidence"].append(a.evidence_json())
        if a.path is None:
            cols["path"].append(None)
        else:
            t, lat, lon = a.path
            cols["path"].append(
                [
                    {"time": _ts(x), "lat": y, "lon": z}
                    for x, y, z in zip(t.tolist(), lat.tolist(), lon.tolist(), strict=True)
                ]
            )
    arrays = []
    for f in ALERTS_SCHEMA:
        if pa.types.is_timestamp(f.type):
            arrays.append(pa.array(cols[f.name], pa.int64()).cast(f.type))
        elif f.name == "path":
            # times as int64 microseconds first, then cast like the other columns
            point = pa.struct([("time", pa.int64()), ("lat", pa.float64()), ("lon", pa.float64())])
            arrays.append(pa.array(cols[f.name], pa.list_(point)).cast(f.type))
        else:
            arrays.append(pa.array(cols[f.name], f.type))
    return pa.Table.from_arrays(arrays, schema=ALERTS_SCHEMA)
