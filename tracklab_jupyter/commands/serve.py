"""``serve``: the standalone server (no Jupyter needed)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from tracklab_jupyter import settings

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
    parser.add_argument("--port", type=int, default=None,
                        help="port (default: TRACKLAB_API_PORT or 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--token", default=None,
                        help="access token (default: TRACKLAB_TOKEN, else a new random one)")
    # The monitor's settings, from the one declaration (tracklab_jupyter/settings.py).
    settings.add_arguments(parser, settings.SERVE)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from tracklab_jupyter import startup
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
    try:
        resolved = settings.resolve(vars(args), os.environ, settings.SERVE,
                                    settings.COMMAND_LINE)
        prepared = startup.prepare(resolved, "tracklab-jupyter serve", serving=True)
    except ValueError as exc:
        print(f"tracklab-jupyter serve: {exc}", file=sys.stderr)
        return 2
    monitor = prepared.monitor

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
        # Host alert rules where this server records; it owns no kernels.
        await loop.run_in_executor(None, startup.start, prepared)
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
