"""Valuation base model: ONNX parity with scikit-learn, our compiled scorer
against onnxruntime, the known categorical exporter bug caught, the shipped
model's metrics reproduced from the data, and bad input handled per row."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from autolien import _core
from autolien.cli import main
from autolien.valuation import DEFAULT_MODEL, ExportParityError, Valuer
from autolien.valuation.data import load_cardekho, load_uk_used_cars, split
from autolien.valuation.model import compile_trees
from autolien.valuation.train import export_onnx, onnx_to_arrays

DATA = Path(__file__).parent / "data" / "valuation"


@pytest.fixture(scope="module")
def uk() -> pa.Table:
    return load_uk_used_cars(DATA / "uk_used_cars")


def test_loaders_read_the_listings(uk: pa.Table) -> None:
    assert uk.num_rows == 79_456 - 1  # the advert dated 2060 is dropped
    assert set(uk.column("fuel").to_pylist()) <= {"petrol", "diesel", "hybrid", "electric", "other"}
    assert uk.column("mileage_km").to_pylist()[0] == pytest.approx(
        36203 * 1.609344
    )  # audi A6, first row
    cd = load_cardekho(DATA / "cardekho" / "cardekho_dataset.csv")
    assert cd.num_rows == 15_411
    assert cd.column("engine_size_l").null_count <= 14


def test_onnx_export_matches_sklearn_and_compiled_matches_onnxruntime(uk: pa.Table) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    X[rng.uniform(size=X.shape) < 0.05] = np.nan  # missing values take their learned side
    y = X[:, 0] * 2 + np.nan_to_num(X[:, 1]) ** 2 + rng.normal(0, 0.1, 3000)
    m = HistGradientBoostingRegressor(max_iter=60, random_state=0).fit(
        X.astype(np.float64), np.nan_to_num(y)
    )
    raw = export_onnx(m, X)
    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    onnx_pred = sess.run(None, {sess.get_inputs()[0].name: X})[0].ravel()
    assert np.abs(onnx_pred - m.predict(X.astype(np.float64))).max() <= 1e-4
    a = onnx_to_arrays(raw)
    trees = compile_trees(a, 6)
    np.testing.assert_allclose(trees.predict(X), onnx_pred, atol=1e-5)
    # Rows are walked in groups of 8 and re-ordered per chunk: every partial
    # group, chunk boundary and multi-chunk size keeps each row's own answer.
    big = X[rng.integers(0, X.shape[0], 70_001)]
    want = sess.run(None, {sess.get_inputs()[0].name: big})[0].ravel()
    for n in (0, 1, 7, 9, 1023, 1025, 2049, 70_001):
        got = trees.predict(np.ascontiguousarray(big[:n]))
        assert got.shape == (n,)
        np.testing.assert_allclose(got, want[:n], atol=1e-5)


def test_native_categorical_export_bug_is_refused(uk: pa.Table) -> None:
    # skl2onnx exports HistGradientBoosting's native categorical splits
    # silently wrong (a 49% MdAPE on this data): export must refuse them
    from autolien.valuation.train import Encoder, Recipe, _matrix

    sub = uk.slice(0, 12_000)
    y = np.log(sub.column("price").to_numpy())
    enc = Encoder().fit(sub, y)
    X = _matrix(sub, enc, Recipe([], [], {}))
    cats = [0, 1, 2, 3]
    m = HistGradientBoostingRegressor(max_iter=60, categorical_features=cats, random_state=0)
    m.fit(np.nan_to_num(X, nan=0).astype(np.float64), y)
    with pytest.raises(ExportParityError, match="categorical"):
        export_onnx(m, np.nan_to_num(X, nan=0)[:2000])


def test_shipped_model_card_matches_a_retrain(uk: pa.Table, tmp_path: Path) -> None:
    shipped = json.loads((DEFAULT_MODEL / "model.json").read_text())
    assert shipped["currency"] == "GBP"
    assert (DEFAULT_MODEL / "model.onnx").stat().st_size < 5e6
    assert (
        main(["valuation", "train", "--data", str(DATA / "uk_used_cars"), "--out", str(tmp_path)])
        == 0
    )
    again = json.loads((tmp_path / "model.json").read_text())
    assert again["version"] == shipped["version"]  # the same ONNX bytes: reproducible
    assert again["metrics"]["test"] == shipped["metrics"]["test"]
    # The per-pattern interval table (added later by `recalibrate`, without a
    # retrain) is what a retrain computes, to the last bit.
    assert (
        again["log_residual_interval_90_by_pattern"]
        == shipped["log_residual_interval_90_by_pattern"]
    )
    assert again["interval_90_coverage"] == shipped["interval_90_coverage"]
    # an independent check of the card's test metric from the shipped model
    v = Valuer.load()
    _, te = split(uk.num_rows, shipped["seed"])
    test = uk.take(pa.array(te))
    pred = v.predict_log(v.features(test.drop_columns(["price"]), dt.date(2020, 7, 1)))
    price = test.column("price").to_numpy()
    ape = np.abs(np.exp(pred) / price - 1)
    assert float(np.median(ape)) * 100 == pytest.approx(
        shipped["metrics"]["test"]["mdape_pct"], abs=0.01
    )
    # well ahead of the naive make/model/year median (MdAPE 9.1% on this data)
    assert shipped["metrics"]["test"]["mdape_pct"] < 6.0
    # the same recipe on CarDekho (India) must beat the naive make/model/age
    # median on the same split (docs/valuation.md: the band is derived, not cited)
    assert 8.0 < shipped["metrics"]["cardekho (INR)"]["mdape_pct"] < _naive_cardekho_mdape()


def _naive_cardekho_mdape(seed: int = 42) -> float:
    """MdAPE (%) of the naive price on CarDekho's test split: the median
    training price of the same brand, model and age (else brand and model,
    else all), computed here from the CSV. 10.65% on the shipped data."""
    import csv

    with open(DATA / "cardekho" / "cardekho_dataset.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tr, te = split(len(rows), seed)
    groups: dict[tuple[str, ...], list[float]] = {}
    for i in tr:
        r = rows[i]
        for key in ((r["brand"], r["model"], r["vehicle_age"]), (r["brand"], r["model"]), ()):
            groups.setdefault(key, []).append(float(r["selling_price"]))
    ape = []
    for i in te:
        r = rows[i]
        key = next(
            k
            for k in ((r["brand"], r["model"], r["vehicle_age"]), (r["brand"], r["model"]), ())
            if k in groups
        )
        ape.append(abs(float(np.median(groups[key])) / float(r["selling_price"]) - 1))
    return float(np.median(ape)) * 100


def test_naive_cardekho_baseline_is_the_derived_band() -> None:
    assert _naive_cardekho_mdape() == pytest.approx(10.65, abs=0.01)


def test_hgb_learner_trains_exports_and_loads(tmp_path: Path) -> None:
    """The scikit-learn recipe end to end on CarDekho: skl2onnx export with
    its parity check, the generic TreeEnsemble, onnxruntime agreeing."""
    csv = DATA / "cardekho" / "cardekho_dataset.csv"
    args = ["valuation", "train", "--format", "cardekho", "--data", str(csv)]
    assert main([*args, "--out", str(tmp_path), "--learner", "hgb"]) == 0
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["learner"] == "hgb"
    assert "HistGradientBoostingRegressor" in (tmp_path / "MODEL_CARD.md").read_text()
    # beats the naive make/model/age median on the same split (10.65%)
    assert 8.0 < meta["metrics"]["test"]["mdape_pct"] < _naive_cardekho_mdape()
    v = Valuer.load(tmp_path)
    assert isinstance(v.trees, _core.TreeEnsemble)
    cd = load_cardekho(csv).slice(0, 500)
    X = v.features(cd.drop_columns(["price"]), dt.date(2023, 7, 1))
    np.testing.assert_allclose(
        v.predict_log(X), v.predict_log(X, engine="onnxruntime"), rtol=0, atol=1e-4
    )
    with pytest.raises(SystemExit):
        main([*args, "--out", str(tmp_path), "--learner", "xgboost"])


def test_value_rows_errors_and_flags() -> None:
    v = Valuer.load()
    veh = pa.table(
        {
            "make": ["audi", "tesla", "ford", "ford", "ford"],
            "model": ["A3", "Model 3", "Fiesta", "Fiesta", "Fiesta"],
            "year": [2017, 2019, 2030, 2016, None],
            "mileage_km": [50_000.0, 20_000.0, 1_000.0, -5.0, 10.0],
            "fuel": ["petrol", "electric", "petrol", "diesel", "lpg"],
            "transmission": ["manual", "automatic", "manual", "manual", "manual"],
            "engine_size_l": [1.4, 0.0, 1.0, 1.5, 1.0],
        }
    )
    out = v.value(veh, at=dt.date(2020, 6, 1)).to_pylist()
    assert out[0]["error"] is None
    assert out[0]["value"] > 0
    assert out[0]["value_low"] < out[0]["value"] < out[0]["value_high"]
    assert out[1]["flag"].startswith("unknown make")
    assert out[1]["value"] > 0
    assert "after the valuation date" in out[2]["error"]
    assert out[2]["value"] is None
    assert out[3]["error"] == "negative mileage -5 km"
    assert out[4]["error"] == "missing year"
    assert all(r["model_version"] == v.version for r in out)
    older = v.value(
        veh.slice(0, 1).set_column(3, "mileage_km", pa.array([150_000.0])), at=dt.date(2020, 6, 1)
    )
    assert older.column("value")[0].as_py() < out[0]["value"]  # more miles, less value
    with pytest.raises(ValueError, match="engine_size_l"):
        v.value(veh.drop_columns(["engine_size_l"]))
    with pytest.raises(ValueError, match="engine"):
        v.predict_log(np.zeros((1, 9), np.float32), engine="xgboost")
    # the shipped ONNX file through onnxruntime gives the compiled scorer's values
    via_ort = v.value(veh, at=dt.date(2020, 6, 1), engine="onnxruntime")
    np.testing.assert_allclose(
        via_ort.column("base_value").to_numpy(zero_copy_only=False),
        v.value(veh, at=dt.date(2020, 6, 1)).column("base_value").to_numpy(zero_copy_only=False),
        rtol=1e-5,
    )


@pytest.mark.parametrize("leq", [True, False])
def test_compiled_trees_follow_the_split_rules_at_the_edges(leq: bool) -> None:
    """Random trees walked by a plain Python reading of the documented rule
    (yes iff x <= t, or x < t; NaN to `yes` where missing_yes), on values at,
    just beside and far from every threshold, NaN and infinities."""
    rng = np.random.default_rng(7 if leq else 8)
    feature, threshold, yes, no, missing, value, roots = [], [], [], [], [], [], []

    def grow(depth: int) -> int:
        i = len(feature)
        for a in (feature, threshold, yes, no, missing):
            a.append(0)
        value.append(0.0)
        if depth == 0 or rng.uniform() < 0.2:
            feature[i], value[i] = -1, float(rng.normal())
            return i
        feature[i] = int(rng.integers(3))
        threshold[i] = float(np.float32(rng.choice([-1.5, 0.0, 0.25, 2.0])))
        missing[i] = int(rng.integers(2))
        yes[i] = grow(depth - 1)
        no[i] = grow(depth - 1)
        return i

    roots.extend(grow(5) for _ in range(40))
    t = _core.TreeEnsemble(
        np.array(feature, np.int32),
        np.array(threshold, np.float32),
        np.array(yes, np.int32),
        np.array(no, np.int32),
        np.array(missing, np.uint8),
        np.array(value),
        np.array(roots, np.int32),
        leq,
        0.5,
        3,
    )
    edges = [
        np.nextafter(np.float32(v), np.float32(d))
        for v in (-1.5, 0.0, 0.25, 2.0)
        for d in (-np.inf, np.inf)
    ]
    pool = np.array([-1.5, 0.0, 0.25, 2.0, -7.0, 9.0, np.nan, np.inf, -np.inf, *edges], np.float32)
    X = rng.choice(pool, size=(999, 3)).astype(np.float32)

    def walk(x: np.ndarray) -> float:
        total = 0.5
        for r in roots:
            i = r
            while feature[i] >= 0:
                v = x[feature[i]]
                go = (np.isnan(v) and missing[i]) or (
                    v <= threshold[i] if leq else v < threshold[i]
                )
                i = yes[i] if go else no[i]
            total += value[i]
        return total

    np.testing.assert_allclose(t.predict(X), [walk(x) for x in X], rtol=0, atol=1e-12)
