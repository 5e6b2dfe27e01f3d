"""Training the base value model: log price by gradient boosting, exported to
ONNX, checked for parity, compiled for the C++ scorer, with a model card.

Recipe (``autolien valuation train``):

* features: make, model (as make|model), age at listing, mileage, fuel,
  transmission, engine size, and the optional columns the data has (the UK
  set: road tax and mpg);
* categories become **ordered ordinal codes** (rank of the category's mean log
  price in the training split; unseen ones are missing). Native categorical
  splits are not used: skl2onnx exports HistGradientBoosting's wrongly
  (predictions off by up to e^2.2, a 49% MdAPE on this data), and every export
  is refused unless onnxruntime reproduces the training library's predictions
  to 1e-4 in log space;
* the learner is CatBoost (``learner="catboost"``, the default): oblivious
  trees, where every node of a level asks the same question. They are as
  accurate here as HistGradientBoosting's (``learner="hgb"``) and score
  without branches (docs/valuation.md, "Scoring speed"). CatBoost's own ONNX
  export writes each tree out in full (2^depth nodes each, 60 MB for the
  shipped model), so ``oblivious_onnx`` writes the trees as a few standard ONNX
  operators over the split and leaf tables instead;
* log price, fixed seed; a fixed-seed 80/20 split gives the metrics;
* the 90% interval is split-conformal per **availability pattern** (which
  optional columns a row has): the test split is halved, each pattern's
  residual quantiles come from the first half with that pattern's columns
  hidden, and its coverage is measured on the second half. One interval for
  all rows covered 90.5% of test adverts with tax and mpg but 85.3% without.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import AutolienError
from .data import calibration_split, split

__all__ = [
    "HGB_PARAMS",
    "PARAMS",
    "Encoder",
    "ExportParityError",
    "Recipe",
    "catboost_to_arrays",
    "conformal_interval",
    "export_onnx",
    "oblivious_onnx",
    "onnx_to_arrays",
    "pattern_key",
    "patterns",
    "recalibrate",
    "recipe_of",
    "run_onnx",
    "train",
]

# 3000 oblivious trees of depth 8: as accurate as HistGradientBoosting's best
# here (MdAPE 5.08% against 5.10%) and 4x faster to score (docs/valuation.md,
# "Scoring speed"). Depth 7 scores 1.5x faster again for +0.1 point.
PARAMS: dict[str, Any] = {
    "iterations": 3000,
    "depth": 8,
    "learning_rate": 0.15,
    "l2_leaf_reg": 3.0,
    "border_count": 254,
}
# learner="hgb": 300 trees of up to 191 leaves, as accurate as 800 of 63 and
# about twice as fast to walk, since a row's path is short in a deep,
# unbalanced tree.
HGB_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.12,
    "max_leaf_nodes": 191,
    "min_samples_leaf": 5,
    "l2_regularization": 1.0,
}
DEFAULT_PARAMS = {"catboost": PARAMS, "hgb": HGB_PARAMS}
LEARNERS = tuple(DEFAULT_PARAMS)
CATEGORICAL = ("make", "make_model", "fuel", "transmission")
NUMERIC = ("age_years", "mileage_km", "engine_size_l")
OPTIONAL = ("tax", "mpg")
PARITY_LOG = 1e-4


class ExportParityError(AutolienError):
    """The exported model does not reproduce the training library's predictions."""


