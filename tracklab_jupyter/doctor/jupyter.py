"""The doctor's Jupyter checks: is the server extension enabled, is the JupyterLab sidebar
installed and enabled, do the installed pieces have one version, and does every running
Jupyter server answer ``tracklab/api/health`` and open the ``tracklab/ws`` stream."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

from tracklab_jupyter._version import __version__
from tracklab_jupyter.doctor.net import NGINX_WS_FIX, fetch, run_private, ws_hello, ws_url
from tracklab_jupyter.doctor.report import Finding, ok, problem, skipped, warning

SECTION = "jupyter"
MODULE = "tracklab_jupyter"  # the server extension's name in jpserver_extensions
LABEXTENSION = "tracklab-jupyter"  # labextension/package.json "name"
DISTRIBUTION = "tracklab-jupyter"
ENABLE_FIX = f"jupyter server extension enable {MODULE}"
REINSTALL_FIX = f"pip install --force-reinstall {DISTRIBUTION}"


def jupyter_checks(*, timeout: float = 5.0, servers: list[dict] | None = None) -> list[Finding]:
    """Every Jupyter check, in order. ``servers`` replaces the running servers found in
    Jupyter's runtime dir (dicts with ``url``, ``base_url``, ``token`` as
    ``list_running_servers`` yields them)."""
    if importlib.util.find_spec("jupyter_server") is None:
        return [skipped(SECTION, "jupyter server", "jupyter_server is not installed here: "
                        "the sidebar and the server extension need it "
                        "(pip install jupyterlab)")]
    findings = [server_extension_check()]
    lab, lab_version = labextension_check()
    findings.append(lab)
    findings.append(versions_check(lab_version))
    findings.extend(running_server_checks(timeout=timeout, servers=servers))
    return findings


# -- installation -----------------------------------------------------------------------------

def server_extension_check() -> Finding:
    """``tracklab_jupyter`` in jpserver_extensions, read the way ServerApp reads it: the
    config dirs merged, the first (highest) dir winning, and the module importable with a
    linker and loader (what ``jupyter server extension list`` validates)."""
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager
    from jupyter_server.extension.manager import ExtensionPackage

    paths = jupyter_config_path()
    extensions = ExtensionConfigManager(read_config_path=paths).get_jpserver_extensions()
    decided = _deciding_dir(paths, MODULE)
    if MODULE not in extensions:
        return problem(SECTION, "server extension",
                       f"{MODULE} is not in any Jupyter config dir ({', '.join(paths)})",
                       ENABLE_FIX, config_path=paths)
    if not extensions[MODULE]:
        return problem(SECTION, "server extension",
                       f"{MODULE} is disabled (in {decided or 'the Jupyter config'})",
                       ENABLE_FIX + " (or remove the false entry in that dir), then restart "
                       "Jupyter", config_dir=decided)
    try:
        package = ExtensionPackage(name=MODULE, enabled=True)
        valid = package.validate()
        version = package.version
    except Exception as exc:  # a broken install is what we report
        return problem(SECTION, "server extension",
                       f"{MODULE} is enabled but does not load: "
                       f"{type(exc).__name__}: {exc}"[:300],
                       REINSTALL_FIX)
    if not valid:
        return problem(SECTION, "server extension",
                       f"{MODULE} is enabled but has no extension point jupyter_server can load",
                       REINSTALL_FIX)
    return ok(SECTION, "server extension", f"{MODULE} {version} enabled (in {decided})",
              version=version, config_dir=decided)


def _deciding_dir(paths: list[str], name: str) -> str | None:
    """The config dir whose entry for ``name`` wins: the first in ``paths`` that has one
    (ConfigManager merges back to front)."""
    from jupyter_server.extension.config import ExtensionConfigManager

    for path in paths:
        entries = ExtensionConfigManager(read_config_path=[path]).get_jpserver_extensions()
        if name in entries:
            return path
    return None


def labextension_check() -> tuple[Finding, str | None]:
    """The prebuilt sidebar: the first ``tracklab-jupyter/package.json`` along Jupyter's
    labextensions path (the copy JupyterLab serves), and not disabled in page_config.
    Returns the finding and the installed copy's version."""
    if (importlib.util.find_spec("jupyterlab") is None
            and importlib.util.find_spec("notebook") is None):
        return skipped(SECTION, "labextension", "JupyterLab is not installed here: no "
                       "sidebar to check"), None
    found = installed_labextension()
    if found is None:
        from jupyter_core.paths import jupyter_path

        return problem(SECTION, "labextension",
                       f"{LABEXTENSION} is not in any labextensions dir "
                       f"({', '.join(jupyter_path('labextensions'))})",
                       REINSTALL_FIX + " (the wheel installs the sidebar into "
                       "share/jupyter/labextensions)"), None
    path, package = found
    version = str(package.get("version", "?"))
    disabled = disabled_labextensions()
    ours = sorted(k for k in disabled if k == LABEXTENSION or k.startswith(LABEXTENSION + ":"))
    if ours:
        return problem(SECTION, "labextension",
                       f"{LABEXTENSION} {version} is installed but disabled ({', '.join(ours)})",
                       " && ".join(f"jupyter labextension enable {k}" for k in ours)
                       + ", then reload JupyterLab", path=str(path)), version
    if "_build" not in package.get("jupyterlab", {}):
        return problem(SECTION, "labextension",
                       f"{path} is not a built labextension (no jupyterlab._build)",
                       REINSTALL_FIX, path=str(path)), version
    return ok(SECTION, "labextension", f"{LABEXTENSION} {version} enabled ({path.parent})",
              path=str(path), version=version), version


