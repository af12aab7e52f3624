"""The extension's auth guard, proven against a real Jupyter server (pytest-jupyter):

- a write without credentials but with a valid XSRF pair is refused by the auth check, not by
  the XSRF check (the same pair with a login cookie gets through; without the pair the 403 says
  "_xsrf");
- a read-only identity (an Authorizer that allows "read" only) reads but cannot PATCH or DELETE;
- every tracklab handler method is behind Jupyter's auth decorators, audited in a server app of
  its own built with ``allow_unauthenticated_access=False``; a handler registered without them
  in the same test is caught (the negative control).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import warnings
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from jupyter_server.auth import Authorizer
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.serverapp import ServerApp
from jupyter_server.utils import JupyterServerAuthWarning, url_path_join
from test_server_runs import start_training
from tornado import web, websocket
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.util import _websocket_mask

from tracklab_jupyter.server.endpoints import routes
from tracklab_jupyter.server.handlers import AUTH_RESOURCE, TrackLabAPIHandler, build_handlers

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
#: A body each write method is sent with (a valid rename for the runs' PATCH).
BODIES = {"PATCH": json.dumps({"name": "renamed"}), "POST": "{}", "PUT": "{}"}
PATH_ARG = re.compile(r"\(\?P<(\w+)>\[\^/\]\+\)")


def declared_writes() -> list[tuple[str, str]]:
    """Every (method, path) the extension declares besides GET."""
    return [(method, path) for path, endpoints in routes() for method in endpoints
            if method != "GET"]


def xsrf_pair() -> tuple[str, str]:
    """A forged, well-formed XSRF pair: (cookie value, header value). Both are tornado's
    version-2 tokens (``2|mask|masked token|time``) of the same 16 random bytes under
    different masks; tornado's check_xsrf_cookie unmasks both and compares the bytes."""
    raw = os.urandom(16)

    def encode() -> str:
        mask = os.urandom(4)
        return f"2|{mask.hex()}|{_websocket_mask(mask, raw).hex()}|{int(time.time())}"

    return encode(), encode()


def fill(path: str, value: str) -> str:
    return PATH_ARG.sub(value, path).replace("(.*)", "anything")


class Client:
    """Requests to the test server with exactly the credentials given: no token unless
    ``token`` is set (jp_fetch always adds one)."""

    def __init__(self, http_server_client, base_url: str) -> None:
        self.http = http_server_client
        self.base_url = base_url

    async def fetch(self, method: str, path: str, *, body: str | None = None,
                    xsrf: tuple[str, str] | None = None, cookies: dict[str, str] | None = None,
                    token: str | None = None, form: dict[str, str] | None = None
                    ) -> HTTPResponse:
        headers: dict[str, str] = {}
        jar = dict(cookies or {})
        if xsrf is not None:
            jar["_xsrf"] = xsrf[0]
            headers["X-XSRFToken"] = xsrf[1]
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        if token is not None:
            headers["Authorization"] = f"token {token}"
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = "{}"
        return await self.http.fetch(url_path_join(self.base_url, path), method=method,
                                     headers=headers, body=body, allow_nonstandard_methods=True,
                                     follow_redirects=False, raise_error=False)

    async def login_cookies(self, token: str, xsrf: tuple[str, str]) -> dict[str, str]:
        """Log in through Jupyter's login form (the token as password, the forged XSRF pair):
        the cookie a browser session gets."""
        response = await self.fetch("POST", "login", xsrf=xsrf, form={"password": token})
        assert response.code == 302, (response.code, response.body)
        jar: SimpleCookie = SimpleCookie()
        for header in response.headers.get_list("Set-Cookie"):
            jar.load(header)
        login = {k: m.value for k, m in jar.items() if k.startswith("username-")}
        assert login, response.headers.get_list("Set-Cookie")
        return login


def error_of(response: HTTPResponse) -> dict[str, str]:
    assert response.headers["Content-Type"].startswith("application/json"), response.body
    return json.loads(response.body)


@pytest.fixture
def client(http_server_client, jp_base_url) -> Client:
    return Client(http_server_client, jp_base_url)


@pytest.fixture
def finished_run(tmp_path, tracklab_data_dir) -> str:
    """A run a training script (a child process) made and finished, named "run-1"."""
    child, run_id = start_training(tmp_path, tracklab_data_dir, steps=3)
    assert child.wait(60) == 0
    return run_id


async def run_name(client: Client, token: str, run_id: str) -> str | None:
    response = await client.fetch("GET", f"tracklab/api/runs/{run_id}", token=token)
    if response.code == 404:
        return None
    assert response.code == 200, response.body
    return json.loads(response.body)["name"]


# --- no credentials, valid XSRF pair ----------------------------------------------------


