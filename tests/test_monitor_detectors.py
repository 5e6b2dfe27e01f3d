"""The detectors package: every alert kind the monitor grades has exactly
one detector, and every detector follows the protocol."""

from __future__ import annotations

import inspect

from autolien.monitor import detectors
from autolien.monitor.engine import KIND_CAP


def test_each_kind_has_one_detector() -> None:
    every = [*detectors.SCAN_DETECTORS, *detectors.HOUR_DETECTORS, detectors.SILENCE]
    kinds = [k for d in every for k in d.kinds]
    assert len(kinds) == len(set(kinds))
    assert set(kinds) == set(KIND_CAP)
    for d in every:
        params = list(inspect.signature(d.detect).parameters)
        assert len(params) == 2, type(d).__name__  # (vehicle, context)
