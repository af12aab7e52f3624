"""The doctor's checks of a standalone server (``tracklab-jupyter serve``) as a client sees
it from here: the port, TLS, the token, CORS for a browser origin, and the WebSocket hello.
Its routes are ``/api/health`` and ``/ws`` under the URL (which may carry a proxy's path
prefix)."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from tracklab_jupyter.addresses import is_loopback
from tracklab_jupyter.doctor.net import (
    NGINX_WS_FIX,
    HttpResult,
    fetch,
    run_private,
    ws_hello,
    ws_url,
)
from tracklab_jupyter.doctor.report import Finding, ok, problem, skipped, warning

SECTION = "standalone server"
TOKEN_FIX = "use the token printed at start-up / TRACKLAB_TOKEN (pass it with --token)"
CAFILE_FIX = ("pass --cafile CERT to doctor, or use a certificate from a CA; clients need "
              "it too")
#: A certificate that ends sooner than this is a warning.
EXPIRY_WARN_S = 14 * 86400


def standalone_checks(url: str, *, token: str = "", origin: str = "", cafile: str = "",
                      timeout: float = 5.0) -> list[Finding]:
    """Check the standalone server at ``url`` (``http(s)://host:port[/prefix]``): each
    check after a failed one that it depends on is skipped, never guessed."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [problem(SECTION, "url", f"not an http(s) URL: {url!r}",
                        "pass --url http://HOST:PORT (or https://...)")]
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return [problem(SECTION, "url", f"bad port in {url!r}",
                        "pass --url http://HOST:PORT")]
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/"
    findings = [port_check(host, port, timeout)]
    if findings[-1].status != "ok":
        return [*findings, *_skip_rest("the port is not reachable",
                                       "tls", "token", "cors", "websocket")]
    if parts.scheme == "https":
        findings.append(tls_check(host, port, cafile, timeout))
        if findings[-1].status == "problem":
            # No token goes to a server whose certificate did not verify.
            return [*findings, *_skip_rest("TLS did not verify", "token", "cors",
                                           "websocket")]
    else:
        findings.append(_plain_http(host))
    findings.extend(run_private(lambda: _http_checks(base, token, origin, cafile, timeout)))
    return findings


def _skip_rest(why: str, *checks: str) -> list[Finding]:
    return [skipped(SECTION, check, f"not tried: {why}") for check in checks]


# -- transport --------------------------------------------------------------------------------

