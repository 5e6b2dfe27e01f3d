"""Monitoring thresholds. Every default is documented in docs/monitor.md,
which a test checks against this class."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..schemas import LEVELS

__all__ = ["LEVELS", "MonitorConfig"]


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds for features, detectors and alert grading."""

    # features
    context_h: int = 24  # trailing window of every per-hour feature
    moving_kmh: float = 3.0  # a fix at or above this speed is moving
    stop_min_s: float = 120.0  # shorter stationary runs are not stops
    step_cap_s: float = 120.0  # a step counts at most this long as driving time
    dwell_cap_s: float = 600.0  # a fix stands for at most this long in location time
    cell_m: float = 1000.0  # sinusoidal equal-area grid cell side
    tz_offset_h: float = 8.0  # local time for night driving (China Standard Time), -12..14
    tz: str = ""  # an IANA zone name ("America/Chicago"); when set it replaces tz_offset_h
    night_start_h: int = 22
    night_end_h: int = 6
    harsh_accel_mps2: float = 3.0
    harsh_brake_mps2: float = 3.5
    harsh_max_dt_s: float = 5.0  # harsh events need fixes at most this far apart
    speeding_kmh: float = 120.0
    # baselines
    baseline_h: int = 14 * 24  # trailing period of the median/MAD baseline
    lag_h: int = 24  # the baseline ends this long before the scored day
    min_baseline_h: int = 168  # history (days with data, in hours) needed before scoring: a week
    min_baseline_samples: int = 24  # and at least this many hours with data in it
    # entropy increase
    entropy_z_floor: float = 0.25  # bits: the smallest robust scale of an entropy feature
    stop_z_floor: float = 0.75  # bits: stop entropy rests on a few stops a day
    share_z_floor: float = 0.05  # the same for the new-place share
    cusum_k: float = 3.0  # allowance per hour, in robust z units
    cusum_h: float = 24.0  # decision threshold (the CUSUM is capped at 3x it)
    # a second chart of the same score for weak, lasting changes (0: none)
    cusum_slow_k: float = 2.0
    cusum_slow_h: float = 72.0
    # mileage
    mileage_warn_km_month: float = 1500.0  # excess over baseline, as km/month
    mileage_z: float = 3.5  # modified z-score (Iglewicz & Hoaglin)
    mileage_mad_floor_km: float = 5.0
    # the excess must also have held in a 24 h window that ended 1-2 such
    # periods before; a confirmed jump opens as an alert (0: one window, as a warning)
    mileage_confirm_h: int = 24
    rollback_km: float = 0.5
    freeze_track_km: float = 20.0
    mismatch_low: float = 0.7
    mismatch_high: float = 1.4
    # position jumps
    jump_min_m: float = 2000.0
    jump_kmh: float = 200.0
    jump_still_gap_s: float = 600.0
    jump_alert_m: float = 50000.0
    jump_confirm_fixes: int = 2  # fixes after a jump that must not come back (a GPS glitch does)
    # towing: moving with the ignition (JT/T 808 ACC bit) off
    tow_min_m: float = 500.0
    # relocation
    away_km: float = 50.0
    home_days: int = 5  # days a cell must be visited on to be familiar
    away_hours: int = 12  # away hours in the context window that raise it
    away_emergency_h: int = 72  # continuous hours away that make it an emergency
    # device silence
    silence_warning_h: float = 6.0
    silence_alert_h: float = 24.0
    silence_emergency_h: float = 72.0
    silence_learn_min_h: float = 1.0  # gaps at least this long are learnt as the vehicle's habit
    silence_learn_gaps: int = 3  # learnt gaps in the baseline period needed to move the thresholds
    silence_margin: float = 1.25  # the warning waits this many times the habitual long gap
    # grading
    cooldown_h: float = 6.0
    close_after_h: float = 24.0
    escalate_h: float = 24.0
    path_points: int = 200

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "tz":
                if not isinstance(v, str):
                    raise ValueError(f"MonitorConfig.tz must be an IANA zone name, got {v!r}")
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"MonitorConfig.{f.name} must be a finite number, got {v!r}")
            if v < 0 and f.name != "tz_offset_h":
                raise ValueError(f"MonitorConfig.{f.name} must be a number >= 0, got {v!r}")
        if not -12.0 <= self.tz_offset_h <= 14.0:
            raise ValueError(
                f"MonitorConfig.tz_offset_h must be in [-12, 14] h, got {self.tz_offset_h!r}"
            )
        if self.tz:
            try:
                ZoneInfo(self.tz)
            except (ZoneInfoNotFoundError, ValueError) as e:
                raise ValueError(f"MonitorConfig.tz: unknown IANA zone {self.tz!r}") from e
        if self.silence_learn_min_h > self.silence_warning_h:
            raise ValueError("silence_learn_min_h must not exceed silence_warning_h")
        if self.context_h < 1 or self.baseline_h < 24 or self.cell_m <= 0:
            raise ValueError("context_h >= 1, baseline_h >= 24 and cell_m > 0 are required")
        if not self.silence_warning_h <= self.silence_alert_h <= self.silence_emergency_h:
            raise ValueError("silence thresholds must increase: warning <= alert <= emergency")
        if self.mileage_confirm_h != int(self.mileage_confirm_h) or (
            2 * self.mileage_confirm_h > self.baseline_h
        ):
            # the earliest window it reads must still be in the kept history
            raise ValueError("mileage_confirm_h must be whole hours, at most baseline_h / 2")
        if self.mismatch_low >= self.mismatch_high:
            raise ValueError("mismatch_low must be below mismatch_high")
