"""Base-value scoring: our compiled scorers against onnxruntime (one thread,
the usual deployment baseline) and the training libraries' own predict, on
the same rows of the UK listings, in one run.

Two models, both trained here on all the listings:

* the shipped recipe (``PARAMS``: CatBoost, 2000 oblivious trees of depth
  7), scored by our ``ObliviousEnsemble`` (AVX-512, AVX2 and portable paths),
  CatBoost's own predict and onnxruntime on its ONNX graph;
* the issue's baseline, a 500-tree HistGradientBoosting export (63 leaves,
  learning rate 0.1), scored by onnxruntime on one thread, by scikit-learn's
  predict and by our generic ``TreeEnsemble``.

In quick mode the models are small (200 and 50 trees) so that CI stays fast.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import QUICK, require_module, sizes, tag

SIZES = sizes((10_000, 100_000, 1_000_000), (1_000, 10_000, 100_000))
# onnxruntime on the oblivious graph runs about 4k rows/s: it stops at 1e5
SMALL = sizes((1_000, 10_000, 100_000), (1_000, 10_000, 100_000))
DATA = Path(__file__).parent.parent / "tests" / "data" / "valuation" / "uk_used_cars"


BASELINE = {"max_iter": 500, "learning_rate": 0.1, "max_leaf_nodes": 63}


@cache
def model(recipe: str = "shipped") -> tuple[Any, bytes, Any, np.ndarray]:
    from autolien.valuation.data import load_uk_used_cars
    from autolien.valuation.model import compile_trees
    from autolien.valuation.train import HGB_PARAMS, PARAMS, Encoder, Recipe, _export, _fit, _matrix

    table = load_uk_used_cars(DATA)
    y = np.log(table.column("price").to_numpy())
    enc = Encoder().fit(table, y)
    X = _matrix(table, enc, Recipe([], ["tax", "mpg"], {}))
    if recipe == "baseline":
        r = Recipe([], [], {**HGB_PARAMS, **BASELINE}, 0, learner="hgb")
        if QUICK:
            r.params["max_iter"] = 50
    else:
        r = Recipe([], [], dict(PARAMS), 0)
        if QUICK:
            r.params["iterations"] = 200
    m = _fit(r, X.astype(np.float64), y)
    raw, a = _export(r, m, X[:2000])  # refused unless onnxruntime matches the library
    return m, raw, compile_trees(a, X.shape[1]), X


@cache
def rows(n: int) -> np.ndarray:
    X = model()[3]
    # a fixed shuffle: the files list adverts make by make, an easy order
    pick = np.random.default_rng(0).integers(0, X.shape[0], n)
    return np.ascontiguousarray(X[pick])


def _ort(raw: bytes) -> Any:
    ort = require_module("onnxruntime")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_ours_compiled(benchmark: Any, n: int) -> None:
    from autolien import _core

    trees, X = model()[2], rows(n)
    isa = _core.ObliviousEnsemble.best_isa()
    what = f"ObliviousEnsemble ({trees.n_trees} trees of depth {trees.depth}, {isa}, all cores)"
    tag(benchmark, "ours", what, n, size=n)
    out = benchmark.pedantic(trees.predict, args=(X,), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (n,)


@pytest.mark.parametrize("isa", ["avx2", "portable"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_ours_compiled_without_avx512(benchmark: Any, n: int, isa: str) -> None:
    from autolien import _core

    if not _core.ObliviousEnsemble.supports(isa):
        pytest.skip(f"this CPU lacks {isa}")
    trees, X = model()[2], rows(n)
    tag(benchmark, "ours", f"ObliviousEnsemble, {isa} path, all cores", n, size=n)
    out = benchmark.pedantic(
        lambda: trees.predict(X, isa=isa), rounds=1, iterations=1, warmup_rounds=1
    )
    np.testing.assert_allclose(out, trees.predict(X), atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_catboost(benchmark: Any, n: int) -> None:
    m, _, trees, _ = model()
    X = rows(n).astype(np.float64)
    tag(benchmark, "peer", "CatBoost's own predict, all cores (same model)", n, size=n)
    out = benchmark.pedantic(lambda: m.predict(X, thread_count=-1), rounds=1, iterations=1)
    np.testing.assert_allclose(out, trees.predict(rows(n)), atol=1e-5)


@pytest.mark.parametrize("n", SMALL)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_onnxruntime(benchmark: Any, n: int) -> None:
    from autolien.valuation.train import run_onnx

    _, raw, trees, _ = model()
    X = rows(n)
    sess = _ort(raw)
    tag(benchmark, "peer", "onnxruntime on its ONNX graph, 1 thread (same model)", n, size=n)
    out = benchmark.pedantic(lambda: run_onnx(sess, X), rounds=1, iterations=1)
    np.testing.assert_allclose(out, trees.predict(X), atol=1e-5)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score")
def test_score_peer_baseline_onnxruntime(benchmark: Any, n: int) -> None:
    m, raw, _, _ = model("baseline")
    X = rows(n)
    sess = _ort(raw)
    name = sess.get_inputs()[0].name
    trees = "50" if QUICK else "500"
    tag(benchmark, "peer", f"onnxruntime, 1 thread, the baseline {trees}-tree export", n, size=n)
    out = benchmark.pedantic(lambda: sess.run(None, {name: X})[0], rounds=1, iterations=1)
    np.testing.assert_allclose(out.ravel(), m.predict(X.astype(np.float64)), atol=1e-4)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score-baseline")
def test_score_ours_tree_ensemble_on_baseline(benchmark: Any, n: int) -> None:
    trees, X = model("baseline")[2], rows(n)
    tag(
        benchmark,
        "ours",
        f"TreeEnsemble ({trees.n_trees} trees, all cores), baseline model",
        n,
        size=n,
    )
    out = benchmark.pedantic(trees.predict, args=(X,), rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape == (n,)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.benchmark(group="valuation-score-baseline")
def test_score_peer_sklearn_on_baseline(benchmark: Any, n: int) -> None:
    m, _, trees, _ = model("baseline")
    X = rows(n).astype(np.float64)
    tag(
        benchmark,
        "peer",
        "scikit-learn HistGradientBoosting.predict, all cores (baseline model)",
        n,
        size=n,
    )
    out = benchmark.pedantic(m.predict, args=(X,), rounds=1, iterations=1)
    np.testing.assert_allclose(out, trees.predict(rows(n)), atol=1e-4)
