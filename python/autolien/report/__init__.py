"""Reports: the static risk dashboard."""

from __future__ import annotations

from .dashboard import build_dashboard

__all__ = ["build_dashboard"]
