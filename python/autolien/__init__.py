"""autolien: the collateral engine for vehicle-backed lending.

Areas: ``autolien.ledger`` (tamper-evident Merkle log and OpenZeppelin trees);
telemetry, gnss, entropy, valuation and monitor arrive as their issues land.
"""

from __future__ import annotations

try:
    from ._core import AutolienError, get_num_threads, set_num_threads
except ImportError as err:  # pragma: no cover - only without a build
    msg = (
        "autolien._core could not be imported. Did you forget to compile the C++ core? "
        "Install with `make install` (or `pip install .`) rather than importing the source tree."
    )
    raise ImportError(msg) from err

__version__ = "0.1.0"

__all__ = ["AutolienError", "__version__", "get_num_threads", "set_num_threads"]


def __dir__() -> list[str]:
    return __all__
