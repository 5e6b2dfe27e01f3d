"""Value adjustments, battery health and LTV (docs/valuation.md).

* ``usage_factor``: harsher or heavier use lowers value, never raises it;
* ``estimate_soh``: battery state of health from GB/T 32960 charge segments
  (charge put in against the SOC it moved) and the cell-voltage spread;
* ``battery_factor``: state of health against what the vehicle's age makes
  normal, on the battery's share of the value;
* ``ltv``: loan-to-value per loan, graded at 70/85/100% like monitor alerts.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ..schemas import LEVELS
from .data import make_model_keys

__all__ = [
    "BATTERY_LEVELS",
    "BATTERY_SHARE",
    "EV_COLUMNS",
    "EV_REQUIRED",
    "LTV_LEVELS",
    "NORMAL_FADE_PER_YEAR",
    "SOH_PLAUSIBLE",
    "USAGE_FLOOR",
    "battery_alerts",
    "battery_factor",
    "estimate_soh",
    "ltv",
    "soh_segments",
    "usage_factor",
]

F64 = npt.NDArray[np.float64]

USAGE_FLOOR = 0.85
NORM_KM_PER_YEAR = 15_000.0
# The battery is 30-40% of an EV's value (Recurrent Auto, "Your electric car
# is worth more", recurrentauto.com/research); we take the middle.
BATTERY_SHARE = 0.35
# Normal capacity fade: Geotab's 2026 study of 22,700 EVs found 2.3% a year on
# average (1.5-2.5% across large 2024-2026 data sets).
NORMAL_FADE_PER_YEAR = 0.023
LTV_LEVELS = ((1.00, "emergency"), (0.85, "alert"), (0.70, "warning"))


def _grade(x: float, levels: tuple[tuple[float, str], ...]) -> str | None:
    """The highest level whose threshold x reaches (levels highest first)."""
    return next((name for lim, name in levels if x >= lim), None)


def usage_factor(
    behaviour: npt.ArrayLike,
    km_per_day: npt.ArrayLike,
    *,
    norm_km_per_year: float = NORM_KM_PER_YEAR,
) -> F64:
    """1 - 0.05 x min(excess distance rate, 1) - 0.10 x (1 - behaviour), in
    [0.85, 1]. The excess rate is km_per_day x 365 / norm - 1 (0 below the
    norm); ``behaviour`` is the monitor's coefficient (1 gentle, 0 harsh).
    Missing inputs count as normal use (factor 1 for that term)."""
    b = np.clip(np.nan_to_num(np.asarray(behaviour, np.float64), nan=1.0), 0.0, 1.0)
    km = np.nan_to_num(np.asarray(km_per_day, np.float64), nan=0.0)
    excess = np.clip(km * 365.0 / norm_km_per_year - 1.0, 0.0, 1.0)
    return np.asarray(np.clip(1.0 - 0.05 * excess - 0.10 * (1.0 - b), USAGE_FLOOR, 1.0), np.float64)


def battery_factor(
    soh: npt.ArrayLike,
    age_years: npt.ArrayLike,
    *,
    share: float = BATTERY_SHARE,
    fade_per_year: float = NORMAL_FADE_PER_YEAR,
) -> F64:
    """1 - share x (expected - soh) / expected, where expected = 1 - fade x age
    is a normal pack of that age (the base model already prices normal fade).
    Bounded to [1 - share, 1 + share / 10]; missing SOH gives 1."""
    s = np.asarray(soh, np.float64)
    age = np.clip(np.asarray(age_years, np.float64), 0.0, None)
    expected = np.clip(1.0 - fade_per_year * age, 0.5, 1.0)
    f = 1.0 - share * (expected - s) / expected
    f = np.where(np.isnan(s), 1.0, f)
    return np.asarray(np.clip(f, 1.0 - share, 1.0 + share / 10), np.float64)


# the GB/T 32960 columns soh_segments needs, and all it reads (the cell
# voltages too, when present)
EV_REQUIRED = ("vin", "time", "soc_pct", "pack_current_a", "pack_voltage_v", "charging_status")
EV_COLUMNS = (*EV_REQUIRED, "max_cell_v", "min_cell_v")


def _ev_arrays(ev: pa.Table) -> dict[str, Any]:
    missing = [c for c in EV_REQUIRED if c not in ev.column_names]
    if missing:
        raise ValueError(f"EV table lacks {', '.join(missing)}")
    t = ev.sort_by([("vin", "ascending"), ("time", "ascending")])

    def f64(name: str) -> np.ndarray:
        return np.asarray(
            t.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
        )

    vin = t.column("vin").to_pylist()
    return {
        "vin": vin,
        "t": np.asarray(
            t.column("time").cast(pa.int64()).to_numpy(zero_copy_only=False), np.float64
        )
        / 1e6,
        "soc": f64("soc_pct"),
        "cur": f64("pack_current_a"),
        "volt": f64("pack_voltage_v"),
        "chg": np.asarray(
            pc.equal(t.column("charging_status"), 1).to_numpy(zero_copy_only=False), bool
        ),
        "spread": (
            np.asarray(
                pc.subtract(t.column("max_cell_v"), t.column("min_cell_v"))
                .cast(pa.float64())
                .to_numpy(zero_copy_only=False),
                np.float64,
            )
            if {"max_cell_v", "min_cell_v"} <= set(t.column_names)
            else np.full(t.num_rows, np.nan)
        ),
        "starts": [0] + [i for i in range(1, len(vin)) if vin[i] != vin[i - 1]] + [len(vin)],
    }


# A segment's capacity outside this share of the pack's nominal is a bad
# segment (a BMS SOC reset, rows of two packs, a wrong current scale), not a
# battery: a new pack measures at most ~10% over its rating, and a pack at
# 30% is scrap long before. Such a segment is reported, never used.
SOH_PLAUSIBLE = (0.30, 1.30)

Segment = tuple[float, float, float | None, str | None]


def _charge_segments(
    d: dict[str, Any], a: int, b: int, min_soc_span: float, max_gap_s: float
) -> list[Segment]:
    """(start, end, capacity kWh, None) of each usable charge segment in rows
    [a, b), and (start, end, None, reason) for a charge long enough to use
    whose rows cannot give a capacity."""
    ts, soc, cur, volt, chg = d["t"], d["soc"], d["cur"], d["volt"], d["chg"]
    out: list[Segment] = []
    i = a
    while i < b:
        if not chg[i]:
            i += 1
            continue
        j = i
        while j + 1 < b and chg[j + 1] and ts[j + 1] - ts[j] <= max_gap_s:
            j += 1
        if j > i and soc[j] - soc[i] >= min_soc_span:
            # Energy in against SOC, by least squares over the segment
            # without its last step: a charge tapers or stops at its
            # target, so the last step puts in less SOC than energy says.
            dt = np.diff(ts[i : j + 1])
            power = np.abs(cur[i + 1 : j + 1]) * volt[i + 1 : j + 1]  # W over each step
            energy = np.r_[0.0, np.cumsum(power * dt)] / 3.6e6  # kWh
            e, s = energy[:-1], soc[i:j]
            if (np.diff(soc[i : j + 1]) < 0).any():
                # SOC never falls while charging: a fall is a BMS reset or
                # rows of two packs, and a line fitted across it means
                # nothing (SOC 20, 30, 20, 30 % read as a 6e17 kWh pack)
                out.append((float(ts[i]), float(ts[j]), None, "SOC falls during the charge"))
            elif not np.ptp(e) > 0:
                out.append((float(ts[i]), float(ts[j]), None, "no charge current recorded"))
            elif e.size >= 3 and np.ptp(s) >= min_soc_span / 2:
                # both rise and neither is constant, so the slope is > 0
                slope = float(np.polyfit(e, s, 1)[0])  # SOC points per kWh
                out.append((float(ts[i]), float(ts[j]), 100.0 / slope, None))
        i = j + 1
    return out


def _judge(seg: Segment, nominal: float | None) -> Segment:
    """The segment, or its reject when its capacity is implausible for the
    pack's nominal (``SOH_PLAUSIBLE``)."""
    t0, t1, cap, why = seg
    if cap is not None and nominal:
        lo, hi = SOH_PLAUSIBLE
        if not lo <= cap / nominal <= hi:
            why = (
                f"capacity {cap:.4g} kWh is {cap / nominal:.0%} of the nominal "
                f"{nominal:g} kWh, outside {lo:.0%}-{hi:.0%}"
            )
            return (t0, t1, None, why)
    return seg


