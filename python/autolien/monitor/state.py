"""Per-vehicle monitor state as Arrow: one row per vehicle, keyed by
``vehicle_id``, so that any worker can resume any vehicle from a table
(the pipeline keeps it in the store, the gateway in its spool).

What a row holds is what the vehicle's next hours read (docs/monitor.md):
the raw buffer (the context window and the fixes before it), the odometer
readings as far back, the hourly history the baselines read, the cells
visited, the detector scalars and the alerts. Hourly sums and histograms
only feed the trailing ``context_h`` window, so only their last
``context_h`` rows are kept; older rows come back as zeros, which nothing
reads. The hourly feature rows already handed out are not state.

Floats round-trip exactly (Arrow float64; JSON writes the shortest repr,
NaN and infinities included), so a resumed vehicle scores as one that was
never saved."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

from .config import MonitorConfig
from .engine import ENTROPY_FEATURES, Alert, Vehicle
from .features import SPEED_BINS, STOP_BINS, TURN_BINS

__all__ = ["STATE_VERSION", "load_vehicles", "vehicle_table"]

STATE_VERSION = 1
_RAW = ("t", "lat", "lon", "speed", "ignition")
_BINS = {"speed_hist": SPEED_BINS, "turn_hist": TURN_BINS, "stop_hist": STOP_BINS}
# hourly history columns the baselines and later hours read far back; every
# other history column is read only over the trailing context window
_LONG = ("hour", "n", "n_odo", *ENTROPY_FEATURES, "km_24h")
_INT_HIST = ("hour", "n", "n_odo", "harsh_accel", "harsh_brake", *_BINS)
_FLOATS = ("run_carry", "cusum", "cusum_since", "mileage_flag_t", "place_change")
# added since: a state table saved before has none, and loads with the defaults
_LATER_FLOATS = {"cusum_slow": 0.0, "cusum_slow_since": math.nan}
_OPT_FLOATS = ("last_seen", "silence_from")
_OPT_INTS = ("h_done", "baseline_day")


def _hist_names() -> tuple[str, ...]:
    from .engine import _HISTS, _SUMS, HOURLY_FEATURES  # noqa: PLC0415

    names = ["hour", *_SUMS, *_HISTS, "last_lat", "last_lon", *HOURLY_FEATURES]
    return tuple(dict.fromkeys(names))


def _lists(arrays: list[np.ndarray], typ: pa.DataType) -> pa.Array:
    offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([a.size for a in arrays], out=offsets[1:])
    values = np.concatenate(arrays, axis=None) if arrays else np.zeros(0)
    return pa.LargeListArray.from_arrays(
        pa.array(offsets, pa.int64()), pa.array(values.astype(typ.to_pandas_dtype()), typ)
    )


def _flat(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list column's values (one writable copy for the whole column) and
    offsets into them: each row is then a view, not a copy of its own."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    off = col.offsets.to_numpy()
    lo, hi = int(off[0]), int(off[-1])
    values = np.array(col.values.to_numpy(zero_copy_only=False)[lo:hi])
    return values, off - lo


def _rows(values: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
    return [values[a:b] for a, b in zip(off[:-1].tolist(), off[1:].tolist(), strict=True)]


def _padded(
    values: np.ndarray, off: np.ndarray, n: np.ndarray, bins: int | None
) -> list[np.ndarray]:
    """Each row of a history column as ``n`` rows: a row that keeps only its
    last rows (only the dropped window read the others) is zero-filled in
    front, for all vehicles at once."""
    if bins:
        values, off = values.reshape(-1, bins), off // bins
    k = np.diff(off)
    if np.array_equal(k, n):
        return _rows(values, off)
    start = np.zeros(n.size + 1, np.int64)
    np.cumsum(n, out=start[1:])
    out = np.zeros((int(start[-1]), *values.shape[1:]), values.dtype)
    # row j of vehicle i's kept rows goes to start[i] + n[i] - k[i] + j
    dest = np.repeat(start[:-1] + n - k - off[:-1], k) + np.arange(int(off[-1]))
    out[dest] = values
    return _rows(out, start)


def _alert_json(a: Alert) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "level": a.level,
        "score": a.score,
        "opened": a.opened,
        "updated": a.updated,
        "last_signal": a.last_signal,
        "first_signal": a.first_signal,
        "base_level": a.base_level,
        "n_signals": a.n_signals,
        "closed": a.closed,
        "segment": list(a.segment),
        # as the alerts table writes it (numpy numbers become floats), so
        # that a resumed alert writes the same evidence
        "evidence": json.loads(a.evidence_json()),
        "path": None if a.path is None else [x.tolist() for x in a.path],
    }


def _alert(vid: str, d: dict[str, Any]) -> Alert:
    path = d["path"]
    return Alert(
        vid,
        d["kind"],
        d["level"],
        d["score"],
        d["opened"],
        d["updated"],
        d["last_signal"],
        d["first_signal"],
        base_level=d["base_level"],
        n_signals=d["n_signals"],
        closed=d["closed"],
        segment=(float(d["segment"][0]), float(d["segment"][1])),
        evidence=d["evidence"],
        path=None if path is None else tuple(np.asarray(x, dtype=np.float64) for x in path),  # type: ignore[arg-type]
    )


def vehicle_table(vehicles: list[Vehicle]) -> pa.Table:
    """The state of ``vehicles`` as an Arrow table, one row each."""
    k = vehicles[0].cfg.context_h if vehicles else 1
    cols: dict[str, pa.Array] = {"vehicle_id": pa.array([v.id for v in vehicles], pa.string())}
    for f in _RAW:
        cols[f"raw_{f}"] = _lists([v.raw[f] for v in vehicles], pa.float64())
    cols["odo_t"] = _lists([v.odo["t"] for v in vehicles], pa.float64())
    cols["odo_km"] = _lists([v.odo["km"] for v in vehicles], pa.float64())
    for f in ("hour", "cell", "secs"):
        cols[f"cells_{f}"] = _lists([v.cells[f] for v in vehicles], pa.int64())
    cols["base_lat"] = _lists([v.base_cells[0] for v in vehicles], pa.float64())
    cols["base_lon"] = _lists([v.base_cells[1] for v in vehicles], pa.float64())
    cols["gap_end"] = _lists([np.array([g[0] for g in v.gaps]) for v in vehicles], pa.float64())
    cols["gap_len"] = _lists([np.array([g[1] for g in v.gaps]) for v in vehicles], pa.float64())
    cols["has_hist"] = pa.array([bool(v.hist) for v in vehicles], pa.bool_())
    no_hist = np.zeros(0)
    for f in _hist_names():
        typ = pa.int64() if f in _INT_HIST else pa.float64()
        # older rows of the short columns are never read again
        parts = [v.hist.get(f, no_hist) for v in vehicles]
        if f not in _LONG:
            parts = [a[-k:] for a in parts]
        cols[f"hist_{f}"] = _lists(parts, typ)
    for f in (*_FLOATS, *_LATER_FLOATS):
        cols[f] = pa.array([float(getattr(v, f)) for v in vehicles], pa.float64())
    for f in _OPT_FLOATS:
        cols[f] = pa.array([getattr(v, f) for v in vehicles], pa.float64())
    for f in _OPT_INTS:
        cols[f] = pa.array([getattr(v, f) for v in vehicles], pa.int64())
    cols["away_streak"] = pa.array([v.away_streak for v in vehicles], pa.int64())
    cols["silence_sent"] = pa.array([v.silence_sent for v in vehicles], pa.int64())
    cols["last_lat"] = pa.array([v.last_pos[0] for v in vehicles], pa.float64())
    cols["last_lon"] = pa.array([v.last_pos[1] for v in vehicles], pa.float64())
    cols["last_vin"] = pa.array([v.last_vin for v in vehicles], pa.string())
    cols["vins"] = pa.array([json.dumps(v.vins) for v in vehicles], pa.string())
    cols["base"] = pa.array([json.dumps(v.base, sort_keys=True) for v in vehicles], pa.string())
    cols["alerts_open"] = pa.array(
        [json.dumps([_alert_json(a) for a in v.open.values()]) for v in vehicles], pa.string()
    )
    cols["alerts_closed"] = pa.array(
        [json.dumps([_alert_json(a) for a in v.closed]) for v in vehicles], pa.string()
    )
    return pa.table(cols)


def load_vehicles(table: pa.Table, cfg: MonitorConfig) -> list[Vehicle]:
    """Vehicles from rows written by ``vehicle_table``."""
    if table.num_rows == 0:
        return []
    py = {name: table.column(name) for name in table.column_names}

    def lists(name: str) -> list[np.ndarray]:
        return _rows(*_flat(py[name]))

    def scalars(name: str) -> list[Any]:
        return list(py[name].to_pylist())

    ids = scalars("vehicle_id")
    raw = {f: lists(f"raw_{f}") for f in _RAW}
    odo_t, odo_km = lists("odo_t"), lists("odo_km")
    cells = {f: lists(f"cells_{f}") for f in ("hour", "cell", "secs")}
    base_lat, base_lon = lists("base_lat"), lists("base_lon")
    gap_end, gap_len = lists("gap_end"), lists("gap_len")
    has_hist = scalars("has_hist")
    flat = {f: _flat(py[f"hist_{f}"]) for f in _hist_names()}
    n_hours = np.diff(flat["hour"][1])
    hist = {f: _padded(*flat[f], n_hours, _BINS.get(f)) for f in flat}
    sc = {f: scalars(f) for f in (*_FLOATS, *_OPT_FLOATS, *_OPT_INTS)}
    for f, default in _LATER_FLOATS.items():
        sc[f] = scalars(f) if f in py else [default] * len(ids)
    away, sent = scalars("away_streak"), scalars("silence_sent")
    llat, llon, lvin = scalars("last_lat"), scalars("last_lon"), scalars("last_vin")
    vins, base = scalars("vins"), scalars("base")
    a_open, a_closed = scalars("alerts_open"), scalars("alerts_closed")
    out = []
    for i, vid in enumerate(ids):
        v = Vehicle(vid, cfg)
        v.raw = {f: raw[f][i] for f in _RAW}
        v.odo = {"t": odo_t[i], "km": odo_km[i]}
        v.cells = {f: cells[f][i] for f in cells}
        v.base_cells = (base_lat[i], base_lon[i])
        v.gaps = list(zip(gap_end[i].tolist(), gap_len[i].tolist(), strict=True))
        if has_hist[i]:
            v.hist = {f: a[i] for f, a in hist.items()}
        for f in (*_FLOATS, *_LATER_FLOATS):
            setattr(v, f, float(sc[f][i]))
        for f in (*_OPT_FLOATS, *_OPT_INTS):
            setattr(v, f, sc[f][i])
        v.away_streak, v.silence_sent = int(away[i]), int(sent[i])
        v.last_pos = (
            math.nan if llat[i] is None else llat[i],
            math.nan if llon[i] is None else llon[i],
        )
        v.last_vin = lvin[i]
        v.vins = [(float(t), str(s)) for t, s in json.loads(vins[i])] if vins[i] != "[]" else []
        v.base = {k: (float(m), float(d), int(c)) for k, (m, d, c) in json.loads(base[i]).items()}
        if a_open[i] != "[]":
            for d in json.loads(a_open[i]):
                v.open[d["kind"]] = _alert(vid, d)
        if a_closed[i] != "[]":
            v.closed = [_alert(vid, d) for d in json.loads(a_closed[i])]
        out.append(v)
    return out
