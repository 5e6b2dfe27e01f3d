"""valuation/adjust.py on hand-built inputs whose answers are known by
construction: the edges of a charge segment, the per-VIN grouping, battery
alert evidence to the rounding, the market slope against a hand-worked fit,
and the supply index counted by hand. Each test kills mutants listed in
docs/mutation.md (the mutant survived because nothing sat on that edge).

Charges are built at constant power: |I| x V x dt joules a step, so a pack
of C kWh gains exactly 100 x (|I| V dt / 3.6e6) / C SOC points a step, and
the fitted capacity is C."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from autolien.valuation import estimate_soh, ltv
from autolien.valuation.adjust import (
    SOH_PLAUSIBLE,
    _slope,
    battery_alerts,
    soh_segments,
    supply_index,
)

T0 = 1_790_784_000  # 2026-10-01T00:00Z
TS = pa.timestamp("us", tz="UTC")


def _rows(
    vin: str,
    t: list[float],
    soc: list[float],
    *,
    amps: float = -100.0,
    volts: float = 360.0,
    chg: list[int] | None = None,
) -> dict[str, list[Any]]:
    n = len(t)
    return {
        "vin": [vin] * n,
        "time": [int((T0 + x) * 1e6) for x in t],
        "soc_pct": list(soc),
        "pack_current_a": [amps] * n,
        "pack_voltage_v": [volts] * n,
        "charging_status": chg if chg is not None else [1] * n,
    }


def _table(*parts: dict[str, list[Any]]) -> pa.Table:
    cols = {k: [x for p in parts for x in p[k]] for k in parts[0]}
    return pa.table(
        {
            "vin": pa.array(cols["vin"], pa.string()),
            "time": pa.array(cols["time"], pa.int64()).cast(TS),
            "soc_pct": pa.array(cols["soc_pct"], pa.float64()),
            "pack_current_a": pa.array(cols["pack_current_a"], pa.float64()),
            "pack_voltage_v": pa.array(cols["pack_voltage_v"], pa.float64()),
            "charging_status": pa.array(cols["charging_status"], pa.uint8()),
        }
    )


def _linear(
    cap_kwh: float, n: int, *, dt_s: float = 600.0, kw: float = 36.0, soc0: float = 20.0
) -> tuple[list[float], list[float]]:
    """n rows dt_s apart at kw: SOC rises 100 x kw x dt / 3600 / cap a step."""
    step = 100.0 * kw * dt_s / 3600.0 / cap_kwh
    return [i * dt_s for i in range(n)], [soc0 + i * step for i in range(n)]


def _when(s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + s, dt.UTC)


# -- one charge segment: where it starts, where it ends, when it counts --------


def test_a_segment_runs_from_its_first_to_its_last_charging_row() -> None:
    # VIN A charges from its very first row to its very last (36 kW, 10 min:
    # 6 kWh = 10 points of 60 kWh); VIN B has a parked row first, then charges
    # and stops with a parked row after
    t, soc = _linear(60.0, 5)
    a = _rows("A", t, soc)
    b = _rows(
        "B",
        [5000.0 + x for x in [0.0, *[600.0 + y for y in t], 3600.0]],
        [20.0, *soc, 60.0],
        chg=[0, 1, 1, 1, 1, 1, 0],
    )
    seg = soh_segments(_table(a, b), nominal_kwh=60.0).to_pylist()
    assert [(r["vin"], r["start"], r["end"]) for r in seg] == [
        ("A", _when(0), _when(2400)),
        ("B", _when(5600), _when(8000)),
    ]
    for r in seg:
        assert r["capacity_kwh"] == pytest.approx(60.0, rel=1e-9)
        assert r["soh"] == pytest.approx(1.0, rel=1e-9)
        assert r["reject"] is None


def test_a_gap_of_exactly_max_gap_s_joins_and_one_second_more_splits() -> None:
    # 1200 s (the default) between rows at 18 kW: 6 kWh = 10 points a step
    t, soc = _linear(60.0, 5, dt_s=1200.0, kw=18.0)
    (row,) = estimate_soh(_table(_rows("A", t, soc, amps=-50.0))).to_pylist()
    assert row["segments"] == 1
    t2 = [x * 1201.0 / 1200.0 for x in t]
    (row,) = estimate_soh(_table(_rows("A", t2, soc, amps=-50.0))).to_pylist()
    assert (row["segments"], row["soh"]) == (0, None)
    assert soh_segments(_table(_rows("A", t2, soc, amps=-50.0)), nominal_kwh=60.0).num_rows == 0
    # and the same segment is accepted when the caller allows the gap
    (row,) = estimate_soh(_table(_rows("A", t2, soc, amps=-50.0)), max_gap_s=1201).to_pylist()
    assert row["segments"] == 1


def test_two_charges_split_by_a_long_gap_are_two_segments() -> None:
    t, soc = _linear(60.0, 5)
    later = [x + 2400.0 + 1300.0 for x in t]  # 1300 s after the first one's end
    seg = soh_segments(
        _table(_rows("A", t + later, soc + [s + 40.0 for s in soc])), nominal_kwh=60.0
    )
    assert seg.column("start").to_pylist() == [_when(0), _when(3700)]
    assert seg.column("end").to_pylist() == [_when(2400), _when(6100)]


@pytest.mark.parametrize(
    ("soc", "found"),
    [
        ([20.0, 22.5, 25.0, 27.5, 30.0], True),  # span exactly 10 (the default)
        ([20.0, 22.0, 24.0, 26.0, 28.0], False),  # span 8: too short
        ([20.0, 30.0, 40.0], False),  # 3 rows: 2 points to fit without the last step
        ([20.0, 30.0, 40.0, 50.0], True),  # 4 rows: 3 points, the least to fit
        ([20.0, 22.5, 25.0, 30.0], True),  # the fitted part spans 5: half the span, enough
        ([20.0, 22.0, 24.0, 30.0], False),  # the fitted part spans 4: not enough
    ],
)
def test_which_charges_are_long_enough(soc: list[float], found: bool) -> None:
    # constant power: every step but the last puts in the same energy; the
    # fit leaves the last step out, so the capacity is the one the first
    # steps imply (2.5 points per 1.5 kWh is 60 kWh)
    step = soc[1] - soc[0]
    kw = 60.0 * step / 100.0 * 6.0  # kWh a step over 10 min, in kW
    t = [i * 600.0 for i in range(len(soc))]
    amps = -kw * 1000.0 / 360.0
    (row,) = estimate_soh(_table(_rows("A", t, soc, amps=amps)), nominal_kwh=60.0).to_pylist()
    assert row["segments"] == int(found)
    assert row["rejected_segments"] == 0
    if found:
        assert row["capacity_kwh"] == pytest.approx(60.0, rel=1e-9)


def test_a_lone_charging_row_is_no_segment_even_with_no_minimum_span() -> None:
    # min_soc_span=0 accepts any rise, but one row has no step to fit
    tab = _table(_rows("A", [0.0, 600.0, 1200.0], [20.0, 20.0, 20.0], chg=[0, 1, 0]))
    (row,) = estimate_soh(tab, min_soc_span=0.0).to_pylist()
    assert (row["segments"], row["rejected_segments"]) == (0, 0)


def test_a_plug_in_hybrid_pack_of_8_kwh() -> None:
    # 2.5 points a step of 0.2 kWh: the fitted part spans 0.6 kWh, under 1 kWh
    t = [i * 600.0 for i in range(5)]
    soc = [20.0, 22.5, 25.0, 27.5, 30.0]
    (row,) = estimate_soh(
        _table(_rows("P", t, soc, amps=-1200.0 / 360.0)), nominal_kwh=8.0
    ).to_pylist()
    assert row["capacity_kwh"] == pytest.approx(8.0, rel=1e-9)


def test_the_plausible_band_includes_its_ends() -> None:
    from autolien.valuation.adjust import _judge

    assert _judge((0.0, 1.0, 30.0, None), 100.0) == (0.0, 1.0, 30.0, None)  # 30 % exactly
    assert _judge((0.0, 1.0, 130.0, None), 100.0) == (0.0, 1.0, 130.0, None)  # 130 % exactly
    assert _judge((0.0, 1.0, 29.0, None), 100.0)[2] is None
    assert _judge((0.0, 1.0, 29.0, None), None) == (0.0, 1.0, 29.0, None)  # no nominal: kept


def test_a_bus_pack_of_300_kwh() -> None:
    # a slope under 1 SOC point per kWh is a pack over 100 kWh, not an error
    t, soc = _linear(300.0, 8, kw=120.0)
    (row,) = estimate_soh(
        _table(_rows("BUS", t, soc, amps=-400.0, volts=300.0)), nominal_kwh=300.0
    ).to_pylist()
    assert row["capacity_kwh"] == pytest.approx(300.0, rel=1e-9)


# -- charges that cannot give a capacity are reported, never used ---------------


@pytest.mark.parametrize("soc", [[20.0, 30.0, 20.0, 30.0], [20.0, 30.0, 20.0, 30.0, 40.0, 50.0]])
def test_soc_that_falls_during_a_charge_is_rejected(soc: list[float]) -> None:
    # the old fit read 20, 30, 20, 30 % as a 6e17 kWh pack
    t = [i * 600.0 for i in range(len(soc))]
    tab = _table(_rows("A", t, soc))
    (row,) = estimate_soh(tab, nominal_kwh=60.0).to_pylist()
    assert (row["segments"], row["rejected_segments"], row["soh"]) == (0, 1, None)
    (row,) = estimate_soh(tab).to_pylist()  # no nominal: still rejected
    assert (row["segments"], row["rejected_segments"], row["capacity_kwh"]) == (0, 1, None)
    (seg,) = soh_segments(tab, nominal_kwh=60.0).to_pylist()
    assert (seg["capacity_kwh"], seg["soh"]) == (None, None)
    assert seg["reject"] == "SOC falls during the charge"
    assert battery_alerts(soh_segments(tab, nominal_kwh=60.0), {"A": 2020}) == []


def test_a_charge_without_current_is_rejected() -> None:
    t, soc = _linear(60.0, 5)
    (seg,) = soh_segments(_table(_rows("A", t, soc, amps=0.0)), nominal_kwh=60.0).to_pylist()
    assert (seg["capacity_kwh"], seg["reject"]) == (None, "no charge current recorded")


@pytest.mark.parametrize(
    ("nominal", "kept"),
    [(60.0 / 0.29, False), (60.0 / 0.31, True), (60.0 / 1.29, True), (60.0 / 1.31, False)],
)
def test_a_capacity_far_from_the_nominal_is_rejected(nominal: float, kept: bool) -> None:
    # a 60 kWh measurement against nominals that make it 29, 31, 129 and 131 %
    assert SOH_PLAUSIBLE == (0.30, 1.30)
    t, soc = _linear(60.0, 5)
    tab = _table(_rows("A", t, soc))
    (row,) = estimate_soh(tab, nominal_kwh=nominal).to_pylist()
    assert (row["segments"], row["rejected_segments"]) == ((1, 0) if kept else (0, 1))
    (seg,) = soh_segments(tab, nominal_kwh={"A": nominal}).to_pylist()
    if kept:
        assert seg["soh"] == pytest.approx(60.0 / nominal, rel=1e-9)
    else:
        assert seg["soh"] is None
        pct = round(100 * 60.0 / nominal)
        assert seg["reject"] == (
            f"capacity 60 kWh is {pct}% of the nominal {nominal:g} kWh, outside 30%-130%"
        )


# -- one row per VIN, in VIN order, with that VIN's nominal ---------------------


def test_one_row_per_vin_with_its_own_nominal_and_quartiles() -> None:
    # A: a single parked row (no segment); B: three charges of 60, 54 and 48
    # kWh; C: one charge of 30 kWh. Quartiles of (48, 54, 60): 51 and 57.
    parked = _rows("A", [0.0], [50.0], chg=[0])
    parts = []
    for k, cap in enumerate((60.0, 54.0, 48.0)):
        t, soc = _linear(cap, 5)
        parts.append(_rows("B", [x + k * 86400.0 for x in t], soc))
    t, soc = _linear(30.0, 5, kw=18.0)
    c = _rows("C", t, soc, amps=-50.0)
    tab = _table(parked, *parts, c)
    rows = estimate_soh(tab, nominal_kwh={"B": 60.0, "C": 40.0}).to_pylist()
    assert [r["vin"] for r in rows] == ["A", "B", "C"]
    a, b, cc = rows
    assert (a["segments"], a["capacity_kwh"], a["soh"], a["soh_low"], a["soh_high"]) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert b["segments"] == 3
    assert b["capacity_kwh"] == pytest.approx(54.0, rel=1e-9)
    assert (b["soh"], b["soh_low"], b["soh_high"]) == pytest.approx((0.9, 0.85, 0.95), rel=1e-9)
    assert cc["soh"] == pytest.approx(0.75, rel=1e-9)
    # soh_segments: the same per-VIN nominal, and none for a VIN not in it
    seg = soh_segments(tab, nominal_kwh={"B": 60.0}).to_pylist()
    assert [r["vin"] for r in seg] == ["B", "B", "B", "C"]
    assert [r["soh"] for r in seg[:3]] == pytest.approx([1.0, 0.9, 0.8], rel=1e-9)
    assert seg[3]["soh"] is None
    assert seg[3]["capacity_kwh"] == pytest.approx(30.0, rel=1e-9)
    # without any nominal, B's largest charge stands in
    b_rel = estimate_soh(tab).to_pylist()[1]
    assert (b_rel["soh"], b_rel["soh_low"]) == pytest.approx((0.9, 0.85), rel=1e-9)


def test_two_vins_of_two_rows_each_are_two_groups() -> None:
    a = _rows("A", [0.0, 600.0], [20.0, 21.0], chg=[0, 0])
    b = _rows("B", [0.0, 600.0], [20.0, 21.0], chg=[0, 0])
    assert estimate_soh(_table(a, b)).column("vin").to_pylist() == ["A", "B"]


# -- battery alerts: the age, the level and the evidence to the rounding --------


def _segments(vin: str, ends: list[dt.datetime], soh: list[float], cap: float = 60.0) -> pa.Table:
    return pa.table(
        {
            "vin": pa.array([vin] * len(ends), pa.string()),
            "start": pa.array([e - dt.timedelta(hours=2) for e in ends], TS),
            "end": pa.array(ends, TS),
            "capacity_kwh": pa.array([s * cap for s in soh], pa.float64()),
            "soh": pa.array(soh, pa.float64()),
        }
    )


def test_the_evidence_carries_the_age_from_mid_model_year_to_the_day() -> None:
    # 2026-10-01 is day 274: a 2024 car is 2026 + 273/365.25 - 0.5 - 2024 years old
    end = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    age = 2026 + 273 / 365.25 - 0.5 - 2024
    expected = 1 - 0.1 * age  # 0.775257...: a steep fade, so a day shows in the 4th decimal
    soh = expected - 0.0712345
    (a,) = battery_alerts(_segments("V", [end], [soh], 61.23456), {"V": 2024}, fade_per_year=0.1)
    assert a["vin"] == "V"
    assert a["level"] == "warning"
    assert a["evidence"] == {
        "soh": round(soh, 4),
        "expected_soh": round(expected, 4),
        "deficit": round(0.0712345, 4),
        "capacity_kwh": round(soh * 61.23456, 3),
        "segment_start": (end - dt.timedelta(hours=2)).isoformat(),
        "segment_end": end.isoformat(),
    }
    assert a["evidence"]["expected_soh"] == 0.7753


def test_a_pack_under_a_year_old_is_compared_with_its_own_age() -> None:
    # a 2026 car on 2026-10-01 is 0.247 years old: expected 1 - 0.1 x 0.247
    end = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    expected = 1 - 0.1 * (2026 + 273 / 365.25 - 0.5 - 2026)
    (a,) = battery_alerts(_segments("V", [end], [expected - 0.07]), {"V": 2026}, fade_per_year=0.1)
    assert a["evidence"]["expected_soh"] == round(expected, 4) == 0.9753


def test_a_second_segment_at_the_same_level_does_not_update_the_alert() -> None:
    ends = [dt.datetime(2026, 10, d, 3, tzinfo=dt.UTC) for d in (1, 2, 3)]
    (a,) = battery_alerts(_segments("V", ends, [0.78, 0.77, 0.775]), {"V": 2026}, fade_per_year=0.0)
    assert (a["level"], a["opened"], a["updated"]) == ("emergency", ends[0], ends[0])
    assert a["evidence"]["soh"] == 0.78


# -- LTV: the value column is float even when the values come as integers -------


def test_ltv_values_given_as_integers_come_back_as_float() -> None:
    loans = pa.table({"vehicle_id": ["a", "b"], "outstanding": [70, 10]})
    values = pa.table({"vehicle_id": ["a"], "value": pa.array([100], pa.int64())})
    out = ltv(loans, values)
    assert out.schema.field("value").type == pa.float64()
    assert out.column("value").to_pylist() == [100.0, None]
    assert out.column("level").to_pylist() == ["warning", None]


# -- the market slope and the supply index, worked by hand ----------------------


def test_the_slope_and_its_standard_error_by_hand() -> None:
    # x 0..3, y 1, 3, 2, 5: x mean 1.5, y mean 2.75, Sxy 5.5, Sxx 5: slope 1.1;
    # residuals -0.1, 0.8, -1.3, 0.6 (sum of squares 2.7): se sqrt(2.7 / 2 / 5)
    got = _slope(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0, 5.0]))
    assert got["elasticity"] == pytest.approx(1.1, rel=1e-12)
    assert got["stderr"] == pytest.approx(np.sqrt(0.27), rel=1e-12)
    assert got["n"] == 4
    # a pair with a missing x or y is left out, not carried as NaN
    got = _slope(
        np.array([0.0, 1.0, np.nan, 2.0, 3.0, 4.0]),
        np.array([1.0, 3.0, 9.0, 2.0, 5.0, np.nan]),
    )
    assert (got["elasticity"], got["n"]) == (pytest.approx(1.1, rel=1e-12), 4)


def test_the_slope_needs_three_points_and_two_x_values() -> None:
    # three points: x 0, 1, 3 and y 0, 1, 2: Sxy 2 - ... worked: slope 9/14
    got = _slope(np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.0, 2.0]))
    assert got["elasticity"] == pytest.approx(9 / 14, rel=1e-12)
    assert got["stderr"] == pytest.approx(np.sqrt((1 / 14) / 1 / (14 / 3)), rel=1e-12)
    with pytest.raises(ValueError, match="too few"):
        _slope(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="too few"):
        _slope(np.array([2.0, 2.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    got = _slope(np.array([2.0, 3.0, 2.0]), np.array([0.0, 1.0, 0.5]))  # x spans exactly 1
    assert got["elasticity"] == pytest.approx(0.75, rel=1e-12)


def test_the_supply_index_counted_by_hand() -> None:
    # 6 listings: (a, x) at ages 1, 1, 3; (a, y) at 1; (b, z) at 5, 5.
    # by model: ax 3, ay 1, bz 2; by band: <2: 3, 2-4: 1, 4-7: 2; n = 6.
    # index = count / (model x band / n)
    listings = pa.table(
        {
            "make": ["A", "a", "a", "a", "b", "b"],
            "model": ["x", " x", "x", "y", "z", "z"],
            "age_years": [1.0, 1.5, 3.0, 0.5, 5.0, 6.0],
        }
    )
    got = supply_index(listings)
    assert got == pytest.approx(
        {
            ("a", "x", 0): 2 / (3 * 3 / 6),
            ("a", "x", 1): 1 / (3 * 1 / 6),
            ("a", "y", 0): 1 / (1 * 3 / 6),
            ("b", "z", 2): 2 / (2 * 2 / 6),
        },
        rel=1e-12,
    )


def test_a_rejected_segment_or_an_unknown_year_skips_only_that_row() -> None:
    # A has no model year; B's first segment was rejected (no SOH), its
    # second is 22 points under a new pack: one emergency for B
    ends = [dt.datetime(2026, 10, d, 3, tzinfo=dt.UTC) for d in (1, 2)]
    seg = pa.concat_tables(
        [
            _segments("A", ends[:1], [0.5]),
            _segments("B", ends, [0.9, 0.78]).set_column(
                4, "soh", pa.array([None, 0.78], pa.float64())
            ),
        ]
    )
    (a,) = battery_alerts(seg, {"B": 2026}, fade_per_year=0.0)
    assert (a["vin"], a["level"], a["opened"]) == ("B", "emergency", ends[1])


def test_usage_and_battery_factors_past_their_clips() -> None:
    from autolien.valuation import battery_factor, usage_factor

    # twice the norm's excess (3 x 15,000 km a year) counts as once: 1 - 0.05
    assert usage_factor([1.0], [3 * 15_000 / 365])[0] == pytest.approx(0.95, rel=1e-12)
    # a 30-year-old pack is compared with a floor of 0.5, not 1 - 0.023 x 30
    assert battery_factor([0.4], [30.0])[0] == pytest.approx(1 - 0.35 * 0.1 / 0.5, rel=1e-12)