def test_the_write_routes_are_the_ones_these_tests_cover():
    """A new write route is refused by the loops below as it is; its positive control (a
    logged-in write that gets through) is to be added next to the runs' one."""
    assert sorted(declared_writes()) == [("DELETE", "api/runs/(?P<run_id>[^/]+)"),
                                         ("PATCH", "api/runs/(?P<run_id>[^/]+)")]


async def test_writes_without_credentials_are_refused_by_auth_not_by_xsrf(
        tracklab_server, jp_serverapp, client, finished_run):
    token = jp_serverapp.identity_provider.token
    run_id = finished_run
    pair = xsrf_pair()
    assert await run_name(client, token, run_id) == "run-1"
    for method, declared in declared_writes():
        path = "tracklab/" + fill(declared, run_id)
        body = BODIES.get(method)
        # Without the pair, the XSRF check answers, and says so.
        no_pair = await client.fetch(method, path, body=body)
        assert no_pair.code == 403
        assert "_xsrf" in error_of(no_pair)["detail"], no_pair.body
        # A mismatched pair: the XSRF check again.
        other = xsrf_pair()
        mismatched = await client.fetch(method, path, body=body, xsrf=(pair[0], other[1]))
        assert mismatched.code == 403
        assert "XSRF cookie does not match" in error_of(mismatched)["detail"]
        # The valid pair passes the XSRF check: what refuses it is the auth guard.
        refused = await client.fetch(method, path, body=body, xsrf=pair)
        assert refused.code == 403, (method, path, refused.code, refused.body)
        error = error_of(refused)
        assert error["error"] == "Forbidden"
        assert "xsrf" not in (error["error"] + error["detail"]).lower(), error
        assert await run_name(client, token, run_id) == "run-1"

    # Positive control: the same pair with a login cookie (no token) is let through, so the
    # pair is one the XSRF check accepts and the 403 above was the missing credentials.
    login = await client.login_cookies(token, pair)
    patched = await client.fetch("PATCH", f"tracklab/api/runs/{run_id}",
                                 body=BODIES["PATCH"], xsrf=pair, cookies=login)
    assert patched.code == 200, patched.body
    assert await run_name(client, token, run_id) == "renamed"
    deleted = await client.fetch("DELETE", f"tracklab/api/runs/{run_id}", xsrf=pair,
                                 cookies=login)
    assert deleted.code in (200, 204), deleted.body
    assert await run_name(client, token, run_id) is None


async def test_no_route_takes_a_write_without_credentials(tracklab_server, client):
    """Every registered path, every write method, a valid XSRF pair and no credentials: 403
    from the auth check (an unknown run id would be a 404 from the handler)."""
    pair = xsrf_pair()
    paths = [fill(p, "x") for p, _ in build_handlers("/") if not p.endswith("/ws")]
    assert "/tracklab/api/runs/x" in paths and "/tracklab/anything" in paths
    for path in paths:
        for method in WRITE_METHODS:
            response = await client.fetch(method, path.lstrip("/"), xsrf=pair)
            assert response.code == 403, (method, path, response.code, response.body)
            assert "xsrf" not in response.body.decode().lower(), (method, path)


# --- a read-only identity ----------------------------------------------------------------


class ReadOnlyAuthorizer(Authorizer):
    """Lets every authenticated user read, and nothing else."""

    def is_authorized(self, handler, user, action, resource):
        return action == "read"


class TestReadOnlyIdentity:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        return {**jp_server_config,
                "ServerApp": {**jp_server_config["ServerApp"],
                              "authorizer_class": ReadOnlyAuthorizer}}

    async def test_reads_but_cannot_patch_or_delete(self, tracklab_server, jp_serverapp,
                                                    jp_fetch, finished_run):
        assert isinstance(jp_serverapp.authorizer, ReadOnlyAuthorizer)
        run_id = finished_run
        for path in (("runs", run_id), ("runs",), ("health",)):
            response = await jp_fetch("tracklab", "api", *path)
            assert response.code == 200
        assert json.loads((await jp_fetch("tracklab", "api", "runs", run_id)).body)[
            "name"] == "run-1"
        for method, declared in declared_writes():
            with pytest.raises(HTTPClientError) as info:
                await jp_fetch("tracklab", fill(declared, run_id), method=method,
                               body=BODIES.get(method), allow_nonstandard_methods=True)
            assert info.value.code == 403, method
            detail = json.loads(info.value.response.body)["detail"]
            assert detail == f"User is not authorized to write on resource: {AUTH_RESOURCE}."
        response = await jp_fetch("tracklab", "api", "runs", run_id)
        assert json.loads(response.body)["name"] == "run-1"


# --- the handler audit -------------------------------------------------------------------


