"""Request handling shared by the Jupyter extension and the standalone server: running an
endpoint (off the event loop when it reads SQLite, and then encoded there too), the body
limit, JSON errors, ETag/304, and logs without tokens."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from email.utils import formatdate
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from tracklab_jupyter.server.endpoint import ApiError, Endpoint, Reply, Request
from tracklab_jupyter.server.limits import LIMITS_KEY, Limits, clip
from tracklab_jupyter.server.metric_filter import INLINE_PATTERN_CHARS, compiler
from tracklab_jupyter.server.params import ParamError, read_params

log = logging.getLogger("tracklab_jupyter.server")

MONITOR_KEY = "tracklab_monitor"
DISABLED_KEY = "tracklab_disabled_reason"
_DEFAULT_LIMITS = Limits()
#: Request headers passed on to endpoints (content negotiation), each cut to
#: READ_HEADER_CHARS characters.
READ_HEADERS = ("Accept",)
READ_HEADER_CHARS = 1000
_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|_xsrf)=)[^&#\s]*")


def scrub_uri(uri: str) -> str:
    """``uri`` with the values of ``token`` and ``_xsrf`` query parameters hidden."""
    return _SECRET_QUERY.sub(r"\1[secret]", uri)


def limits_of(settings: dict[str, Any]) -> Limits:
    return settings.get(LIMITS_KEY) or _DEFAULT_LIMITS


class EndpointMixin:
    """Serves the endpoints of one path, by HTTP method. Mixed into a tornado
    RequestHandler decorated with ``web.stream_request_body``: ``check_body_size`` runs
    in ``prepare`` (after authentication), before any byte of the body is read."""

    endpoints: dict[str, Endpoint] = {}  # noqa: RUF012 - replaced per class, never mutated
    _body: list[bytes]

    def _monitor(self) -> Any:
        settings = self.settings  # type: ignore[attr-defined]
        monitor = settings.get(MONITOR_KEY)
        if monitor is None:
            raise ApiError(503, "tracklab is disabled",
                           settings.get(DISABLED_KEY) or "the monitor is not running")
        return monitor

    def check_body_size(self) -> None:
        """Refuse a body over ``max_body_bytes`` from its Content-Length, unread; a chunked
        one is cut off by tornado at the same size."""
        handler: web.RequestHandler = self  # type: ignore[assignment]
        self._body = []
        limit = limits_of(handler.settings).max_body_bytes
        length = handler.request.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            # Answered at once; tornado closes the connection, the body is never read.
            raise web.HTTPError(413, "request bodies are at most %d bytes (limit "
                                "max_body_bytes); this one says %s", limit, clip(length, 20))
        handler.request.connection.set_max_body_size(limit)  # type: ignore[union-attr]

    def data_received(self, chunk: bytes) -> None:
        self._body.append(chunk)

    def _params(self) -> dict[str, list[str]]:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        return {k: [v.decode("utf-8", "replace") for v in vs]
                for k, vs in handler.request.query_arguments.items()}

    async def serve_endpoint(self, path_args: dict[str, str] | None = None) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        method = handler.request.method or "GET"
        try:
            endpoint = self.endpoints.get(method)
            if endpoint is None:
                allowed = ", ".join(sorted(self.endpoints))
                raise ApiError(405, f"{clip(method, 20)} is not allowed here",
                               f"allowed: {allowed}", headers={"Allow": allowed})
            limits = limits_of(handler.settings)
            params = self._params()
            try:
                args = read_params(endpoint.params(limits), params, path_args)
            except ParamError as exc:
                raise ApiError(400, exc.title or f"bad {exc.name}", str(exc)) from None
            headers = {name: clip(value, READ_HEADER_CHARS)
                       for name in READ_HEADERS
                       if (value := handler.request.headers.get(name)) is not None}
            call = Request(self._monitor(), args, limits, params,
                           b"".join(getattr(self, "_body", [])), headers)
            # Many long globs take a regex compile of up to a second: on the compile thread.
            heavy = sum(map(len, args.get("metrics") or ())) > INLINE_PATTERN_CHARS
            blocking = endpoint.blocking or (
                bool(endpoint.blocking_when) and args.get(endpoint.blocking_when) == "1")
            if blocking or heavy:
                loop = asyncio.get_running_loop()
                reply = await loop.run_in_executor(compiler() if heavy else None, _answer,
                                                   endpoint, call)
            else:
                reply = endpoint.handler(call)
        except ApiError as exc:
            self.write_api_error(exc)
            return
        await self.write_reply(reply)

    def write_api_error(self, exc: ApiError) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.clear_header("ETag")
        handler.set_status(exc.status)
        for key, value in exc.headers.items():
            handler.set_header(key, value)
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps(exc.body()))

    async def write_reply(self, reply: Reply) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.set_header("Cache-Control", "no-cache")
        if reply.status == 204:
            handler.set_status(204)
            handler.finish()
            return
        if reply.etag:
            handler.set_header("ETag", reply.etag)
            if reply.last_modified:
                handler.set_header("Last-Modified", formatdate(reply.last_modified, usegmt=True))
            if handler.check_etag_header():
                handler.set_status(304)
                handler.finish()
                return
        for key, value in reply.headers.items():
            handler.set_header(key, value)
        handler.set_header("Content-Type", reply.content_type)
        if reply.chunks is None:
            if reply.content_type.startswith("application/json"):
                handler.finish(json.dumps(reply.body, allow_nan=False, default=str))
            else:
                handler.finish(reply.body)
            return
        # Each piece is made on a thread and sent before the next is made: the loop only
        # copies bytes, and the server holds about one piece per reply.
        loop = asyncio.get_running_loop()
        while (chunk := await loop.run_in_executor(None, next, reply.chunks, None)) is not None:
            handler.write(chunk)
            try:
                await handler.flush()
            except StreamClosedError:  # the client left: stop making pieces
                reply.chunks.close()  # type: ignore[attr-defined]
                return
        handler.finish()

    def compute_etag(self) -> str | None:
        # ETags are set explicitly for the latest-sample endpoints; hashing every other body
        # would cost more than it saves.
        return None

    def _request_summary(self) -> str:
        # tornado logs this with refused requests: never with the token in it.
        handler: web.RequestHandler = self  # type: ignore[assignment]
        request = handler.request
        return f"{request.method} {scrub_uri(request.uri or '')} ({request.remote_ip})"


def _answer(endpoint: Endpoint, call: Request) -> Reply:
    """Run a blocking endpoint and encode its JSON reply, both on the calling thread."""
    reply = endpoint.handler(call)
    if (reply.chunks is None and reply.status != 204
            and reply.content_type.startswith("application/json")):
        reply.chunks = iter([json.dumps(reply.body, allow_nan=False, default=str).encode()])
    return reply


def log_request(handler: web.RequestHandler) -> None:
    """The standalone server's access log: tornado's, with tokens scrubbed."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    logging.getLogger("tornado.access").log(
        level, "%d %s %s (%s) %.2fms", status, request.method, scrub_uri(request.uri or ""),
        request.remote_ip, 1000.0 * request.request_time())


def json_error_page(handler: web.RequestHandler, status_code: int, **kwargs: Any) -> None:
    """``write_error`` for our handlers: a JSON body, never a traceback page."""
    reason = handler._reason if hasattr(handler, "_reason") else ""
    exc = kwargs.get("exc_info", (None, None, None))[1]
    detail = ""
    if isinstance(exc, web.HTTPError) and exc.log_message:
        detail = exc.log_message % exc.args if exc.args else exc.log_message
    if status_code == 401:
        handler.set_header("WWW-Authenticate", "token")
    if status_code == 405:
        handler.set_header("Allow", ", ".join(sorted(getattr(handler, "endpoints", {}) or
                                                     ["GET"])))
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": reason or f"HTTP {status_code}",
                               "detail": clip(scrub_uri(detail), 300)}))
