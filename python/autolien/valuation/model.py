"""``Valuer``: the base value of vehicles from the shipped (or a retrained)
model, scored by the compiled C++ tree ensemble (or onnxruntime)."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core
from .adjust import _band, battery_factor, usage_factor
from .data import FUELS, REQUIRED, make_model_keys
from .train import Encoder, _hide, pattern_key, recipe_of, run_onnx

__all__ = ["DEFAULT_MODEL", "VALUE_SCHEMA", "Valuer", "compile_trees"]

DEFAULT_MODEL = Path(__file__).parent / "models" / "uk_used_cars"
VALUE_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("base_value", pa.float64()),
        pa.field("usage_factor", pa.float64(), nullable=False),
        pa.field("market_factor", pa.float64(), nullable=False),
        pa.field("battery_factor", pa.float64(), nullable=False),
        pa.field("value", pa.float64()),
        pa.field("value_low", pa.float64()),
        pa.field("value_high", pa.float64()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("flag", pa.string()),
        pa.field("error", pa.string()),
    ]
)


def compile_trees(arrays: dict[str, np.ndarray], n_features: int) -> Any:
    """The C++ scorer of a model's tree arrays (``catboost_to_arrays``,
    ``onnx_to_arrays`` or a shipped ``trees.npz``): an ``ObliviousEnsemble``
    for oblivious trees, else a ``TreeEnsemble``."""
    if "leaf" in arrays:
        return _core.ObliviousEnsemble(
            int(arrays["depth"]),
            np.ascontiguousarray(arrays["feature"], np.int32),
            np.ascontiguousarray(arrays["threshold"], np.float32),
            np.ascontiguousarray(arrays["leaf"], np.float32),
            float(arrays["base"]),
            n_features,
        )
    return _core.TreeEnsemble(
        np.ascontiguousarray(arrays["feature"], np.int32),
        np.ascontiguousarray(arrays["threshold"], np.float32),
        np.ascontiguousarray(arrays["yes"], np.int32),
        np.ascontiguousarray(arrays["no"], np.int32),
        np.ascontiguousarray(arrays["missing_yes"], np.uint8),
        np.ascontiguousarray(arrays["value"], np.float64),
        np.ascontiguousarray(arrays["roots"], np.int32),
        bool(arrays["leq"]),
        float(arrays["base"]),
        n_features,
    )


class Valuer:
    """A loaded base-value model. ``value`` prices a table of vehicles."""

    def __init__(
        self, meta: dict[str, Any], arrays: dict[str, np.ndarray], onnx_path: Path | None
    ) -> None:
        self.meta = meta
        self.version: str = meta["version"]
        self.currency: str = meta["currency"]
        self.recipe = recipe_of(meta)
        self.encoder = Encoder(meta["vocab"], self.recipe.cat_names)
        self.optional: list[str] = list(meta["optional"])
        self.optional_index: list[int] = self.recipe.optional_index()
        self.required: tuple[str, ...] = tuple(meta.get("required", REQUIRED))
        self.trees = compile_trees(arrays, len(meta["features"]))
        self._arrays = arrays
        self.onnx_path = onnx_path
        self._ort: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled as its model (meta and tree arrays), compiled again where it
        # lands: a Dask worker scores its bucket of the book with the compiled
        # trees; the ONNX path is the sender's and stays behind
        return (Valuer, (self.meta, self._arrays, None))

    @classmethod
    def load(cls, path: str | Path | None = None) -> Valuer:
        """The model in ``path`` (a directory written by ``autolien valuation
        train``); the shipped UK model when None."""
        p = Path(path) if path is not None else DEFAULT_MODEL
        meta_path = p / "model.json"
        if not meta_path.exists():
            raise ValueError(f"{p} holds no model.json; train one with `autolien valuation train`")
        meta = json.loads(meta_path.read_text())
        with np.load(p / "trees.npz") as z:
            arrays = {k: z[k] for k in z.files}
        onnx = p / "model.onnx"
        return cls(meta, arrays, onnx if onnx.exists() else None)

    def features(self, vehicles: pa.Table, at: dt.datetime | dt.date | None = None) -> np.ndarray:
        """The float32 feature matrix of the model for these vehicles at ``at``."""
        when = _date(at)
        table = self._prepared(vehicles, when)
        cat, _ = self.encoder.transform(table)
        num = [
            np.asarray(
                table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
            )
            if c in table.column_names
            else np.full(table.num_rows, np.nan)
            for c in self.recipe.num_names
        ]
        return self._snap(np.column_stack([cat, *num]).astype(np.float32))

    def _snap(self, X: np.ndarray) -> np.ndarray:
        """Rows whose availability pattern was not calibrated (too few
        calibration rows had it, or too many optional columns to calibrate
        every subset) are scored on the largest calibrated pattern inside
        theirs, the other columns hidden: value and interval stay calibrated."""
        table = self.meta.get("log_residual_interval_90_by_pattern")
        if not table or not self.optional:
            return X
        present = ~np.isnan(X[:, self.optional_index])
        code = present.astype(np.int64) @ (1 << np.arange(len(self.optional), dtype=np.int64))
        for c in np.unique(code):
            names = [o for j, o in enumerate(self.optional) if (int(c) >> j) & 1]
            if pattern_key(names) in table:
                continue
            inside = [k for k in table if k == "none" or set(k.split("+")) <= set(names)]
            if not inside:
                raise ValueError(f"model {self.version}: no calibrated pattern inside {names}")
            best = max(inside, key=lambda k: 0 if k == "none" else len(k.split("+")))
            keep = [] if best == "none" else best.split("+")
            rows = code == c
            X[rows] = _hide(X[rows], self.optional, keep, self.optional_index)
        return X

    def interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The 90% log-residual bounds (q05, q95) of each row of ``X``, from
        the calibration of its availability pattern: which optional columns
        the row has (a column not sent, or null in this row, is absent).
        Models trained before the per-pattern table have one interval."""
        n = X.shape[0]
        table = self.meta.get("log_residual_interval_90_by_pattern")
        if not table:
            q = self.meta["log_residual_interval_90"]
            return np.full(n, q["q05"]), np.full(n, q["q95"])
        present = ~np.isnan(X[:, self.optional_index])
        code = present.astype(np.int64) @ (1 << np.arange(len(self.optional), dtype=np.int64))
        q05, q95 = np.empty(n), np.empty(n)
        for c in np.unique(code):
            names = [o for j, o in enumerate(self.optional) if (int(c) >> j) & 1]
            q = table[pattern_key(names)]
            q05[code == c], q95[code == c] = q["q05"], q["q95"]
        return q05, q95

    def predict_log(self, X: np.ndarray, *, engine: str = "compiled") -> np.ndarray:
        X = np.ascontiguousarray(X, np.float32)
        # a refreshed model's price level (``fresh.refresh``); 0 otherwise
        shift = float(self.meta.get("level_shift", 0.0))
        if engine == "compiled":
            return np.asarray(self.trees.predict(X)) + shift
        if engine == "onnxruntime":
            if self._ort is None:
                import onnxruntime as ort  # noqa: PLC0415

                if self.onnx_path is None:
                    raise ValueError("this model directory has no model.onnx")
                # one scoring call at a time, its trees across every core
                so = ort.SessionOptions()
                so.intra_op_num_threads = os.cpu_count() or 1
                so.inter_op_num_threads = 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                self._ort = ort.InferenceSession(
                    str(self.onnx_path), so, providers=["CPUExecutionProvider"]
                )
            return run_onnx(self._ort, X) + shift
        raise ValueError(f"engine must be 'compiled' or 'onnxruntime', got {engine!r}")

    def value(
        self,
        vehicles: pa.Table,
        at: dt.datetime | dt.date | None = None,
        *,
        usage: pa.Table | None = None,
        market: pa.Table | None = None,
        battery: pa.Table | None = None,
        engine: str = "compiled",
    ) -> pa.Table:
        """Value per row: the base value times the usage, market and battery
        factors, with a 90% interval and the model version.

        ``usage`` (``vehicle_id``, ``behaviour``, ``km_per_day``: the monitor's
        features) and ``battery`` (``vehicle_id``, ``soh``: from
        ``estimate_soh``) join on ``vehicle_id``; ``market`` (from
        :func:`~autolien.valuation.market.market_index` at the same ``at``)
        joins on make, model and age band. A vehicle without them gets
        factor 1.

        Rows that cannot be valued (missing or negative mileage, a model year
        after ``at``, a missing year) get a null value and the reason in
        ``error``; rows valued on a fallback (unknown make or model, a fuel
        outside the known ones) get a ``flag``. Never a silent NaN."""
        missing = [c for c in self.required if c not in vehicles.column_names]
        if missing:
            raise ValueError(f"vehicles lack required columns: {', '.join(missing)}")
        when = _date(at)
        n = vehicles.num_rows
        X = self.features(vehicles, when)
        errors = _row_errors(vehicles, when)
        _, unknown = self.encoder.transform(self._prepared(vehicles, when))
        fuel = (
            pc.utf8_lower(vehicles.column("fuel").cast(pa.string())).to_pylist()
            if "fuel" in vehicles.column_names
            else [None] * n
        )
        flags: list[str | None] = []
        for i in range(n):
            f = []
            if unknown["make"][i]:
                f.append("unknown make")
            elif unknown["make_model"][i]:
                f.append("unknown model")
            if fuel[i] not in FUELS and ("fuel" in self.required or fuel[i] is not None):
                f.append("fuel not one of " + "/".join(FUELS))
            flags.append("; ".join(f) + ": valued on the remaining features" if f else None)
        logv = self.predict_log(X, engine=engine) if n else np.zeros(0)
        base = np.exp(logv)
        q05, q95 = self.interval(X)
        bad = np.array([e is not None for e in errors], bool)
        base_val = np.where(bad, np.nan, base)
        fu = np.ones(n)
        fb = np.ones(n)
        if usage is not None or battery is not None:
            if "vehicle_id" not in vehicles.column_names:
                raise ValueError(
                    "usage and battery inputs join on vehicles.vehicle_id, which is missing"
                )
            ids = vehicles.column("vehicle_id").cast(pa.string()).to_pylist()
            if usage is not None:
                u = {
                    r["vehicle_id"]: r
                    for r in usage.select(["vehicle_id", "behaviour", "km_per_day"]).to_pylist()
                }
                beh = np.array(
                    [
                        np.nan if u.get(k, {}).get("behaviour") is None else u[k]["behaviour"]
                        for k in ids
                    ]
                )
                km = np.array(
                    [
                        np.nan if u.get(k, {}).get("km_per_day") is None else u[k]["km_per_day"]
                        for k in ids
                    ]
                )
                fu = usage_factor(beh, km)
            if battery is not None:
                b = dict(
                    zip(
                        battery.column("vehicle_id").to_pylist(),
                        battery.column("soh").to_pylist(),
                        strict=True,
                    )
                )
                soh = np.array([np.nan if b.get(k) is None else b[k] for k in ids], np.float64)
                age = np.asarray(
                    self._prepared(vehicles, when)
                    .column("age_years")
                    .to_numpy(zero_copy_only=False),
                    np.float64,
                )
                fb = battery_factor(soh, age)
        fm = np.ones(n)
        if market is not None:
            fm = self._market(vehicles, when, market)
        val = base_val * fu * fm * fb
        out = {
            "row": pa.array(np.arange(n, dtype=np.int64)),
            "base_value": pa.array(base_val, pa.float64(), mask=bad),
            "usage_factor": pa.array(fu, pa.float64()),
            "market_factor": pa.array(fm, pa.float64()),
            "battery_factor": pa.array(fb, pa.float64()),
            "value": pa.array(val, pa.float64(), mask=bad),
            "value_low": pa.array(val * np.exp(q05), pa.float64(), mask=bad),
            "value_high": pa.array(val * np.exp(q95), pa.float64(), mask=bad),
            "currency": pa.array([self.currency] * n, pa.string()),
            "model_version": pa.array([self.version] * n, pa.string()),
            "flag": pa.array(flags, pa.string()),
            "error": pa.array(errors, pa.string()),
        }
        return pa.table(out, schema=VALUE_SCHEMA)

    def forecast(
        self,
        vehicles: pa.Table,
        at: dt.datetime | dt.date | None = None,
        *,
        km_per_day: npt.ArrayLike = 40.0,
        horizons_days: tuple[int, ...] = (30, 90, 180),
    ) -> pa.Table:
        """Projected base value at each horizon: the model at the older age and
        the mileage grown by the vehicle's own ``km_per_day`` (per row or one
        value). The 90% interval widens as sqrt(1 + days/365) around it (a
        stated assumption: test residuals are the only error measured)."""
        when = _date(at)
        n = vehicles.num_rows
        rate = np.broadcast_to(np.asarray(km_per_day, np.float64), (n,))
        errors = _row_errors(vehicles, when)
        bad = np.array([e is not None for e in errors], bool)
        rows, hz, vals, lo, hi = [], [], [], [], []
        base = self._prepared(vehicles, when)
        for h in horizons_days:
            if h < 0:
                raise ValueError("horizons must be >= 0 days")
            t = base.set_column(
                base.schema.get_field_index("age_years"),
                "age_years",
                pc.add(base.column("age_years"), h / 365.25),
            )
            mk = np.asarray(
                t.column("mileage_km").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
            )
            t = t.set_column(
                t.schema.get_field_index("mileage_km"), "mileage_km", pa.array(mk + rate * h)
            )
            Xh = self.features(t, when)
            v = np.exp(self.predict_log(Xh)) if n else np.zeros(0)
            q05, q95 = self.interval(Xh)
            widen = float(np.sqrt(1 + h / 365.0))
            rows.append(np.arange(n))
            hz.append(np.full(n, h))
            vals.append(np.where(bad, np.nan, v))
            lo.append(np.where(bad, np.nan, v * np.exp(q05 * widen)))
            hi.append(np.where(bad, np.nan, v * np.exp(q95 * widen)))
        cat = [np.concatenate(x) if x else np.zeros(0) for x in (rows, hz, vals, lo, hi)]
        mask = np.isnan(cat[2])
        return pa.table(
            {
                "row": pa.array(cat[0].astype(np.int64)),
                "horizon_days": pa.array(cat[1].astype(np.int32)),
                "value": pa.array(cat[2], mask=mask),
                "value_low": pa.array(cat[3], mask=mask),
                "value_high": pa.array(cat[4], mask=mask),
            }
        )

    def _market(self, vehicles: pa.Table, when: dt.date, market: pa.Table) -> np.ndarray:
        need = [c for c in ("make", "model", "age_band", "factor") if c not in market.column_names]
        if need:
            raise ValueError(f"market lacks columns: {', '.join(need)} (use market_index)")
        table = dict(
            zip(
                zip(
                    market.column("make").to_pylist(),
                    market.column("model").to_pylist(),
                    market.column("age_band").to_pylist(),
                    strict=True,
                ),
                market.column("factor").to_pylist(),
                strict=True,
            )
        )
        make, model = make_model_keys(vehicles)
        age = np.asarray(
            self._prepared(vehicles, when).column("age_years").to_numpy(zero_copy_only=False),
            np.float64,
        )
        band = _band(np.nan_to_num(age, nan=0.0)).tolist()
        return np.array(
            [table.get(k) or 1.0 for k in zip(make, model, band, strict=True)], np.float64
        )

    def _prepared(self, vehicles: pa.Table, when: dt.date) -> pa.Table:
        year = vehicles.column("year").cast(pa.float64())
        age = pc.subtract(
            pa.scalar(when.year + (when.timetuple().tm_yday - 1) / 365.25 - 0.5), year
        )
        t = vehicles
        if "age_years" not in t.column_names:
            t = t.append_column("age_years", age)
        return t


def _date(at: dt.datetime | dt.date | None) -> dt.date:
    if at is None:
        return dt.datetime.now(dt.UTC).date()
    return at.date() if isinstance(at, dt.datetime) else at


def _row_errors(vehicles: pa.Table, when: dt.date) -> list[str | None]:
    km = vehicles.column("mileage_km").cast(pa.float64()).to_pylist()
    year = vehicles.column("year").cast(pa.float64()).to_pylist()
    out: list[str | None] = []
    for k, y in zip(km, year, strict=True):
        if y is None or math.isnan(y):
            out.append("missing year")
        elif y > when.year:
            out.append(f"model year {int(y)} is after the valuation date {when.isoformat()}")
        elif k is None or math.isnan(k):
            out.append("missing mileage")
        elif k < 0:
            out.append(f"negative mileage {k:g} km")
        else:
            out.append(None)
    return out
