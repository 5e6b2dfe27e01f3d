"""Entropy measures (antropy-compatible), rolling forms and per-vehicle batches."""

from __future__ import annotations

from .batch import by_vehicle
from .measures import (
    app_entropy,
    histogram_edges,
    perm_entropy,
    rolling_perm_entropy,
    rolling_shannon_entropy,
    sample_entropy,
    shannon_counts,
    shannon_entropy,
    spectral_entropy,
    svd_entropy,
)

__all__ = [
    "app_entropy",
    "by_vehicle",
    "histogram_edges",
    "perm_entropy",
    "rolling_perm_entropy",
    "rolling_shannon_entropy",
    "sample_entropy",
    "shannon_counts",
    "shannon_entropy",
    "spectral_entropy",
    "svd_entropy",
]
