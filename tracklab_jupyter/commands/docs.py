"""``docs``: write (or check) the generated documentation: docs/METRICS.md from the metric
catalogue, and the configuration table of README.md from the settings spec."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracklab_jupyter.metrics.catalogue import render_markdown
from tracklab_jupyter.prometheus.names import markdown_appendix, markdown_cell


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="generate docs/METRICS.md and README's configuration "
                                           "table")
    parser.add_argument("--output", default="docs/METRICS.md", type=Path,
                        help="file to write (default: %(default)s)")
    parser.add_argument("--readme", default=None, type=Path,
                        help="README whose configuration table to write (default: the one "
                             "beside the output's folder)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from the catalogue instead of writing")
    parser.set_defaults(func=run)


def metrics_markdown() -> str:
    """docs/METRICS.md: the catalogue with each metric's Prometheus family."""
    return render_markdown(markdown_cell, markdown_appendix())


README_START = "<!-- settings-table: generated from tracklab_jupyter/settings.py"
README_END = "<!-- settings-table: end -->"


def readme_with_settings(readme: str) -> str:
    """``readme`` with its configuration table made again from the settings spec."""
    from tracklab_jupyter.settings import markdown_table

    start = readme.index(README_START)
    body = readme.index("\n", start) + 1
    end = readme.index(README_END, body)
    return readme[:body] + markdown_table() + readme[end:]


def _readme(args: argparse.Namespace) -> int:
    path = args.output.parent.parent / "README.md" if args.readme is None else args.readme
    if not path.exists():
        return 0  # an installed package without the repository: nothing to keep in step
    current = path.read_text(encoding="utf-8")
    text = readme_with_settings(current)
    if text == current:
        return 0
    if args.check:
        print(f"{path}'s configuration table is stale: run `python -m tracklab_jupyter docs`",
              file=sys.stderr)
        return 1
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    if _readme(args):
        return 1
    text = metrics_markdown()
    path: Path = args.output
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `python -m tracklab_jupyter docs`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0