def soh_segments(
    ev: pa.Table,
    *,
    nominal_kwh: dict[str, float] | float,
    min_soc_span: float = 10.0,
    max_gap_s: float = 1200.0,
) -> pa.Table:
    """One row per usable charge segment (see :func:`estimate_soh`): ``vin,
    start, end, capacity_kwh, soh, reject`` (capacity over ``nominal_kwh``), in
    time order per VIN: battery health as it evolves. A charge that cannot
    give a capacity (SOC falls during it, no current, a capacity outside
    ``SOH_PLAUSIBLE`` of the nominal) is kept with null capacity and SOH and
    the reason in ``reject``."""
    d = _ev_arrays(ev)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("vin", "start", "end", "capacity_kwh", "soh", "reject")
    }
    for a, b in itertools.pairwise(d["starts"]):
        name = d["vin"][a]
        nominal = nominal_kwh.get(name) if isinstance(nominal_kwh, dict) else nominal_kwh
        for seg in _charge_segments(d, a, b, min_soc_span, max_gap_s):
            t0, t1, cap, why = _judge(seg, nominal)
            rows["vin"].append(name)
            rows["start"].append(int(t0 * 1e6))
            rows["end"].append(int(t1 * 1e6))
            rows["capacity_kwh"].append(cap)
            rows["soh"].append(cap / nominal if nominal and cap is not None else None)
            rows["reject"].append(why)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "vin": pa.array(rows["vin"], pa.string()),
            "start": pa.array(rows["start"], pa.int64()).cast(ts),
            "end": pa.array(rows["end"], pa.int64()).cast(ts),
            "capacity_kwh": pa.array(rows["capacity_kwh"], pa.float64()),
            "soh": pa.array(rows["soh"], pa.float64()),
            "reject": pa.array(rows["reject"], pa.string()),
        }
    )


