"""``history``: print or export recorded metrics (CSV, Parquet)."""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import time

from tracklab_jupyter.store.config import AGGREGATES


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "history", help="print or export recorded metrics",
        description="Read recorded metrics from the store. Times: ISO 8601, epoch seconds, "
                    "'now' or relative ('-15min', '-2h', '-1d').")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                        help="names or globs ('gpu.*.util_pct'), space or comma separated "
                             "(default: all)")
    parser.add_argument("--start", default="-1h", help="start time (default: %(default)s)")
    parser.add_argument("--end", default=None, help="end time (default: now)")
    parser.add_argument("--step", default=None,
                        help="bin width such as 10s, 1min, 1h (default: automatic)")
    parser.add_argument("--agg", default="mean", choices=AGGREGATES,
                        help="how values in a bin combine (default: %(default)s)")
    parser.add_argument("--node", action="append", default=None,
                        help="only this node (repeatable; default: all)")
    parser.add_argument("--data-dir", default=None,
                        help="store directory (default: $TRACKLAB_DATA_DIR or ~/.tracklab)")
    # Let "--start -1h" work: argparse takes only plain negative numbers ("-5") for values,
    # so widen its test to relative times ("-15min", "-2h").
    parser._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)[a-zA-Z]*$")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--csv", default=None, metavar="PATH", help="write CSV to PATH")
    out.add_argument("--parquet", default=None, metavar="PATH",
                     help="write Parquet to PATH (needs pyarrow)")
    out.add_argument("--list", action="store_true", help="list the recorded metric names")
    parser.set_defaults(func=run)


class ProgressBar:
    """A one-line progress bar on stderr, drawn only for exports long enough to need one."""

    def __init__(self, label: str, min_total: int = 50_000, width: int = 30) -> None:
        self.label = label
        self.min_total = min_total
        self.width = width
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_total:
            return
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        sys.stderr.write(f"\r{self.label} [{bar}] {done * 100 // max(total, 1):3d}% "
                         f"{done}/{total} rows {elapsed:.1f}s")
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def run(args: argparse.Namespace) -> int:
    # Imported here: building the CLI parser must not pay for numpy.
    from tracklab_jupyter.store.reader import StoreReader
    from tracklab_jupyter.store.schema import StoreVersionError
    from tracklab_jupyter.system_history import history

    try:
        if args.list:
            with StoreReader(args.data_dir) as reader:
                for name in reader.metrics():
                    print(name)
            return 0
        result = history(_split(args.metrics), start=args.start, end=args.end, step=args.step,
                         node=args.node, agg=args.agg, data_dir=args.data_dir)
    except (StoreVersionError, sqlite3.Error) as exc:
        print(f"tracklab-jupyter: cannot read the history: {exc}", file=sys.stderr)
        return 2
    if args.csv:
        bar = ProgressBar(f"writing {args.csv}")
        result.to_csv(args.csv, progress=bar)
        bar.finish()
        print(f"wrote {len(result)} rows × {len(result.metrics)} metrics to {args.csv}",
              file=sys.stderr)
    elif args.parquet:
        result.to_parquet(args.parquet)
        print(f"wrote {len(result)} rows × {len(result.metrics)} metrics to {args.parquet}",
              file=sys.stderr)
    else:
        print(result.to_pandas().to_string(max_rows=60))
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    return 0
