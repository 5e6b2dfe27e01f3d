"""Per-sample and per-hour trajectory features, over a block of vehicles.

Every function here is a pure function of its inputs, so the streaming
monitor, which calls them on a bounded buffer plus new rows, gets exactly
what a batch run over all rows gets (docs/monitor.md states the buffer rule).
:func:`derive_block` derives many vehicles' buffers, and aggregates their
hours, in one call to the C++ core (cpp/src/monitor/block.cpp);
:func:`derive` is its one-vehicle form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from ..entropy import rolling_perm_entropy
from ..gnss import EARTH_M
from .config import MonitorConfig

__all__ = [
    "EARTH_M",
    "HOUR",
    "Block",
    "Derived",
    "cell_centers",
    "cell_ids",
    "derive",
    "derive_block",
    "local_hour",
]

HOUR = 3600
SPEED_BINS = 14  # 10 km/h each, the last open
TURN_BINS = 12  # 30 degrees each
STOP_BINS = 11  # 2-4, 4-8, ... minutes, the last open
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def cell_ids(lat: F64, lon: F64, cell_m: float) -> I64:
    """Cells of a fixed-size equal-area grid: cell_m squares in the
    sinusoidal projection on the mean-radius sphere (x = R lon cos(lat),
    y = R lat), which preserves area, so every cell covers cell_m^2 of the
    Earth wherever it lies."""
    y = np.radians(lat) * EARTH_M
    x = np.radians(lon) * EARTH_M * np.cos(np.radians(lat))
    row = np.floor(y / cell_m)
    col = np.floor(x / cell_m)
    return (row.astype(np.int64) << 32) + (col.astype(np.int64) + (1 << 31))


def cell_centers(cells: I64, cell_m: float) -> tuple[F64, F64]:
    row = (cells >> 32).astype(np.float64)
    col = ((cells & 0xFFFFFFFF) - (1 << 31)).astype(np.float64)
    lat = np.degrees((row + 0.5) * cell_m / EARTH_M)
    lon = np.degrees((col + 0.5) * cell_m / (EARTH_M * np.cos(np.radians(lat))))
    return lat, lon


@dataclass
class Derived:
    """Per-sample quantities; step i is the move from fix i-1 to fix i."""

    t: F64
    lat: F64
    lon: F64
    speed: F64  # km/h, measured where given, else from the step
    moving: npt.NDArray[np.bool_]
    dist_m: F64  # step length, 0 for jumps
    moving_s: F64
    night_s: F64
    speeding_s: F64
    harsh_accel: npt.NDArray[np.bool_]
    harsh_brake: npt.NDArray[np.bool_]
    turn: F64  # degrees in (-180, 180], NaN where there is no turn
    dwell_s: I64  # whole seconds since the previous fix, capped
    cells: I64
    run_start: F64  # start of the stationary run a fix belongs to (NaN when moving)
    stop_end: npt.NDArray[np.bool_]  # a fix that ends a stop
    stop_s: F64
    jump: npt.NDArray[np.bool_]
    jump_m: F64


_DERIVED = (
    "speed",
    "moving",
    "dist_m",
    "moving_s",
    "night_s",
    "speeding_s",
    "harsh_accel",
    "harsh_brake",
    "turn",
    "dwell_s",
    "cells",
    "run_start",
    "stop_end",
    "stop_s",
    "jump",
    "jump_m",
)
_FLAGS = ("moving", "harsh_accel", "harsh_brake", "stop_end", "jump")
# the per-hour columns, in the order the hourly history keeps them
HOURLY_COLUMNS = (
    "hour",
    "n",
    "dist_km",
    "moving_s",
    "night_s",
    "speeding_s",
    "harsh_accel",
    "harsh_brake",
    "speed_hist",
    "turn_hist",
    "stop_hist",
    "last_lat",
    "last_lon",
)


@dataclass
class Block:
    """The derivation of a block of vehicles: ``d`` holds every vehicle's
    samples back to back (vehicle i at ``offsets[i]:offsets[i + 1]``),
    ``rows`` its hours [h_a, h_b) (at ``hour_offsets``) and ``cells`` the
    dwell seconds per (hour, cell) of those hours, ascending (at
    ``cell_offsets``)."""

    d: Derived
    offsets: I64
    rows: dict[str, np.ndarray]
    hour_offsets: I64
    cells: dict[str, I64]
    cell_offsets: I64
    h_a: I64
    context_s: float
    _heading: F64 | None = None

    def heading_of(self, i: int) -> F64:
        """Vehicle i's hourly heading entropy (a view; see _heading_hours).
        Computed for the whole block at the first call: it needs each
        vehicle's samples in time order (ValueError otherwise), which the
        rest of the derivation does not."""
        if self._heading is None:
            self._heading = _heading_hours(
                self.d, self.offsets, self.h_a, self.hour_offsets, self.context_s
            )
        return self._heading[int(self.hour_offsets[i]) : int(self.hour_offsets[i + 1])]

    def vehicle(self, i: int) -> tuple[Derived, dict[str, np.ndarray], dict[str, I64]]:
        """Vehicle i's derived samples, hourly rows and cell dwell (views)."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        d = Derived(**{f: getattr(self.d, f)[a:b] for f in Derived.__dataclass_fields__})
        ha, hb = int(self.hour_offsets[i]), int(self.hour_offsets[i + 1])
        ca, cb = int(self.cell_offsets[i]), int(self.cell_offsets[i + 1])
        return (
            d,
            {k: v[ha:hb] for k, v in self.rows.items()},
            {k: v[ca:cb] for k, v in self.cells.items()},
        )


