"""LTV grading on its boundaries: 70 % is a warning, 85 % an alert and 100 %
an emergency (docs/valuation.md), each at the threshold itself, and a hair
below each is the level under it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from autolien.valuation import ltv


@pytest.mark.parametrize(
    ("owed", "level"),
    [
        (69.99, None),
        (70.0, "warning"),
        (84.99, "warning"),
        (85.0, "alert"),
        (99.99, "alert"),
        (100.0, "emergency"),
        (250.0, "emergency"),
        (0.0, None),
    ],
)
def test_ltv_levels_at_their_thresholds(owed: float, level: str | None) -> None:
    loans = pa.table({"vehicle_id": ["v"], "outstanding": [owed]})
    values = pa.table({"vehicle_id": ["v"], "value": [100.0]})
    (row,) = ltv(loans, values).to_pylist()
    assert row["ltv"] == owed / 100.0
    assert row["level"] == level


def test_a_value_that_is_not_positive_gets_no_ltv() -> None:
    loans = pa.table({"vehicle_id": ["v"], "outstanding": [10.0]})
    (row,) = ltv(loans, pa.table({"vehicle_id": ["v"], "value": [0.0]})).to_pylist()
    assert (row["ltv"], row["level"], row["note"]) == (None, None, "value is not positive")
