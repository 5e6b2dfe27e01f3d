"""Battery health from charge curves built by hand from cell physics, not from
the simulator's battery model.

A 96s1p pack of NMC cells (171.2 Ah new: 60 kWh at 3.65 V nominal) charges
at constant current. Each cell's state of charge rises by I dt / Q with
Q = SOH x 171.2 Ah; its terminal voltage is the open-circuit voltage of an
NMC cell at that state plus the ohmic drop I R. The rows carry what a GB/T
32960 frame carries: SOC in whole percent, pack voltage in 0.1 V and
current in 0.1 A (negative while charging). The energy a full 0-100 % charge
of that pack takes is the integral of V dQ; SOH is the capacity ratio."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from autolien.valuation import estimate_soh

# Open-circuit voltage of an NMC cell against SOC (%): a typical curve
# (3.0 V empty, 4.2 V full) that rises steeply at the ends.
OCV_SOC = np.array([0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100], float)
OCV_V = np.array([3.00, 3.40, 3.50, 3.58, 3.63, 3.68, 3.74, 3.81, 3.89, 3.97, 4.06, 4.12, 4.20])
SERIES = 96
Q_NEW_AH = 171.2
R_CELL = 0.0012  # ohm
I_CHARGE = 50.0  # A, about 0.3 C
T0 = 1_790_784_000.0


def _charge(soh: float, soc0: float, soc1: float, t0: float, dt: float = 30.0) -> dict:
    q_as = soh * Q_NEW_AH * 3600.0
    n = int((soc1 - soc0) / 100.0 * q_as / (I_CHARGE * dt)) + 1
    t = t0 + np.arange(n) * dt
    soc = soc0 + 100.0 * I_CHARGE * (t - t0) / q_as
    v = SERIES * (np.interp(soc, OCV_SOC, OCV_V) + I_CHARGE * R_CELL)
    return {
        "time": t,
        "soc_pct": np.floor(soc),  # the wire has whole percent
        "pack_current_a": np.full(n, -I_CHARGE),
        "pack_voltage_v": np.round(v, 1),
        "charging_status": np.ones(n, np.int64),
    }


def _table(vin: str, parts: list[dict]) -> pa.Table:
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return pa.table(
        {
            "vin": [vin] * cols["time"].size,
            "time": pa.array((cols["time"] * 1e6).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "soc_pct": cols["soc_pct"],
            "pack_current_a": cols["pack_current_a"],
            "pack_voltage_v": cols["pack_voltage_v"],
            "charging_status": pa.array(cols["charging_status"], pa.uint8()),
        }
    )


def _energy_per_100(lo: float, hi: float) -> float:
    """kWh a new pack takes per 100 SOC points between lo and hi %: the
    integral of the terminal voltage over the charge moved, by the
    trapezoid rule on a fine grid."""
    s = np.linspace(lo, hi, 20001)
    v = SERIES * (np.interp(s, OCV_SOC, OCV_V) + I_CHARGE * R_CELL)
    wh = np.trapezoid(v, s) / 100.0 * Q_NEW_AH  # V x Ah over the span
    return wh / (hi - lo) * 100.0 / 1000.0


@pytest.mark.parametrize("soh", [1.0, 0.92, 0.81, 0.70])
def test_soh_from_constant_current_charges(soh: float) -> None:
    # two charges a day apart: 20 -> 80 % and 30 -> 90 %, each with its own rows
    parts = [_charge(soh, 20.0, 80.0, T0), _charge(soh, 30.0, 90.0, T0 + 86400)]
    ref = (_energy_per_100(20.0, 80.0) + _energy_per_100(30.0, 90.0)) / 2
    (row,) = estimate_soh(_table("LGXAX94R7HV197456", parts), nominal_kwh=ref).to_pylist()
    assert row["segments"] == 2
    # SOC on the wire is whole percent and the fit leaves the last step out
    assert row["soh"] == pytest.approx(soh, abs=0.015)
    assert row["capacity_kwh"] == pytest.approx(soh * ref, rel=0.015)


def test_relative_soh_between_vehicles_without_a_nominal() -> None:
    # without nominal_kwh a VIN's largest segment stands in: one pack at 0.8
    # of its capacity in every charge reads 1.0 against itself
    parts = [_charge(0.8, 20.0, 80.0, T0), _charge(0.8, 25.0, 85.0, T0 + 86400)]
    (row,) = estimate_soh(_table("V", parts)).to_pylist()
    assert row["soh"] == pytest.approx(1.0, abs=0.02)


def test_the_new_pack_is_the_nominal_60_kwh_at_mid_charge() -> None:
    # the reference itself is physics, not a fit: 96 x 171.2 Ah x ~3.78 V
    assert _energy_per_100(20.0, 80.0) == pytest.approx(
        96 * 171.2 * (np.mean(np.interp(np.linspace(20, 80, 601), OCV_SOC, OCV_V)) + 0.06) / 1000,
        rel=0.002,
    )
