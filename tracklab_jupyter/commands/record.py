"""``record``: run the recorder in the foreground (a training box without Jupyter)."""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.accelerators.base import GPUS_HELP
from tracklab_jupyter.settings import DEFAULT_INTERVAL

if TYPE_CHECKING:
    from tracklab_jupyter.recorder import Recorder

EXIT_HELD = 3  # another process records this data dir


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "record", help="sample this machine into the history store until stopped",
        description="Sample this machine and write the samples to {data_dir}/metrics.db "
                    "until SIGINT (Ctrl+C) or SIGTERM; both flush what is pending. Only one "
                    "recorder runs per data dir: a second one exits with status 3, or with "
                    "--wait takes over when the first one ends.")
    parser.add_argument("--data-dir", default=None,
                        help="store directory (default: $TRACKLAB_DATA_DIR or ~/.tracklab)")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL,
                        help="seconds between samples (default: %(default)s)")
    parser.add_argument("--gpus", default=None,
                        help=GPUS_HELP)
    parser.add_argument("--flush-interval", default="1s",
                        help="longest time samples wait in memory (default: %(default)s)")
    parser.add_argument("--wait", action="store_true",
                        help="if another process records, wait and take over when it ends")
    parser.add_argument("--alerts", nargs="?", const="", default=None, metavar="JSON",
                        help="also evaluate the host alert rules and store alerts (off by "
                             "default: it adds about 0.01 %% of a core); JSON settings as "
                             "for c.TrackLab.alerts, else $TRACKLAB_ALERTS, else the "
                             "defaults (docs/ALERTS.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: building the CLI parser must not pay for numpy and the store.
    from tracklab_jupyter.recorder import RECORDER, Recorder, RecorderConfig, describe_holder
    from tracklab_jupyter.sampler.factory import SamplerConfig
    from tracklab_jupyter.sampler.hub import Hub
    from tracklab_jupyter.store.config import StoreConfig
    from tracklab_jupyter.store.schema import StoreVersionError

    config = RecorderConfig(
        data_dir=args.data_dir,
        sampler=SamplerConfig(interval=args.interval, gpus=args.gpus),
        store=StoreConfig(flush_interval=args.flush_interval))
    alert_settings = None
    if args.alerts is not None:
        from tracklab_jupyter.alerts import settings_from_env

        given = args.alerts.strip()
        try:
            alert_settings = settings_from_env(
                {"TRACKLAB_ALERTS": given} if given else os.environ,
                source="--alerts" if given else "TRACKLAB_ALERTS")
        except ValueError as exc:
            print(f"tracklab-jupyter: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        recorder = Recorder(config, takeover=args.wait,
                            hub=Hub() if alert_settings is not None else None,
                            on_role_change=lambda role: stop.is_set() or _announce(recorder))
    except (StoreVersionError, sqlite3.Error) as exc:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print(f"tracklab-jupyter: cannot record: {exc}", file=sys.stderr)
        return 2
    engine: Any = None
    try:
        if recorder.role != RECORDER:
            holder = describe_holder(recorder.holder())
            if not args.wait:
                print(f"tracklab-jupyter: {recorder.data_dir} is already recorded by {holder}; "
                      "not starting a second recorder (use --wait to take over when it ends)",
                      file=sys.stderr)
                return EXIT_HELD
            print(f"{recorder.data_dir} is recorded by {holder}; waiting to take over "
                  "(Ctrl+C to give up)", file=sys.stderr, flush=True)
        else:
            _announce(recorder)
        if alert_settings is not None:
            engine = _start_alerts(recorder, alert_settings)
        # No timeout: the wait is interrupted by SIGINT/SIGTERM, whose handlers set stop, so
        # the main thread sleeps until then instead of waking twice a second.
        stop.wait()
        return 0
    finally:
        if engine is not None:
            engine.stop()  # before the writer closes: a last alert is still stored
        writer = recorder.writer
        recorder.stop()
        if writer is not None:
            stats = writer.stats()
            print(f"stopped: {stats['samples']} samples written to {writer.path}",
                  file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start_alerts(recorder: Recorder, settings: Any) -> Any:
    """The alert engine over this recorder (host rules; it evaluates while it records)."""
    from tracklab_jupyter.alerts.engine import AlertEngine
    from tracklab_jupyter.alerts.recorder_host import RecorderHost

    engine = AlertEngine(RecorderHost(recorder), settings)
    engine.start()
    return engine


def _announce(recorder: Recorder) -> bool:
    sampler, writer = recorder.sampler, recorder.writer
    if sampler is not None and writer is not None:
        print(f"recording {sampler.node} every {sampler.interval:g}s to {writer.path} "
              "(Ctrl+C to stop)", file=sys.stderr, flush=True)
    return True
