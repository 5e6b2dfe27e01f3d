"""autolien: the collateral engine for vehicle-backed lending.

Areas: ``autolien.ledger`` (tamper-evident Merkle log, asset ledger, checkpoints,
OpenZeppelin trees), ``autolien.telemetry`` (JT/T 808, GB/T 32960, NMEA/UBX and
OBD-II decoders), ``autolien.gnss`` (RTK fusion, parked episodes, geofences),
``autolien.entropy`` (antropy-compatible kernels), ``autolien.monitor`` (alerts),
``autolien.valuation`` (the shipped model and its adjustments), ``autolien.report``
(the dashboard), ``autolien.sim`` (the portfolio simulator) and ``autolien.pipeline``
(the batch run over one DuckDB store).
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

# The only place the version is written: pyproject reads it from here.
__version__ = "0.1.0"

__all__ = ["AutolienError", "__version__", "get_num_threads", "set_num_threads"]


def __dir__() -> list[str]:
    return __all__
