from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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
