"""``serve``: the standalone server (no Jupyter needed)."""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import signal
import sys
from typing import Any

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
    # Also after the subcommand (`serve --verbose`); SUPPRESS keeps a `-v serve` given
    # before it.
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages (same as --log-level DEBUG)")
    # The monitor's settings, from the one declaration (tracklab_jupyter/settings.py).
    settings.add_arguments(parser, settings.SERVE)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from tracklab_jupyter import startup
    from tracklab_jupyter.addresses import is_loopback
    from tracklab_jupyter.server.serving import limits_of
    from tracklab_jupyter.server.standalone import make_app, new_token

    token = args.token or os.environ.get("TRACKLAB_TOKEN") or ""
    if not is_loopback(args.host) and not token:
        print(f"tracklab-jupyter: error: refusing to listen on {args.host} without a token: "
              "pass --token or set TRACKLAB_TOKEN (or bind 127.0.0.1)", file=sys.stderr)
        return 2
    given_token = bool(token)
    token = token or new_token()
    port = args.port if args.port is not None else _default_port("TRACKLAB_API_PORT", 8000)
    ws_port = _default_port("TRACKLAB_WS_PORT", None)
    try:
        resolved = settings.resolve(vars(args), os.environ, settings.SERVE,
                                    settings.COMMAND_LINE)
    except ValueError as exc:
        print(f"tracklab-jupyter serve: {exc}", file=sys.stderr)
        return 2
    try:  # checked before the monitor is made
        production = _production(resolved, token, verbose=getattr(args, "verbose", False))
    except ValueError as exc:
        print(f"tracklab-jupyter serve: error: {exc}", file=sys.stderr)
        return 2
    try:
        prepared = startup.prepare(resolved, "tracklab-jupyter serve", serving=True)
    except ValueError as exc:
        print(f"tracklab-jupyter serve: {exc}", file=sys.stderr)
        return 2
    monitor = prepared.monitor
    values = resolved.values
    scheme = "https" if production.ssl else "http"

    async def main() -> None:
        app = make_app(monitor, token, read_token=values["read_token"],
                       read_only=values["read_only"], allow_origins=values["allow_origin"],
                       hsts_seconds=values["hsts_seconds"])
        # Bodies are refused from their Content-Length before they are read (tornado's own
        # default would read up to 100 MB first); our handlers answer that with a JSON 413.
        server = HTTPServer(app, max_body_size=limits_of(app.settings).max_body_bytes,
                            ssl_options=production.ssl)
        sockets = bind_sockets(port, address=args.host)
        bound = sockets[0].getsockname()[1]
        if ws_port and ws_port != bound:
            sockets += bind_sockets(ws_port, address=args.host)
        server.add_sockets(sockets)
        loop = asyncio.get_running_loop()
        # Host alert rules where this server records; it owns no kernels.
        await loop.run_in_executor(None, startup.start, prepared)
        host = f"[{args.host}]" if ":" in args.host else args.host
        # A token the user gave is theirs to know: it never reaches the logs (a service's
        # output lands in the journal). Only a token made here is shown, once.
        shown = "[your token]" if given_token else token
        print(f"tracklab-jupyter serving on {scheme}://{host}:{bound}/api/system/metrics"
              f"?token={shown}", flush=True)
        print(f"  role: {monitor.role}; data: {monitor.data_dir}; WebSocket: "
              f"{'wss' if production.ssl else 'ws'}://{host}:{bound}/ws (token as header or "
              f"?token=)", flush=True)
        print(f"  {production.summary}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await loop.run_in_executor(None, monitor.stop)
        print("tracklab-jupyter: stopped", flush=True)

    asyncio.run(main())
    return 0


class _Production:
    """The production options of one server, checked: the TLS context (None: plain HTTP)
    and a one-line summary for the start-up message (never a token)."""

    def __init__(self, ssl_context: Any, summary: str) -> None:
        self.ssl = ssl_context
        self.summary = summary


def _production(resolved: settings.Resolved, token: str, verbose: bool) -> _Production:
    """HTTPS, CORS, the read token and the log level from ``resolved``; ValueError names
    the option (or environment variable) at fault."""
    from tracklab_jupyter.server.standalone import OriginRule

    values = resolved.values
    level_name = "DEBUG" if verbose else values["log_level_name"].strip().upper()
    if level_name:
        level = logging.getLevelName(level_name)
        if not isinstance(level, int):
            raise ValueError(f"{resolved.origin('log_level_name')}: unknown log level "
                             f"{values['log_level_name'][:40]!r} (DEBUG, INFO, WARNING, ERROR)")
        logging.getLogger().setLevel(level)
        for name in ("tracklab_jupyter", "tracklab", "tornado"):
            logging.getLogger(name).setLevel(level)
    read_token = values["read_token"]
    if read_token and hmac.compare_digest(read_token.encode(), token.encode()):
        raise ValueError(f"{resolved.origin('read_token')} must differ from the server's "
                         "token (--token / TRACKLAB_TOKEN)")
    try:
        OriginRule(values["allow_origin"])
    except ValueError as exc:
        raise ValueError(f"{resolved.origin('allow_origin')}: {exc}") from None
    context = _tls_context(resolved)
    if values["hsts_seconds"] and context is None:
        raise ValueError(f"{resolved.origin('hsts_seconds')} needs HTTPS: give --certfile "
                         "and --keyfile")
    parts = ["HTTPS" if context is not None else "plain HTTP"]
    if values["hsts_seconds"] and context is not None:
        parts.append(f"HSTS max-age {values['hsts_seconds']}")
    origins = values["allow_origin"]
    parts.append(f"cross-origin: {', '.join(origins)}" if origins else "same-origin only")
    if values["read_only"]:
        parts.append("read-only")
    elif read_token:
        parts.append("read token set")
    return _Production(context, "; ".join(parts))


def _tls_context(resolved: settings.Resolved) -> Any:
    """The server's TLS context, or None without a certificate; ValueError for a missing,
    unreadable or mismatched certificate and key, naming the option."""
    import ssl

    values = resolved.values
    certfile, keyfile = values["certfile"].strip(), values["keyfile"].strip()
    cert_name, key_name = resolved.origin("certfile"), resolved.origin("keyfile")
    if not certfile and not keyfile:
        return None
    if not certfile:
        raise ValueError(f"{key_name} needs --certfile (TRACKLAB_CERTFILE) too")
    if not keyfile:
        raise ValueError(f"{cert_name} needs --keyfile (TRACKLAB_KEYFILE) too")
    for name, path in ((cert_name, certfile), (key_name, keyfile)):
        if not os.path.isfile(path):
            raise ValueError(f"{name}: no such file: {path}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{name}: cannot read {path} (permission denied)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_password() -> bytes:  # never prompt on a terminal: a service has none
        raise ValueError("the key is encrypted")

    try:
        context.load_cert_chain(certfile, keyfile, password=no_password)
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if "MISMATCH" in reason:
            raise ValueError(f"{key_name} ({keyfile}) is not the key of {cert_name} "
                             f"({certfile})") from None
        why = "" if reason in ("", "PEM_LIB") else f" ({reason.replace('_', ' ').lower()})"
        raise ValueError(f"{cert_name} ({certfile}) and {key_name} ({keyfile}) are not a "
                         f"PEM certificate and its key{why}") from None
    except ValueError as exc:
        raise ValueError(f"{key_name}: {exc}: give an unencrypted key") from None
    return context
