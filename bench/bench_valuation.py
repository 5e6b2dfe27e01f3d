"""Base-value scoring: our compiled tree ensemble against onnxruntime (one
thread, the usual deployment baseline) and scikit-learn's own predict, on
the same rows of the UK listings, in one run.

The model is the shipped recipe retrained here (scikit-learn's estimator is
not shipped); in quick mode a 50-tree version keeps CI fast.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autolien import _core
from conftest import QUICK, sizes, tag

SIZES = sizes((10_000, 100_000, 1_000_000), (1_000, 10_000, 100_000))
DATA = Path(__file__).parent.parent / "tests" / "data" / "valuation" / "uk_used_cars"


@cache
def model() -> tuple[Any, bytes, Any, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from autolien.valuation.data import load_uk_used_cars
    from autolien.valuation.train import (
        PARAMS,
        Encoder,
        Recipe,
        _matrix,
        export_onnx,
        onnx_to_arrays,
    )

    table = load_uk_used_cars(DATA)
    y = np.log(table.column("price").to_numpy())
    enc = Encoder().fit(table, y)
    X = _matrix(table, enc, Recipe([], ["tax", "mpg"], {}))
    params = {**PARAMS, "max_iter": 50} if QUICK else PARAMS
    m = HistGradientBoostingRegressor(random_state=0, early_stopping=False, **params).fit(
        X.astype(np.float64), y
    )
    raw = export_onnx(m, X[:2000])
    a = onnx_to_arrays(raw)
    trees = _core.TreeEnsemble(
        a["feature"],
        a["threshold"],
        a["yes"],
        a["no"],
        a["missing_yes"],
        a["value"],
        a["roots"],
        bool(a["leq"]),
        float(a["base"]),
        X.shape[1],
    )
    return m, raw, trees, X


@cache
def rows(n: int) -> np.ndarray:
    X = model()[3]
    return np.ascontiguousarray(X[np.arange(n) % X.shape[0]])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_ours_compiled(benchmark: Any, n: int) -> None:
    trees, X = model()[2], rows(n)
    tag(benchmark, "ours", f"compiled TreeEnsemble ({trees.n_trees} trees, all cores)", n, size=n)
    out = benchmark.pedantic(trees.predict, args=(X,), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (n,)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_onnxruntime(benchmark: Any, n: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    _, raw, trees, _ = model()
    X = rows(n)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    tag(benchmark, "peer", "onnxruntime TreeEnsembleRegressor, 1 thread", n, size=n)
    out = benchmark.pedantic(lambda: sess.run(None, {name: X})[0], rounds=1, iterations=1)
    np.testing.assert_allclose(out.ravel(), trees.predict(X), atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_sklearn(benchmark: Any, n: int) -> None:
    m, _, trees, _ = model()
    X = rows(n).astype(np.float64)
    tag(benchmark, "peer", "scikit-learn HistGradientBoosting.predict", n, size=n)
    out = benchmark.pedantic(m.predict, args=(X,), rounds=1, iterations=1)
    np.testing.assert_allclose(out, trees.predict(rows(n)), atol=1e-4)
