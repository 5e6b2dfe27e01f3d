"""``autolien valuation train``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("valuation", help="train and inspect valuation models")
    vs = p.add_subparsers(dest="valuation_command", required=True)
    t = vs.add_parser(
        "train", help="train the base value model; writes the model, its metrics and a model card"
    )
    t.add_argument(
        "--data", required=True, help="listings: a directory of UK-style CSVs, or a CarDekho CSV"
    )
    t.add_argument("--format", choices=["uk_used_cars", "cardekho"], default="uk_used_cars")
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


def run(args: argparse.Namespace) -> int:
    from .data import UK_LISTING_YEAR, load_cardekho, load_uk_used_cars  # noqa: PLC0415
    from .train import train  # noqa: PLC0415

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
    )
    print(
        json.dumps(
            {"version": meta["version"], "metrics": meta["metrics"], "out": args.out}, indent=2
        )
    )
    return 0
