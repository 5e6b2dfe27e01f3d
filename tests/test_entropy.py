"""Entropy kernels against antropy, scipy, EntropyHub and nolds: the recorded
reference values in tests/data/entropy, and antropy run live as the peer."""

from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from pathlib import Path

import antropy
import numpy as np
import pyarrow as pa
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import autolien.entropy as ent

DATA = Path(__file__).parent / "data" / "entropy"
REF = json.loads((DATA / "results.json").read_text())


def _load(name: str) -> np.ndarray:
    return np.load(DATA / "inputs" / f"{name}.npy")


def _records(lib: str, measures: set[str]) -> list[tuple[str, dict]]:
    return [
        (name, rec)
        for name, recs in REF["results"].items()
        for rec in recs
        if rec["lib"] == lib and rec["measure"] in measures
    ]


def _ours(rec: dict, x: np.ndarray) -> float:
    m = rec["measure"]
    if m == "perm_entropy":
        return ent.perm_entropy(x, rec["order"], rec["delay"], rec["normalize"])
    if m in ("sample_entropy", "sample_entropy_kdtree_path"):
        return ent.sample_entropy(x, rec["order"])
    if m == "app_entropy":
        return ent.app_entropy(x, rec["order"])
    if m == "spectral_entropy":
        return ent.spectral_entropy(x, 1.0, rec["method"], normalize=rec["normalize"])
    if m == "svd_entropy":
        return ent.svd_entropy(x, rec["order"], rec["delay"], rec["normalize"])
    if m == "hist_shannon":
        return ent.shannon_entropy(x, rec["bins"])
    raise AssertionError(m)


ANTROPY = _records(
    "antropy",
    {
        "perm_entropy",
        "sample_entropy",
        "sample_entropy_kdtree_path",
        "app_entropy",
        "spectral_entropy",
        "svd_entropy",
    },
)
SCIPY = _records("scipy", {"hist_shannon"})


def test_reference_file_covers_every_measure() -> None:
    measures = {rec["measure"] for _, rec in ANTROPY + SCIPY}
    assert {
        "perm_entropy",
        "sample_entropy",
        "app_entropy",
        "spectral_entropy",
        "svd_entropy",
        "hist_shannon",
    } <= measures
    assert len(ANTROPY) == 475  # the 10 series x every antropy record kept


@pytest.mark.parametrize(
    ("name", "rec"), ANTROPY + SCIPY, ids=lambda v: v if isinstance(v, str) else v["call"]
)
def test_matches_recorded_reference(name: str, rec: dict) -> None:
    x = _load(name)
    # A pure sine with whole cycles has all its power in one bin: the
    # reference is rounding noise (~1e-27), so an absolute floor applies.
    assert _ours(rec, x) == pytest.approx(rec["value"], rel=1e-9, abs=1e-12)


def test_histogram_counts_match_numpy_record() -> None:
    for name, rec in SCIPY:
        x = _load(name)
        edges = ent.histogram_edges(x, rec["bins"])
        np.testing.assert_array_equal(np.histogram(x, bins=edges)[0], rec["counts"])
        np.testing.assert_array_equal(edges, np.histogram_bin_edges(x, rec["bins"]))


def test_sample_entropy_agrees_with_nolds_and_entropyhub_when_r_is_matched() -> None:
    for lib in ("nolds", "EntropyHub"):
        recs = _records(lib, {"sample_entropy"})
        assert recs
        for name, rec in recs:
            assert ent.sample_entropy(_load(name), rec["order"]) == pytest.approx(
                rec["value"], rel=1e-9
            )