def _turns(
    lat: F64, lon: F64, moving: npt.NDArray[np.bool_], dist: F64, first: npt.NDArray[np.bool_]
) -> F64:
    """Headings of the moving steps and the turn between consecutive ones,
    by numpy as before over the whole block (numpy's SIMD arctan2 differs
    from libm's in the last bit, so this stays out of the C++ kernel)."""
    n = lat.size
    heading = np.full(n, np.nan)
    ok = moving & (dist >= 5.0) & ~first
    if ok.any():
        i = np.flatnonzero(ok)
        p1, p2 = np.radians(lat[i - 1]), np.radians(lat[i])
        dl = np.radians(lon[i] - lon[i - 1])
        y = np.sin(dl) * np.cos(p2)
        x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
        heading[i] = np.degrees(np.arctan2(y, x))
    turn = np.full(n, np.nan)
    if n > 1:
        # only where both headings exist (NaN elsewhere, as NaN would give;
        # numpy's remainder is slow on NaN)
        both = np.flatnonzero(ok[1:] & ok[:-1]) + 1
        d = heading[both] - heading[both - 1]
        turn[both] = 180.0 - np.mod(180.0 - d, 360.0)  # wrap into (-180, 180]
    turn[first] = np.nan
    return turn


def _f64(x: npt.ArrayLike) -> F64:
    return np.ascontiguousarray(x, dtype=np.float64)


def _i64(x: npt.ArrayLike) -> I64:
    return np.ascontiguousarray(x, dtype=np.int64)


