"""The WebSocket plumbing shared by both servers: between the hub (sampler threads) and a
:class:`~tracklab_jupyter.server.ws_protocol.WsSession` on the event loop.

Before the upgrade, ``GET /ws`` is checked here: a plain GET gets a JSON 426, and past
``Limits.max_ws_connections`` open sockets (both handler kinds of one app count together)
a JSON 503, so a full server refuses cheaply and its other clients keep working."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado import httputil, web, websocket

from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.metric_filter import compiler
from tracklab_jupyter.server.serving import (
    MONITOR_KEY,
    json_error_page,
    limits_of,
    scrub_uri,
)
from tracklab_jupyter.server.ws_protocol import (
    CLOSE_TOO_SLOW,
    HUB_TOPICS,
    MAX_MESSAGE_BYTES,
    WsSession,
)

#: App setting holding the :class:`WsConnections` of one server.
WS_CONNECTIONS_KEY = "tracklab_ws_connections"


# One thread compiles every large subscription, one after another: off the event loop,
# and never holding up the executor that serves REST requests.
@dataclass
class WsConnections:
    """WebSocket connections of one app, from the upgrade until the socket is closed."""

    open: int = 0


def upgrade_problem(headers: httputil.HTTPHeaders) -> tuple[int, str, str] | None:
    """Why a request cannot become a WebSocket (status, error, detail), checked here so
    the answer is JSON rather than tornado's text."""
    connection = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection:
        return (426, "upgrade required", "this is a WebSocket endpoint: connect with a "
                "WebSocket client (Connection: Upgrade, Upgrade: websocket)")
    if headers.get("Sec-WebSocket-Version") not in ("7", "8", "13"):
        return (426, "unsupported WebSocket version", "Sec-WebSocket-Version must be 13")
    if not headers.get("Sec-WebSocket-Key"):
        return (400, "bad WebSocket handshake", "Sec-WebSocket-Key is missing")
    return None


class WsBridge:
    """Connects a tornado WebSocketHandler to the hub: hub items are drained on the event
    loop (the hub only schedules a wake-up from the sampler thread), and written through
    the session, which coalesces frames for slow clients."""

    def __init__(self, handler: websocket.WebSocketHandler, monitor: Any,
                 limits: Limits | None = None) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self.session = WsSession(monitor, self._write, limits, on_too_slow=self._too_slow,
                                 offload=self._offload)
        self._sub = monitor.hub.subscribe(HUB_TOPICS, notify=self._wake)
        self.session.open()

    def _write(self, text: str) -> Any:
        try:
            future = self._handler.write_message(text)
        except websocket.WebSocketClosedError:
            self.close()
            return None
        future.add_done_callback(self._written)
        return future

    def _written(self, future: asyncio.Future[None]) -> None:
        # Retrieve the outcome: a client that leaves mid-write fails the write with
        # WebSocketClosedError, which asyncio would otherwise log as "Task exception was
        # never retrieved". The socket is gone then: stop the stream.
        if future.cancelled() or future.exception() is not None:
            self.close()

    def _offload(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        def finished(future: asyncio.Future[Any]) -> None:
            if not future.cancelled():
                done(future.exception() or future.result())

        self._loop.run_in_executor(compiler(), work).add_done_callback(finished)

    def _too_slow(self, reason: str) -> None:
        self.close()
        self._handler.close(CLOSE_TOO_SLOW, reason)

    def _wake(self) -> None:
        # Called on the sampler thread: schedule one drain, never do work here.
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the server's loop closed before this socket did
                self._sub.close()

    def _drain(self) -> None:
        self._scheduled = False
        items = self._sub.drain()
        if items:
            self.session.deliver(items)

    def on_message(self, message: str | bytes) -> None:
        self.session.on_message(message)

    def close(self) -> None:
        self.session.close()
        self._sub.close()


class WsStreamMixin:
    """The live stream's handler methods, shared by both servers' WebSocket handlers."""

    bridge: WsBridge | None = None

    def _request_summary(self) -> str:
        # tornado logs this with refused connections: never with the token in it.
        request = self.request  # type: ignore[attr-defined]
        return f"{request.method} {scrub_uri(request.uri or '')} ({request.remote_ip})"

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """The upgrade, after the checks tornado would answer with text or not make."""
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        problem = upgrade_problem(handler.request.headers)
        if problem is not None:
            status, error, detail = problem
            handler.set_header("Upgrade", "websocket")
            handler.set_header("Sec-WebSocket-Version", "13")
            self.refuse(status, error, detail)
            return
        # The origin check tornado makes next, answered in JSON rather than its text.
        headers = handler.request.headers
        origin = headers.get("Origin", headers.get("Sec-Websocket-Origin"))
        if origin is not None and not handler.check_origin(origin):
            self.refuse(403, "cross-origin WebSocket refused",
                        "this origin may not open the stream; connect from the server's own "
                        "pages, or send the token in the Authorization header")
            return
        most = limits_of(handler.settings).max_ws_connections
        count: WsConnections = handler.settings.setdefault(WS_CONNECTIONS_KEY, WsConnections())
        if count.open >= most:
            self.refuse(503, "too many WebSocket connections",
                        f"at most {most} WebSocket connections at once on this server "
                        "(max_ws_connections); try again later")
            return
        # Counted until tornado's get returns: that is when the socket has closed, however
        # it went (open failed, client left, server shut down).
        count.open += 1
        try:
            await super().get(*args, **kwargs)  # type: ignore[misc]
        finally:
            count.open -= 1

    @property
    def max_message_size(self) -> int:
        # What tornado reads of one client message (its default: 10 MiB). Up to this a
        # message over MAX_MESSAGE_BYTES gets an error; past it the socket closes (1009).
        return 16 * MAX_MESSAGE_BYTES

    def refuse(self, status: int, error: str, detail: str) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        handler.set_status(status)
        handler.set_header("Content-Type", "application/json")
        handler.finish(json.dumps({"error": error, "detail": detail}))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Refused before the upgrade (no or wrong token, disabled): JSON, not a page.
        json_error_page(self, status_code, **kwargs)  # type: ignore[arg-type]

    def start_stream(self) -> None:
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        self.bridge = WsBridge(handler, handler.settings[MONITOR_KEY],
                               limits_of(handler.settings))

    def on_message(self, message: str | bytes) -> None:
        if self.bridge is not None:
            self.bridge.on_message(message)

    def on_close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()

    def get_compression_options(self) -> dict[str, Any] | None:
        # permessage-deflate: metric frames compress about 4x. Each client's frames are
        # deflated on the event loop, so the fastest level: 21 us a 2.7 KB frame against
        # 87 us at zlib's default 6 (9 ms a tick with 100 clients), for a few % more bytes.
        return {"compression_level": 1}
