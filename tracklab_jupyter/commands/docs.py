"""``docs``: write (or check) docs/METRICS.md from the metric catalogue."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracklab_jupyter.metrics.catalogue import render_markdown
from tracklab_jupyter.prometheus.names import markdown_appendix, markdown_cell


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("docs", help="generate docs/METRICS.md from the metric catalogue")
    parser.add_argument("--output", default="docs/METRICS.md", type=Path,
                        help="file to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the file differs from the catalogue instead of writing")
    parser.set_defaults(func=run)


def metrics_markdown() -> str:
    """docs/METRICS.md: the catalogue with each metric's Prometheus family."""
    return render_markdown(markdown_cell, markdown_appendix())


def run(args: argparse.Namespace) -> int:
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
