"""The market's supply and days'-supply responses fitted from a lender's
dated, priced listings, and proved out of time (issue 22, point 2).

``fit_dated_market`` trains the base model on the listings before a date T,
regresses its out-of-fold log residuals on the log supply ratio and the log
days'-supply ratio each advert met when it was listed
(``market.supply_ratio_at_listing``, ``market.tom_ratio_at_listing``: both
look back only, so the adverts after T cannot leak into them), with one
intercept per model and a listing-time trend, backfits (the base refitted on
prices with the fitted market taken out), and scores the listings after T
with and without the factor. Standard errors are cluster-robust (model x
``BLOCK_DAYS`` of listing). An elasticity is used when the data identify it
(``MIN_FIT_ROWS`` adverts, ``MIN_CLUSTERS`` clusters, a 95% CI within
±``MAX_HALF_WIDTH``); otherwise the stated assumption is, and the result says
so. A feed observed only from some date (``observed_from``: a crawl's
first day) has seen, of the adverts before it, only those still up then:
the look-back windows reaching before it would count a stock too small, so
those adverts carry no ratio. A factor that does not lower the out-of-time MdAPE below both the
date-blind base it multiplies and the fine-age model alone is switched off
for that market, with the figures that show why."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .canonical import layout_of
from .card import accuracy
from .data import make_model_keys
from .market import (
    MARKET_BOUNDS_DATED,
    SUPPLY_ELASTICITY,
    TOM_ELASTICITY,
    supply_ratio_at_listing,
    tom_ratio_at_listing,
)
from .model import Valuer
from .train import train

__all__ = ["BLOCK_DAYS", "MAX_HALF_WIDTH", "MIN_FIT_ROWS", "fit_dated_market", "fit_response"]

MIN_FIT_ROWS = 200
NORM_DAYS = 84  # the ratios' look-back (market_index's norm_days)
FOLDS = 4
# Adverts of one model listed in one BLOCK_DAYS stretch share the market
# they met and the base model's misfit of that stretch: they are one cluster
# for the standard errors. Ordinary least squares treats them as independent;
# over 200 synthetic markets (tests/test_valuation_market_fit.py) its 95%
# interval covered the truth 29-31% of the time, 28-day clusters with CR1
# 87-91%, 42-day clusters with the larger of CR1 and the jackknife 93-97%.
BLOCK_DAYS = 42
MIN_CLUSTERS = 8
# An elasticity counts as identified when its 95% interval is at most this
# wide either side: a precisely measured zero is identified, a slope that the
# data cannot pin down falls back to the stated assumption.
MAX_HALF_WIDTH = 0.15
# Backfitting rounds: the base model is refitted on prices with the fitted
# market taken out, so that it cannot soak the market up through features
# that carry the date (mileage for a model year does).
ROUNDS = 2
_T975 = {  # Student t 0.975 quantiles (scipy.stats.t.ppf), by degrees of freedom
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042,
    40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip


def _t975(df: int) -> float:
    """The t quantile at ``df``, from the table (the next lower tabled df:
    conservative), 1.96 beyond it."""
    if df < 1:
        return float("inf")
    if df > 120:
        return 1.96
    return _T975[max(k for k in _T975 if k <= df)]


def fit_response(
    x: np.ndarray,
    y: np.ndarray,
    cluster: np.ndarray,
    groups: np.ndarray | None = None,
    controls: np.ndarray | None = None,
) -> dict[str, Any]:
    """Least squares of ``y`` on the columns of ``x`` (plus one intercept per
    ``groups`` value, or one overall, and the ``controls`` columns, whose
    slopes are not reported), over rows where all are finite, with
    two standard errors per slope: the ordinary one and the cluster-robust
    one (CR1 sandwich over ``cluster``, with the small-sample factor
    G/(G-1)·(n-1)/(n-k)); the 95% interval uses the cluster-robust error and
    Student t with G-1 degrees of freedom."""
    x = np.atleast_2d(np.asarray(x, np.float64).T).T
    y = np.asarray(y, np.float64)
    cluster = np.asarray(cluster)
    if x.shape[0] != y.size or cluster.size != y.size:
        raise ValueError("one row of x, one y and one cluster per advert")
    z = np.zeros((y.size, 0)) if controls is None else np.atleast_2d(np.asarray(controls).T).T
    ok = np.isfinite(y) & np.isfinite(x).all(axis=1) & np.isfinite(z).all(axis=1)
    g = np.zeros(y.size, np.int64) if groups is None else np.asarray(groups)
    _, gid = np.unique(g[ok], return_inverse=True)
    dummies = np.eye(int(gid.max()) + 1 if gid.size else 1)[gid]
    X = np.column_stack([x[ok], dummies, z[ok]])
    Y = y[ok]
    n, k = X.shape
    _, cid = np.unique(cluster[ok], return_inverse=True)
    G = int(cid.max()) + 1 if cid.size else 0
    p = x.shape[1]
    nan = [float("nan")] * p
    if n <= k + 1 or G < 2 or np.linalg.matrix_rank(X) < k:
        return {"beta": nan, "se_ols": nan, "se": nan, "ci95": [[v, v] for v in nan],
                "n": int(n), "clusters": G}  # fmt: skip
    xtx_inv = np.linalg.pinv(X.T @ X)
    b = xtx_inv @ X.T @ Y
    e = Y - X @ b
    se_ols = np.sqrt(np.diag(xtx_inv) * float(e @ e) / (n - k))
    score = np.zeros((G, k))
    np.add.at(score, cid, X * e[:, None])
    meat = score.T @ score
    cr = xtx_inv @ meat @ xtx_inv * (G / (G - 1)) * ((n - 1) / (n - k))
    # the cluster jackknife (leave one cluster out; CR3): with a few dozen
    # clusters whose misfit runs on into the next one, CR1 alone falls short
    # (see BLOCK_DAYS); the larger of the two is used
    jk = np.zeros((G, k))
    xtx = X.T @ X
    xty = X.T @ Y
    ccx = np.zeros((G, k, k))
    ccy = np.zeros((G, k))
    np.add.at(ccx, cid, X[:, :, None] * X[:, None, :])
    np.add.at(ccy, cid, X * Y[:, None])
    for c in range(G):
        jk[c] = np.linalg.pinv(xtx - ccx[c]) @ (xty - ccy[c])
    d = jk - jk.mean(axis=0)
    cr3 = (G - 1) / G * (d.T @ d)
    se = np.sqrt(np.maximum(np.diag(cr), np.diag(cr3)))
    t = _t975(G - 1)
    return {
        "beta": [float(v) for v in b[:p]],
        "se_ols": [float(v) for v in se_ols[:p]],
        "se": [float(v) for v in se[:p]],
        "ci95": [[float(b[i] - t * se[i]), float(b[i] + t * se[i])] for i in range(p)],
        "n": int(n),
        "clusters": G,
    }


def _elasticity(fit: dict[str, Any], i: int, assumed: float, name: str) -> dict[str, Any]:
    """One fitted elasticity, the one used, and where it came from."""
    beta, se, ci = fit["beta"][i], fit["se"][i], fit["ci95"][i]
    ok = _identified(fit, i)
    return {
        "fitted": round(beta, 4) if np.isfinite(beta) else None,
        "stderr": round(se, 4) if np.isfinite(se) else None,
        "stderr_ols": round(fit["se_ols"][i], 4) if np.isfinite(fit["se_ols"][i]) else None,
        "ci95": [round(ci[0], 4), round(ci[1], 4)] if np.isfinite(ci[0]) else None,
        "n": fit["n"],
        "clusters": fit["clusters"],
        "used": round(beta, 4) if ok else assumed,
        "identified": ok,
        "source": "fitted from the listings"
        if ok
        else (
            f"assumed ({assumed}): the listings do not identify the {name} response "
            f"(n {fit['n']}, {fit['clusters']} clusters, slope {beta:.3f}, 95% CI "
            f"{ci[0]:.3f} to {ci[1]:.3f}; needs n >= {MIN_FIT_ROWS}, >= {MIN_CLUSTERS} "
            f"clusters and a CI within ±{MAX_HALF_WIDTH})"
        ),
    }


def _identified(fit: dict[str, Any], i: int) -> bool:
    lo, hi = fit["ci95"][i]
    return bool(
        fit["n"] >= MIN_FIT_ROWS
        and fit["clusters"] >= MIN_CLUSTERS
        and np.isfinite(lo)
        and (hi - lo) / 2 <= MAX_HALF_WIDTH
    )


def _choose(
    xs: np.ndarray,
    xt: np.ndarray,
    y: np.ndarray,
    cluster: np.ndarray,
    groups: np.ndarray,
    trend: np.ndarray,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The supply and days'-supply elasticities: jointly where the data tell
    them apart; where they do not (a glut raises both ratios together), the
    one that is identified alone with the other held at its assumption.
    ``trend`` (listing time) is a control: see ``fit_dated_market``."""
    joint = fit_response(np.column_stack([xs, xt]), y, cluster, groups, trend)
    if _identified(joint, 0) and _identified(joint, 1):
        return (
            _elasticity(joint, 0, SUPPLY_ELASTICITY, "supply"),
            _elasticity(joint, 1, TOM_ELASTICITY, "days'-supply"),
        )
    zs, zt = np.nan_to_num(xs), np.nan_to_num(xt)
    s_alone = fit_response(xs, y - TOM_ELASTICITY * zt, cluster, groups, trend)
    t_alone = fit_response(xt, y - SUPPLY_ELASTICITY * zs, cluster, groups, trend)
    if _identified(s_alone, 0):
        s = _elasticity(s_alone, 0, SUPPLY_ELASTICITY, "supply")
        t = _elasticity(joint, 1, TOM_ELASTICITY, "days'-supply")
        t["source"] += "; the supply response was fitted with it held there"
        return s, t
    if _identified(t_alone, 0):
        s = _elasticity(joint, 0, SUPPLY_ELASTICITY, "supply")
        s["source"] += "; the days'-supply response was fitted with it held there"
        return s, _elasticity(t_alone, 0, TOM_ELASTICITY, "days'-supply")
    return (
        _elasticity(joint, 0, SUPPLY_ELASTICITY, "supply"),
        _elasticity(joint, 1, TOM_ELASTICITY, "days'-supply"),
    )


