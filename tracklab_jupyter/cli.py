"""``python -m tracklab_jupyter`` / ``tracklab-jupyter``: the command line.

Each subcommand lives in its own module under ``tracklab_jupyter.commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (``args -> exit code``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from tracklab_jupyter._version import __version__

# Modules under tracklab_jupyter.commands, in the order they appear in --help.
COMMANDS = ("snapshot", "record", "history", "serve", "doctor", "docs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracklab-jupyter",
        description="Live system, GPU and cluster monitoring for Jupyter.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"tracklab_jupyter.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tracklab_jupyter.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = "DEBUG" if args.verbose else os.environ.get("TRACKLAB_LOG_LEVEL", "").strip()
    if not isinstance(logging.getLevelName(level.upper() or "WARNING"), int):
        print(f"tracklab-jupyter: TRACKLAB_LOG_LEVEL: unknown log level {level[:40]!r} "
              "(DEBUG, INFO, WARNING, ERROR); using WARNING", file=sys.stderr)
        level = ""
    logging.basicConfig(level=level.upper() or "WARNING",
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `... | head`: the reader left; exit quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as exc:
        # Bad input or an unusable path: one clear line, not a traceback.
        print(f"tracklab-jupyter: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
