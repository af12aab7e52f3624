"""Jupyter server handlers: every endpoint behind Jupyter's identity provider and
authorizer (``@web.authenticated`` + ``@authorized``, ``@ws_authenticated`` for the socket)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import web, websocket

from tracklab_jupyter.server.endpoint import ApiError, Endpoint
from tracklab_jupyter.server.endpoints import routes
from tracklab_jupyter.server.limits import clip
from tracklab_jupyter.server.openapi import openapi_document
from tracklab_jupyter.server.serving import (
    MONITOR_KEY,
    EndpointMixin,
    json_error_page,
    limits_of,
)
from tracklab_jupyter.server.ws_bridge import WsStreamMixin

AUTH_RESOURCE = "tracklab"


@web.stream_request_body
class TrackLabAPIHandler(EndpointMixin, JupyterHandler):
    """One REST endpoint. Subclasses set ``endpoint``.

    Built on JupyterHandler rather than APIHandler on purpose: APIHandler records every
    request as user activity, and a dashboard polling once a second would then keep an
    idle server from ever being culled (JupyterHub's idle culler). The rest of what
    APIHandler adds (origin check, 403 instead of a login redirect, a strict CSP) is here.
    """

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if not self.check_origin():
            raise web.HTTPError(404)
        # Before the body is read: who is asking, then how much they send.
        if not self.current_user:
            raise web.HTTPError(403)
        self.check_body_size()

    def get_login_url(self) -> str:
        if not self.current_user:
            raise web.HTTPError(403)
        return super().get_login_url()

    @property
    def content_security_policy(self) -> str:
        return super().content_security_policy + "; default-src 'none'"

    # @authorized maps the method to an action: GET is "read", PATCH and DELETE "write".
    # Cookie-authenticated PATCH/DELETE also need the XSRF token (tornado checks it).
    @web.authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: str) -> None:
        await self.serve_endpoint(kwargs)

    @web.authenticated
    @authorized
    async def patch(self, *args: Any, **kwargs: str) -> None:
        await self.serve_endpoint(kwargs)

    @web.authenticated
    @authorized
    async def delete(self, *args: Any, **kwargs: str) -> None:
        await self.serve_endpoint(kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        json_error_page(self, status_code, **kwargs)


class OpenAPIHandler(TrackLabAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, *args: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(openapi_document(self.base_url.rstrip("/") + "/tracklab",
                                     limits_of(self.settings)))


class NotFoundHandler(TrackLabAPIHandler):
    """Unknown paths under tracklab/: a JSON 404 (after auth, so strangers learn nothing)."""

    @web.authenticated
    @authorized
    async def get(self, *args: Any) -> None:
        spec = url_path_join(self.base_url, "tracklab/api/openapi.json")
        self.write_api_error(ApiError(404, "not found",
                                      f"no endpoint at {clip(self.request.path)}; see {spec}"))

    post = put = patch = delete = get  # type: ignore[assignment]


class TrackLabWebSocket(WsStreamMixin, WebSocketMixin, JupyterHandler,
                        websocket.WebSocketHandler):
    """The live stream. Origin is checked by JupyterHandler for cookie-authenticated
    clients; token-authenticated ones (a header or ?token=) may come from anywhere.
    Refusals (403, a plain GET's 426, the connection limit's 503) are JSON: WsStreamMixin."""

    auth_resource = AUTH_RESOURCE

    async def pre_get(self) -> None:
        authorized_ = self.authorizer.is_authorized(self, self.current_user, "read",
                                                    AUTH_RESOURCE)
        if hasattr(authorized_, "__await__"):
            authorized_ = await authorized_
        if not authorized_:
            raise web.HTTPError(403)
        if self.settings.get(MONITOR_KEY) is None:
            raise web.HTTPError(503, "tracklab is disabled")

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def open(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().open(*args, **kwargs)
        self.start_stream()


def _endpoint_handler(endpoints: dict[str, Endpoint]) -> type[TrackLabAPIHandler]:
    path = next(iter(endpoints.values())).path
    name = "".join(p.strip("{}").title() for p in path.replace("/", "_").split("_")) + "Handler"
    return type(name, (TrackLabAPIHandler,), {"endpoints": endpoints})


def build_handlers(base_url: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """Routes under ``{base_url}tracklab/``."""
    root = url_path_join(base_url, "tracklab")
    table: list[tuple[str, type[web.RequestHandler]]] = [
        (url_path_join(root, path), _endpoint_handler(eps)) for path, eps in routes()]
    table += [
        (url_path_join(root, "api/openapi.json"), OpenAPIHandler),
        (url_path_join(root, "ws"), TrackLabWebSocket),
        (url_path_join(root, "(.*)"), NotFoundHandler),
    ]
    return table
