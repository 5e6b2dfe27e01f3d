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


def test_every_loan_is_graded_and_the_table_is_typed() -> None:
    # a bad row in the middle does not stop the rows after it; a value under
    # 1 (but positive) is still a value
    loans = pa.table(
        {"vehicle_id": ["a", "b", "c", "d"], "outstanding_cny": [80.0, 5.0, 0.45, None]}
    )
    values = pa.table({"vehicle_id": ["a", "c", "d", "b"], "value": [100.0, 0.5, 10.0, -1.0]})
    out = ltv(loans, values)
    assert out.schema == pa.schema(
        [
            ("vehicle_id", pa.string()),
            ("outstanding", pa.float64()),
            ("value", pa.float64()),
            ("ltv", pa.float64()),
            ("level", pa.string()),
            ("note", pa.string()),
        ]
    )
    rows = out.to_pylist()
    assert [r["level"] for r in rows] == ["warning", None, "alert", None]
    assert [r["value"] for r in rows] == [100.0, -1.0, 0.5, 10.0]
    assert rows[2]["ltv"] == pytest.approx(0.9)
    assert rows[1]["note"] == "value is not positive"
    assert rows[3]["ltv"] is None  # nothing outstanding known


@pytest.mark.parametrize("which", ["loans", "values"])
def test_a_missing_key_column_is_a_clear_error(which: str) -> None:
    loans = pa.table({"vehicle_id": ["a"], "outstanding": [1.0]})
    values = pa.table({"vehicle_id": ["a"], "value": [2.0]})
    if which == "loans":
        loans = loans.rename_columns(["id", "outstanding"])
    else:
        values = values.rename_columns(["id", "value"])
    with pytest.raises(ValueError, match="loans need 'vehicle_id'"):
        ltv(loans, values)
