"""Refresh and drift (issue 22, point 3) on synthetic markets whose shift is
known: the new listings are the same pricing rule times a stated factor."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from autolien.cli import main
from autolien.valuation.canonical import load_canonical, train_canonical
from autolien.valuation.fresh import drift, refresh
from autolien.valuation.model import Valuer

SMALL = {"iterations": 300, "depth": 6, "learning_rate": 0.2}


def _market(n: int, seed: int, level: float = 1.0, start: str = "2024-01-01") -> pa.Table:
    """Listings priced by a known rule times ``level``, 10% log noise,
    listed over 28 days from ``start``."""
    rng = np.random.default_rng(seed)
    makes = rng.choice(["ford", "vw", "bmw"], n)
    year = rng.integers(2010, 2023, n)
    km = rng.uniform(5e3, 2e5, n)
    logp = (
        np.log(30000 * level)
        - 0.12 * (2024 - year)
        - 0.25 * km / 1e5
        + np.where(makes == "bmw", 0.3, 0.0)
        + rng.normal(0, 0.1, n)
    )
    t0 = dt.datetime.fromisoformat(start)
    listed = [t0 + dt.timedelta(days=int(d)) for d in rng.integers(0, 28, n)]
    return pa.table(
        {
            "make": makes,
            "model": np.where(makes == "bmw", "3", "golf"),
            "year": year,
            "mileage_km": km,
            "fuel": rng.choice(["petrol", "diesel"], n),
            "price": np.exp(logp),
            "listed_at": pa.array(listed, pa.timestamp("s")),
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fresh")
    train_canonical(_market(6000, 1), d / "m", currency="EUR", params=SMALL)
    return d / "m"


def _clean(t: pa.Table) -> pa.Table:
    return load_canonical(t, currency="EUR")[0]


def test_drift_warns_on_a_shifted_market_only(trained: Path) -> None:
    same = _clean(_market(3000, 2, start="2024-02-01"))
    ok = drift(trained, same)
    assert ok["status"] == "ok"
    assert not ok["warning"]
    assert ok["window"] is not None
    # only the latest 7 days count: about a quarter of the 28 days' rows
    assert 500 < ok["n"] < 1000
    # prices 15% lower: every APE near 0.15/0.85, far beyond 2 points
    cheaper = _clean(_market(3000, 3, level=0.85, start="2024-02-01"))
    bad = drift(trained, cheaper)
    assert bad["warning"]
    assert bad["rise_points"] > 5
    assert "drift" in bad["message"]
    few = drift(trained, _clean(_market(300, 4, start="2024-02-01")))
    assert few["status"] == "too_few_rows"


def test_refresh_recovers_a_known_level_shift(trained: Path, tmp_path: Path) -> None:
    cheaper = _clean(_market(4000, 5, level=0.85, start="2024-02-01"))
    meta = refresh(trained, cheaper, tmp_path / "r")
    same = refresh(trained, _clean(_market(4000, 8, start="2024-02-01")), tmp_path / "s")
    # against the same market at the same dates (which absorbs the model's
    # own bias and the month's ageing), the level is log(0.85) within noise
    # (medians of 2,000 residuals, SD 0.1: SE about 0.003 each)
    assert meta["level_shift"] - same["level_shift"] == pytest.approx(np.log(0.85), abs=0.015)
    r = meta["refresh"]
    assert r["held_out_after"]["mdape_pct"] < r["held_out_before"]["mdape_pct"] - 5
    assert meta["version"] != json.loads((trained / "model.json").read_text())["version"]
    for c in meta["interval_90_coverage"].values():
        assert abs(c["coverage_pct"] - 90) < 3.5  # n ~ 2,000: SE 0.7 points
    hist = json.loads((tmp_path / "r" / "versions.json").read_text())
    assert hist[-1]["parent"] == json.loads((trained / "model.json").read_text())["version"]
    # the refreshed model values a fresh sample of the shifted market without drift
    v = Valuer.load(tmp_path / "r")
    later = _clean(_market(3000, 6, level=0.85, start="2024-03-01"))
    assert drift(tmp_path / "r", later)["status"] == "ok"
    out = v.value(later.slice(0, 5), at=dt.date(2024, 3, 15))
    assert set(out.column("model_version").to_pylist()) == {meta["version"]}
    with pytest.raises(ValueError, match="new model version"):
        refresh(trained, cheaper, trained)


def test_cli_refresh_and_drift(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_market(3000, 7, level=0.85, start="2024-02-01"), tmp_path / "new.parquet")
    args = ["--model", str(trained), "--data", str(tmp_path / "new.parquet"), "--currency", "EUR"]
    assert main(["valuation", "drift", *args]) == 0
    assert json.loads(capsys.readouterr().out)["warning"] is True
    assert main(["valuation", "refresh", *args, "--out", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "recalibration"


def test_refit_trains_new_trees_and_records_the_version(trained: Path, tmp_path: Path) -> None:
    from autolien.valuation.fresh import refit

    parent = json.loads((trained / "model.json").read_text())
    cheaper = _clean(_market(4000, 9, level=0.85, start="2024-02-01"))
    rec = refresh(trained, cheaper, tmp_path / "r")
    meta = refit(tmp_path / "r", cheaper, tmp_path / "f", params=SMALL)
    assert meta["refresh"]["kind"] == "refit"
    assert meta["refresh"]["parent"] == rec["version"]
    assert meta["version"] not in (rec["version"], parent["version"])
    assert meta["categorical"] == parent["categorical"]
    assert meta["numeric"] == parent["numeric"]
    # the chain of versions, each with its card
    hist = json.loads((tmp_path / "f" / "versions.json").read_text())
    assert [h["kind"] for h in hist] == ["recalibration", "refit"]
    assert [h["version"] for h in hist] == [rec["version"], meta["version"]]
    for h in hist:
        assert Path(h["card"]).read_text().startswith(f"# Model card: {h['version']}")
    # the refit prices the shifted market: no drift on a fresh sample of it,
    # and its valuations carry its version
    later = _clean(_market(3000, 10, level=0.85, start="2024-03-01"))
    assert drift(tmp_path / "f", later)["status"] == "ok"
    out = Valuer.load(tmp_path / "f").value(later.slice(0, 5), at=dt.date(2024, 3, 15))
    assert set(out.column("model_version").to_pylist()) == {meta["version"]}
    with pytest.raises(ValueError, match="canonical path"):
        refit(Path(__file__).parents[1] / "python/autolien/valuation/models/uk_used_cars",
              cheaper, tmp_path / "g")  # fmt: skip


def test_cli_refit(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pyarrow.parquet as pq

    pq.write_table(_market(3000, 11, level=0.9, start="2024-02-01"), tmp_path / "new.parquet")
    args = ["--model", str(trained), "--data", str(tmp_path / "new.parquet"), "--currency", "EUR"]
    assert (
        main(["valuation", "refresh", *args, "--out", str(tmp_path / "f"), "--mode", "refit"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "refit"
    assert out["seconds"] > 0
