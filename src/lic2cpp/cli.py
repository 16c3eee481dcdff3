"""Command-line entry point: one sub-command per pipeline step, all behind `build`.

Each step module defines ``register(subparsers)``, which adds its sub-command and sets
``func`` (called with the parsed arguments) as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from typing import NoReturn

from lic2cpp import __version__
from lic2cpp.errors import LicError

# Order is the order shown in --help: the pipeline steps first, then the conveniences.
COMMAND_MODULES = [
    "lic2cpp.export",
    "lic2cpp.convert",
    "lic2cpp.fit",
    "lic2cpp.codegen",
    "lic2cpp.build",
    "lic2cpp.evaluate",
    "lic2cpp.train",
    "lic2cpp.demo",
]


class OneLineParser(argparse.ArgumentParser):
    """Command-line misuse gets one line too (argparse prints the whole usage first);
    sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lic2cpp",
        description="Turn a trained CompressAI model into a standalone C++ encoder/decoder.",
    )
    parser.add_argument("--version", action="version", version=f"lic2cpp {__version__}")
    parser.add_argument(
        "--verbose", action="store_true", help="show full tracebacks on errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # step not written yet; keep the rest of the CLI usable
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except LicError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"lic2cpp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lic2cpp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected bug: one line unless --verbose
        if args.verbose:
            traceback.print_exc()
        else:
            print(
                f"lic2cpp {args.command}: internal error: {type(exc).__name__}: {exc} "
                "(run with --verbose for the traceback)",
                file=sys.stderr,
            )
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