def test_perm_entropy_ties_follow_antropy_not_entropyhub() -> None:
    # sine_n10000 has tied samples: antropy's stable argsort and EntropyHub's
    # default argsort disagree there, and we side with antropy.
    x = _load("sine_n10000")
    eh = {
        (r["order"], r["delay"]): r["value"]
        for n, r in _records("EntropyHub", {"perm_entropy"})
        if n == "sine_n10000"
    }
    an = {
        (r["order"], r["delay"]): r["value"]
        for n, r in _records("antropy", {"perm_entropy"})
        if n == "sine_n10000" and not r["normalize"]
    }
    differ = [k for k in eh if abs(eh[k] - an[k]) > 1e-9]
    assert differ, "the reference should show the tie-breaking difference"
    for k in differ:
        assert ent.perm_entropy(x, k[0], k[1]) == pytest.approx(an[k], rel=1e-12)


@pytest.mark.parametrize("n", [200, 4999, 5000, 7000])
@pytest.mark.parametrize("order", [2, 3, 4])
def test_sample_and_app_entropy_against_antropy_live(n: int, order: int) -> None:
    rng = np.random.default_rng(n + order)
    x = np.cumsum(rng.standard_normal(n)) * 0.1 + rng.standard_normal(n)
    assert ent.sample_entropy(x, order) == pytest.approx(
        antropy.sample_entropy(x, order), rel=1e-9, nan_ok=True
    )
    assert ent.app_entropy(x, order) == pytest.approx(
        antropy.app_entropy(x, order), rel=1e-9, nan_ok=True
    )
    tol = 0.15 * float(np.std(x))
    assert ent.sample_entropy(x, order, tol) == pytest.approx(
        antropy.sample_entropy(x, order, tol), rel=1e-9, nan_ok=True
    )
    assert ent.sample_entropy(x, order, r=0.15) == pytest.approx(
        antropy.sample_entropy(x, order, tol), rel=1e-9, nan_ok=True
    )
    if n <= 5000:
        with np.errstate(divide="ignore", invalid="ignore"):  # antropy warns where A or B is 0
            want = antropy.sample_entropy(x, order, metric="euclidean")
        assert ent.sample_entropy(x, order, metric="euclidean") == pytest.approx(
            want, rel=1e-9, nan_ok=True
        )
        assert ent.app_entropy(x, order, tol, "euclidean") == pytest.approx(
            antropy.app_entropy(x, order, tol, "euclidean"), rel=1e-9, nan_ok=True
        )


def test_sample_entropy_tie_rule_switches_at_5000_like_antropy() -> None:
    # Quantised values put many distances exactly at r: below 5,000 samples
    # antropy counts d < r, from 5,000 on d <= r, and so do we.
    rng = np.random.default_rng(3)
    for n in (4999, 5000):
        x = rng.integers(0, 5, n).astype(float)
        x = x / (0.2 * x.std())  # r = 1 exactly
        assert ent.sample_entropy(x) == pytest.approx(antropy.sample_entropy(x), rel=1e-12)


@pytest.mark.parametrize("order", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("delay", [1, 2, 5])
def test_perm_entropy_with_ties_against_antropy_live(order: int, delay: int) -> None:
    x = np.random.default_rng(order * 10 + delay).integers(0, 4, 3000).astype(float)
    for normalize in (False, True):
        assert ent.perm_entropy(x, order, delay, normalize) == pytest.approx(
            antropy.perm_entropy(x, order, delay, normalize), rel=1e-12
        )


def test_spectral_and_svd_against_antropy_live() -> None:
    rng = np.random.default_rng(11)
    for n in (64, 255, 256, 1000, 4097):
        x = np.sin(np.arange(n) * 0.3) + 0.5 * rng.standard_normal(n)
        for method, nperseg in (("fft", None), ("welch", None), ("welch", 64), ("welch", 100)):
            for norm in (False, True):
                with warnings.catch_warnings():  # scipy warns when nperseg exceeds n, then caps it
                    warnings.simplefilter("ignore", UserWarning)
                    want = antropy.spectral_entropy(x, 100.0, method, nperseg, norm)
                assert ent.spectral_entropy(x, 100.0, method, nperseg, norm) == pytest.approx(
                    want, rel=1e-9
                )
        assert ent.spectral_entropy(np.stack([x, x[::-1]]), 1.0) == pytest.approx(
            antropy.spectral_entropy(np.stack([x, x[::-1]]), 1.0), rel=1e-9
        )
        for order in (2, 3, 5, 9):
            assert ent.svd_entropy(x, order, 2) == pytest.approx(
                antropy.svd_entropy(x, order, 2), rel=1e-9
            )


def test_shannon_matches_scipy_with_given_edges_and_skips_nan() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=2000)
    edges = np.array([-1.0, -0.5, 0.0, 0.25, 3.0])
    kept = x[(x >= -1) & (x <= 3)]
    expected = scipy.stats.entropy(np.histogram(kept, bins=edges)[0], base=2)
    with_nan = np.concatenate([x, [np.nan] * 10])
    assert ent.shannon_entropy(with_nan, edges) == pytest.approx(expected, rel=1e-12)
    assert ent.shannon_entropy(np.full(10, 3.0), 4) == 0.0


