from __future__ import annotations

import json
import subprocess
import sys

import pytest

from autolien import _core
from autolien.cli import main


def test_info_reports_the_build(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sha256_backend"] == _core.sha256_backend()
    assert out["sha_ni"] == _core.sha256_shani_supported()
    assert out["threads"] == _core.get_num_threads()


def test_console_script_entry_point() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "autolien.cli", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.startswith("autolien ")
