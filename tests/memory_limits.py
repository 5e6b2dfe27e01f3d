"""What the stores a stage opens report as DuckDB's ``memory_limit`` (the
monitor's and the dashboard's stores have limits of their own), and what
DuckDB reports for a given limit, for the tests that check them."""

from __future__ import annotations

import types
from typing import Any

import duckdb
import pytest


def memory_setting(limit: str) -> str:
    """DuckDB's ``memory_limit`` setting, as a connection opened with ``limit`` reports it."""
    con = duckdb.connect(config={"memory_limit": limit})
    try:
        return str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])
    finally:
        con.close()


def spy_store_limits(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> list[str]:
    """Replaces ``module.Store`` by a subclass that records the memory limit
    of each store opened through it; returns the list it appends to."""
    seen: list[str] = []
    base = module.Store

    class Spy(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            seen.append(self.con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])

    monkeypatch.setattr(module, "Store", Spy)
    return seen
