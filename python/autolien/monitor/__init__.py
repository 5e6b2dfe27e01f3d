"""Risk monitoring: hourly trajectory and usage features, robust baselines,
CUSUM, mileage, odometer, relocation and device rules, and graded alerts
(warning / alert / emergency) with the path behind each one."""

from __future__ import annotations

from .config import LEVELS, MonitorConfig
from .stream import ALERTS_SCHEMA, REJECTS_SCHEMA, Monitor, score

__all__ = ["ALERTS_SCHEMA", "LEVELS", "REJECTS_SCHEMA", "Monitor", "MonitorConfig", "score"]
