"""The standalone server: the same endpoints on a plain tornado app, for machines without
Jupyter. Paths are ``/api/...``, ``/metrics`` and ``/ws``. Every request needs the token,
as ``Authorization: token T`` (or ``Bearer T``) or ``?token=T``: without one the answer is
401 (``WWW-Authenticate: token``), with a wrong one 403.

A second, read-only token (``read_token``) may read but not edit: PATCH and DELETE answer
it 403, as they answer every token when the server is ``read_only``. Cross-origin browser
requests are refused unless their origin is allowed (``allow_origins``): CORS headers and
preflight ``OPTIONS`` answers on every route, and the same check on the WebSocket."""

from __future__ import annotations

import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from tornado import web, websocket

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.server.endpoint import ApiError, Endpoint
from tracklab_jupyter.server.endpoints import routes
from tracklab_jupyter.server.limits import LIMITS_KEY, Limits, clip
from tracklab_jupyter.server.openapi import openapi_document
from tracklab_jupyter.server.serving import (
    MONITOR_KEY,
    EndpointMixin,
    json_error_page,
    limits_of,
    log_request,
)
from tracklab_jupyter.server.ws_bridge import WsStreamMixin

TOKEN_KEY = "tracklab_token"
READ_TOKEN_KEY = "tracklab_read_token"
READ_ONLY_KEY = "tracklab_read_only"
ORIGINS_KEY = "tracklab_allow_origins"
HSTS_KEY = "tracklab_hsts_seconds"
#: Methods that change something: never with the read token or on a read-only server.
WRITE_METHODS = frozenset({"PATCH", "DELETE", "POST", "PUT"})
#: Request headers a cross-origin page may send (answered to preflight requests).
CORS_REQUEST_HEADERS = "Authorization, Content-Type, Accept, If-None-Match"
#: Response headers a cross-origin page may read.
CORS_EXPOSED_HEADERS = "ETag, Last-Modified, Allow, WWW-Authenticate"
CORS_MAX_AGE = 600


class OriginRule:
    """The allowed cross-origin origins: exact ones (``https://a.example``), regular
    expressions (entries starting with ``^``, matched against the whole origin) or ``*``
    (any). ValueError names a bad regular expression."""

    def __init__(self, entries: list[str] | tuple[str, ...] = ()) -> None:
        self.any = False
        self.exact: set[str] = set()
        self.patterns: list[re.Pattern[str]] = []
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.any = True
            elif entry.startswith("^"):
                try:
                    self.patterns.append(re.compile(entry))
                except re.error as exc:
                    raise ValueError(f"bad regular expression {entry!r}: {exc}") from None
            elif entry:
                self.exact.add(entry.rstrip("/").lower())

    def allows(self, origin: str) -> bool:
        if self.any:
            return True
        if origin.lower() in self.exact:
            return True
        return any(p.fullmatch(origin) for p in self.patterns)


def new_token() -> str:
    return secrets.token_hex(24)