def estimate_soh(
    ev: pa.Table,
    *,
    nominal_kwh: dict[str, float] | float | None = None,
    min_soc_span: float = 10.0,
    max_gap_s: float = 1200.0,
) -> pa.Table:
    """Battery health per VIN from GB/T 32960 rows (``vin``, ``time``,
    ``soc_pct``, ``pack_current_a``, ``pack_voltage_v``, ``charging_status``,
    ``max_cell_v``, ``min_cell_v``).

    Each charge segment (consecutive charging rows, no gap over
    ``max_gap_s``, SOC rising by at least ``min_soc_span`` points) gives a
    capacity: 100 over the least-squares slope of SOC against the energy put
    in (|I| x V integrated over time), leaving out the segment's last step. SOH is the
    median capacity over ``nominal_kwh`` (per VIN or one value); without it, the
    VIN's largest segment capacity stands in (a relative SOH). Charges that
    cannot give a capacity (see :func:`soh_segments`) are counted in
    ``rejected_segments``, not used. Columns: ``vin, segments,
    rejected_segments, capacity_kwh, soh, soh_low, soh_high, cell_spread_v``."""
    d = _ev_arrays(ev)
    out: dict[str, list[Any]] = {
        k: []
        for k in (
            "vin",
            "segments",
            "rejected_segments",
            "capacity_kwh",
            "soh",
            "soh_low",
            "soh_high",
            "cell_spread_v",
        )
    }
    for a, b in itertools.pairwise(d["starts"]):
        name = d["vin"][a]
        nominal = nominal_kwh.get(name) if isinstance(nominal_kwh, dict) else nominal_kwh
        segs = [_judge(g, nominal) for g in _charge_segments(d, a, b, min_soc_span, max_gap_s)]
        caps = [c for _, _, c, _ in segs if c is not None]
        out["vin"].append(name)
        out["segments"].append(len(caps))
        out["rejected_segments"].append(len(segs) - len(caps))
        sp = d["spread"][a:b]
        out["cell_spread_v"].append(float(np.nanmedian(sp)) if np.isfinite(sp).any() else None)
        if not caps:
            out["capacity_kwh"].append(None)
            out["soh"].append(None)
            out["soh_low"].append(None)
            out["soh_high"].append(None)
            continue
        c = np.asarray(caps)
        ref = float(nominal) if nominal else float(c.max())
        out["capacity_kwh"].append(float(np.median(c)))
        out["soh"].append(float(np.median(c)) / ref)
        out["soh_low"].append(float(np.quantile(c, 0.25)) / ref)
        out["soh_high"].append(float(np.quantile(c, 0.75)) / ref)
    return pa.table(
        {
            "vin": pa.array(out["vin"], pa.string()),
            "segments": pa.array(out["segments"], pa.int32()),
            "rejected_segments": pa.array(out["rejected_segments"], pa.int32()),
            **{
                k: pa.array(out[k], pa.float64())
                for k in ("capacity_kwh", "soh", "soh_low", "soh_high", "cell_spread_v")
            },
        }
    )