def _batch_windows(x: np.ndarray, starts: list[int], fn) -> np.ndarray:
    return np.array([fn(x[s : t + 1]) if s >= 0 else np.nan for t, s in enumerate(starts)])


@settings(max_examples=60, deadline=None)
@given(
    vals=st.lists(st.integers(0, 6), min_size=0, max_size=120),
    window=st.integers(1, 40),
    order=st.integers(3, 5),
    delay=st.integers(1, 3),
    nan_at=st.lists(st.integers(0, 119), max_size=3),
)
def test_rolling_perm_equals_batch_per_window(
    vals: list[int], window: int, order: int, delay: int, nan_at: list[int]
) -> None:
    x = np.array(vals, dtype=float)
    for i in nan_at:
        if i < x.size:
            x[i] = np.nan
    got = ent.rolling_perm_entropy(x, window, order, delay, normalize=True)
    starts = [t + 1 - window if t + 1 >= window else -1 for t in range(x.size)]
    want = _batch_windows(x, starts, lambda w: ent.perm_entropy(w, order, delay, True))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # antropy is the outside reference where no NaN interferes
    for t in range(x.size):
        w = x[t + 1 - window : t + 1] if t + 1 >= window else None
        if w is not None and not np.isnan(w).any() and w.size > (order - 1) * delay:
            assert got[t] == pytest.approx(
                antropy.perm_entropy(w, order, delay, True), rel=1e-9, abs=1e-12
            )


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 50), min_size=1, max_size=150),
    span=st.floats(1, 200),
    seed=st.integers(0, 1000),
)
def test_time_windows_equal_batch(gaps: list[float], span: float, seed: int) -> None:
    t = np.cumsum(gaps)
    span = dt.timedelta(seconds=span).total_seconds()  # whole microseconds, so both forms agree
    x = np.random.default_rng(seed).integers(0, 5, t.size).astype(float)
    got = ent.rolling_perm_entropy(x, span, 3, times=t)
    got_dt = ent.rolling_perm_entropy(x, dt.timedelta(seconds=span), 3, times=t)
    np.testing.assert_array_equal(got, got_dt)
    edges = ent.histogram_edges(x, 5)
    sh = ent.rolling_shannon_entropy(x, span, bins=5, times=t)
    for i in range(t.size):
        # rows up to this one (a later row with the same time is not yet in)
        inside = (t > t[i] - span) & (np.arange(t.size) <= i)
        w = x[inside]
        np.testing.assert_allclose(got[i], ent.perm_entropy(w, 3), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            sh[i], scipy.stats.entropy(np.histogram(w, edges)[0], base=2), rtol=1e-12, atol=1e-12
        )


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=6),
    span=st.floats(5, 300),
    seed=st.integers(0, 1000),
)
def test_grouped_rolling_perm_equals_one_call_per_group(
    sizes: list[int], span: float, seed: int
) -> None:
    # each group is a series of its own: no window reaches back into the
    # group before it (whose times run on into this one's)
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 6, k).astype(float) for k in sizes]
    ts = [np.cumsum(rng.uniform(0, 20, k)) for k in sizes]
    offsets = np.r_[0, np.cumsum(sizes)]
    x, t = np.concatenate(xs), np.concatenate(ts)
    for normalize in (False, True):
        got = ent.rolling_perm_entropy(x, span, 3, times=t, normalize=normalize, offsets=offsets)
        want = [
            ent.rolling_perm_entropy(a, span, 3, times=b, normalize=normalize)
            for a, b in zip(xs, ts, strict=True)
        ]
        np.testing.assert_array_equal(got, np.concatenate(want))
    counted = ent.rolling_perm_entropy(x, 7, 3, offsets=offsets)
    np.testing.assert_array_equal(
        counted, np.concatenate([ent.rolling_perm_entropy(a, 7, 3) for a in xs])
    )


