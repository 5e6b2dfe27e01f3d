"""Schemas and vocabularies that more than one stage reads or writes.

A stage imports what it shares from here, never from another stage's
internals, so the stages' imports only go down the pipeline (telemetry,
gnss, entropy, monitor, valuation, ledger, report; tests/test_layering.py).

* :data:`TIME_TYPE`: every timestamp column (microseconds, UTC).
* :data:`LEVELS`: the alert grades, lowest first; ``level_code`` is the index.
* :data:`PATH_POINT`: one point of an alert's path.
* :data:`ALERTS_SCHEMA`: the ``alerts`` table (the monitor's alerts and the
  valuation's battery alerts).
* :data:`REJECTS_SCHEMA`: the monitor's rejected rows (``monitor_rejects``).
"""

from __future__ import annotations

import pyarrow as pa

__all__ = ["ALERTS_SCHEMA", "LEVELS", "PATH_POINT", "REJECTS_SCHEMA", "TIME_TYPE"]

TIME_TYPE = pa.timestamp("us", tz="UTC")

LEVELS = ("warning", "alert", "emergency")

PATH_POINT = pa.struct([("time", TIME_TYPE), ("lat", pa.float64()), ("lon", pa.float64())])

ALERTS_SCHEMA = pa.schema(
    [
        pa.field("alert_id", pa.string(), nullable=False),
        pa.field("vehicle_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("level", pa.string(), nullable=False),
        pa.field("level_code", pa.int8(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("opened", TIME_TYPE, nullable=False),
        pa.field("updated", TIME_TYPE, nullable=False),
        pa.field("closed", TIME_TYPE),
        pa.field("first_signal", TIME_TYPE, nullable=False),
        pa.field("last_signal", TIME_TYPE, nullable=False),
        pa.field("n_signals", pa.int32(), nullable=False),
        pa.field("segment_start", TIME_TYPE),
        pa.field("segment_end", TIME_TYPE),
        pa.field("evidence", pa.string(), nullable=False),
        pa.field("path", pa.list_(PATH_POINT)),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("vehicle_id", pa.string()),
        pa.field("time", TIME_TYPE),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
