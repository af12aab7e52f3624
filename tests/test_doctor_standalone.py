"""The doctor's standalone-server checks against a real ``tracklab-jupyter serve`` over
HTTPS with a self-signed certificate made by openssl (or cryptography), as a user runs it:
the certificate trusted or not, the right token or a wrong one, an allowed origin or
another, and a port where nothing listens."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import unavailable
from jupyterlab_process import free_port
from test_standalone import TOKEN, Server, running_server, wait_metrics
from test_standalone_production import client_context, make_certificate

from tracklab_jupyter.addresses import is_loopback
from tracklab_jupyter.doctor.report import Finding
from tracklab_jupyter.doctor.standalone import standalone_checks

DASH = "https://dash.example.org"
OTHER = "https://evil.example.com"


def long_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 valid for 90 days: past the doctor's
    expiry warning (make_certificate's last 2 days)."""
    if not shutil.which("openssl"):
        unavailable("openssl is not installed (Debian's openssl package)")
    cert, key = directory / "long.crt", directory / "long.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "90",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def https(directory: Path, cert: Path, key: Path) -> Iterator[Server]:
    """A started HTTPS server: token TOKEN, DASH allowed cross-origin, its first sample in
    (the WebSocket hello needs a started monitor)."""
    for srv in running_server(directory / "data", "--token", TOKEN, "--certfile", str(cert),
                              "--keyfile", str(key), "--allow-origin", DASH):
        assert srv.scheme == "https"
        wait_metrics(_TrustingServer(srv, client_context(cert)))
        yield srv


@pytest.fixture(scope="module")
def https_server(tmp_path_factory) -> Iterator[tuple[Server, str]]:
    """One HTTPS server for the module (each start costs a second or two), and its
    certificate's path."""
    directory = tmp_path_factory.mktemp("doctor-https")
    cert, key = long_certificate(directory)
    for srv in https(directory, cert, key):
        yield srv, str(cert)


class _TrustingServer(Server):
    """``srv`` whose requests trust ``context`` (wait_metrics uses urllib's defaults)."""

    def __init__(self, srv: Server, context) -> None:
        super().__init__(srv.proc, srv.port, srv.lines, srv.scheme)
        self.context = context

    def get(self, path: str, token: str | None = TOKEN, header: bool = True):
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url(path),
                                         headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()


def checks(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


def base(srv: Server) -> str:
    return f"https://127.0.0.1:{srv.port}"


def test_an_untrusted_self_signed_certificate_is_a_tls_problem(https_server):
    srv, _ = https_server
    found = checks(standalone_checks(base(srv), token=TOKEN, timeout=10))
    assert found["port"].status == "ok"
    assert found["tls"].status == "problem", found["tls"]
    assert "self-signed" in found["tls"].found or "self signed" in found["tls"].found
    assert found["tls"].fix.startswith("pass --cafile CERT to doctor")
    # No token went to a server whose certificate did not verify.
    assert {found[c].status for c in ("token", "cors", "websocket")} == {"skipped"}


def test_with_its_certificate_everything_is_ok(https_server):
    srv, cert = https_server
    findings = standalone_checks(base(srv), token=TOKEN, origin=DASH, cafile=cert, timeout=10)
    found = checks(findings)
    assert [f.status for f in findings] == ["ok"] * 5, findings
    assert "valid until" in found["tls"].found
    assert f"Access-Control-Allow-Origin: {DASH}" in found["cors"].found
    assert "hello received" in found["websocket"].found
    assert TOKEN not in repr(findings)


def test_a_certificate_that_expires_soon_is_a_warning(tmp_path):
    cert, key = make_certificate(tmp_path, "short")  # 2 days
    for srv in https(tmp_path, cert, key):
        findings = standalone_checks(base(srv), token=TOKEN, cafile=str(cert), timeout=10)
        found = checks(findings)
        assert found["tls"].status == "warning", found["tls"]
        assert "expires on" in found["tls"].found and "renew" in found["tls"].fix
        assert found["token"].status == "ok"  # a warning does not stop the checks


def test_a_wrong_token_is_a_problem(https_server):
    srv, cert = https_server
    found = checks(standalone_checks(base(srv), token="not-the-token", cafile=cert,
                                     timeout=10))
    assert found["tls"].status == "ok"
    assert found["token"].status == "problem", found["token"]
    assert "HTTP 403" in found["token"].found
    assert "TRACKLAB_TOKEN" in found["token"].fix
    assert found["websocket"].status == "skipped"


def test_another_origin_is_a_cors_warning(https_server):
    srv, cert = https_server
    found = checks(standalone_checks(base(srv) + "/", token=TOKEN, origin=OTHER,
                                     cafile=cert, timeout=10))
    assert found["token"].status == "ok"
    assert found["cors"].status == "warning", found["cors"]
    assert found["cors"].fix == f"start serve with --allow-origin {OTHER}"
    # a page at that origin could not open the stream either: the same fix, not the proxy's
    assert found["websocket"].status == "warning", found["websocket"]
    assert found["websocket"].fix == f"start serve with --allow-origin {OTHER}"


def test_a_port_where_nothing_listens_is_a_port_problem():
    port = free_port()
    findings = standalone_checks(f"http://127.0.0.1:{port}", token=TOKEN, timeout=5)
    found = checks(findings)
    assert found["port"].status == "problem", found["port"]
    assert "connection refused" in found["port"].found
    assert f"tracklab-jupyter serve --port {port}" in found["port"].fix
    assert all(f.status == "skipped" for f in findings[1:])


def test_plain_http_on_loopback_is_fine_and_names_no_tls_problem(tmp_path):
    assert is_loopback("127.0.0.1")
    for srv in running_server(tmp_path / "data", "--token", TOKEN):
        wait_metrics(srv)
        found = checks(standalone_checks(f"http://127.0.0.1:{srv.port}", token=TOKEN,
                                         timeout=10))
        assert [f.status for f in found.values()] == ["ok", "ok", "ok", "skipped", "ok"], found
