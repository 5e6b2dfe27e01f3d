"""The ``autolien`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__, _core
from .ledger import cli as ledger_cli


def _info(_: argparse.Namespace) -> int:
    print(
        json.dumps(
            {
                "version": __version__,
                "sha256_backend": _core.sha256_backend(),
                "sha_ni": _core.sha256_shani_supported(),
                "threads": _core.get_num_threads(),
            },
            indent=2,
        )
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autolien`` script."""
    parser = argparse.ArgumentParser(prog="autolien", description=__doc__)
    parser.add_argument("--version", action="version", version=f"autolien {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="build and machine facts as JSON")
    p_info.set_defaults(func=_info)
    ledger_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "ledger":
        return ledger_cli.run(args)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
