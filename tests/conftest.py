from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# `make test` sets this: a test dependency that is missing there fails the
# run instead of skipping quietly (a bare `pytest` still skips, saying why).
REQUIRE_ALL = os.environ.get("AUTOLIEN_REQUIRE_ALL") == "1"


def missing(reason: str) -> NoReturn:
    """Skips for a missing dependency, or fails under AUTOLIEN_REQUIRE_ALL=1."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (AUTOLIEN_REQUIRE_ALL=1: nothing may be skipped)", pytrace=False)
    pytest.skip(reason)


def require_module(name: str) -> Any:
    """importorskip that fails instead under AUTOLIEN_REQUIRE_ALL=1."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        missing(f"needs {name}: {e}")


def load_json(rel: str) -> Any:
    with open(DATA / rel, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(params=["portable", "shani"])
def sha256_backend(request: pytest.FixtureRequest) -> Any:
    """Runs a test on each SHA-256 back end the CPU has, then restores the default."""
    from autolien import _core

    if request.param == "shani" and not _core.sha256_shani_supported():
        pytest.skip("CPU has no SHA extensions")
    before = _core.sha256_backend()
    _core.sha256_set_backend(request.param)
    yield request.param
    _core.sha256_set_backend(before)