def test_grouped_rolling_perm_rejects_bad_offsets() -> None:
    x = np.arange(10.0)
    for bad in ([0, 11], [1, 10], [0, 6, 4, 10], []):
        with pytest.raises(ValueError, match="offsets"):
            ent.rolling_perm_entropy(x, 3, offsets=bad)


def test_long_rolling_run_does_not_drift() -> None:
    x = np.random.default_rng(2).standard_normal(400_000)
    got = ent.rolling_perm_entropy(x, 256, order=5)
    for t in (255, 200_000, 399_999):
        assert got[t] == pytest.approx(antropy.perm_entropy(x[t - 255 : t + 1], order=5), rel=1e-12)


def _fleet() -> tuple[pa.Table, list[np.ndarray]]:
    rng = np.random.default_rng(9)
    sizes = [700, 0, 1, 300, 900]
    xs = [rng.standard_normal(k) for k in sizes]
    ts = [np.cumsum(rng.uniform(1, 30, k)) for k in sizes]
    ids = np.repeat([f"v{i}" for i in range(len(sizes))], sizes)
    # interleave vehicles: grouping must sort them out, keeping each one's order
    perm = np.argsort(np.concatenate(list(ts)), kind="stable")
    x = np.concatenate(xs)[perm]
    t = np.concatenate(ts)[perm]
    table = pa.table(
        {
            "vehicle_id": ids[perm],
            "time": pa.array((t * 1e6).astype(np.int64)).cast(pa.timestamp("us", tz="UTC")),
            "speed_kmh": x,
        }
    )
    return table, [v for v in xs if v.size]


@pytest.mark.parametrize("measure", ["perm", "sample", "app", "svd", "spectral", "shannon"])
def test_by_vehicle_equals_per_series_calls(measure: str) -> None:
    table, xs = _fleet()
    out = ent.by_vehicle(table, "speed_kmh", measure)
    # vehicles come in order of first appearance; v1 has no rows
    got = dict(
        zip(out.column("vehicle_id").to_pylist(), out.column("value").to_pylist(), strict=True)
    )
    sizes = dict(
        zip(out.column("vehicle_id").to_pylist(), out.column("n").to_pylist(), strict=True)
    )
    assert sizes == {"v0": 700, "v2": 1, "v3": 300, "v4": 900}
    vals = [got[k] for k in ("v0", "v2", "v3", "v4")]
    single = {
        "perm": antropy.perm_entropy,
        "sample": antropy.sample_entropy,
        "app": antropy.app_entropy,
        "svd": antropy.svd_entropy,
        "spectral": lambda v: antropy.spectral_entropy(v, 1.0),
    }
    allx = np.concatenate(xs)
    edges = np.histogram_bin_edges(allx, 16)
    for v, x in zip(vals, xs, strict=True):
        if x.size < 5:
            assert math.isnan(v) or measure in ("perm", "shannon")
            continue
        want = (
            scipy.stats.entropy(np.histogram(x, edges)[0], base=2)
            if measure == "shannon"
            else single[measure](x)
        )
        assert v == pytest.approx(want, rel=1e-9)


