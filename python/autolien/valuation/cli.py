"""``autolien valuation train`` and ``autolien valuation evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("valuation", help="train and inspect valuation models")
    vs = p.add_subparsers(dest="valuation_command", required=True)
    t = vs.add_parser(
        "train", help="train the base value model; writes the model, its metrics and a model card"
    )
    t.add_argument(
        "--data",
        required=True,
        help="listings: a directory of UK-style CSVs, a CarDekho CSV, or (--format canonical) "
        "a lender's CSV or Parquet file",
    )
    t.add_argument(
        "--format", choices=["uk_used_cars", "cardekho", "canonical"], default="uk_used_cars"
    )
    t.add_argument(
        "--map", help="--format canonical: a TOML mapping (renames, units, extra columns)"
    )
    t.add_argument(
        "--listing-year",
        type=int,
        help="--format canonical: the year the adverts were listed, where there is no listed_at",
    )
    t.add_argument("--out", required=True, help="model directory to write")
    t.add_argument(
        "--currency",
        default=None,
        help="currency of the prices (default: GBP for uk, INR for cardekho)",
    )
    t.add_argument(
        "--compare", help="another market's CarDekho CSV, scored with the same recipe in the card"
    )
    t.add_argument(
        "--learner",
        choices=["catboost", "hgb"],
        default="catboost",
        help="CatBoost oblivious trees (default, the fast compiled scorer) or scikit-learn's "
        "HistGradientBoosting",
    )
    t.add_argument(
        "--params",
        type=json.loads,
        default=None,
        help='learner parameter overrides as JSON, e.g. \'{"iterations": 300, "depth": 6}\'',
    )
    t.add_argument(
        "--fit-market",
        type=int,
        metavar="DAYS",
        default=None,
        help="--format canonical, dated listings: fit the supply and days'-supply responses, "
        "the last DAYS of listings out of time, into model.json and the card",
    )
    e = vs.add_parser(
        "evaluate", help="write a model card (model_card.json and model_card.html with plots)"
    )
    e.add_argument("--model", help="model directory (default: the shipped UK model)")
    e.add_argument("--data", required=True, help="listings with prices")
    e.add_argument(
        "--format", choices=["uk_used_cars", "cardekho", "canonical"], default="canonical"
    )
    e.add_argument("--map", help="--format canonical: the TOML mapping")
    e.add_argument("--currency", help="--format canonical: currency of the prices")
    e.add_argument("--listing-year", type=int)
    e.add_argument(
        "--rows",
        choices=["test", "all"],
        default="test",
        help="test: the data is the training data, score its held-out split; all: new listings",
    )
    e.add_argument("--out", required=True, help="directory for the card")
    for verb, text in (
        (
            "refresh",
            (
                "recalibrate (seconds) or refit (minutes) a model on the newest listings "
                "into a new model version"
            ),
        ),
        ("drift", "MdAPE on the latest week's listings against the model's card"),
    ):
        f = vs.add_parser(verb, help=text)
        f.add_argument("--model", help="model directory (default: the shipped UK model)")
        f.add_argument("--data", required=True, help="the newest listings, with prices")
        f.add_argument(
            "--format", choices=["uk_used_cars", "cardekho", "canonical"], default="canonical"
        )
        f.add_argument("--map", help="--format canonical: the TOML mapping")
        f.add_argument("--currency", help="--format canonical: currency of the prices")
        f.add_argument("--listing-year", type=int)
        if verb == "refresh":
            f.add_argument("--out", required=True, help="directory of the new model version")
            f.add_argument(
                "--mode",
                choices=["recalibrate", "refit"],
                default="recalibrate",
                help="recalibrate: the level and intervals on the old trees; refit: new trees "
                "with the parent's layout and recipe (canonical models)",
            )
        else:
            f.add_argument("--window-days", type=int, default=7)
            f.add_argument("--threshold", type=float, default=None, help="MdAPE rise, points")


def run(args: argparse.Namespace) -> int:
    from ..errors import AutolienError  # noqa: PLC0415
    from .data import UK_LISTING_YEAR, load_cardekho, load_uk_used_cars  # noqa: PLC0415
    from .train import train  # noqa: PLC0415

    try:
        if args.valuation_command == "evaluate":
            return _evaluate(args)
        if args.valuation_command in ("refresh", "drift"):
            return _fresh(args)
        if args.format == "canonical":
            return _train_canonical(args)
    except AutolienError as e:
        print(f"error: {e}")
        return 2
    if args.format == "uk_used_cars":
        table, currency, year = load_uk_used_cars(args.data), "GBP", UK_LISTING_YEAR
        note = f"UK used-car adverts (aelkahout/uk_used_cars) from {args.data}; prices in GBP, listed about {year}."
    else:
        table, currency, year = load_cardekho(args.data), "INR", None
        note = f"CarDekho listings from {args.data}; prices in INR."
    extra = {"cardekho (INR)": load_cardekho(args.compare)} if args.compare else None
    meta = train(
        table,
        Path(args.out),
        name=args.format,
        currency=args.currency or currency,
        listing_year=year,
        extra_sets=extra,
        data_note=note,
        learner=args.learner,
        params=args.params,
    )
    print(
        json.dumps(
            {"version": meta["version"], "metrics": meta["metrics"], "out": args.out}, indent=2
        )
    )
    return 0


def _train_canonical(args: argparse.Namespace) -> int:
    from .canonical import Mapping, train_canonical  # noqa: PLC0415

    meta = train_canonical(
        args.data,
        Path(args.out),
        mapping=Mapping.load(args.map),
        currency=args.currency,
        listing_year=args.listing_year,
        learner=args.learner,
        params=args.params,
    )
    if args.fit_market is not None:
        from .feed import attach_market  # noqa: PLC0415

        meta = attach_market(
            Path(args.out),
            args.data,
            days_out=args.fit_market,
            mapping=Mapping.load(args.map),
            currency=args.currency,
            params=args.params,
        )
    print(
        json.dumps(
            {
                "version": meta["version"],
                "metrics": meta["metrics"],
                **({"market_factor": meta["market"]["market_factor"]} if "market" in meta else {}),
                "cleaning": {k: meta["cleaning"][k] for k in ("rows_in", "rows_out", "dropped")},
                "out": args.out,
            },
            indent=2,
        )
    )
    return 0


def _table(args: argparse.Namespace) -> Any:
    from .canonical import Mapping, load_canonical  # noqa: PLC0415
    from .data import load_cardekho, load_uk_used_cars  # noqa: PLC0415

    if args.format == "canonical":
        mapping = Mapping.load(args.map)
        currency = args.currency or mapping.currency
        if currency is None and args.model:
            currency = json.loads((Path(args.model) / "model.json").read_text())["currency"]
        table, _ = load_canonical(
            args.data, mapping, currency=currency, listing_year=args.listing_year
        )
    elif args.format == "uk_used_cars":
        table = load_uk_used_cars(args.data)
    else:
        table = load_cardekho(args.data)
    return table


def _evaluate(args: argparse.Namespace) -> int:
    from .card import evaluate, write_card  # noqa: PLC0415

    card = evaluate(args.model, _table(args), rows=args.rows)
    jpath, hpath = write_card(card, args.out)
    print(
        json.dumps({"overall": card["overall"], "json": str(jpath), "html": str(hpath)}, indent=2)
    )
    return 0


def _fresh(args: argparse.Namespace) -> int:
    from .fresh import DRIFT_THRESHOLD_POINTS, drift, refit, refresh  # noqa: PLC0415

    table = _table(args)
    if args.valuation_command == "refresh":
        if args.mode == "refit":
            if args.model is None:
                raise ValueError("--mode refit needs --model: a canonical model directory")
            meta = refit(args.model, table, args.out)
        else:
            meta = refresh(args.model, table, args.out)
        print(json.dumps({"version": meta["version"], **meta["refresh"]}, indent=2))
        return 0
    threshold = DRIFT_THRESHOLD_POINTS if args.threshold is None else args.threshold
    out = drift(args.model, table, window_days=args.window_days, threshold_points=threshold)
    print(json.dumps(out, indent=2))
    return 0
