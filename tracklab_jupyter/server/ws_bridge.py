"""The WebSocket plumbing shared by both servers: between the hub (sampler threads) and a
:class:`~tracklab_jupyter.server.ws_protocol.WsSession` on the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import websocket

from tracklab_jupyter.sampler.hub import CLUSTER, EVENT, NODE, RUN, RUN_METRICS, SAMPLE
from tracklab_jupyter.server.serving import MONITOR_KEY
from tracklab_jupyter.server.ws_protocol import WsSession


class WsBridge:
    """Connects a tornado WebSocketHandler to the hub: hub items are drained on the event
    loop (the hub only schedules a wake-up from the sampler thread), and written through
    the session, which coalesces frames for slow clients."""

    def __init__(self, handler: websocket.WebSocketHandler, monitor: Any) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._scheduled = False
        self.session = WsSession(monitor, self._write)
        self._sub = monitor.hub.subscribe((SAMPLE, EVENT, RUN, RUN_METRICS, CLUSTER, NODE),
                                          notify=self._wake)
        self.session.open()

    def _write(self, text: str) -> Any:
        try:
            return self._handler.write_message(text)
        except websocket.WebSocketClosedError:
            self.close()
            return None

    def _wake(self) -> None:
        # Called on the sampler thread: schedule one drain, never do work here.
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        items = self._sub.drain()
        if items:
            self.session.deliver(items)

    def on_message(self, message: str | bytes) -> None:
        self.session.on_message(message)

    def close(self) -> None:
        self._sub.close()


class WsStreamMixin:
    """The live stream's handler methods, shared by both servers' WebSocket handlers."""

    bridge: WsBridge | None = None

    def start_stream(self) -> None:
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        self.bridge = WsBridge(handler, handler.settings[MONITOR_KEY])

    def on_message(self, message: str | bytes) -> None:
        if self.bridge is not None:
            self.bridge.on_message(message)

    def on_close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()

    def get_compression_options(self) -> dict[str, Any] | None:
        return {}  # permessage-deflate: metric frames compress about 4x
