"""``release_memory`` gives freed heap memory back to the system (glibc)."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

from autolien._memory import release_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    release_memory()
    start = _rss_mb()
    # 64 KiB blocks sit below glibc's mmap threshold, in the heap; a few
    # small arrays allocated after them keep the heap's top from shrinking
    blocks = [np.ones(8192) for _ in range(8000)]  # 512 MiB
    pinned = [np.ones(16) for _ in range(64)]
    del blocks
    held = _rss_mb() - start
    if held < 256:
        pytest.skip(f"this malloc returned the blocks by itself ({held:.0f} MB held)")
    release_memory()
    after = _rss_mb() - start
    assert after < 0.2 * held, (held, after)
    assert len(pinned) == 64
