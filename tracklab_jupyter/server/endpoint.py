"""What an endpoint is: one declaration per path and method, from which both servers route
and check requests and the OpenAPI document is written.

An endpoint's handler takes a :class:`Request` (its parameters already parsed and checked
against the declaration) and returns a :class:`Reply`. Bad input raises :class:`ApiError`,
which both servers turn into ``{"error": ..., "detail": ...}`` with its status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracklab_jupyter.server.limits import Limits
from tracklab_jupyter.server.params import Param, Params

if TYPE_CHECKING:
    from tracklab_jupyter.monitor import Monitor


class ApiError(Exception):
    """A request the server cannot answer: ``status`` with a JSON error body."""

    def __init__(self, status: int, error: str, detail: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


@dataclass
class Reply:
    """An endpoint's answer. ``body`` is JSON-serialisable unless ``content_type`` says
    otherwise (then it is text). ``chunks``, when set, yields the body in pieces instead
    (each is made off the event loop); ``etag`` lets pollers get 304 Not Modified."""

    body: Any
    content_type: str = "application/json"
    etag: str | None = None
    last_modified: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    chunks: Iterator[bytes] | None = None


@dataclass
class Request:
    """One call of an endpoint: the monitor, the parsed parameters (path ones included),
    the server's limits, the body of a PATCH and the headers endpoints read."""

    monitor: Monitor
    args: dict[str, Any]
    limits: Limits
    query: Params = field(default_factory=dict)
    body: bytes = b""
    #: The request headers an endpoint may read (``Accept``), by name.
    headers: dict[str, str] = field(default_factory=dict)


def _no_params(limits: Limits) -> tuple[Param, ...]:
    return ()


@dataclass(frozen=True)
class Endpoint:
    """``handler(request)`` answers ``method`` on ``path`` (``{name}`` parts are path
    parameters, declared in ``params`` like the query ones)."""

    path: str
    handler: Callable[[Request], Reply]
    #: One line: the operation's ``summary`` in the OpenAPI document (openapi.py).
    summary: str
    #: The 200 response's content: ``{media type: schema}``.
    response: dict[str, Any]
    params: Callable[[Limits], tuple[Param, ...]] = _no_params
    method: str = "GET"
    #: Reads SQLite: run in a thread, never on the event loop (the reply is encoded there
    #: too).
    blocking: bool = False
    #: A parameter that, when "1", makes one call blocking (``api/health?full=1``).
    blocking_when: str = ""
    #: Status codes it may answer besides 200 and the ones every endpoint has.
    errors: tuple[int, ...] = ()
    #: JSON Schema of the request body (PATCH).
    body: dict[str, Any] | None = None
    #: Answers 304 to If-None-Match (latest-sample endpoints).
    etag: bool = False
    description: str = ""
    #: OpenAPI links from the 200 response to other operations.
    links: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    operation_id: str = ""

    @property
    def operation(self) -> str:
        """The OpenAPI operationId: given, or from the method and path."""
        if self.operation_id:
            return self.operation_id
        words = [w for w in self.path.replace("{", "").replace("}", "").replace("_", "/")
                 .split("/") if w and w != "api"]
        return self.method.lower() + "".join(w.title() for w in words)


def json_response(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}
