"""``autolien.entropy.shannon_counts``: Shannon entropy of binned counts,
by row or by group, against scipy.stats.entropy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from autolien.entropy import shannon_counts


def test_rows_and_groups_match_scipy() -> None:
    rng = np.random.default_rng(9)
    rows = rng.integers(0, 50, (40, 12))
    rows[3] = 0
    got = shannon_counts(rows)
    want = [scipy.stats.entropy(r, base=2) if r.sum() else np.nan for r in rows]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    sizes = rng.integers(0, 9, 30)
    offsets = np.r_[0, np.cumsum(sizes)]
    flat = rng.integers(0, 3600, offsets[-1]).astype(np.float64)  # whole seconds as floats
    got = shannon_counts(flat, offsets=offsets)
    want = [
        scipy.stats.entropy(flat[a:b], base=2) if flat[a:b].sum() else np.nan
        for a, b in itertools.pairwise(offsets)
    ]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="whole"):
        shannon_counts(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match=">= 0"):
        shannon_counts(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="2-D"):
        shannon_counts(np.array([1, 2]))
    with pytest.raises(ValueError, match="offsets"):
        shannon_counts(np.array([1, 2]), offsets=[0, 3])
    with pytest.raises(TypeError):
        shannon_counts(np.array([["a"]]))
