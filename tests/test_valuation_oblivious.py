"""Oblivious trees (the shipped CatBoost model's form): the compiled scorer
and the ONNX graph against CatBoost's own predict, and the scorer against a
plain reading of its documented rule at thresholds, NaN and infinities, on
every instruction set this CPU runs (AVX-512, AVX2, portable)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from autolien import _core
from autolien.valuation.data import load_uk_used_cars
from autolien.valuation.model import compile_trees
from autolien.valuation.train import (
    Encoder,
    ExportParityError,
    Recipe,
    _check_parity,
    _matrix,
    catboost_to_arrays,
    oblivious_onnx,
    run_onnx,
)
from conftest import require_module

catboost = require_module("catboost")
DATA = Path(__file__).parent / "data" / "valuation"
ISAS = [i for i in ("avx512", "avx2", "portable") if _core.ObliviousEnsemble.supports(i)]


@pytest.fixture(scope="module")
def fitted() -> tuple[Any, np.ndarray]:
    """A small CatBoost model of log price on 12,000 UK adverts, and rows to
    score: real ones, ones with each column missing, and ones sitting exactly
    on CatBoost's own borders (from its API, not from our conversion)."""
    uk = load_uk_used_cars(DATA / "uk_used_cars").slice(0, 12_000)
    y = np.log(uk.column("price").to_numpy())
    X = _matrix(uk, Encoder().fit(uk, y), Recipe([], ["tax", "mpg"], {})).astype(np.float64)
    X[np.random.default_rng(1).uniform(size=X.shape) < 0.03] = np.nan
    m = catboost.CatBoostRegressor(
        iterations=150,
        depth=7,
        learning_rate=0.3,
        random_seed=0,
        verbose=0,
        allow_writing_files=False,
    ).fit(X, y)
    rows = [X[:3000]]
    for j in range(X.shape[1]):
        h = X[:100].copy()
        h[:, j] = np.nan
        rows.append(h)
    for j, borders in m.get_borders().items():
        if borders:
            on = np.repeat(X[:1], len(borders), 0)
            on[:, j] = borders
            rows.append(on)
            rows.append(np.where(np.arange(X.shape[1]) == j, np.nextafter(on, np.inf), on))
    return m, np.ascontiguousarray(np.concatenate(rows), np.float32)


@pytest.mark.parametrize("isa", ISAS)
def test_compiled_matches_catboost(fitted: tuple[Any, np.ndarray], isa: str) -> None:
    m, X = fitted
    trees = compile_trees(catboost_to_arrays(m), X.shape[1])
    assert (trees.n_trees, trees.depth) == (150, 7)
    want = m.predict(X.astype(np.float64))
    np.testing.assert_allclose(trees.predict(X, isa=isa), want, rtol=0, atol=1e-5)
    # blocks of 512 rows, groups of 16: every partial size keeps each row's answer
    for n in (0, 1, 15, 16, 17, 511, 512, 513, 1100):
        got = trees.predict(np.ascontiguousarray(X[:n]), isa=isa)
        assert got.shape == (n,)
        np.testing.assert_allclose(got, want[:n], rtol=0, atol=1e-5)


def test_onnx_graph_matches_catboost(fitted: tuple[Any, np.ndarray]) -> None:
    m, X = fitted
    raw = oblivious_onnx(catboost_to_arrays(m), X.shape[1])
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    got = run_onnx(sess, X, batch=700)
    np.testing.assert_allclose(got, m.predict(X.astype(np.float64)), rtol=0, atol=1e-4)
    # a wrong export is refused: one leaf table shifted by 0.01
    bad = catboost_to_arrays(m)
    bad["leaf"][: 1 << 7] += 0.01
    with pytest.raises(ExportParityError, match="log space"):
        _check_parity(oblivious_onnx(bad, X.shape[1]), X, m.predict(X.astype(np.float64)))


@pytest.mark.parametrize("depth", [1, 3, 5, 6, 8, 9, 12, 13])
def test_rule_at_the_edges(depth: int) -> None:
    """Random tables read by the documented rule: bit d of the leaf index is
    x[feature] > threshold at level d, NaN never greater. Depths cover the
    permute kernels (<= 8), the unrolled gathers (9-12) and the looped one."""
    rng = np.random.default_rng(depth)
    n_trees, nf = 7, 3
    cuts = np.array([-1.5, 0.0, 0.25, 2.0], np.float32)
    feature = rng.integers(0, nf, n_trees * depth).astype(np.int32)
    threshold = rng.choice(np.append(cuts, np.float32(np.inf)), n_trees * depth).astype(np.float32)
    leaf = rng.normal(size=n_trees << depth).astype(np.float32)
    t = _core.ObliviousEnsemble(depth, feature, threshold, leaf, 0.5, nf)
    edges = [np.nextafter(c, np.float32(d)) for c in cuts for d in (-np.inf, np.inf)]
    pool = np.array([*cuts, -7.0, 9.0, np.nan, np.inf, -np.inf, *edges], np.float32)
    X = rng.choice(pool, size=(1000, nf)).astype(np.float32)

    def rule(x: np.ndarray) -> float:
        total = 0.5
        for k in range(n_trees):
            idx = 0
            for d in range(depth):
                if x[feature[k * depth + d]] > threshold[k * depth + d]:
                    idx |= 1 << d
            total += float(leaf[(k << depth) + idx])
        return total

    want = [rule(x) for x in X]
    for isa in ISAS:
        np.testing.assert_allclose(t.predict(X, isa=isa), want, rtol=0, atol=1e-5)


