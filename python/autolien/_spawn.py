"""What every spawned worker pool of the package shares (the monitor's
blocks, the ledger audit's signatures)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["main_not_rerun"]


@contextlib.contextmanager
def main_not_rerun() -> Iterator[None]:
    """While worker processes start: a spawned process runs the parent's
    main script again (as ``__mp_main__``) unless the script guards its work
    with ``if __name__ == "__main__"``; an unguarded script that runs the
    pipeline would run it again in every worker, on the same store. Hiding
    where the main module came from makes the workers import only what
    the task needs. Wrap each submit: a pool starts a worker at a submit
    when none is idle."""
    main = sys.modules.get("__main__")
    saved: dict[str, Any] = {
        k: main.__dict__[k] for k in ("__file__", "__spec__") if main and k in main.__dict__
    }
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)
