"""`make test` sets AUTOLIEN_REQUIRE_ALL=1: a missing test dependency then
fails the run; a bare pytest skips it, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.mark.parametrize(("require_all", "outcome"), [("1", "1 failed"), ("0", "1 skipped")])
def test_a_missing_dependency_fails_under_make_test(
    tmp_path: Path, require_all: str, outcome: str
) -> None:
    (tmp_path / "test_needs_it.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from conftest import require_module\n\n"
        "def test_it():\n"
        "    require_module('autolien_no_such_module')\n"
    )
    env = {**os.environ, "AUTOLIEN_REQUIRE_ALL": require_all}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert outcome in run.stdout, run.stdout
    if require_all == "1":
        assert "nothing may be skipped" in run.stdout
