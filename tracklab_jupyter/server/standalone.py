"""The standalone server: the same endpoints on a plain tornado app, for machines without
Jupyter. Paths are ``/api/...``, ``/metrics`` and ``/ws``. Every request needs the token,
as ``Authorization: token T`` (or ``Bearer T``) or ``?token=T``: without one the answer is
401 (``WWW-Authenticate: token``), with a wrong one 403."""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import socket
from typing import Any

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


def new_token() -> str:
    return secrets.token_hex(24)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them ("localhost")."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


class TokenAuthMixin:
    """Refuses any request without the server's token: 401 when none is given, 403 when
    it is wrong (JSON either way)."""

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
        given = self.request_token()
        if not given:
            raise web.HTTPError(401, "a token is required: Authorization: token T, or ?token=T")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise web.HTTPError(403, "the token is not valid")


@web.stream_request_body
class StandaloneHandler(TokenAuthMixin, EndpointMixin, web.RequestHandler):
    def prepare(self) -> None:
        # Before the body is read: the token, then the body's size.
        self.check_token()
        self.check_body_size()

    async def get(self, *args: Any, **kwargs: str) -> None:
        await self.serve_endpoint(kwargs)

    patch = delete = get  # type: ignore[assignment]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        json_error_page(self, status_code, **kwargs)

    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")


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


class StandaloneWebSocket(TokenAuthMixin, WsStreamMixin, websocket.WebSocketHandler):
    def prepare(self) -> None:
        self.check_token()

    def check_origin(self, origin: str) -> bool:
        # Every connection carries the token explicitly (no cookies), so a foreign page
        # cannot ride on a user's session: any origin may connect with it.
        return True

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.start_stream()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        json_error_page(self, status_code, **kwargs)


def _endpoint_handler(path: str, endpoints: dict[str, Endpoint]) -> type[StandaloneHandler]:
    return type("Standalone_" + re.sub(r"\W", "_", path), (StandaloneHandler,),
                {"endpoints": endpoints})


def make_app(monitor: Monitor, token: str, limits: Limits | None = None,
             **settings: Any) -> web.Application:
    """A tornado Application serving ``monitor`` behind ``token``."""
    table: list[Any] = [(f"/{path}", _endpoint_handler(path, eps)) for path, eps in routes()]
    table += [("/api/openapi.json", StandaloneOpenAPI), ("/ws", StandaloneWebSocket),
               (r"/(.*)", StandaloneNotFound)]
    return web.Application(table, **{MONITOR_KEY: monitor, TOKEN_KEY: token,
                                      LIMITS_KEY: limits or Limits(),
                                      "log_function": log_request,
                                      # timeout <= interval: tornado caps a longer
                                      # one, with a warning
                                      "websocket_ping_interval": 30,
                                      "websocket_ping_timeout": 30, **settings})
