"""Base-value scoring: our compiled tree ensemble against onnxruntime (one
thread, the usual deployment baseline) and scikit-learn's own predict, on
the same rows of the UK listings, in one run.

Two models, both trained here on all the listings (scikit-learn's estimator
is not shipped): the shipped recipe (``PARAMS``: 300 trees of up to 191
leaves), scored by all three; and the issue's baseline, a 500-tree export
(63 leaves, learning rate 0.1) of equal accuracy, scored by onnxruntime on one
thread. In quick mode both have 50 trees so that CI stays fast.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import QUICK, sizes, tag

SIZES = sizes((10_000, 100_000, 1_000_000), (1_000, 10_000, 100_000))
DATA = Path(__file__).parent.parent / "tests" / "data" / "valuation" / "uk_used_cars"


BASELINE = {"max_iter": 500, "learning_rate": 0.1, "max_leaf_nodes": 63}


@cache
def model(recipe: str = "shipped") -> tuple[Any, bytes, Any, np.ndarray]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from autolien.valuation.data import load_uk_used_cars
    from autolien.valuation.model import compile_trees
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
    params = {**PARAMS, **(BASELINE if recipe == "baseline" else {})}
    if QUICK:
        params["max_iter"] = 50
    m = HistGradientBoostingRegressor(random_state=0, early_stopping=False, **params).fit(
        X.astype(np.float64), y
    )
    raw = export_onnx(m, X[:2000])
    a = onnx_to_arrays(raw)
    trees = compile_trees(a, X.shape[1])
    return m, raw, trees, X


@cache
def rows(n: int) -> np.ndarray:
    X = model()[3]
    # a fixed shuffle: the files list adverts make by make, an easy order
    pick = np.random.default_rng(0).integers(0, X.shape[0], n)
    return np.ascontiguousarray(X[pick])


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
    tag(benchmark, "peer", "onnxruntime TreeEnsembleRegressor, 1 thread (same model)", n, size=n)
    out = benchmark.pedantic(lambda: sess.run(None, {name: X})[0], rounds=1, iterations=1)
    np.testing.assert_allclose(out.ravel(), trees.predict(X), atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_sklearn(benchmark: Any, n: int) -> None:
    m, _, trees, _ = model()
    X = rows(n).astype(np.float64)
    tag(
        benchmark,
        "peer",
        "scikit-learn HistGradientBoosting.predict, all cores (same model)",
        n,
        size=n,
    )
    out = benchmark.pedantic(m.predict, args=(X,), rounds=1, iterations=1)
    np.testing.assert_allclose(out, trees.predict(rows(n)), atol=1e-4)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_baseline_onnxruntime(benchmark: Any, n: int) -> None:
    ort = pytest.importorskip("onnxruntime")
    m, raw, _, _ = model("baseline")
    X = rows(n)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    trees = "50" if QUICK else "500"
    tag(benchmark, "peer", f"onnxruntime, 1 thread, the baseline {trees}-tree export", n, size=n)
    out = benchmark.pedantic(lambda: sess.run(None, {name: X})[0], rounds=1, iterations=1)
    np.testing.assert_allclose(out.ravel(), m.predict(X.astype(np.float64)), atol=1e-4)
