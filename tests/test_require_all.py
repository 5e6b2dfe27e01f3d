"""`make test` sets AUTOLIEN_REQUIRE_ALL=1: a missing test dependency then
fails the run; a bare pytest skips it, saying why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.mark.parametrize("where", [TESTS, ROOT / "bench"], ids=["tests", "bench"])
@pytest.mark.parametrize(("require_all", "outcome"), [("1", "1 failed"), ("0", "1 skipped")])
def test_a_missing_dependency_fails_under_make_test(
    tmp_path: Path, require_all: str, outcome: str, where: Path
) -> None:
    (tmp_path / "test_needs_it.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(where)!r})\n"
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


def test_make_test_runs_the_benches_with_require_all_and_no_quiet_skips() -> None:
    # the peers (pynmea2, obd, antropy, onnxruntime, pymerkle, ...) go through
    # bench/conftest.py's require_module, and make test's bench line sets the flag
    for f in sorted((ROOT / "bench").glob("bench_*.py")):
        assert "importorskip" not in f.read_text(), f.name
    lines = (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    (bench,) = [ln for ln in lines.splitlines() if "pytest bench" in ln]
    assert "AUTOLIEN_REQUIRE_ALL=1 " in bench
