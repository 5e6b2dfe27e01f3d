"""Usage and battery factors, battery health from GB/T 32960 frames, LTV and
the value forecast."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolien.sim.behaviour import simulate_vehicle
from autolien.sim.portfolio import _battery, _ev_frames
from autolien.telemetry import decode_gb32960
from autolien.valuation import Valuer, battery_factor, estimate_soh, ltv, usage_factor

unit = st.floats(0, 1)
km = st.floats(0, 500)


@given(b1=unit, b2=unit, k1=km, k2=km)
def test_usage_factor_is_monotone_and_bounded(b1: float, b2: float, k1: float, k2: float) -> None:
    # harsher (lower behaviour) or heavier (more km) use never raises value
    gentle, harsh = max(b1, b2), min(b1, b2)
    light, heavy = min(k1, k2), max(k1, k2)
    f = usage_factor([gentle, harsh, gentle], [light, light, heavy])
    assert f[1] <= f[0]
    assert f[2] <= f[0]
    assert ((f >= 0.85) & (f <= 1.0)).all()


def test_usage_factor_values() -> None:
    assert usage_factor([1.0], [15_000 / 365])[0] == 1.0  # the norm, gentle
    assert usage_factor([0.5], [0.0])[0] == pytest.approx(0.95)
    assert usage_factor([1.0], [2 * 15_000 / 365])[0] == pytest.approx(0.95)
    assert usage_factor([np.nan], [np.nan])[0] == 1.0


@given(s1=st.floats(0.3, 1.0), s2=st.floats(0.3, 1.0), age=st.floats(0, 15))
def test_battery_factor_is_monotone(s1: float, s2: float, age: float) -> None:
    lo, hi = sorted((s1, s2))
    f = battery_factor([lo, hi], [age, age])
    assert f[0] <= f[1]
    assert ((f >= 0.65) & (f <= 1.035)).all()


def test_battery_factor_is_one_for_a_normal_pack() -> None:
    assert battery_factor([1 - 0.023 * 4], [4])[0] == pytest.approx(1.0)
    # 10 points below normal at 4 years: 35% of the value scales with capacity
    assert battery_factor([1 - 0.023 * 4 - 0.10], [4])[0] == pytest.approx(
        1 - 0.35 * 0.10 / (1 - 0.092)
    )
    assert battery_factor([np.nan], [3])[0] == 1.0


@pytest.mark.parametrize("soh", [0.95, 0.80, 0.70])
def test_soh_is_recovered_from_gb32960_frames(soh: float) -> None:
    cols, _ = simulate_vehicle(3, 1, None, 12, 10)
    t = cols["time"] / 1e6
    spd, kms = cols["speed_kmh"], cols["odometer_km"]
    batt = _battery(t, spd, kms, np.full(t.size, soh))
    ev = (spd > 0) | batt["charging"]
    wire = _ev_frames("LGXAX94R7HV197456", t, spd, kms, cols["lat"], cols["lon"], batt, ev)
    table = decode_gb32960(wire).table
    (row,) = estimate_soh(table, nominal_kwh=60.0).to_pylist()
    assert row["segments"] >= 2
    assert row["soh"] == pytest.approx(
        soh, abs=0.02
    )  # 60 kWh pack, SOC in whole percent on the wire
    assert row["cell_spread_v"] == pytest.approx(0.01 + 0.15 * (1 - soh), abs=0.002)
    with pytest.raises(ValueError, match="soc_pct"):
        estimate_soh(table.drop_columns(["soc_pct"]))


def test_ltv_levels() -> None:
    loans = pa.table(
        {
            "vehicle_id": ["a", "b", "c", "d", "e"],
            "outstanding_cny": [50.0, 72.0, 90.0, 120.0, 10.0],
        }
    )
    values = pa.table({"vehicle_id": ["a", "b", "c", "d"], "value": [100.0, 100.0, 100.0, 100.0]})
    out = ltv(loans, values).to_pylist()
    assert [r["level"] for r in out] == [None, "warning", "alert", "emergency", None]
    assert out[2]["ltv"] == pytest.approx(0.9)
    assert out[4]["note"] == "no value for this vehicle"
    with pytest.raises(ValueError, match="outstanding"):
        ltv(values, values)


VEH = pa.table(
    {
        "vehicle_id": ["v1", "v2", "v3"],
        "make": ["ford", "ford", "audi"],
        "model": ["Fiesta", "Fiesta", "A3"],
        "year": [2017, 2017, 2019],
        "mileage_km": [40_000.0, 40_000.0, 20_000.0],
        "fuel": ["petrol", "petrol", "petrol"],
        "transmission": ["manual", "manual", "automatic"],
        "engine_size_l": [1.0, 1.0, 1.5],
    }
)


def test_value_applies_usage_and_battery_factors() -> None:
    v = Valuer.load()
    usage = pa.table(
        {"vehicle_id": ["v1", "v2"], "behaviour": [1.0, 0.4], "km_per_day": [30.0, 120.0]}
    )
    battery = pa.table({"vehicle_id": ["v3"], "soh": [0.7]})
    out = v.value(VEH, at=dt.date(2020, 6, 1), usage=usage, battery=battery).to_pylist()
    assert out[0]["base_value"] == pytest.approx(out[1]["base_value"])  # same car
    assert out[1]["value"] < out[0]["value"]  # harder use
    for r in out:
        assert r["value"] == pytest.approx(
            r["base_value"] * r["usage_factor"] * r["battery_factor"]
        )
    assert out[2]["battery_factor"] < 1.0
    assert out[0]["battery_factor"] == 1.0


def test_forecast_declines_with_age_and_miles() -> None:
    v = Valuer.load()
    f = v.forecast(VEH, at=dt.date(2020, 6, 1), km_per_day=[40.0, 200.0, 40.0]).to_pylist()
    by = {(r["row"], r["horizon_days"]): r for r in f}
    assert {h for _, h in by} == {30, 90, 180}
    now = v.value(VEH, at=dt.date(2020, 6, 1)).column("base_value").to_pylist()
    assert by[(0, 180)]["value"] <= now[0] * 1.02
    assert by[(1, 180)]["value"] < by[(0, 180)]["value"]  # the heavier driver loses more
    width = [by[(0, h)]["value_high"] / by[(0, h)]["value_low"] for h in (30, 90, 180)]
    assert width == sorted(width)


def test_market_elasticity_on_the_uk_listings_and_a_known_market() -> None:
    from pathlib import Path

    from autolien.valuation.adjust import fit_market_elasticity, market_factor, supply_index
    from autolien.valuation.data import load_uk_used_cars, split

    uk = load_uk_used_cars(Path(__file__).parent / "data" / "valuation" / "uk_used_cars")
    v = Valuer.load()
    _tr, te = split(uk.num_rows, v.meta["seed"])
    test = uk.take(pa.array(te))
    # out-of-sample residuals of the base model against each listing band's relative supply
    res = np.log(test.column("price").to_numpy()) - v.predict_log(v.features(test))
    fit = fit_market_elasticity(test, res)
    assert fit["n"] == test.num_rows
    # the UK adverts carry no dates: cross-sectional supply says next to nothing
    # once the base model has priced make, model and age
    assert abs(fit["elasticity"]) < 0.02
    f = market_factor(
        test, supply_index(test), fit["elasticity"], test.column("age_years").to_numpy()
    )
    assert ((f >= 0.9) & (f <= 1.1)).all()
    # a market with a known supply response: prices fall 0.3% per 1% more supply
    rng = np.random.default_rng(7)
    n = 20_000
    make = rng.choice(["a", "b", "c"], n)
    age = rng.choice([1.0, 3.0, 5.0, 8.0, 12.0], n)
    # supply that depends on age: model x floods the young bands, w the old
    young = age < 4
    model = np.where(
        young,
        rng.choice(["x", "y", "z", "w"], n, p=[0.7, 0.2, 0.08, 0.02]),
        rng.choice(["x", "y", "z", "w"], n, p=[0.1, 0.3, 0.3, 0.3]),
    )
    known = pa.table({"make": make, "model": model, "age_years": age})
    idx = supply_index(known)
    s = np.array(
        [
            idx[(a, b, int(c))]
            for a, b, c in zip(make, model, np.digitize(age, [2, 4, 7, 10, 15]), strict=True)
        ]
    )
    resid = -0.3 * np.log(s) + rng.normal(0, 0.05, n)
    got = fit_market_elasticity(known, resid)
    assert got["stderr"] < 0.01
    assert got["elasticity"] == pytest.approx(-0.3, abs=0.02)


def _charges(caps_kwh: list[float], day0: dt.datetime) -> pa.Table:
    """One night charge per capacity, built by hand: 7 kW at 380 V for ten
    minutes a step, so the SOC rises 100 x 7 x (10/60) / capacity points per
    step; the capacity is known by construction."""
    rows: dict[str, list] = {
        k: []
        for k in ("vin", "time", "soc_pct", "pack_current_a", "pack_voltage_v", "charging_status")
    }
    for k, cap in enumerate(caps_kwh):
        t0 = day0 + dt.timedelta(days=k, hours=1)
        soc = 30.0
        for s in range(12):
            rows["vin"].append("LGXAX94R7HV197456")
            rows["time"].append(t0 + dt.timedelta(minutes=10 * s))
            rows["soc_pct"].append(soc)
            rows["pack_current_a"].append(-7000.0 / 380.0)
            rows["pack_voltage_v"].append(380.0)
            rows["charging_status"].append(1)
            soc += 100 * 7.0 * (10 / 60) / cap
    return pa.table(
        {
            **{k: rows[k] for k in ("vin", "soc_pct", "pack_current_a", "pack_voltage_v")},
            "time": pa.array(rows["time"], pa.timestamp("us", tz="UTC")),
            "charging_status": pa.array(rows["charging_status"], pa.uint8()),
        }
    )


def test_battery_alerts_follow_the_charge_segments() -> None:
    from autolien.valuation.adjust import battery_alerts, soh_segments

    day0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    # a 2020 pack, aged from mid model year: 6.25 years on 2026-10-01, so a
    # normal one holds 1 - 0.023 x 6.25 of 60 kWh
    normal = 60 * (1 - 0.023 * (2026 + 273 / 365.25 - 0.5 - 2020))
    caps = [normal, normal, normal - 60 * 0.12, normal - 60 * 0.13, normal - 60 * 0.22]
    seg = soh_segments(_charges(caps, day0), nominal_kwh=60.0)
    assert seg.num_rows == 5
    np.testing.assert_allclose(seg.column("capacity_kwh").to_numpy(), caps, rtol=1e-9)
    (a,) = battery_alerts(seg, {"LGXAX94R7HV197456": 2020})
    ends = seg.column("end").to_pylist()
    assert a["opened"] == ends[2]  # 12 points below: an alert at the third charge
    assert a["updated"] == ends[4]  # 22 points below: raised to an emergency
    assert a["level"] == "emergency"
    assert a["evidence"]["deficit"] == pytest.approx(0.22, abs=0.002)
    assert battery_alerts(seg, {}) == []  # no model year: nothing to compare with
