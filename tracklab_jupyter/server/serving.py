"""Request handling shared by the Jupyter extension and the standalone server: running an
endpoint (off the event loop when it reads SQLite), JSON errors, ETag/304."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from email.utils import formatdate
from typing import Any

from tornado import web

from tracklab_jupyter.server.api import ApiError, Endpoint, Reply

log = logging.getLogger("tracklab_jupyter.server")

MONITOR_KEY = "tracklab_monitor"
DISABLED_KEY = "tracklab_disabled_reason"


class EndpointMixin:
    """Serves the endpoints of one path, by HTTP method. Mixed into a tornado
    RequestHandler."""

    endpoints: dict[str, Endpoint] = {}  # noqa: RUF012 - replaced per class, never mutated

    def _monitor(self) -> Any:
        settings = self.settings  # type: ignore[attr-defined]
        monitor = settings.get(MONITOR_KEY)
        if monitor is None:
            raise ApiError(503, "tracklab is disabled",
                           settings.get(DISABLED_KEY) or "the monitor is not running")
        return monitor

    async def serve_endpoint(self, path_args: dict[str, str] | None = None) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        request = handler.request
        params = {k: [v.decode("utf-8", "replace") for v in vs]
                  for k, vs in request.query_arguments.items()}
        kwargs: dict[str, Any] = dict(path_args or {})
        try:
            endpoint = self.endpoints.get(request.method or "GET")
            if endpoint is None:
                raise ApiError(405, f"{request.method} is not allowed here",
                               f"allowed: {', '.join(sorted(self.endpoints))}")
            if request.method == "PATCH":
                kwargs["body"] = request.body
            monitor = self._monitor()
            if endpoint.blocking:
                loop = asyncio.get_running_loop()
                reply = await loop.run_in_executor(
                    None, functools.partial(endpoint.handler, monitor, params, **kwargs))
            else:
                reply = endpoint.handler(monitor, params, **kwargs)
        except ApiError as exc:
            self.write_api_error(exc)
            return
        self.write_reply(reply)

    def write_api_error(self, exc: ApiError) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.clear_header("ETag")
        handler.set_status(exc.status)
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps(exc.body()))

    def write_reply(self, reply: Reply) -> None:
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
        if reply.content_type.startswith("application/json"):
            handler.finish(json.dumps(reply.body, allow_nan=False, default=str))
        else:
            handler.finish(reply.body)

    def compute_etag(self) -> str | None:
        # ETags are set explicitly for the latest-sample endpoints; hashing every other body
        # would cost more than it saves.
        return None


def json_error_page(handler: web.RequestHandler, status_code: int, **kwargs: Any) -> None:
    """``write_error`` for our handlers: a JSON body, never a traceback page."""
    reason = handler._reason if hasattr(handler, "_reason") else ""
    exc = kwargs.get("exc_info", (None, None, None))[1]
    detail = ""
    if isinstance(exc, web.HTTPError) and exc.log_message:
        detail = exc.log_message % exc.args if exc.args else exc.log_message
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps({"error": reason or f"HTTP {status_code}", "detail": detail}))