def test_padded_shallow_trees() -> None:
    """CatBoost may stop a tree early: a shallower tree is padded with
    never-true levels and its leaves repeated, so it scores as it was."""

    class Dumped:
        def save_model(self, path: str, format: str) -> None:
            assert format == "json"
            trees = [
                {"splits": [_split(0, 0.5), _split(1, -1.0)], "leaf_values": [1, 2, 3, 4]},
                {"splits": [_split(1, 0.0)], "leaf_values": [10, 20]},
            ]
            Path(path).write_text(
                json.dumps({"oblivious_trees": trees, "scale_and_bias": [2.0, [0.25]]})
            )

    a = catboost_to_arrays(Dumped())
    assert int(a["depth"]) == 2
    t = compile_trees(a, 2)
    X = np.array([[0.0, -2.0], [1.0, -2.0], [0.0, 0.5], [1.0, 0.5], [np.nan, np.nan]], np.float32)
    # scale x leaf + bias, by hand: (x0 > 0.5) + 2 (x1 > -1); then x1 > 0
    want = [
        2 * (1 + 10) + 0.25,
        2 * (2 + 10) + 0.25,
        2 * (3 + 20) + 0.25,
        2 * (4 + 20) + 0.25,
        2 * (1 + 10) + 0.25,
    ]
    for isa in ISAS:
        np.testing.assert_allclose(t.predict(X, isa=isa), want, atol=1e-6)
    sess = ort.InferenceSession(oblivious_onnx(a, 2), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(run_onnx(sess, X), want, atol=1e-5)

    class Categorical(Dumped):
        def save_model(self, path: str, format: str) -> None:  # noqa: ARG002
            sp = {"split_type": "OnlineCtr", "border": 0.5}
            Path(path).write_text(
                json.dumps({"oblivious_trees": [{"splits": [sp], "leaf_values": [0, 1]}]})
            )

    with pytest.raises(ValueError, match="ordinal codes"):
        catboost_to_arrays(Categorical())


def _split(f: int, border: float) -> dict[str, Any]:
    return {"split_type": "FloatFeature", "float_feature_index": f, "border": border}


def test_bad_arrays_and_rows_are_refused() -> None:
    f = np.zeros(4, np.int32)
    th = np.zeros(4, np.float32)
    lv = np.zeros(8, np.float32)
    O = _core.ObliviousEnsemble
    with pytest.raises(ValueError, match=r"depth of 1\.\.16"):
        O(0, f, th, lv, 0.0, 1)
    with pytest.raises(ValueError, match=r"depth of 1\.\.16"):
        O(17, f, th, lv, 0.0, 1)
    with pytest.raises(ValueError, match="2\\^depth"):
        O(2, f, th, np.zeros(7, np.float32), 0.0, 1)
    with pytest.raises(ValueError, match="threshold"):
        O(2, f, th[:3], lv, 0.0, 1)
    with pytest.raises(ValueError, match="depth entries"):
        O(3, f, th, lv, 0.0, 1)
    with pytest.raises(ValueError, match="feature the model lacks"):
        O(2, np.array([0, 0, 0, 1], np.int32), th, lv, 0.0, 1)
    t = O(2, f, th, lv, 0.0, 1)
    assert (t.n_trees, t.depth, t.n_features) == (2, 2, 1)
    with pytest.raises(ValueError, match="one column per feature"):
        t.predict(np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError):
        t.predict(np.zeros((3, 1), np.float64))  # hot arrays are not converted
    with pytest.raises(ValueError, match="isa must be"):
        t.predict(np.zeros((3, 1), np.float32), isa="neon")
    assert O.best_isa() in ISAS
    assert ISAS[0] == O.best_isa()  # auto takes the best this CPU runs


def test_shipped_model_is_oblivious_and_matches_onnxruntime() -> None:
    from autolien.valuation import DEFAULT_MODEL, Valuer

    v = Valuer.load()
    meta = json.loads((DEFAULT_MODEL / "model.json").read_text())
    assert meta["learner"] == "catboost"
    assert isinstance(v.trees, _core.ObliviousEnsemble)
    uk = load_uk_used_cars(DATA / "uk_used_cars").slice(0, 5000)
    X = v.features(uk.drop_columns(["price"]))
    X[::7, -2:] = np.nan  # lenders without tax and mpg
    sess = ort.InferenceSession(
        str(DEFAULT_MODEL / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    want = run_onnx(sess, X)
    for isa in ISAS:
        np.testing.assert_allclose(v.trees.predict(X, isa=isa), want, rtol=0, atol=1e-4)
