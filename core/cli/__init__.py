"""``python -m core <command>``: the headless command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (taking the parsed
``argparse.Namespace`` and returning an exit code). Modules are found automatically, so adding a
command never edits this file. A :class:`~core.errors.CoreError` becomes a one-line message and
exit code 2; any other exception a one-line message, a hint and exit code 1 (``--debug`` adds the
traceback); cancelling with Ctrl-C exits 130. Option values are checked as they are read
(:mod:`core.cli.args`). ``args`` and ``failure`` are no subcommands (they have no ``register``) but
the public helpers that the training command lines share.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
from collections.abc import Sequence

from core import __version__
from core.cli.args import prog_name
from core.cli.failure import DEBUG_HELP, report_failure


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog_name("python -m core"),
        description="HoechstScore headless tools: synthetic slides, analysis, scores, reports.",
    )
    parser.add_argument("--version", action="version", version=f"HoechstScore {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the one place every failure is reported
        return report_failure(err, debug=args.debug)