def port_check(host: str, port: int, timeout: float) -> Finding:
    """A TCP connection to ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        refused = isinstance(exc, ConnectionRefusedError)
        why = ("connection refused: nothing listens there" if refused
               else "no answer in time" if isinstance(exc, TimeoutError)
               else f"{type(exc).__name__}: {exc.strerror or exc}")
        return problem(SECTION, "port", f"{host}:{port}: {why}",
                       f"start the server (`tracklab-jupyter serve --port {port}`), or fix the "
                       "URL; a firewall between here and there must let the port through",
                       host=host, port=port)
    return ok(SECTION, "port", f"{host}:{port} accepts connections", host=host, port=port)


def tls_check(host: str, port: int, cafile: str, timeout: float) -> Finding:
    """The certificate against the system CAs (or ``cafile``), with the host name, and how
    long it has left."""
    trust = f"--cafile {cafile}" if cafile else "the system CAs"
    try:
        context = ssl.create_default_context(cafile=cafile or None)
    except (OSError, ssl.SSLError) as exc:
        return problem(SECTION, "tls", f"cannot read {cafile}: {exc}",
                       "pass --cafile a PEM certificate file", cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            cert: dict[str, Any] = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        said = exc.verify_message or str(exc.reason)
        if exc.verify_code == 62 or "hostname" in said.lower() or "IP address" in said:
            fix = (f"connect with the name the certificate is for, or reissue it with "
                   f"subjectAltName DNS:{host} (or IP:{host})")
        elif exc.verify_code == 10 or "expired" in said:
            fix = "renew the certificate (--certfile/--keyfile), then restart serve"
        else:
            fix = CAFILE_FIX
        return problem(SECTION, "tls", f"the certificate does not verify against {trust}: "
                       f"{said}", fix, verify_code=exc.verify_code)
    except (ssl.SSLError, OSError) as exc:
        return problem(SECTION, "tls", f"TLS handshake failed: {exc}",
                       "is it an HTTPS port? use --url http://... for a plain one, or start "
                       "serve with --certfile/--keyfile")
    not_after = cert.get("notAfter")
    expires = ssl.cert_time_to_seconds(not_after) if not_after else None
    left = expires - time.time() if expires is not None else None
    when = time.strftime("%Y-%m-%d", time.gmtime(expires)) if expires is not None else "?"
    details = {"expires": when, "tls_version": version}
    if left is not None and left < EXPIRY_WARN_S:
        return warning(SECTION, "tls", f"verified against {trust}, but it expires on {when} "
                       f"(in {max(left, 0) / 86400:.1f} days)",
                       "renew the certificate (--certfile/--keyfile), then restart serve",
                       **details)
    return ok(SECTION, "tls", f"{version}, certificate verified against {trust} for {host}, "
              f"valid until {when}", **details)


def _plain_http(host: str) -> Finding:
    if is_loopback(host):
        return ok(SECTION, "tls", "plain HTTP on loopback: nothing crosses the network")
    return warning(SECTION, "tls", f"plain HTTP to {host}: the token crosses the network "
                   "unencrypted", "start serve with --certfile/--keyfile (docs/DEPLOY.md), or "
                   "put it behind an HTTPS proxy")


# -- HTTP and WebSocket -----------------------------------------------------------------------

async def _http_checks(base: str, token: str, origin: str, cafile: str,
                       timeout: float) -> list[Finding]:
    health_url = base + "api/health"
    findings = [await token_check(health_url, token, cafile, timeout)]
    if findings[0].details.get("no_answer"):
        # Nothing answers HTTP there: each later check would only time out again.
        return [*findings, *_skip_rest("no HTTP answer", "cors", "websocket")]
    findings.append(await cors_check(health_url, origin, cafile, timeout))
    if findings[0].status != "ok":
        findings.append(skipped(SECTION, "websocket", "not tried: it needs an accepted token"))
        return findings
    findings.append(await websocket_check(base, token, origin, cafile, timeout))
    return findings


async def token_check(health_url: str, token: str, cafile: str, timeout: float) -> Finding:
    """``/api/health`` must refuse a request without a token (401/403) and answer 200 JSON
    with ``status`` to the token."""
    bare = await fetch(health_url, timeout=timeout, cafile=cafile)
    if bare.status == 0:
        return problem(SECTION, "token", f"no HTTP answer: {bare.error}",
                       "is it the tracklab-jupyter serve port? check --url", no_answer=True)
    open_door = bare.status == 200
    if not token:
        if open_door:
            return warning(SECTION, "token", "api/health answers without a token, and no "
                           "token was given to check", _OPEN_FIX)
        return warning(SECTION, "token", f"the server asks for a token (HTTP {bare.status}), "
                       "but none was given to check", "pass --token TOKEN (the one printed at "
                       "start-up, or TRACKLAB_TOKEN)")
    given = await fetch(health_url, headers={"Authorization": f"token {token}"},
                        timeout=timeout, cafile=cafile)
    if given.status in (401, 403):
        return problem(SECTION, "token", f"the token was refused (HTTP {given.status}: "
                       f"{given.detail()})", TOKEN_FIX)
    data = given.json()
    if given.status != 200 or not isinstance(data, dict) or "status" not in data:
        said = f" ({given.error})" if given.status and given.error else ""
        return problem(SECTION, "token", f"HTTP {given.status or given.error}{said} from "
                       f"api/health, not its JSON: is this a tracklab-jupyter serve URL?",
                       "check --url: it is the address serve printed, without /api/...")
    if open_door:
        return warning(SECTION, "token", "the token is accepted, but api/health also answers "
                       "without one", _OPEN_FIX)
    version = (data.get("versions") or {}).get("tracklab-jupyter")
    return ok(SECTION, "token", f"accepted (without it: HTTP {bare.status}); health "
              f"{data.get('status')}, role {data.get('role')}, version {version}",
              health_status=data.get("status"), version=version)


_OPEN_FIX = ("the standalone server always asks for a token: something in front of it (a "
             "proxy adding the header?) lets anyone in; remove that")


async def cors_check(health_url: str, origin: str, cafile: str, timeout: float) -> Finding:
    """A browser's preflight from ``origin``: allowed when the answer names the origin."""
    if not origin:
        return skipped(SECTION, "cors", "no --origin given: only pages of other origins need "
                       "CORS")
    answer = await fetch(health_url, method="OPTIONS", timeout=timeout, cafile=cafile,
                         headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                                  "Access-Control-Request-Headers": "authorization"})
    allowed = _header(answer, "Access-Control-Allow-Origin")
    if answer.status in (200, 204) and allowed in (origin, "*"):
        methods = _header(answer, "Access-Control-Allow-Methods") or "?"
        return ok(SECTION, "cors", f"{origin} may call the API (Access-Control-Allow-Origin: "
                  f"{allowed}; methods {methods})", allow_origin=allowed)
    if answer.status == 0:
        return problem(SECTION, "cors", f"the preflight got no answer: {answer.error}",
                       "check --url")
    return warning(SECTION, "cors", f"{origin} is refused (preflight: HTTP {answer.status}"
                   + (f", {answer.detail()}" if answer.detail() else "") + ")",
                   f"start serve with --allow-origin {origin}", status=answer.status)


def _header(result: HttpResult, name: str) -> str:
    for key, value in result.headers.items():
        if key.lower() == name.lower():
            return value
    return ""


async def websocket_check(base: str, token: str, origin: str, cafile: str,
                          timeout: float) -> Finding:
    """``/ws`` with the token (and ``origin``, as a browser page there would send it) must
    upgrade and send ``hello``."""
    headers = {"Authorization": f"token {token}"}
    if origin:
        headers["Origin"] = origin
    stream = await ws_hello(ws_url(base) + "ws", headers=headers, timeout=timeout,
                            cafile=cafile)
    if stream.hello is not None:
        return ok(SECTION, "websocket", f"hello received (version "
                  f"{stream.hello.get('version', '?')}, interval "
                  f"{stream.hello.get('interval_s', '?')} s)")
    if stream.upgraded:
        return problem(SECTION, "websocket", f"the stream opened but sent no hello: "
                       f"{stream.error}", "restart serve; its output says why")
    if stream.status == 403 and origin and "origin" in stream.error.lower():
        return warning(SECTION, "websocket", f"the stream refuses {origin}: {stream.error}",
                       f"start serve with --allow-origin {origin}")
    if stream.status == 503:
        return warning(SECTION, "websocket", f"the server refused the stream: {stream.error}",
                       "close other dashboards, or raise max_ws_connections")
    how = f"HTTP {stream.status}" if stream.status else stream.error or "closed"
    return problem(SECTION, "websocket",
                   f"REST works but the WebSocket upgrade failed ({how}"
                   + (f": {stream.error}" if stream.status and stream.error else "")
                   + "): a proxy between you and the server does not pass WebSocket upgrades",
                   NGINX_WS_FIX, status=stream.status)
