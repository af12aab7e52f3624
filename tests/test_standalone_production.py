"""The standalone server in production (docs/DEPLOY.md), as a user starts it: HTTPS with a
certificate made here and a real TLS client, CORS preflights on every route and the
WebSocket's origin check, the read-only token, logs without tokens, the systemd unit and
the container recipe."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import unavailable
from test_standalone import TOKEN, Server, running_server, start_server, stop_server, wait_metrics
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tracklab_jupyter.cli import build_parser
from tracklab_jupyter.server.endpoints import routes

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "DEPLOY.md"
READ = "read-only-dashboard-token"
DASH = "https://dash.example.org"
ALLOWED = f"{DASH},^https://[a-z]+\\.corp\\.example"  # no $: matched whole anyway


# -- certificates -----------------------------------------------------------------------------

def make_certificate(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: with the openssl
    command where there is one, else with the cryptography package."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    if shutil.which("openssl"):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key),
                        "-out", str(cert)], check=True, capture_output=True, timeout=60)
        return cert, key
    x509 = pytest.importorskip("cryptography.x509")
    import datetime
    import ipaddress

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("certs")
    cert, key = make_certificate(directory, "server")
    other_cert, other_key = make_certificate(directory, "other")
    return {"cert": cert, "key": key, "other_cert": other_cert, "other_key": other_key}


def client_context(cert: Path) -> ssl.SSLContext:
    """A TLS client that trusts only ``cert`` and checks the host name."""
    context = ssl.create_default_context(cafile=str(cert))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    return context


# -- requests ---------------------------------------------------------------------------------

def call(server: Server, method: str, path: str, token: str | None = TOKEN,
         headers: dict[str, str] | None = None, body: bytes | None = None,
         context: ssl.SSLContext | None = None) -> tuple[int, dict[str, str], bytes]:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"token {token}"
    request = urllib.request.Request(server.url(path), data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def route_paths() -> list[tuple[str, list[str]]]:
    """Every route of the standalone server, its path parameters filled in, with its
    methods."""
    out = [(re.sub(r"\(\?P<\w+>[^)]*\)", "x", pattern), sorted(endpoints))
           for pattern, endpoints in routes()]
    return [*out, ("api/openapi.json", ["GET"]), ("ws", ["GET"]), ("api/nothing/here", ["GET"])]


@pytest.fixture
def cors_server(tmp_path) -> Iterator[Server]:
    yield from running_server(tmp_path / "data", "--token", TOKEN, "--allow-origin", ALLOWED,
                              env={"TRACKLAB_READ_TOKEN": READ})


@pytest.fixture
def plain_server(tmp_path) -> Iterator[Server]:
    yield from running_server(tmp_path / "data", "--token", TOKEN)


# -- HTTPS ------------------------------------------------------------------------------------

async def test_https_with_a_self_signed_certificate(tmp_path, certs):
    srv = start_server(tmp_path / "data", "--token", TOKEN, "--certfile", str(certs["cert"]),
                       env={"TRACKLAB_KEYFILE": str(certs["key"])})
    try:
        assert srv.scheme == "https"
        # The next start-up lines (already written with the first one).
        told = srv.proc.stdout.readline() + srv.proc.stdout.readline()  # type: ignore
        assert f"wss://127.0.0.1:{srv.port}/ws" in told and "HTTPS; same-origin only" in told
        context = client_context(certs["cert"])
        status, headers, body = call(srv, "GET", "/api/health", context=context)
        assert status == 200 and json.loads(body)["role"] == "recorder"
        assert "Strict-Transport-Security" not in headers  # HSTS is off by default
        # The server presents our certificate: a client that trusts another one refuses it,
        # and so does one with the system's authorities.
        for other in (client_context(certs["other_cert"]), ssl.create_default_context()):
            with pytest.raises(urllib.error.URLError) as info:
                call(srv, "GET", "/api/health", context=other)
            assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
        with ssl.create_connection(("127.0.0.1", srv.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            presented = tls.getpeercert(binary_form=True)
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert presented == ssl.PEM_cert_to_DER_cert(certs["cert"].read_text())
        # Plain HTTP on the TLS port gets no answer.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/api/health?token={TOKEN}",
                                   timeout=10)
        # The WebSocket over TLS.
        ws = await websocket_connect(HTTPRequest(
            f"wss://127.0.0.1:{srv.port}/ws", headers={"Authorization": f"token {TOKEN}"},
            ssl_options=context))
        assert json.loads(await ws.read_message())["type"] == "hello"
        ws.close()
    finally:
        stop_server(srv)


def test_hsts_only_when_asked(tmp_path, certs):
    srv = start_server(tmp_path / "data", "--token", TOKEN, "--certfile", str(certs["cert"]),
                       "--keyfile", str(certs["key"]), "--hsts-seconds", "600")
    try:
        status, headers, _ = call(srv, "GET", "/api/health",
                                  context=client_context(certs["cert"]))
        assert status == 200 and headers["Strict-Transport-Security"] == "max-age=600"
    finally:
        stop_server(srv)


@pytest.mark.parametrize("case", ["cert only", "key only", "mismatch", "missing", "not pem",
                                  "encrypted", "env mismatch", "hsts without tls"])
def test_a_bad_certificate_pair_is_one_clear_line(tmp_path, certs, case):
    cert, key = str(certs["cert"]), str(certs["key"])
    env: dict[str, str] = {}
    args = {"cert only": ["--certfile", cert],
            "key only": ["--keyfile", key],
            "mismatch": ["--certfile", cert, "--keyfile", str(certs["other_key"])],
            "missing": ["--certfile", str(tmp_path / "nope.crt"), "--keyfile", key],
            "not pem": ["--certfile", key, "--keyfile", key],
            "encrypted": ["--certfile", cert, "--keyfile", str(tmp_path / "enc.key")],
            "env mismatch": [],
            "hsts without tls": ["--hsts-seconds", "60"]}[case]
    if case == "encrypted":  # the same key, encrypted with a passphrase
        subprocess.run(["openssl", "pkey", "-in", str(certs["key"]), "-aes256", "-passout",
                        "pass:passphrase", "-out", str(tmp_path / "enc.key")], check=True,
                       capture_output=True, timeout=30)
    if case == "env mismatch":
        env = {"TRACKLAB_CERTFILE": str(certs["other_cert"]), "TRACKLAB_KEYFILE": key}
    expected = {"cert only": "--certfile needs --keyfile",
                "key only": "--keyfile needs --certfile",
                "mismatch": "--keyfile (" + str(certs["other_key"]) + ") is not the key of "
                            "--certfile",
                "missing": "--certfile: no such file",
                "not pem": "are not a PEM certificate and its key",
                "encrypted": "--keyfile: the key is encrypted",
                "env mismatch": "TRACKLAB_KEYFILE (" + key + ") is not the key of "
                                "TRACKLAB_CERTFILE",
                "hsts without tls": "--hsts-seconds needs HTTPS"}[case]
    done = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "data"), *args], capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
        env={**_clean_env(), **env})
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items()
            if not k.startswith("TRACKLAB_") or k == "TRACKLAB_DATA_DIR"}


# -- CORS -------------------------------------------------------------------------------------

def test_preflight_is_answered_on_every_route_for_allowed_origins(cors_server):
    wait_metrics(cors_server)
    for origin in (DASH, "https://team.corp.example"):
        for path, methods in route_paths():
            for method in methods:
                status, headers, body = call(cors_server, "OPTIONS", "/" + path, token=None,
                                             headers={"Origin": origin,
                                                      "Access-Control-Request-Method": method,
                                                      "Access-Control-Request-Headers":
                                                          "authorization"})
                assert status == 204, (path, method, status, body)
                assert headers["Access-Control-Allow-Origin"] == origin, (path, headers)
                assert method in headers["Access-Control-Allow-Methods"].split(", "), path
                assert "Authorization" in headers["Access-Control-Allow-Headers"], path
                assert "Origin" in headers["Vary"]
    # A method the route does not have is not allowed by the preflight.
    status, headers, _ = call(cors_server, "OPTIONS", "/api/system/metrics", token=None,
                              headers={"Origin": DASH,
                                       "Access-Control-Request-Method": "DELETE"})
    assert status == 405 and "DELETE" not in headers.get("Access-Control-Allow-Methods", "")


def test_cross_origin_requests_carry_cors_headers_or_are_refused(cors_server):
    wait_metrics(cors_server)
    status, headers, body = call(cors_server, "GET", "/api/system/metrics",
                                 headers={"Origin": DASH})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == DASH
    assert "ETag" in headers["Access-Control-Expose-Headers"]
    # Errors are readable by the allowed page too.
    status, headers, body = call(cors_server, "GET", "/api/system/metrics", token=None,
                                 headers={"Origin": DASH})
    assert status == 401 and headers["Access-Control-Allow-Origin"] == DASH
    # Regexes match the whole origin; other origins get a JSON 403 and no CORS header,
    # preflight or not, token or not.
    for origin in ("https://evil.example", "https://team.corp.example.evil.net",
                   "http://dash.example.org", "null"):
        for method, extra in (("OPTIONS", {"Access-Control-Request-Method": "GET"}),
                              ("GET", {})):
            status, headers, body = call(cors_server, method, "/api/system/metrics",
                                         headers={"Origin": origin, **extra})
            assert status == 403, (origin, method)
            assert "Access-Control-Allow-Origin" not in headers
            assert json.loads(body)["error"] == "Forbidden"
            assert "cross-origin request refused" in json.loads(body)["detail"]


def test_nothing_is_allowed_cross_origin_by_default(plain_server):
    wait_metrics(plain_server)
    status, headers, _ = call(plain_server, "OPTIONS", "/api/runs/x", token=None,
                              headers={"Origin": DASH,
                                       "Access-Control-Request-Method": "DELETE"})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    status, headers, _ = call(plain_server, "DELETE", "/api/runs/x",
                              headers={"Origin": DASH})
    assert status == 403 and "Access-Control-Allow-Origin" not in headers
    # Same-origin requests and clients without an Origin are served.
    same = f"http://127.0.0.1:{plain_server.port}"
    status, headers, _ = call(plain_server, "GET", "/api/health", headers={"Origin": same})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == same
    assert call(plain_server, "GET", "/api/health")[0] == 200
    # A plain OPTIONS (no preflight) says what the route allows.
    status, headers, _ = call(plain_server, "OPTIONS", "/api/runs/x", token=None)
    assert status == 204 and headers["Allow"] == "DELETE, GET, PATCH, OPTIONS"


async def _ws(server: Server, origin: str | None, token: str = TOKEN):
    headers = {"Authorization": f"token {token}"}
    if origin is not None:
        headers["Origin"] = origin
    ws = await websocket_connect(HTTPRequest(f"ws://127.0.0.1:{server.port}/ws",
                                             headers=headers))
    hello = json.loads(await ws.read_message())
    ws.close()
    return hello


async def test_websocket_accepts_only_allowed_origins(cors_server, plain_server):
    wait_metrics(cors_server)
    wait_metrics(plain_server)
    same = "http://127.0.0.1:{}"
    for srv, allowed, refused in (
            (cors_server, [DASH, "https://team.corp.example", None],
             ["https://evil.example", "https://x.corp.example.evil.net"]),
            (plain_server, [None], [DASH, "https://evil.example"])):
        for origin in [*allowed, same.format(srv.port)]:
            assert (await _ws(srv, origin))["type"] == "hello", origin
        for origin in refused:
            with pytest.raises(Exception) as info:
                await _ws(srv, origin)
            assert "403" in str(info.value), origin


# -- the read-only token ----------------------------------------------------------------------

def _make_run(data_dir: Path) -> str:
    import os

    env = {**os.environ, "TRACKLAB_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-c",
                           "import tracklab; r = tracklab.init(project='prod', "
                           "system_monitor=False); r.log({'loss': 0.5}); print(r.id)"],
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


async def test_the_read_token_reads_but_never_edits(cors_server, tmp_path):
    run_id = _make_run(tmp_path / "data")
    wait_metrics(cors_server)
    status, _, body = call(cors_server, "GET", "/api/runs?project=prod", token=READ)
    assert status == 200 and [r["id"] for r in json.loads(body)["runs"]] == [run_id]
    assert call(cors_server, "GET", "/metrics", token=READ)[0] == 200
    assert (await _ws(cors_server, None, token=READ))["type"] == "hello"
    for method, body in (("PATCH", b'{"notes": "no"}'), ("DELETE", None)):
        status, _, answer = call(cors_server, method, f"/api/runs/{run_id}", token=READ,
                                 body=body, headers={"Content-Type": "application/json"})
        assert status == 403, (method, answer)
        error = json.loads(answer)
        assert error["error"] == "Forbidden" and "may only read" in error["detail"]
    # Nothing changed; the full token still edits.
    status, _, body = call(cors_server, "GET", f"/api/runs/{run_id}", token=READ)
    assert status == 200 and json.loads(body).get("notes") in (None, "")
    status, _, body = call(cors_server, "PATCH", f"/api/runs/{run_id}",
                           body=b'{"notes": "yes"}', headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["notes"] == "yes"
    assert call(cors_server, "GET", "/api/health", token="wrong")[0] == 403


def test_a_read_only_server_refuses_edits_with_any_token(tmp_path):
    run_id = _make_run(tmp_path / "data")
    srv = start_server(tmp_path / "data", "--token", TOKEN, "--read-only")
    try:
        wait_metrics(srv)
        status, _, answer = call(srv, "DELETE", f"/api/runs/{run_id}")
        assert status == 403 and "read-only" in json.loads(answer)["detail"]
        assert call(srv, "GET", f"/api/runs/{run_id}")[0] == 200
    finally:
        stop_server(srv)


def test_the_read_token_must_differ_from_the_token(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path), "--token", TOKEN, "--read-token", TOKEN],
        capture_output=True, text=True, timeout=60, env=_clean_env())
    assert done.returncode == 2 and "--read-token must differ" in done.stderr
    assert TOKEN not in done.stderr


# -- logs -------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["--verbose", "--log-level", "TRACKLAB_LOG_LEVEL"])
def test_logs_never_contain_a_token(tmp_path, how):
    args, env = {"--verbose": (["--verbose"], {}),
                 "--log-level": (["--log-level", "info"], {}),
                 "TRACKLAB_LOG_LEVEL": ([], {"TRACKLAB_LOG_LEVEL": "info"})}[how]
    srv = start_server(tmp_path / "data", "--token", TOKEN, "--read-token", READ, *args,
                       env=env)
    wait_metrics(srv)
    for token in (TOKEN, READ, "wrong-token-value"):
        srv.get("/api/health", token=token, header=False)  # ?token=
        srv.get("/api/health", token=token)
    call(srv, "DELETE", "/api/runs/x", token=READ)
    output = stop_server(srv)
    assert "200 GET /api/health?token=[secret]" in output  # the access log is on
    if how == "--verbose":
        assert "DEBUG " in output
    for secret in (TOKEN, READ, "wrong-token-value"):
        assert secret not in output


def test_verbose_before_the_subcommand_still_counts():
    args = build_parser().parse_args(["-v", "serve"])
    assert args.verbose is True
    assert build_parser().parse_args(["serve", "--verbose"]).verbose is True
    assert build_parser().parse_args(["serve"]).verbose is False


def test_an_unknown_log_level_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tracklab_jupyter", "serve", "--port", "0", "--data-dir",
         str(tmp_path), "--log-level", "LOUD"], capture_output=True, text=True, timeout=60,
        env=_clean_env())
    assert done.returncode == 2 and "--log-level: unknown log level 'LOUD'" in done.stderr


# -- docs/DEPLOY.md ---------------------------------------------------------------------------

def _block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", DEPLOY.read_text(encoding="utf-8"), re.S)
    assert match, f"no {language} block in docs/DEPLOY.md"
    return match.group(1)


def test_the_systemd_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        # Debian (the CI machines) has it in the systemd package.
        unavailable("systemd-analyze is not installed (Debian package systemd)")
    unit = _block("ini")
    assert "ExecStart=%h/.local/bin/tracklab-jupyter serve " in unit
    assert "EnvironmentFile=" in unit and "TRACKLAB_DATA_DIR=" in unit
    assert "TRACKLAB_TOKEN" not in unit.split("ExecStart=")[1]  # the token is in the file
    # systemd-analyze checks that the program exists: point it at the installed one.
    program = shutil.which("tracklab-jupyter") or sys.executable
    path = tmp_path / "tracklab.service"
    path.write_text(unit.replace("%h/.local/bin/tracklab-jupyter", program), encoding="utf-8")
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                          timeout=60)
    problems = [line for line in (done.stdout + done.stderr).splitlines()
                if "tracklab.service" in line]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
    # The options of its ExecStart are the real command line's.
    command = unit.split("ExecStart=")[1].splitlines()[0].replace("%h", "/home/u")
    build_parser().parse_args(shlex.split(command)[1:])


def test_the_container_recipe_runs_the_real_command():
    recipe = _block("dockerfile")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", recipe, re.M).group(1))  # type: ignore
    assert cmd[:2] == ["tracklab-jupyter", "serve"]
    args = build_parser().parse_args(cmd[1:])
    assert args.host == "0.0.0.0" and args.port == 8000
    assert "TRACKLAB_DATA_DIR=/data" in recipe and "USER " in recipe
    assert "TOKEN" not in recipe.split("CMD")[1]