def _wrapper_code(decorator) -> object:
    """The code object of a decorator's wrapper: the same for every method it wraps."""
    async def method(self):  # pragma: no cover - never called
        pass

    return decorator(method).__code__


AUTHENTICATED = _wrapper_code(web.authenticated)
AUTHORIZED = _wrapper_code(authorized)
WS_AUTHENTICATED = _wrapper_code(ws_authenticated)


def decorators_of(method) -> list[object]:
    """The wrapper codes from the outside in (functools.wraps keeps ``__wrapped__``)."""
    found = []
    while method is not None:
        found.append(getattr(method, "__code__", None))
        method = getattr(method, "__wrapped__", None)
    return found


def unguarded(app: web.Application, prefix: str) -> list[str]:
    """Handler methods under ``prefix`` that are not behind Jupyter's auth: REST methods need
    ``@web.authenticated`` outside ``@authorized``, the WebSocket's GET ``@ws_authenticated``
    (it then asks the authorizer for "read" itself)."""
    problems = []
    seen = 0
    for rule in tracklab_rules(app, prefix):
        handler = rule.target
        seen += 1
        for name in handler.SUPPORTED_METHODS:
            method = getattr(handler, name.lower(), None)
            if method is None or method is web.RequestHandler._unimplemented_method:
                continue
            if getattr(method, "__allow_unauthenticated", False):
                problems.append(f"{name} of {handler.__name__}: @allow_unauthenticated")
                continue
            chain = decorators_of(method)
            if issubclass(handler, websocket.WebSocketHandler):
                ok = chain[0] is WS_AUTHENTICATED
            else:
                ok = (AUTHENTICATED in chain and AUTHORIZED in chain
                      and chain.index(AUTHENTICATED) < chain.index(AUTHORIZED))
            if not ok:
                problems.append(f"{name} of {handler.__name__} at {rule.matcher.regex.pattern}")
    assert seen, f"no handler under {prefix}"
    return problems


def tracklab_rules(app: web.Application, prefix: str) -> list:
    """Every routing rule whose path starts with ``prefix``, through the host routers."""
    found = []
    pending = list(app.default_router.rules) + list(app.wildcard_router.rules)
    while pending:
        rule = pending.pop()
        target = rule.target
        if hasattr(target, "rules"):  # a host's router
            pending.extend(target.rules)
            continue
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None and regex.pattern.startswith(prefix):
            found.append(rule)
    return found


def test_every_handler_is_behind_jupyter_auth(jp_configurable_serverapp, tmp_path):
    """A server app of its own (no other fixture has made the ServerApp singleton), with
    ``allow_unauthenticated_access=False``; jupyter_server's own check must not warn about
    any tracklab handler, nor may the audit above find one; then an undecorated handler
    registered here is caught by both."""
    ServerApp.clear_instance()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JupyterServerAuthWarning)
        app = jp_configurable_serverapp(
            config={"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True},
                                  "allow_unauthenticated_access": False},
                    "TrackLab": {"data_dir": str(tmp_path / "audit-data"),
                                 "enable_gpu": False}})
    # The config took: this is not a server another fixture made first.
    assert app.allow_unauthenticated_access is False
    assert app.web_app.settings["allow_unauthenticated_access"] is False
    auth_warnings = [str(w.message) for w in caught
                     if issubclass(w.category, JupyterServerAuthWarning)
                     and "tracklab" in str(w.message).lower()]
    assert auth_warnings == []
    rules = tracklab_rules(app.web_app, app.base_url + "tracklab")
    # The extension loaded: all its routes are there (a failed load only logs).
    assert len(rules) == len(build_handlers("/")), [r.matcher.regex.pattern for r in rules]
    assert unguarded(app.web_app, app.base_url + "tracklab") == []

    # Negative control: the same base class, a GET without the decorators.
    class LeakyHandler(TrackLabAPIHandler):
        async def get(self, *args, **kwargs):
            self.finish("{}")

        async def delete(self, *args, **kwargs):
            self.finish("{}")

    leak = url_path_join(app.base_url, "tracklab", "leak")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JupyterServerAuthWarning)
        app.web_app.add_handlers(".*$", [(leak, LeakyHandler)])
    jupyter_says = " ".join(str(w.message) for w in caught
                            if issubclass(w.category, JupyterServerAuthWarning))
    assert "LeakyHandler" in jupyter_says
    found = unguarded(app.web_app, app.base_url + "tracklab")
    assert sorted(f.split(" at ")[0] for f in found) == ["DELETE of LeakyHandler",
                                                        "GET of LeakyHandler"], found
    # The extension starts its monitor on a thread: let it finish before the server stops.
    for thread in threading.enumerate():
        if thread.name == "tracklab-start":
            thread.join(30)
