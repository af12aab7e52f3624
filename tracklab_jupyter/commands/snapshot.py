"""``snapshot``: one reading of this machine, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys

from tracklab_jupyter.accelerators.base import GPUS_HELP
from tracklab_jupyter.sampler.factory import SamplerConfig
from tracklab_jupyter.snapshot import DEFAULT_WINDOW_S, take_snapshot
from tracklab_jupyter.snapshot_table import render


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("snapshot", help="print one reading of this machine and exit")
    parser.add_argument("--json", action="store_true",
                        help='print {"time", "node", "metrics", "info"} as JSON')
    parser.add_argument("--window", type=float, default=DEFAULT_WINDOW_S,
                        help="seconds over which rates are measured (default: %(default)s)")
    parser.add_argument("--gpus", default=None,
                        help=GPUS_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    snap = take_snapshot(args.window, SamplerConfig(gpus=args.gpus))
    if args.json:
        json.dump(snap, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        print(render(snap))
    return 0