@dataclass
class Encoder:
    """Category -> ordinal code, ordered by mean log price in training."""

    vocab: dict[str, dict[str, int]] = field(default_factory=dict)
    names: list[str] = field(default_factory=lambda: list(CATEGORICAL))

    @staticmethod
    def _values(table: pa.Table, name: str) -> list[str | None]:
        if name != "make_model" and name not in table.column_names:
            return [None] * table.num_rows  # an absent optional column: missing
        if name == "make_model":
            mk = pc.utf8_lower(table.column("make").cast(pa.string()))
            md = pc.utf8_lower(pc.utf8_trim_whitespace(table.column("model").cast(pa.string())))
            return pc.binary_join_element_wise(mk, md, "|").to_pylist()  # type: ignore[no-any-return]
        return pc.utf8_lower(table.column(name).cast(pa.string())).to_pylist()  # type: ignore[no-any-return]

    def fit(self, table: pa.Table, y: npt.NDArray[np.float64]) -> Encoder:
        for name in self.names:
            vals = self._values(table, name)
            sums: dict[str, list[float]] = {}
            for v, t in zip(vals, y, strict=True):
                if v is not None:
                    sums.setdefault(v, []).append(float(t))
            order = sorted(sums, key=lambda k: (float(np.mean(sums[k])), k))
            self.vocab[name] = {k: i for i, k in enumerate(order)}
        return self

    def transform(
        self, table: pa.Table
    ) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[np.bool_]]]:
        """Feature matrix (float32, NaN = missing) and per-column unknown masks."""
        cols: list[np.ndarray] = []
        unknown: dict[str, np.ndarray] = {}
        for name in self.names:
            vocab = self.vocab[name]
            vals = self._values(table, name)
            codes = np.array(
                [vocab.get(v, np.nan) if v is not None else np.nan for v in vals], dtype=np.float64
            )
            unknown[name] = np.isnan(codes)
            cols.append(codes)
        return np.column_stack(cols).astype(np.float32), unknown


@dataclass
class Recipe:
    features: list[str]
    optional: list[str]
    params: dict[str, Any]
    seed: int = 42
    mask_optional: float = 0.25  # share of training rows whose optional columns are hidden
    learner: str = "catboost"
    # the feature layout: categorical codes first, then numeric columns (the
    # optional ones among either); None: the UK recipe's fixed layout
    categorical: list[str] | None = None
    numeric: list[str] | None = None

    @property
    def cat_names(self) -> list[str]:
        return list(self.categorical) if self.categorical is not None else list(CATEGORICAL)

    @property
    def num_names(self) -> list[str]:
        if self.numeric is not None:
            return list(self.numeric)
        return [*NUMERIC, *self.optional]

    def optional_index(self) -> list[int]:
        """Column of each optional feature in the matrix."""
        names = [*self.cat_names, *self.num_names]
        return [names.index(o) for o in self.optional]