def installed_labextension() -> tuple[Path, dict[str, Any]] | None:
    """The package.json JupyterLab uses (the first along the path wins, as in
    jupyterlab_server's get_federated_extensions) and its contents."""
    from jupyter_core.paths import jupyter_path

    for directory in jupyter_path("labextensions"):
        candidate = Path(directory) / LABEXTENSION / "package.json"
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name") == LABEXTENSION:
            return candidate, data
    return None


def disabled_labextensions() -> set[str]:
    """The names disabled in every labconfig/page_config.json along the config path, plus
    JupyterLab's app settings dir (a dict of name: true, or a list in older versions)."""
    merged: dict[str, Any] = {}
    try:
        from jupyterlab_server.config import get_static_page_config

        merged.update(_as_dict(get_static_page_config(level="all").get("disabledExtensions")))
    except ImportError:
        pass
    try:
        from jupyterlab.commands import get_app_dir

        settings = Path(get_app_dir()) / "settings" / "page_config.json"
        if settings.is_file():
            data = json.loads(settings.read_text(encoding="utf-8"))
            # lowest priority: the config dirs' entries override it
            merged = {**_as_dict(data.get("disabledExtensions")), **merged}
    except (ImportError, OSError, ValueError):
        pass
    return {name for name, off in merged.items() if off}


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return dict.fromkeys((str(v) for v in value), True)
    return {}


def versions_check(lab_version: str | None) -> Finding:
    """The package imported here, the installed distribution's metadata and the sidebar's
    package.json must agree: a mismatch is a half-done upgrade (an old sidebar talking to a
    new server, or the reverse)."""
    versions: dict[str, str] = {"python package": __version__}
    # From a source tree nothing is installed to disagree.
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions["installed distribution"] = metadata.version(DISTRIBUTION)
    if lab_version is not None:
        versions["labextension"] = lab_version
    if len(set(versions.values())) > 1:
        said = ", ".join(f"{k} {v}" for k, v in versions.items())
        return problem(SECTION, "versions", f"versions differ: {said}",
                       f"restart the Jupyter server after upgrading; reinstall with "
                       f"{REINSTALL_FIX}", **versions)
    return ok(SECTION, "versions", f"{__version__} everywhere ({', '.join(versions)})",
              **versions)


# -- running servers --------------------------------------------------------------------------

def running_server_checks(*, timeout: float = 5.0, servers: list[dict] | None = None
                          ) -> list[Finding]:
    """For each running server: the REST health check, then the WebSocket hello."""
    if servers is None:
        from jupyter_core.paths import jupyter_runtime_dir
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
        where = jupyter_runtime_dir()
    else:
        where = "the given list"
    if not servers:
        return [skipped(SECTION, "running servers", f"no running Jupyter server found (in "
                        f"{where}); start one with `jupyter lab` to check it")]
    findings: list[Finding] = []
    for info in servers:
        findings.extend(run_private(lambda info=info: _check_server(info, timeout)))
    return findings


