"""Simulated fleets for demos, benchmarks and end-to-end tests."""

from __future__ import annotations

from .behaviour import ANOMALIES, EXPECTED_LEVEL, Fleet, simulate_fleet

__all__ = ["ANOMALIES", "EXPECTED_LEVEL", "Fleet", "simulate_fleet"]