def fit_dated_market(
    table: pa.Table,
    split_at: dt.datetime,
    *,
    currency: str,
    params: dict[str, Any] | None = None,
    seed: int = 42,
    min_listings: int = 10,
    min_sold: int = 30,
    observed_from: dt.datetime | None = None,
) -> dict[str, Any]:
    """``table``: cleaned canonical listings (``load_canonical``) with
    ``listed_at`` (and ``delisted_at`` where adverts went). Returns the
    supply and days'-supply elasticities (each: value, cluster-robust
    standard error, 95% CI, the value used and its source), the out-of-time
    accuracy with and without the factor, and ``market_factor``: "on" or
    "off". ``observed_from``: when the feed began (see the module doc)."""
    if "listed_at" not in table.column_names:
        raise ValueError("fitting the market needs listed_at")
    listed = table.column("listed_at").cast(pa.timestamp("s"))
    cut = pa.scalar(split_at, pa.timestamp("s"))
    before = np.asarray(
        pc.fill_null(pc.less(listed, cut), False).to_numpy(zero_copy_only=False), bool
    )
    after = np.asarray(
        pc.fill_null(pc.greater_equal(listed, cut), False).to_numpy(zero_copy_only=False), bool
    )
    if before.sum() < MIN_FIT_ROWS or after.sum() == 0:
        raise ValueError(
            f"{int(before.sum())} listings before and {int(after.sum())} after {split_at}: "
            f"need {MIN_FIT_ROWS} before and some after"
        )
    xs = np.log(supply_ratio_at_listing(table, min_listings=min_listings, norm_days=NORM_DAYS))
    xt = np.log(tom_ratio_at_listing(table, min_sold=min_sold, norm_days=NORM_DAYS))
    truncated = 0
    if observed_from is not None:
        # the ratios look back NORM_DAYS: before the feed began only the
        # survivors are seen (the eBay crawl's supply ratios came out at a
        # median 7.1x where they reached back past its first day)
        reach = pc.subtract(listed, pa.scalar(dt.timedelta(days=NORM_DAYS), pa.duration("s")))
        blind = np.asarray(
            pc.fill_null(
                pc.less(reach, pa.scalar(observed_from, pa.timestamp("s"))), True
            ).to_numpy(zero_copy_only=False),
            bool,
        )
        truncated = int((blind & before & (np.isfinite(xs) | np.isfinite(xt))).sum())
        xs = np.where(blind, np.nan, xs)
        xt = np.where(blind, np.nan, xt)
    price = np.asarray(
        table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64
    )

    def fitted(rows: np.ndarray, t: pa.Table, log_offset: np.ndarray | None = None) -> np.ndarray:
        """Predicted prices of every row of ``t`` from a model of ``rows``
        (of prices divided by exp(log_offset), when given)."""
        if log_offset is not None:
            t_fit = t.set_column(
                t.schema.get_field_index("price"), "price", pa.array(price * np.exp(-log_offset))
            )
        else:
            t_fit = t
        part = t_fit.filter(pa.array(rows))
        with tempfile.TemporaryDirectory() as tmp:
            train(
                part,
                Path(tmp),
                name="market_fit",
                currency=currency,
                params=params,
                seed=seed,
                layout=layout_of(part, {"extra_categorical": [], "extra_numeric": []}),
            )
            v = Valuer.load(tmp)
            out: np.ndarray = np.exp(v.predict_log(v.features(t)))
            return out

    pred = fitted(before, table)
    # The slope is fitted on residuals of a model that cannot tell the date:
    # age counted from the listing date carries the date in its fraction, and
    # a model learns the market from it in sample (we measured the slope
    # shrink from -0.30 to -0.02 on the synthetic swing). Whole years of age
    # (the listing year's minus the model year, constant over a calendar
    # year, since ages count from mid model year) carry it only at New Year.
    age = np.asarray(table.column("age_years").to_numpy(zero_copy_only=False), np.float64)
    coarse = table.set_column(
        table.schema.get_field_index("age_years"), "age_years", pa.array(np.floor(age + 0.5))
    )
    make, model = make_model_keys(table)
    _, groups = np.unique(np.array([f"{a}\x1f{b}" for a, b in zip(make, model, strict=True)]),
                          return_inverse=True)  # fmt: skip
    t_us = pc.cast(pc.cast(listed, pa.timestamp("us")), pa.int64()).to_numpy(zero_copy_only=False)
    block = np.floor_divide(np.asarray(t_us, np.int64), BLOCK_DAYS * 86_400_000_000)
    cluster = groups.astype(np.int64) * (int(block.max() - block.min()) + 1) + (block - block.min())
    # Whole-year ages hide the cars' ageing over the calendar year as well:
    # a car listed in November is older than one of its model year listed in
    # March, and the residuals fall with the listing date. A linear trend in
    # listing time (per year) is a control in the fit, else that fall is
    # read as a market response wherever supply trends (the glut test's
    # supply slope measured -0.27 of -0.30 without it).
    trend = (np.asarray(t_us, np.float64) - float(np.min(t_us))) / (365.25 * 86_400e6)
    fold = np.random.default_rng(seed).integers(0, FOLDS, table.num_rows)
    # and out of fold, so that no advert's own noise is fitted into its
    # prediction (in sample, the slope shrank to -0.25 of -0.30). Then
    # backfitted: a base model of prices with the fitted market taken out
    # cannot absorb the market through features that carry the date (the
    # single pass measured -0.276 of -0.30).
    offset = np.zeros(table.num_rows)
    rounds = []
    for _ in range(ROUNDS):
        resid = np.full(table.num_rows, np.nan)
        for k in range(FOLDS):
            held = before & (fold == k)
            p = fitted(before & ~held, coarse, offset)
            resid[held] = np.log(price[held]) - np.log(p[held])
        y = np.where(before, resid, np.nan)
        supply, tom = _choose(np.where(before, xs, np.nan), xt, y, cluster, groups, trend)
        offset = supply["used"] * np.nan_to_num(xs) + tom["used"] * np.nan_to_num(xt)
        rounds.append([supply["fitted"], tom["fitted"]])
    log_factor = np.clip(offset, *np.log(MARKET_BOUNDS_DATED))
    # Out of time, the factor goes on top of a date-blind base (whole-year
    # ages) fitted to prices with the market taken out; without it, the same
    # base fitted to the prices as they are. The fine-age model, which
    # carries the last weeks' market in its ages, is reported beside them.
    blind = fitted(before, coarse)
    blind_net = fitted(before, coarse, offset)
    without = accuracy(price[after], blind[after])
    with_f = accuracy(price[after], blind_net[after] * np.exp(log_factor[after]))
    fine = accuracy(price[after], pred[after])
    # on only if it beats both bases: the date-blind one it multiplies and
    # the fine-age model a lender would otherwise use as it is
    helps = float(with_f["mdape_pct"]) < min(float(without["mdape_pct"]), float(fine["mdape_pct"]))
    return {
        "split_at": split_at.isoformat(),
        "rows_before": int(before.sum()),
        "rows_after": int(after.sum()),
        "supply_elasticity": supply,
        "tom_elasticity": tom,
        "backfit_rounds": rounds,
        "observed_from": observed_from.isoformat() if observed_from is not None else None,
        "ratios_before_split": {
            "supply": int((before & np.isfinite(xs)).sum()),
            "days_supply": int((before & np.isfinite(xt)).sum()),
            "cut_for_reaching_before_observed_from": truncated,
        },
        "training_mean_log_factor": round(float(np.mean(log_factor[before])), 4),
        "out_of_time": {
            "without_factor": without,
            "with_factor": with_f,
            "fine_age_base": fine,
            "mdape_change_points": round(
                float(with_f["mdape_pct"]) - float(without["mdape_pct"]), 3
            ),
        },
        "market_factor": "on" if helps else "off",
        "reason": (
            f"out-of-time MdAPE {with_f['mdape_pct']:.2f}% with the factor on a date-blind base "
            f"against {without['mdape_pct']:.2f}% without it and {fine['mdape_pct']:.2f}% for "
            "the fine-age model alone"
        ),
    }