BATTERY_LEVELS = ((0.20, "emergency"), (0.10, "alert"), (0.06, "warning"))


def battery_alerts(
    segments: pa.Table,
    model_year: dict[str, int],
    *,
    fade_per_year: float = NORMAL_FADE_PER_YEAR,
) -> list[dict[str, Any]]:
    """Battery degradation per VIN from :func:`soh_segments`: a segment whose
    SOH lies below the normal pack of that age (``1 - fade_per_year x age``,
    age from mid model year) by ``BATTERY_LEVELS`` opens (warning 6 points,
    alert 10, emergency 20) or raises one alert; it does not close (a pack
    does not heal). Returns dicts with ``vin, level, opened, updated,
    evidence``."""
    out: list[dict[str, Any]] = []
    rows = segments.sort_by([("vin", "ascending"), ("end", "ascending")]).to_pylist()
    current: dict[str, dict[str, Any]] = {}
    for r in rows:
        year = model_year.get(r["vin"])
        if year is None or r["soh"] is None:
            continue
        end = r["end"]
        age = end.year + (end.timetuple().tm_yday - 1) / 365.25 - 0.5 - year
        expected = 1.0 - fade_per_year * max(age, 0.0)
        deficit = expected - r["soh"]
        level = _grade(deficit, BATTERY_LEVELS)
        if level is None:
            continue
        ev = {
            "soh": round(r["soh"], 4),
            "expected_soh": round(expected, 4),
            "deficit": round(deficit, 4),
            "capacity_kwh": round(r["capacity_kwh"], 3),
            "segment_start": r["start"].isoformat(),
            "segment_end": end.isoformat(),
        }
        a = current.get(r["vin"])
        if a is None:
            a = {"vin": r["vin"], "level": level, "opened": end, "updated": end, "evidence": ev}
            current[r["vin"]] = a
            out.append(a)
        elif LEVELS.index(level) > LEVELS.index(a["level"]):
            a.update(level=level, updated=end, evidence=ev)
    return out


def ltv(loans: pa.Table, values: pa.Table, *, key: str = "vehicle_id") -> pa.Table:
    """Loan-to-value per loan: ``outstanding`` (``outstanding_cny`` or
    ``outstanding``) over ``value`` joined on ``key``; ``level`` is emergency
    at 100% or more, alert at 85%, warning at 70%, else null. A loan without
    a value gets a null LTV and the reason."""
    col = next((c for c in ("outstanding", "outstanding_cny") if c in loans.column_names), None)
    if col is None or key not in loans.column_names or key not in values.column_names:
        raise ValueError(f"loans need {key!r} and 'outstanding'; values need {key!r} and 'value'")
    vmap = dict(
        zip(values.column(key).to_pylist(), values.column("value").to_pylist(), strict=True)
    )
    ids = loans.column(key).to_pylist()
    owed = loans.column(col).cast(pa.float64()).to_pylist()
    ratio: list[float | None] = []
    level: list[str | None] = []
    note: list[str | None] = []
    for k, o in zip(ids, owed, strict=True):
        v = vmap.get(k)
        if v is None or o is None or not v > 0:
            ratio.append(None)
            level.append(None)
            note.append("no value for this vehicle" if v is None else "value is not positive")
            continue
        r = o / v
        ratio.append(r)
        level.append(_grade(r, LTV_LEVELS))
        note.append(None)
    return pa.table(
        {
            key: pa.array(ids, pa.string()),
            "outstanding": pa.array(owed, pa.float64()),
            "value": pa.array([vmap.get(k) for k in ids], pa.float64()),
            "ltv": pa.array(ratio, pa.float64()),
            "level": pa.array(level, pa.string()),
            "note": pa.array(note, pa.string()),
        }
    )