def test_by_vehicle_rolling_never_crosses_vehicles() -> None:
    table, xs = _fleet()
    out = ent.by_vehicle(table, "speed_kmh", "perm", window=50)
    v0 = (
        out.filter(pa.compute.equal(out.column("vehicle_id"), "v3"))
        .column("value")
        .to_numpy(zero_copy_only=False)
    )
    assert np.isnan(v0[:49]).all()
    np.testing.assert_allclose(
        v0[49:], [antropy.perm_entropy(xs[2][t - 49 : t + 1]) for t in range(49, 300)], rtol=1e-9
    )
    timed = ent.by_vehicle(table, "speed_kmh", "shannon", window=dt.timedelta(minutes=10))
    assert timed.column_names == ["vehicle_id", "time", "value"]
    assert timed.num_rows == table.num_rows


def test_errors_are_typed_and_clear() -> None:
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="order"):
        ent.perm_entropy(x, order=8)
    with pytest.raises(ValueError, match="delay"):
        ent.perm_entropy(x, delay=0)
    with pytest.raises(TypeError, match="numeric"):
        ent.perm_entropy(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="1-D"):
        ent.svd_entropy(np.ones((3, 3)))
    with pytest.raises(ValueError, match="metric"):
        ent.sample_entropy(x, metric="cosine")
    with pytest.raises(TypeError, match="tolerance"):
        ent.sample_entropy(x, 2, "0.2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        ent.spectral_entropy(x, 1.0, method="multitaper")
    with pytest.raises(ValueError, match="sf"):
        ent.spectral_entropy(x, 0.0)
    with pytest.raises(ValueError, match="window"):
        ent.rolling_perm_entropy(x, 0)
    with pytest.raises(TypeError, match="times"):
        ent.rolling_perm_entropy(x, dt.timedelta(seconds=3))
    with pytest.raises(ValueError, match="decrease"):
        ent.rolling_perm_entropy(x, 5.0, times=x[::-1])
    with pytest.raises(ValueError, match="finite"):
        ent.shannon_entropy([np.nan, np.nan], 4)
    table, _ = _fleet()
    with pytest.raises(ValueError, match="rolling"):
        ent.by_vehicle(table, "speed_kmh", "sample", window=10)
    with pytest.raises(ValueError, match="no column"):
        ent.by_vehicle(table, "nope")
    with pytest.raises(ValueError, match="measure"):
        ent.by_vehicle(table, "speed_kmh", "renyi")
    # NaN in similarity and spectral measures propagates, as documented
    assert math.isnan(ent.sample_entropy([1.0, np.nan, 2.0, 3.0, 1.0, 2.0]))
    assert math.isnan(ent.perm_entropy([np.nan] * 10))


@settings(max_examples=150, deadline=None)
@given(
    vals=st.lists(
        st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=0, max_size=60
    ),
    order=st.integers(1, 8),
    delay=st.integers(0, 4),
)
def test_any_input_gives_a_value_or_a_clear_error(
    vals: list[float], order: int, delay: int
) -> None:
    """Fuzz: every measure returns a float (NaN allowed) or raises ValueError."""
    x = np.array(vals, dtype=float)
    calls = [
        lambda: ent.perm_entropy(x, order, delay),
        lambda: ent.sample_entropy(x, order),
        lambda: ent.app_entropy(x, order),
        lambda: ent.svd_entropy(x, order, delay),
        lambda: ent.spectral_entropy(x, 1.0, "welch" if order % 2 else "fft"),
        lambda: ent.shannon_entropy(x, order),
        lambda: ent.rolling_perm_entropy(x, order, 3, max(delay, 1)),
        lambda: ent.rolling_shannon_entropy(x, order, bins=3),
    ]
    for call in calls:
        try:
            with np.errstate(all="ignore"):
                out = call()
        except ValueError:
            continue
        assert isinstance(out, (float, np.ndarray))