async def _check_server(info: dict[str, Any], timeout: float) -> list[Finding]:
    url = str(info.get("url") or "")
    if not url.endswith("/"):
        url += "/"
    token = str(info.get("token") or "")
    name = url  # the runtime file's url: no token in it
    headers = {"Authorization": f"token {token}"} if token else {}
    # A local server from its own runtime file, often with a self-signed certificate: the
    # TLS of a public endpoint is the standalone checks' business, not this one's.
    verify = False
    health = await fetch(url + "tracklab/api/health", headers=headers, timeout=timeout,
                         verify=verify)
    rest = _health_finding(name, health, has_token=bool(token))
    findings = [rest]
    if rest.status == "problem" or (rest.status == "warning" and health.status != 200):
        findings.append(skipped(SECTION, "websocket",
                                "not tried: the REST check failed first"))
        return [_at(name, f) for f in findings]
    stream = await ws_hello(ws_url(url) + "tracklab/ws", headers=headers, timeout=timeout,
                            verify=verify)
    if stream.hello is not None:
        findings.append(ok(SECTION, "websocket",
                           f"hello received (version {stream.hello.get('version', '?')}, "
                           f"interval {stream.hello.get('interval_s', '?')} s)"))
    elif not stream.upgraded:
        how = f"HTTP {stream.status}" if stream.status else stream.error or "closed"
        findings.append(problem(
            SECTION, "websocket",
            f"REST works but the WebSocket upgrade failed ({how}"
            + (f": {stream.error}" if stream.status and stream.error else "")
            + "): a proxy between you and the server does not pass WebSocket upgrades",
            NGINX_WS_FIX, status=stream.status))
    else:
        findings.append(problem(SECTION, "websocket",
                                f"the stream opened but sent no hello: {stream.error}",
                                "restart the Jupyter server; its log says why (lines with "
                                "'tracklab')"))
    return [_at(name, f) for f in findings]


def _at(url: str, finding: Finding) -> Finding:
    """The finding with the server it is about: several servers may be running."""
    return replace(finding, found=f"{url}: {finding.found}", details={**finding.details,
                                                                     "url": url})


def _health_finding(name: str, health: Any, *, has_token: bool) -> Finding:
    check = "health"
    if health.status == 0:
        return problem(SECTION, check, f"no answer: {health.error}",
                       "is the server still running? `jupyter server list`; restart it with "
                       "`jupyter lab`")
    if health.status == 404:
        return problem(SECTION, check, "the server answers but has no tracklab/ endpoints: "
                       "the extension is not loaded in it",
                       f"{ENABLE_FIX}, then restart that server")
    if health.status in (401, 403) and not has_token:
        return warning(SECTION, check, f"HTTP {health.status}: this server has no token "
                       "(a password?), so the doctor cannot sign in",
                       "start Jupyter with a token (the default, or "
                       "--IdentityProvider.token=...) to check it here; else open the "
                       "sidebar in the browser")
    if health.status in (401, 403):
        return problem(SECTION, check, f"HTTP {health.status}: the server refused the token "
                       "in its own runtime file", "restart the server (a stale runtime file "
                       "from an earlier one with the same port?)")
    data = health.json()
    if health.status == 503:
        return problem(SECTION, check, f"tracklab is disabled in this server: "
                       f"{health.detail()}",
                       "fix the setting named above (jupyter_server_config.py or its "
                       "TRACKLAB_ environment variable), then restart the server")
    if health.status != 200 or not isinstance(data, dict) or "status" not in data:
        return problem(SECTION, check, f"HTTP {health.status}, not the health JSON: "
                       f"{health.detail() or health.body[:80]!r}",
                       "restart the Jupyter server; if a proxy is in front of it, let it pass "
                       "tracklab/ paths through")
    running = (data.get("versions") or {}).get("tracklab-jupyter")
    status = data.get("status")
    if running and running != __version__:
        return problem(SECTION, check, f"the server runs tracklab-jupyter {running}, "
                       f"{__version__} is installed", "restart the Jupyter server after "
                       f"upgrading; reinstall with {REINSTALL_FIX}", version=running)
    if status == "degraded":
        why = data.get("error") or "the sampler stopped"
        return warning(SECTION, check, f"status degraded: {why}",
                       "restart the Jupyter server; its log says why (lines with 'tracklab')",
                       health_status=status)
    return ok(SECTION, check, f"status {status}, role {data.get('role')}, version {running}",
              health_status=status, role=data.get("role"))