class TokenAuthMixin:
    """Refuses any request without one of the server's tokens: 401 when none is given,
    403 when it is wrong (JSON either way), 403 for an edit with the read-only token or on
    a read-only server."""

    def request_token(self) -> str:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        header = handler.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and value:
            return value.strip()
        return handler.get_query_argument("token", "")

    def check_token(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        expected = handler.settings[TOKEN_KEY]
        read_token = handler.settings.get(READ_TOKEN_KEY) or ""
        given = self.request_token()
        if not given:
            raise web.HTTPError(401, "a token is required: Authorization: token T, or ?token=T")
        full = hmac.compare_digest(given.encode(), expected.encode())
        # Both compared every time: the answer's timing says nothing of which one matched.
        read = bool(read_token) and hmac.compare_digest(given.encode(), read_token.encode())
        if not (full or read):
            raise web.HTTPError(403, "the token is not valid")
        if (handler.request.method or "GET").upper() in WRITE_METHODS:
            if handler.settings.get(READ_ONLY_KEY):
                raise web.HTTPError(403, "this server is read-only (--read-only): runs "
                                    "cannot be edited or deleted here")
            if not full:
                raise web.HTTPError(403, "this token may only read: editing or deleting "
                                    "runs needs the server's full token")


class CorsMixin:
    """Cross-origin requests: allowed origins get ``Access-Control-Allow-Origin`` on every
    answer (errors included) and their preflight ``OPTIONS`` answered; a request from any
    other foreign origin is refused with a JSON 403. Same-origin requests (the Origin's
    host is the request's Host) and clients that send no Origin are not affected."""

    def request_origin(self) -> str | None:
        headers = self.request.headers  # type: ignore[attr-defined]
        return headers.get("Origin", headers.get("Sec-Websocket-Origin"))

    def origin_allowed(self, origin: str) -> bool:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        if urlsplit(origin).netloc.lower() == handler.request.host.lower():
            return True  # same origin
        rule: OriginRule = handler.settings.get(ORIGINS_KEY) or OriginRule()
        return rule.allows(origin)

    def cors_headers(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        origin = self.request_origin()
        handler.set_header("Vary", "Origin")
        if origin is not None and self.origin_allowed(origin):
            handler.set_header("Access-Control-Allow-Origin", origin)
            handler.set_header("Access-Control-Expose-Headers", CORS_EXPOSED_HEADERS)
        hsts = handler.settings.get(HSTS_KEY) or 0
        if hsts and handler.request.protocol == "https":
            handler.set_header("Strict-Transport-Security", f"max-age={int(hsts)}")

    def allowed_methods(self) -> list[str]:
        endpoints = getattr(self, "endpoints", None) or {"GET": None}
        return sorted(endpoints)

    def check_cors(self) -> bool:
        """In ``prepare``, before the token: True when the request was answered here (a
        preflight, or a refused origin)."""
        handler: web.RequestHandler = self  # type: ignore[assignment]
        origin = self.request_origin()
        if origin is not None and not self.origin_allowed(origin):
            raise web.HTTPError(403, "cross-origin request refused: origin %s is not "
                                "allowed (--allow-origin)", clip(origin, 100))
        if handler.request.method != "OPTIONS":
            return False
        methods = self.allowed_methods()
        handler.set_header("Allow", ", ".join([*methods, "OPTIONS"]))
        wanted = handler.request.headers.get("Access-Control-Request-Method")
        if origin is not None and wanted is not None:
            if wanted.upper() not in methods:
                raise web.HTTPError(405, "%s is not allowed here", clip(wanted, 20))
            handler.set_header("Access-Control-Allow-Methods", ", ".join(methods))
            handler.set_header("Access-Control-Allow-Headers", CORS_REQUEST_HEADERS)
            handler.set_header("Access-Control-Max-Age", str(CORS_MAX_AGE))
        handler.set_status(204)
        handler.finish()
        return True


@web.stream_request_body
class StandaloneHandler(CorsMixin, TokenAuthMixin, EndpointMixin, web.RequestHandler):
    def prepare(self) -> None:
        # Before the body is read: the origin (and preflight), the token, the body's size.
        if self.check_cors():
            return
        self.check_token()
        self.check_body_size()

    async def get(self, *args: Any, **kwargs: str) -> None:
        await self.serve_endpoint(kwargs)

    patch = delete = get  # type: ignore[assignment]

    async def options(self, *args: Any, **kwargs: str) -> None:
        pass  # answered in prepare

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        json_error_page(self, status_code, **kwargs)

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        self.cors_headers()


class StandaloneOpenAPI(StandaloneHandler):
    async def get(self, *args: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(openapi_document("", limits_of(self.settings)))


class StandaloneNotFound(StandaloneHandler):
    async def get(self, *args: Any) -> None:
        self.write_api_error(ApiError(404, "not found",
                                      f"no endpoint at {clip(self.request.path)}; "
                                      "see /api/openapi.json"))

    post = put = delete = patch = get  # type: ignore[assignment]


class StandaloneWebSocket(CorsMixin, TokenAuthMixin, WsStreamMixin,
                          websocket.WebSocketHandler):
    def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            self.check_cors()
            return
        # A foreign origin is refused by check_origin (a JSON 403 from WsStreamMixin.get).
        self.check_token()

    def set_default_headers(self) -> None:
        self.cors_headers()

    def check_origin(self, origin: str) -> bool:
        # The same origins as REST: same-origin, or allowed by --allow-origin.
        return self.origin_allowed(origin)

    async def options(self, *args: Any, **kwargs: Any) -> None:
        pass  # answered in prepare

    def refuse(self, status: int, error: str, detail: str) -> None:
        if status == 403 and "origin" in error:  # the token does not help here
            detail = ("this origin may not open the stream: connect from the same origin, "
                      "or allow it with --allow-origin")
        super().refuse(status, error, detail)

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.start_stream()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        json_error_page(self, status_code, **kwargs)


def _endpoint_handler(path: str, endpoints: dict[str, Endpoint]) -> type[StandaloneHandler]:
    return type("Standalone_" + re.sub(r"\W", "_", path), (StandaloneHandler,),
                {"endpoints": endpoints})


def make_app(monitor: Monitor, token: str, limits: Limits | None = None, *,
             read_token: str = "", read_only: bool = False,
             allow_origins: list[str] | tuple[str, ...] = (), hsts_seconds: int = 0,
             **settings: Any) -> web.Application:
    """A tornado Application serving ``monitor`` behind ``token`` (and ``read_token``,
    which may only read); ``allow_origins`` as :class:`OriginRule` takes them."""
    table: list[Any] = [(f"/{path}", _endpoint_handler(path, eps)) for path, eps in routes()]
    table += [("/api/openapi.json", StandaloneOpenAPI), ("/ws", StandaloneWebSocket),
               (r"/(.*)", StandaloneNotFound)]
    return web.Application(table, **{MONITOR_KEY: monitor, TOKEN_KEY: token,
                                      READ_TOKEN_KEY: read_token, READ_ONLY_KEY: read_only,
                                      ORIGINS_KEY: OriginRule(allow_origins),
                                      HSTS_KEY: hsts_seconds,
                                      LIMITS_KEY: limits or Limits(),
                                      "log_function": log_request,
                                      # timeout <= interval: tornado caps a longer
                                      # one, with a warning
                                      "websocket_ping_interval": 30,
                                      "websocket_ping_timeout": 30, **settings})
