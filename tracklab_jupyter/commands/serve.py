"""``serve``: the standalone server (no Jupyter needed)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import sys

log = logging.getLogger("tracklab_jupyter.serve")


def _default_port(name: str, fallback: int | None) -> int | None:
    value = os.environ.get(name)
    if not value:
        return fallback
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"tracklab-jupyter: error: {name} must be a port number, "
                         f"got {value!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("serve", help="serve REST, WebSocket and Prometheus without Jupyter")
    parser.add_argument("--data-dir", default=None,
                        help="where metrics.db lives (default: TRACKLAB_DATA_DIR or ~/.tracklab)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: TRACKLAB_API_PORT or 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--token", default=None,
                        help="access token (default: TRACKLAB_TOKEN, else a new random one)")
    parser.add_argument("--interval", type=float, default=None,
                        help="seconds between samples (default: 1)")
    parser.add_argument("--cluster", default=None,
                        help="also monitor a cluster: dask://HOST:PORT, ray:auto or "
                             "ray://HOST:PORT (default: TRACKLAB_CLUSTER or local)")
    parser.add_argument("--cluster-node-timeout", type=float, default=10.0,
                        help="seconds without an answer before a node is offline "
                             "(default: %(default)s)")
    parser.add_argument("--alerts", default=None, metavar="JSON",
                        help="alert rule settings as JSON, e.g. "
                             "'{\"memory\": {\"threshold_pct\": 80}, \"disk\": false}' "
                             "(default: TRACKLAB_ALERTS; docs/ALERTS.md)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from tracklab_jupyter.monitor import Monitor, MonitorConfig
    from tracklab_jupyter.server.serving import limits_of
    from tracklab_jupyter.server.standalone import is_loopback, make_app, new_token

    token = args.token or os.environ.get("TRACKLAB_TOKEN") or ""
    if not is_loopback(args.host) and not token:
        print(f"tracklab-jupyter: error: refusing to listen on {args.host} without a token: "
              "pass --token or set TRACKLAB_TOKEN (or bind 127.0.0.1)", file=sys.stderr)
        return 2
    token = token or new_token()
    port = args.port if args.port is not None else _default_port("TRACKLAB_API_PORT", 8000)
    ws_port = _default_port("TRACKLAB_WS_PORT", None)
    config = MonitorConfig.from_settings(
        interval=args.interval if args.interval is not None else 1.0, data_dir=args.data_dir,
        source="command line")
    cluster = args.cluster or os.environ.get("TRACKLAB_CLUSTER") or "local"
    from tracklab_jupyter.cluster.providers import parse_cluster

    try:
        parse_cluster(cluster)
    except ValueError as exc:
        print(f"tracklab-jupyter serve: --cluster: {exc}", file=sys.stderr)
        return 2
    from tracklab_jupyter.alerts import settings_from_env, start_alerts

    try:
        alerts = settings_from_env(
            {"TRACKLAB_ALERTS": args.alerts} if args.alerts is not None else os.environ,
            source="--alerts" if args.alerts is not None else "TRACKLAB_ALERTS")
    except ValueError as exc:
        print(f"tracklab-jupyter serve: {exc}", file=sys.stderr)
        return 2
    monitor = Monitor(config)

    async def main() -> None:
        app = make_app(monitor, token)
        # Bodies are refused from their Content-Length before they are read (tornado's own
        # default would read up to 100 MB first); our handlers answer that with a JSON 413.
        server = HTTPServer(app, max_body_size=limits_of(app.settings).max_body_bytes)
        sockets = bind_sockets(port, address=args.host)
        bound = sockets[0].getsockname()[1]
        if ws_port and ws_port != bound:
            sockets += bind_sockets(ws_port, address=args.host)
        server.add_sockets(sockets)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, monitor.watch_runs)
        await loop.run_in_executor(None, monitor.start)
        await loop.run_in_executor(None, functools.partial(
            monitor.attach_cluster, cluster, node_timeout=args.cluster_node_timeout))
        # Host rules where this server records; it owns no kernels.
        await loop.run_in_executor(None, start_alerts, monitor, alerts)
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"tracklab-jupyter serving on http://{host}:{bound}/api/system/metrics"
              f"?token={token}", flush=True)
        print(f"  role: {monitor.role}; data: {monitor.data_dir}; WebSocket: "
              f"ws://{host}:{bound}/ws (token as header or ?token=)", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await loop.run_in_executor(None, monitor.stop)
        print("tracklab-jupyter: stopped", flush=True)

    asyncio.run(main())
    return 0
