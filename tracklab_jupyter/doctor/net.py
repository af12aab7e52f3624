"""The doctor's network probes, shared by the Jupyter and the standalone-server checks: one
HTTP request and one WebSocket ``hello``, each bounded by a timeout, on tornado's clients in
a private event loop. They return what happened (a status, a body, an error in words) and
never raise for a network failure; no token ever appears in what they return."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, websocket_connect

T = TypeVar("T")

#: The largest reply (HTTP body or WebSocket message) a probe reads: a health answer or a
#: hello is a few KiB, and whatever answers at a URL the user typed must not fill memory.
MAX_REPLY_BYTES = 1 << 20

NGINX_WS_FIX = ("let the proxy pass WebSocket upgrades; for nginx, in the location block: "
                "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
                'proxy_set_header Connection "upgrade"; (until then the sidebar falls back '
                "to polling REST: slower updates, more requests)")


def run_private(make: Callable[[], Awaitable[T]]) -> T:
    """Run ``make()`` to completion in an event loop of its own. Called from a thread that
    already runs a loop (inside a server, or an async test), ``asyncio.run`` would refuse
    and blocking that loop would freeze the server being diagnosed, so the private loop
    then runs on a thread of its own while this one waits."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_coro(make))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_coro(make))
        except BaseException as exc:  # handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="tracklab-doctor-net", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _coro(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


@dataclass
class HttpResult:
    """One request's outcome: ``status`` 0 when no HTTP answer came (``error`` says why)."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def detail(self) -> str:
        """The error's words: a JSON error body's ``error``/``detail``, else ``error``."""
        data = self.json()
        if isinstance(data, dict) and (data.get("error") or data.get("message")):
            parts = [str(data.get("error") or data.get("message")), str(data.get("detail") or "")]
            return ": ".join(p for p in parts if p)[:200]
        return self.error[:200]


def _tls(request_kwargs: dict[str, Any], cafile: str, verify: bool) -> dict[str, Any]:
    if not verify:
        request_kwargs["validate_cert"] = False
    elif cafile:
        request_kwargs["ca_certs"] = cafile
    return request_kwargs


def describe_error(exc: BaseException) -> str:
    """A network error in words, without the request (never a header, never a token)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not verified: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, HTTPClientError) and exc.code == 599:
        return f"no answer ({exc.message or 'timeout'})"
    if isinstance(exc, (StreamClosedError, WebSocketClosedError)):
        return "the connection was closed"
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"{type(exc).__name__}: {exc}"[:200]


async def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                timeout: float = 5.0, cafile: str = "", verify: bool = True) -> HttpResult:
    """One request, its answer whatever the status (redirects not followed)."""
    client = AsyncHTTPClient(force_instance=True)
    kept: list[bytes] = []
    size = [0]

    def keep(chunk: bytes) -> None:  # at most MAX_REPLY_BYTES stay in memory
        if size[0] <= MAX_REPLY_BYTES:
            kept.append(chunk[:MAX_REPLY_BYTES + 1 - size[0]])
        size[0] += len(chunk)

    request = HTTPRequest(url, method=method, headers=headers or {}, connect_timeout=timeout,
                          request_timeout=timeout, follow_redirects=False,
                          allow_nonstandard_methods=True, streaming_callback=keep,
                          **_tls({}, cafile, verify))
    try:
        response = await asyncio.wait_for(client.fetch(request, raise_error=False),
                                          timeout + 1)
    except Exception as exc:  # every failure becomes words
        return HttpResult(error=describe_error(exc))
    finally:
        client.close()
    if response.code == 599:  # tornado's "no HTTP answer" (refused, timeout, TLS)
        return HttpResult(error=describe_error(response.error) if response.error
                          else "no answer")
    if size[0] > MAX_REPLY_BYTES:
        return HttpResult(response.code, dict(response.headers.get_all()), error=(
            f"a {size[0]}-byte reply, more than the doctor reads (MAX_REPLY_BYTES, "
            f"{MAX_REPLY_BYTES} bytes): not a tracklab server?"))
    return HttpResult(response.code, dict(response.headers.get_all()), b"".join(kept))


@dataclass
class WsResult:
    """The WebSocket probe: ``hello`` is the hello's data when it came. Otherwise
    ``status`` is the HTTP status of a refused upgrade (0 when there was none) and ``error``
    says what went wrong; ``upgraded`` tells a failed handshake from a silent socket."""

    hello: dict[str, Any] | None = None
    status: int = 0
    upgraded: bool = False
    error: str = ""


async def ws_hello(url: str, *, headers: dict[str, str] | None = None, timeout: float = 5.0,
                   cafile: str = "", verify: bool = True) -> WsResult:
    """Open the stream at ``url`` (ws:// or wss://) and read its first message, which must
    be ``hello``, within ``timeout``."""
    request = HTTPRequest(url, headers=headers or {}, connect_timeout=timeout,
                          request_timeout=timeout, **_tls({}, cafile, verify))
    try:
        conn = await asyncio.wait_for(
            websocket_connect(request, max_message_size=MAX_REPLY_BYTES), timeout + 1)
    except HTTPClientError as exc:
        if exc.code == 599:
            return WsResult(error=describe_error(exc))
        body = exc.response.body if exc.response is not None and exc.response.body else b""
        said = HttpResult(exc.code, body=body, error=f"HTTP {exc.code}").detail()
        return WsResult(status=exc.code, error=said)
    except Exception as exc:  # a closed or reset handshake, TLS, timeout
        return WsResult(error=describe_error(exc))
    try:
        try:
            raw = await asyncio.wait_for(conn.read_message(), timeout)
        except Exception as exc:
            return WsResult(upgraded=True, error=describe_error(exc))
        if raw is None:
            return WsResult(upgraded=True, error="the server closed the stream before hello")
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return WsResult(upgraded=True, error="the first message is not JSON")
        if not isinstance(message, dict) or message.get("type") != "hello":
            kind = message.get("type") if isinstance(message, dict) else type(message).__name__
            return WsResult(upgraded=True, error=f"the first message is {kind!r}, not hello")
        data = message.get("data")
        return WsResult(hello=data if isinstance(data, dict) else {}, upgraded=True)
    finally:
        conn.close()


def ws_url(http_url: str) -> str:
    """The ws:// (wss://) form of an http:// (https://) URL."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://"):]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://"):]
    return http_url