MARKET_BOUNDS = (0.90, 1.10)
AGE_BANDS = (0, 2, 4, 7, 10, 15, 100)


def _band(age: np.ndarray) -> np.ndarray:
    return np.asarray(np.digitize(age, AGE_BANDS[1:-1]))


def supply_index(listings: pa.Table) -> dict[tuple[str, str, int], float]:
    """Relative supply per (make, model, age band): the band's listing count
    over what its make's share and its age band's share predict (an
    independence model of the listings table). Above 1: more cars on offer
    than usual for such a car."""
    make, model = make_model_keys(listings)
    age = np.asarray(
        listings.column("age_years").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    band = _band(age)
    n = len(make)
    count: dict[tuple[str, str, int], int] = {}
    by_model: dict[tuple[str, str], int] = {}
    by_band: dict[int, int] = {}
    for mk, md, b in zip(make, model, band.tolist(), strict=True):
        count[(mk, md, b)] = count.get((mk, md, b), 0) + 1
        by_model[(mk, md)] = by_model.get((mk, md), 0) + 1
        by_band[b] = by_band.get(b, 0) + 1
    return {k: c / (by_model[(k[0], k[1])] * by_band[k[2]] / n) for k, c in count.items()}


def fit_market_elasticity(listings: pa.Table, residual_log: npt.ArrayLike) -> dict[str, float]:
    """Least-squares slope of the base model's log residual on log supply
    index over the listings (the elasticity, usually negative: more supply,
    lower prices), with its standard error."""
    idx = supply_index(listings)
    make, model = make_model_keys(listings)
    band = _band(
        np.asarray(listings.column("age_years").cast(pa.float64()).to_numpy(zero_copy_only=False))
    )
    x = np.log([idx[(a, b, int(c))] for a, b, c in zip(make, model, band.tolist(), strict=True)])
    return _slope(x, np.asarray(residual_log, np.float64))


def _slope(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Least-squares slope of y on x over the finite pairs, with its standard
    error: the elasticity fits of the market factor."""
    if y.shape != x.shape:
        raise ValueError("one residual per listing")
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        raise ValueError("too few listings with a supply figure to fit")
    x, y = x[ok], y[ok]
    xc = x - x.mean()
    beta = float(np.sum(xc * (y - y.mean())) / np.sum(xc * xc))
    resid = y - y.mean() - beta * xc
    se = float(np.sqrt(np.sum(resid**2) / (x.size - 2) / np.sum(xc * xc)))
    return {"elasticity": beta, "stderr": se, "n": int(x.size)}


def market_factor(
    vehicles: pa.Table,
    index: dict[tuple[str, str, int], float],
    elasticity: float,
    at_age_years: npt.ArrayLike,
) -> F64:
    """index^elasticity for each vehicle's (make, model, age band), clipped
    to [0.90, 1.10]; a vehicle whose band has no listings gets 1."""
    make, model = make_model_keys(vehicles)
    band = _band(np.asarray(at_age_years, np.float64))
    s = np.array(
        [index.get((a, b, int(c)), 1.0) for a, b, c in zip(make, model, band.tolist(), strict=True)]
    )
    return np.asarray(np.clip(s**elasticity, *MARKET_BOUNDS), np.float64)
