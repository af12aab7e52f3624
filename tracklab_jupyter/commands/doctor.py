"""``doctor``: check what monitoring needs on this machine, and say how to fix what is not
right (exit status 0: all fine, 1: warnings, 2: problems)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tracklab_jupyter import settings

#: The monitor settings the checks depend on (from the one declaration in settings.py).
_SETTINGS = ("data_dir", "gpus", "interval")


def register(sub: argparse._SubParsersAction) -> None:
    from tracklab_jupyter.doctor import SECTIONS

    parser = sub.add_parser(
        "doctor", help="check accelerators, the data dir, Jupyter and the sampler",
        description="Check what monitoring needs on this machine: accelerator libraries, "
        "drivers and permissions; the data dir and its store; the Jupyter extension and "
        "running servers (REST and WebSocket); a standalone server (--url); the sampler's "
        "cost. Each problem comes with the command or setting that fixes it. Exit status: "
        "0 all fine, 1 warnings, 2 problems.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--url", default="",
                        help="also check a standalone server (tracklab-jupyter serve) here, "
                        "such as https://host:8000/")
    parser.add_argument("--token", default=None,
                        help="its token (default: TRACKLAB_TOKEN); never printed")
    parser.add_argument("--origin", default="",
                        help="a browser origin whose CORS answer to check, such as "
                        "https://dash.example.org")
    parser.add_argument("--cafile", default="",
                        help="CA certificate(s) to verify the server's TLS certificate with")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds for each network step (default: %(default)s)")
    settings.add_arguments(parser, settings.SERVE, only=_SETTINGS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tracklab_jupyter.doctor import DoctorOptions, diagnose
    from tracklab_jupyter.doctor.report import problem, run_checks
    from tracklab_jupyter.store.paths import resolve_data_dir

    if not 0 < args.timeout <= 120:
        print("tracklab-jupyter doctor: --timeout must be more than 0 and at most 120 "
              f"seconds, got {args.timeout:g}", file=sys.stderr)
        return 2
    if args.url and not args.url.startswith(("http://", "https://")):
        print(f"tracklab-jupyter doctor: --url must start with http:// or https://, got "
              f"{args.url[:100]!r}", file=sys.stderr)
        return 2
    given = {name: getattr(args, name) for name in _SETTINGS}
    bad_setting = None
    try:
        values = settings.resolve(given, os.environ, settings.SERVE,
                                  settings.COMMAND_LINE).values
    except ValueError as exc:  # a bad environment variable is itself a finding
        bad_setting = problem("settings", "settings", str(exc),
                              "correct or unset it where the monitor starts")
        values = {name: settings.DEFAULTS[name] for name in _SETTINGS}
    options = DoctorOptions(
        data_dir=resolve_data_dir(values["data_dir"] or None), gpus=values["gpus"] or None,
        interval=values["interval"], only=args.only or (), url=args.url,
        token=args.token if args.token is not None else os.environ.get("TRACKLAB_TOKEN", ""),
        origin=args.origin, cafile=args.cafile, timeout=args.timeout)
    if options.cafile and not Path(options.cafile).is_file():
        print(f"tracklab-jupyter doctor: --cafile: no such file: {options.cafile}",
              file=sys.stderr)
        return 2
    report = diagnose(options)
    if bad_setting is not None:
        report = run_checks([("settings", lambda: [bad_setting])]).merged(report)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        tty = sys.stdout.isatty()
        encoding = (sys.stdout.encoding or "").lower()
        print(report.render(colour=tty and not os.environ.get("NO_COLOR"),
                            unicode=encoding.startswith("utf")), end="")
    return report.exit_code