def derive_block(
    offsets: npt.ArrayLike,
    t: npt.ArrayLike,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    speed_in: npt.ArrayLike,
    run_carry: npt.ArrayLike,
    h_a: npt.ArrayLike,
    h_b: npt.ArrayLike,
    cfg: MonitorConfig,
) -> Block:
    """Derives the buffers of many vehicles in one call: samples concatenated
    (vehicle i owns ``offsets[i]:offsets[i + 1]``, in time order), with each
    vehicle's carried stationary-run start and the hours [h_a, h_b) to
    aggregate. Equal, bit for bit, to :func:`derive` and :func:`hourly` per
    vehicle. Mismatched lengths, offsets that do not run from 0 to the sample
    count without decreasing, non-finite times or positions, or h_b < h_a
    raise ValueError."""
    t, lat, lon, speed_in = _f64(t), _f64(lat), _f64(lon), _f64(speed_in)
    if not lat.size == lon.size == speed_in.size == t.size:
        raise ValueError("t, lat, lon and speed must have the same length")
    if not (np.isfinite(t).all() and np.isfinite(lat).all() and np.isfinite(lon).all()):
        raise ValueError("t, lat and lon must be finite")
    cells = _i64(cell_ids(lat, lon, cfg.cell_m))
    offs = _i64(offsets)
    args = _core.MonitorBlockArgs(
        offs,
        t,
        lat,
        lon,
        speed_in,
        # a zone's hours from Arrow; a fixed offset's in the kernel
        _f64(local_hour(t, cfg)) if cfg.tz else np.zeros(0),
        cells,
        _f64(run_carry),
        _i64(h_a),
        _i64(h_b),
    )
    params = {
        "moving_kmh": cfg.moving_kmh,
        "jump_min_m": cfg.jump_min_m,
        "jump_kmh": cfg.jump_kmh,
        "jump_still_gap_s": cfg.jump_still_gap_s,
        "silence_gap_s": cfg.silence_warning_h * HOUR,
        "step_cap_s": cfg.step_cap_s,
        "dwell_cap_s": cfg.dwell_cap_s,
        "speeding_kmh": cfg.speeding_kmh,
        "harsh_max_dt_s": cfg.harsh_max_dt_s,
        "harsh_accel_mps2": cfg.harsh_accel_mps2,
        "harsh_brake_mps2": cfg.harsh_brake_mps2,
        "stop_min_s": cfg.stop_min_s,
        "earth_m": EARTH_M,
        "night_start_h": cfg.night_start_h,
        "night_end_h": cfg.night_end_h,
        "tz_offset_s": cfg.tz_offset_h * HOUR,
    }
    cols = _core.monitor_derive_block(args, params)
    for f in _FLAGS:
        cols[f] = cols[f].view(np.bool_)
    cols["cells"] = cells
    first = np.zeros(t.size, dtype=bool)
    starts = offs[:-1]
    first[starts[starts < t.size]] = True
    cols["turn"] = _turns(lat, lon, cols["moving"], cols["dist_m"], first)
    d = Derived(t=t, lat=lat, lon=lon, **{f: cols[f] for f in _DERIVED})
    # the stop histogram's bin, by numpy's log2 (see _headings)
    stop_bin = np.zeros(t.size, dtype=np.int64)
    se = d.stop_end
    stop_bin[se] = np.clip(np.floor(np.log2(d.stop_s[se] / 60.0)) - 1, 0, STOP_BINS - 1)
    h = _core.monitor_hourly_block(
        args,
        d.speed,
        d.dist_m,
        d.moving_s,
        d.night_s,
        d.speeding_s,
        d.turn,
        d.moving,
        d.harsh_accel,
        d.harsh_brake,
        d.stop_end,
        d.dwell_s,
        stop_bin,
    )
    return Block(
        d,
        offs,
        {k: h[k] for k in HOURLY_COLUMNS},
        h["hour_offsets"],
        {"hour": h["cell_hour"], "cell": h["cell"], "secs": h["cell_secs"]},
        h["cell_offsets"],
        _i64(h_a),
        float(cfg.context_h * HOUR),
    )


def _heading_hours(d: Derived, offs: I64, h_a: I64, hour_offsets: I64, span: float) -> F64:
    """Normalised permutation entropy (order 3) of the turn series over the
    context window ending at each hour's last sample, for every vehicle of
    a block in one core call (one call per vehicle was about 8% of the
    per-vehicle scoring); NaN for an hour without samples and for a vehicle
    with fewer than three."""
    out = np.full(int(hour_offsets[-1]), np.nan)
    nv = offs.size - 1
    if nv == 0 or d.t.size == 0:
        return out
    pe = rolling_perm_entropy(d.turn, span, 3, 1, normalize=True, times=d.t, offsets=offs)
    sizes = np.diff(offs)
    veh = np.repeat(np.arange(nv), sizes)
    hs = np.floor(d.t / HOUR).astype(np.int64)
    ha = h_a[veh]
    nh = np.diff(hour_offsets)[veh]
    sel = np.flatnonzero((hs >= ha) & (hs < ha + nh) & (sizes[veh] >= 3))
    if sel.size:
        row = hour_offsets[:-1][veh[sel]] + hs[sel] - ha[sel]
        # samples come by vehicle, then time: an hour's last is where the row changes
        last = np.flatnonzero(np.r_[row[1:] != row[:-1], True])
        out[row[last]] = pe[sel[last]]
    return out


def derive(
    t: F64, lat: F64, lon: F64, speed_in: F64, run_carry: float, cfg: MonitorConfig
) -> Derived:
    """One vehicle's derived samples (:func:`derive_block` of one vehicle)."""
    z = np.zeros(1, dtype=np.int64)
    return derive_block([0, np.size(t)], t, lat, lon, speed_in, [run_carry], z, z, cfg).d


def local_hour(t: F64, cfg: MonitorConfig) -> F64:
    """The local clock hour of each time: from the IANA zone ``cfg.tz`` when
    set (daylight saving included), else from the fixed ``tz_offset_h``."""
    if cfg.tz:
        ts = pa.array(np.floor(t * 1e6).astype(np.int64), pa.int64()).cast(
            pa.timestamp("us", tz=cfg.tz)
        )
        return np.asarray(pc.hour(ts).to_numpy(zero_copy_only=False), dtype=np.float64)
    # numpy's % is never negative, so zones west of UTC work too
    return np.floor(((t + cfg.tz_offset_h * HOUR) % 86400) / HOUR)