def _fit(recipe: Recipe, X: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> Any:
    if recipe.learner == "catboost":
        from catboost import CatBoostRegressor  # noqa: PLC0415

        # deterministic for a seed whatever the thread count (checked)
        return CatBoostRegressor(
            **recipe.params,
            loss_function="RMSE",
            random_seed=recipe.seed,
            verbose=0,
            allow_writing_files=False,
        ).fit(X, y)
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: PLC0415

    return HistGradientBoostingRegressor(
        random_state=recipe.seed, early_stopping=False, **recipe.params
    ).fit(X, y)


def _parity_rows(sample: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The sample, then 200 of its rows again with each column missing in
    turn: unseen categories and absent optional columns reach the model as
    NaN, and the export must send them where the library does."""
    head = sample[:200]
    holes = []
    for j in range(sample.shape[1]):
        h = head.copy()
        h[:, j] = np.nan
        holes.append(h)
    return np.concatenate([sample, *holes]).astype(np.float32)


def _export(
    recipe: Recipe, model: Any, sample: npt.NDArray[np.float32]
) -> tuple[bytes, dict[str, np.ndarray]]:
    """ONNX bytes and the compiled scorer's arrays, refused unless
    onnxruntime reproduces the library to 1e-4 in log space."""
    rows = _parity_rows(sample)
    if recipe.learner == "hgb":
        raw = export_onnx(model, rows)
        return raw, onnx_to_arrays(raw)
    arrays = catboost_to_arrays(model)
    raw = oblivious_onnx(arrays, sample.shape[1])
    _check_parity(raw, rows, model.predict(rows.astype(np.float64)))
    return raw, arrays


def _matrix(table: pa.Table, enc: Encoder, recipe: Recipe) -> npt.NDArray[np.float32]:
    cat, _ = enc.transform(table)
    num = []
    for name in recipe.num_names:
        if name in table.column_names:
            num.append(
                np.asarray(
                    table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
                )
            )
        else:
            num.append(np.full(table.num_rows, np.nan))
    return np.column_stack([cat, *num]).astype(np.float32)


def _metrics(y_true: np.ndarray, y_log_pred: np.ndarray) -> dict[str, float]:
    ape = np.abs(np.exp(y_log_pred - y_true) - 1.0)
    return {
        "mdape_pct": round(float(np.median(ape)) * 100, 3),
        "within_5_pct": round(float(np.mean(ape <= 0.05)) * 100, 2),
        "within_10_pct": round(float(np.mean(ape <= 0.10)) * 100, 2),
        "n": int(y_true.size),
    }


def export_onnx(model: Any, sample: npt.NDArray[np.float32]) -> bytes:
    """The model as ONNX bytes, refused unless onnxruntime reproduces the
    library's predictions on ``sample`` to 1e-4 in log space."""
    from skl2onnx import to_onnx  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            # the converters warn about their own internals (numpy scalar
            # types in node attributes); that is not the caller's business
            warnings.simplefilter("ignore")
            onx = to_onnx(model, sample[:1], target_opset=15)
    except Exception as e:  # noqa: BLE001 - any converter failure is an export failure
        raise ValueError(f"ONNX export failed: {type(e).__name__}: {str(e)[:300]}") from None
    raw: bytes = onx.SerializeToString()
    _check_parity(
        raw,
        sample,
        model.predict(sample.astype(np.float64)),
        hint="; native categorical splits are a known cause",
    )
    return raw


def run_onnx(sess: Any, X: npt.NDArray[np.float32], batch: int = 1024) -> npt.NDArray[np.float64]:
    """An onnxruntime session's predictions, ``batch`` rows a call (the
    oblivious graph holds rows x trees x depth values while it runs)."""
    name = sess.get_inputs()[0].name
    parts = [
        np.asarray(sess.run(None, {name: X[i : i + batch]})[0], np.float64).ravel()
        for i in range(0, X.shape[0], batch)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def _check_parity(
    raw: bytes, sample: npt.NDArray[np.float32], want: np.ndarray, hint: str = ""
) -> None:
    import onnxruntime as ort  # noqa: PLC0415

    sess = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    got = run_onnx(sess, np.ascontiguousarray(sample, np.float32))
    worst = float(np.max(np.abs(got - want))) if sample.shape[0] else 0.0
    if not worst <= PARITY_LOG:
        raise ExportParityError(
            f"ONNX predictions differ from the training library's by up to {worst:.3g} in log space "
            f"(limit {PARITY_LOG}){hint}"
        )


def catboost_to_arrays(model: Any) -> dict[str, np.ndarray]:
    """A CatBoost model's oblivious trees as split and leaf tables for the C++
    scorer and ``oblivious_onnx``: bit d of a row's leaf index is
    ``x[feature] > threshold`` at level d (NaN: 0, as CatBoost's default
    ``nan_mode="Min"`` puts it below every border). Shallower trees are
    padded to the deepest with never-true levels (threshold +inf)."""
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.json"
        model.save_model(str(path), format="json")
        dump = json.loads(path.read_text())
    trees = dump["oblivious_trees"]
    if not trees:
        raise ValueError("the model has no trees")
    for t in trees:
        for sp in t["splits"]:
            if sp.get("split_type") != "FloatFeature":
                raise ValueError(
                    f"only float-feature splits compile, got {sp.get('split_type')}; "
                    "pass categories as ordinal codes"
                )
    depth = max(1, *(len(t["splits"]) for t in trees))
    feature = np.zeros((len(trees), depth), np.int32)
    threshold = np.full((len(trees), depth), np.inf, np.float32)
    leaf = np.zeros((len(trees), 1 << depth), np.float64)
    for i, t in enumerate(trees):
        k = len(t["splits"])
        feature[i, :k] = [sp["float_feature_index"] for sp in t["splits"]]
        threshold[i, :k] = [sp["border"] for sp in t["splits"]]
        # the padded levels never set their bit: repeat the table to fill
        leaf[i] = np.tile(np.asarray(t["leaf_values"], np.float64), 1 << (depth - k))
    scale, bias = dump.get("scale_and_bias", [1.0, [0.0]])
    return {
        "depth": np.array(depth),
        "feature": feature.ravel(),
        "threshold": threshold.ravel(),
        "leaf": (leaf * scale).astype(np.float32).ravel(),
        "base": np.array(float(np.sum(bias))),
    }


def oblivious_onnx(arrays: dict[str, np.ndarray], n_features: int) -> bytes:
    """Oblivious trees as standard ONNX operators (opset 15): gather each
    level's feature, compare, weigh the bits into leaf indices, gather the
    leaves and sum. The model holds the tables once (a few MB), where a
    TreeEnsembleRegressor would spell out 2^depth nodes per tree."""
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    depth = int(arrays["depth"])
    feature = np.asarray(arrays["feature"], np.int64)
    n_trees = feature.size // depth
    consts: dict[str, np.ndarray] = {
        "split_feature": feature,
        "split_threshold": np.asarray(arrays["threshold"], np.float32),
        "shape_ntd": np.array([-1, n_trees, depth], np.int64),
        "bit_weight": (2.0 ** np.arange(depth)).astype(np.float32).reshape(depth, 1),
        "shape_nt": np.array([-1, n_trees], np.int64),
        "leaf_offset": np.arange(n_trees, dtype=np.int64) << depth,
        "leaf_value": np.asarray(arrays["leaf"], np.float32),
        "sum_axis": np.array([1], np.int64),
        "base": np.array([float(arrays["base"])], np.float32),
    }
    n = helper.make_node
    nodes = [
        n("Gather", ["features", "split_feature"], ["x_split"], axis=1),
        n("Greater", ["x_split", "split_threshold"], ["bit"]),
        n("Cast", ["bit"], ["bit_f"], to=TensorProto.FLOAT),
        n("Reshape", ["bit_f", "shape_ntd"], ["bits"]),
        n("MatMul", ["bits", "bit_weight"], ["index_f3"]),
        n("Reshape", ["index_f3", "shape_nt"], ["index_f"]),
        n("Cast", ["index_f"], ["index"], to=TensorProto.INT64),
        n("Add", ["index", "leaf_offset"], ["leaf_index"]),
        n("Gather", ["leaf_value", "leaf_index"], ["leaves"], axis=0),
        n("ReduceSum", ["leaves", "sum_axis"], ["total"], keepdims=1),
        n("Add", ["total", "base"], ["variable"]),
    ]
    graph = helper.make_graph(
        nodes,
        "oblivious_trees",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 15)], producer_name="autolien"
    )
    model.ir_version = 8
    raw: bytes = model.SerializeToString()
    return raw


def onnx_to_arrays(raw: bytes) -> dict[str, np.ndarray]:
    """The TreeEnsembleRegressor of an exported model as flat node arrays for
    the C++ scorer (children as global indices, leaves with their value)."""
    import onnx  # noqa: PLC0415

    model = onnx.load_from_string(raw)
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
    tree, nid = np.asarray(a["nodes_treeids"]), np.asarray(a["nodes_nodeids"])
    modes = [m.decode() if isinstance(m, bytes) else m for m in a["nodes_modes"]]
    branch = {m for m in modes if m != "LEAF"}
    if len(branch) > 1 or not branch <= {"BRANCH_LEQ", "BRANCH_LT"}:
        raise ValueError(f"unsupported node modes {sorted(branch)}")
    order = np.lexsort((nid, tree))
    pos = {(int(tree[i]), int(nid[i])): k for k, i in enumerate(order)}
    n = order.size
    feature = np.full(n, -1, np.int32)
    threshold = np.zeros(n, np.float32)
    yes = np.zeros(n, np.int32)
    no = np.zeros(n, np.int32)
    missing = np.zeros(n, np.uint8)
    value = np.zeros(n, np.float64)
    tracks = a.get("nodes_missing_value_tracks_true", [0] * len(modes))
    for k, i in enumerate(order):
        t = int(tree[i])
        if modes[i] != "LEAF":
            feature[k] = int(a["nodes_featureids"][i])
            threshold[k] = np.float32(a["nodes_values"][i])
            yes[k] = pos[(t, int(a["nodes_truenodeids"][i]))]
            no[k] = pos[(t, int(a["nodes_falsenodeids"][i]))]
            missing[k] = int(tracks[i])
    for t, nd, w in zip(a["target_treeids"], a["target_nodeids"], a["target_weights"], strict=True):
        value[pos[(int(t), int(nd))]] += float(w)
    roots = np.array([pos[(int(t), 0)] for t in np.unique(tree)], np.int32)
    base = float(np.sum(a.get("base_values", [0.0])))
    return {
        "feature": feature,
        "threshold": threshold,
        "yes": yes,
        "no": no,
        "missing_yes": missing,
        "value": value,
        "roots": roots,
        "leq": np.array(branch == {"BRANCH_LEQ"}),
        "base": np.array(base),
    }


def train(
    table: pa.Table,
    out_dir: str | Path,
    *,
    name: str,
    currency: str,
    listing_year: int | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 42,
    extra_sets: dict[str, pa.Table] | None = None,
    data_note: str = "",
    learner: str = "catboost",
    layout: dict[str, list[str]] | None = None,
    cleaning: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fits on 80% of ``table``, scores the other 20%, refits nothing: the
    shipped model is the one the metrics describe. Writes ``model.onnx``,
    ``trees.npz``, ``model.json`` and ``MODEL_CARD.md`` into ``out_dir``.
    ``learner`` is "catboost" (oblivious trees, ``PARAMS``) or "hgb"
    (scikit-learn's HistGradientBoosting, ``HGB_PARAMS``).

    ``layout`` (the canonical path, ``train_canonical``) gives the feature
    layout: ``categorical``, ``numeric`` and which of them are ``optional``
    (hidden together on a quarter of training rows, and calibrated per
    availability pattern); None is the UK recipe's fixed layout.
    ``cleaning`` is the loader's cleaning report, kept in ``model.json``."""
    if learner not in LEARNERS:
        raise ValueError(f"learner must be one of {LEARNERS}, got {learner!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    price = np.asarray(
        table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    ok = np.isfinite(price) & (price > 0)
    table = table.filter(pa.array(ok))
    y = np.log(price[ok])
    params_all = {**DEFAULT_PARAMS[learner], **(params or {})}
    if layout is None:
        optional = [c for c in OPTIONAL if c in table.column_names]
        recipe = Recipe(
            [*CATEGORICAL, *NUMERIC, *optional], optional, params_all, seed, learner=learner
        )
    else:
        optional = list(layout["optional"])
        recipe = Recipe(
            [*layout["categorical"], *layout["numeric"]],
            optional,
            params_all,
            seed,
            learner=learner,
            categorical=list(layout["categorical"]),
            numeric=list(layout["numeric"]),
        )
    opt_idx = recipe.optional_index()
    tr, te = split(table.num_rows, seed)
    enc = Encoder(names=recipe.cat_names).fit(table.take(pa.array(tr)), y[tr])
    X = _matrix(table, enc, recipe)
    Xtr = X[tr].copy()
    if optional and recipe.mask_optional > 0:
        # hide optional columns on a share of rows so the model copes without them
        hide = np.random.default_rng(seed + 1).uniform(size=tr.size) < recipe.mask_optional
        Xtr[np.ix_(hide, np.asarray(opt_idx))] = np.nan
    model = _fit(recipe, Xtr.astype(np.float64), y[tr])
    pred = model.predict(X[te].astype(np.float64))
    metrics = {"test": _metrics(y[te], pred)}
    if optional:
        Xm = X[te].copy()
        Xm[:, opt_idx] = np.nan
        metrics["test_without_optional"] = _metrics(y[te], model.predict(Xm.astype(np.float64)))
    resid = y[te] - pred
    interval = {"q05": float(np.quantile(resid, 0.05)), "q95": float(np.quantile(resid, 0.95))}
    raw, arrays = _export(recipe, model, X[te][:2000])
    (out / "model.onnx").write_bytes(raw)
    np.savez_compressed(out / "trees.npz", **arrays)  # type: ignore[arg-type]
    by_pattern, coverage = _pattern_intervals(X, y, te, optional, arrays, seed, opt_idx)
    for other, t in (extra_sets or {}).items():
        metrics[other] = _cross_market(t, recipe)
    version = f"{name}-{hashlib.sha256(raw).hexdigest()[:12]}"
    meta = {
        "version": version,
        "name": name,
        "currency": currency,
        "listing_year": listing_year,
        "features": recipe.features,
        "optional": optional,
        "params": recipe.params,
        "seed": seed,
        "mask_optional": recipe.mask_optional,
        "learner": learner,
        "vocab": enc.vocab,
        "metrics": metrics,
        "log_residual_interval_90": interval,
        "log_residual_interval_90_by_pattern": by_pattern,
        "interval_90_coverage": coverage,
        "rows": int(table.num_rows),
        "data_note": data_note,
        **(
            {
                "categorical": recipe.cat_names,
                "numeric": recipe.num_names,
                "required": ["make", "model", "year", "mileage_km"],
            }
            if layout is not None
            else {}
        ),
        **({"cleaning": cleaning} if cleaning is not None else {}),
        "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **_shape(arrays),
    }
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    (out / "MODEL_CARD.md").write_text(_card(meta, data_note))
    return meta


INTERVAL_LEVEL = 0.90


MAX_ALL_PATTERNS = 6  # up to 2^6 patterns are all calibrated
MIN_PATTERN_ROWS = 100  # a pattern with fewer calibration rows is not calibrated


def patterns(optional: Sequence[str]) -> list[tuple[str, ...]]:
    """The availability patterns calibrated, the full set first: every subset
    of the optional columns when there are at most ``MAX_ALL_PATTERNS``; else
    the full set, each set without one column, each single column and none
    (rows of another pattern are scored on the largest calibrated pattern
    inside theirs, ``Valuer.features``)."""
    if len(optional) <= MAX_ALL_PATTERNS:
        return [
            c for k in range(len(optional), -1, -1) for c in itertools.combinations(optional, k)
        ]
    full = tuple(optional)
    out = [full, *itertools.combinations(optional, len(optional) - 1)]
    out += [(c,) for c in optional]
    out.append(())
    return out


def pattern_key(present: Sequence[str]) -> str:
    """``"tax+mpg"``, ``"tax"``, ``"mpg"`` or ``"none"``."""
    return "+".join(present) or "none"


def conformal_interval(
    resid: npt.ArrayLike, level: float = INTERVAL_LEVEL
) -> dict[str, float | int]:
    """Split-conformal bounds of log residuals (actual - predicted): the
    floor(a(n+1))-th and ceil((1-a)(n+1))-th smallest of n residuals, a =
    (1 - level)/2, so that a new exchangeable residual falls between them with
    probability at least ``level``. Clamped to the extremes below 1/a rows."""
    r = np.sort(np.asarray(resid, np.float64))
    n = r.size
    if n == 0:
        raise ValueError("no residuals to calibrate on")
    a = (1.0 - level) / 2
    # (1 - 0.9) / 2 is 0.04999...: the epsilon keeps floor(0.05 * 100) at 5.
    lo = int(np.floor(a * (n + 1) + 1e-9))
    hi = int(np.ceil((1 - a) * (n + 1) - 1e-9))
    return {"q05": float(r[max(lo, 1) - 1]), "q95": float(r[min(hi, n) - 1]), "n": int(n)}


def _hide(
    X: npt.NDArray[np.float32],
    optional: Sequence[str],
    present: Sequence[str],
    index: Sequence[int] | None = None,
) -> Any:
    """X with the optional columns outside ``present`` set missing (NaN);
    ``index`` is each optional column's position (default: the last ones)."""
    out = X.copy()
    cols = list(index) if index is not None else list(range(X.shape[1] - len(optional), X.shape[1]))
    for j, name in zip(cols, optional, strict=True):
        if name not in present:
            out[:, j] = np.nan
    return out


def _pattern_intervals(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[np.float64],
    te: np.ndarray,
    optional: Sequence[str],
    arrays: dict[str, np.ndarray],
    seed: int,
    index: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, float | int]], dict[str, dict[str, float | int]]]:
    """Per availability pattern: the interval calibrated on one half of the
    test split, and its coverage on the other half. Scored by the compiled
    trees, as ``Valuer`` scores, so a recalibration reproduces it exactly."""
    from .model import compile_trees  # noqa: PLC0415 - model imports this module

    trees = compile_trees(arrays, X.shape[1])

    def predict(M: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        return np.asarray(trees.predict(np.ascontiguousarray(M, np.float32)), np.float64)

    return _calibrate(X, y, te, optional, predict, seed, index)


def _calibrate(
    X: npt.NDArray[np.float32],
    y: npt.NDArray[np.float64],
    te: np.ndarray,
    optional: Sequence[str],
    predict: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]],
    seed: int,
    index: Sequence[int] | None = None,
) -> tuple[dict[str, dict[str, float | int]], dict[str, dict[str, float | int]]]:
    cal, ev = calibration_split(te, seed)
    table: dict[str, dict[str, float | int]] = {}
    coverage: dict[str, dict[str, float | int]] = {}
    cols = list(index) if index is not None else list(range(X.shape[1] - len(optional), X.shape[1]))
    has = {o: ~np.isnan(X[:, j]) for o, j in zip(optional, cols, strict=True)}
    for present in patterns(optional):
        key = pattern_key(present)
        # rows that have the pattern's columns (in the data, not just in the
        # file), the others hidden
        rows = np.ones(X.shape[0], bool)
        for o in present:
            rows &= has[o]
        c_rows, e_rows = cal[rows[cal]], ev[rows[ev]]
        if c_rows.size < MIN_PATTERN_ROWS or e_rows.size == 0:
            continue
        q = conformal_interval(y[c_rows] - predict(_hide(X[c_rows], optional, present, cols)))
        table[key] = q
        r = y[e_rows] - predict(_hide(X[e_rows], optional, present, cols))
        inside = (r >= q["q05"]) & (r <= q["q95"])
        coverage[key] = {
            "coverage_pct": round(float(inside.mean()) * 100, 2),
            "n": int(e_rows.size),
        }
    return table, coverage


def recalibrate(model_dir: str | Path, table: pa.Table) -> dict[str, Any]:
    """Recomputes a model directory's per-pattern interval table and coverage
    from its own training data (the table it was trained on), without
    retraining: the same split, encoder and compiled trees as ``train``, so
    the result equals a retrain's. Rewrites ``model.json`` and the card."""
    out = Path(model_dir)
    meta: dict[str, Any] = json.loads((out / "model.json").read_text())
    price = np.asarray(
        table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    ok = np.isfinite(price) & (price > 0)
    table = table.filter(pa.array(ok))
    y = np.log(price[ok])
    recipe = recipe_of(meta)
    X = _matrix(table, Encoder(meta["vocab"], recipe.cat_names), recipe)
    _, te = split(table.num_rows, meta["seed"])
    with np.load(out / "trees.npz") as z:
        arrays = {k: z[k] for k in z.files}
    by_pattern, coverage = _pattern_intervals(
        X, y, te, meta["optional"], arrays, meta["seed"], recipe.optional_index()
    )
    meta["log_residual_interval_90_by_pattern"] = by_pattern
    meta["interval_90_coverage"] = coverage
    (out / "model.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    (out / "MODEL_CARD.md").write_text(_card(meta, meta.get("data_note", "")))
    return meta


def recipe_of(meta: dict[str, Any]) -> Recipe:
    """The feature layout of a trained model's ``model.json``."""
    return Recipe(
        meta["features"],
        meta["optional"],
        meta["params"],
        meta["seed"],
        learner=meta.get("learner", "catboost"),
        categorical=meta.get("categorical"),
        numeric=meta.get("numeric"),
    )


def _shape(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    if "leaf" in arrays:  # oblivious: depth levels and 2^depth leaves a tree
        depth = int(arrays["depth"])
        return {
            "trees": int(arrays["feature"].size // depth),
            "depth": depth,
            "leaves": int(arrays["leaf"].size),
        }
    return {"trees": int(arrays["roots"].size), "nodes": int(arrays["feature"].size)}


def _cross_market(table: pa.Table, recipe: Recipe) -> dict[str, float]:
    """The same recipe trained and scored on another market's listings."""
    price = np.asarray(
        table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )
    ok = np.isfinite(price) & (price > 0)
    table = table.filter(pa.array(ok))
    y = np.log(price[ok])
    r = Recipe([*CATEGORICAL, *NUMERIC], [], recipe.params, recipe.seed, 0.0, recipe.learner)
    tr, te = split(table.num_rows, recipe.seed)
    enc = Encoder(names=r.cat_names).fit(table.take(pa.array(tr)), y[tr])
    X = _matrix(table, enc, r)
    m = _fit(r, X[tr].astype(np.float64), y[tr])
    out: dict[str, Any] = _metrics(y[te], m.predict(X[te].astype(np.float64)))
    # The same interval calibration (one pattern: no optional columns here).
    _, coverage = _calibrate(
        X, y, te, [], lambda M: np.asarray(m.predict(M.astype(np.float64)), np.float64), r.seed
    )
    out["interval_90_coverage_pct"] = coverage["none"]["coverage_pct"]
    out["interval_90_coverage_n"] = coverage["none"]["n"]
    return out


def _learner_line(meta: dict[str, Any]) -> str:
    if meta.get("learner", "hgb") == "catboost":
        return (
            f"CatBoost, {meta['trees']} oblivious trees of depth {meta['depth']}, "
            f"learning rate {meta['params']['learning_rate']}"
        )
    return f"scikit-learn HistGradientBoostingRegressor, {meta['trees']} trees, {meta['nodes']:,} nodes"


def _interval_rows(meta: dict[str, Any]) -> str:
    table = meta.get("log_residual_interval_90_by_pattern")
    if not table:
        q = meta["log_residual_interval_90"]
        return f"One interval for every row: [{q['q05']:.4f}, {q['q95']:.4f}]."
    cov = meta.get("interval_90_coverage", {})
    others = [
        f"{k}: {v['interval_90_coverage_pct']:.1f}% of {v['interval_90_coverage_n']:,}"
        for k, v in meta["metrics"].items()
        if "interval_90_coverage_pct" in v
    ]
    lines = ["| columns present | q05 | q95 | calibrated on | coverage (held out) |"]
    lines.append("|---|---|---|---|---|")
    for key, q in table.items():
        c = cov.get(key)
        shown = f"{c['coverage_pct']:.1f}% of {c['n']:,}" if c else "-"
        lines.append(f"| {key} | {q['q05']:.4f} | {q['q95']:.4f} | {q['n']:,} | {shown} |")
    if others:
        lines.append("")
        lines.append(
            "The same calibration in the other markets' own models, held-out coverage: "
            + "; ".join(others)
            + "."
        )
    return "\n".join(lines)


def _card(meta: dict[str, Any], data_note: str) -> str:
    m = meta["metrics"]
    rows = "\n".join(
        f"| {k} | {v['n']:,} | {v['mdape_pct']:.2f}% | {v['within_5_pct']:.1f}% | {v['within_10_pct']:.1f}% |"
        for k, v in m.items()
    )
    return f"""# Model card: {meta["version"]}

**What it is.** The base value of a used car: a gradient-boosted model of log
price ({_learner_line(meta)}), exported to ONNX and compiled for autolien's C++
scorer. Prices are in **{meta["currency"]}**.

**Data.** {data_note or "See the training command."} {meta["rows"]:,} listings after
dropping rows without a positive price or with a model year after the listing.

**Features.** {", ".join(meta["features"])}. Categories are ordinal codes
ordered by mean log price in the training split (unseen values are missing);
optional columns ({", ".join(meta["optional"]) or "none"}) were hidden on
{meta["mask_optional"]:.0%} of training rows so that the model works without
them.

**Metrics** (fixed-seed {meta["seed"]} 80/20 split; APE = |predicted/actual - 1|):

| set | n | MdAPE | within ±5% | within ±10% |
|---|---|---|---|---|
{rows}

`test_without_optional` scores the same test rows with the optional columns
hidden. Other markets are trained and scored with the same recipe on their
own split.

**Interval.** The 90% interval is value x exp([q05, q95]), split-conformal
per availability pattern of the optional columns: calibrated on one half of
the test split with those columns hidden, its coverage measured on the other
half.

{_interval_rows(meta)}

**Intended use.** Collateral valuation of cars like those in the data, in
its market and currency, as the base of autolien's valuation. Not for other
vehicle classes or markets without retraining (`autolien valuation train`).
The listings carry no sale prices and no listing dates, so values are asking
prices around the listing year.
"""
