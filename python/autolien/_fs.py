"""File-system helpers every area shares."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(path: str | os.PathLike[str] | Path) -> None:
    """Makes the names in directory ``path`` durable: a file created or
    renamed there survives a crash only once its directory is synced."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
