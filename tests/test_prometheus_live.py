"""docs/PROMETHEUS.md and docs/grafana/tracklab.json against the real thing: the dashboard's
queries name only families a real server serves, every scrape config of the page passes
``promtool check config``, and a real Prometheus, configured from the page's Jupyter block,
scrapes a real Jupyter server (two fake H200s, one kernel) and answers every dashboard query
with data."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import urllib.parse
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import IN_CI
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tracklab_jupyter.prometheus.names import EXTRA_FAMILIES, MAPPINGS

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "PROMETHEUS.md"
DASHBOARD = DOCS / "grafana" / "tracklab.json"
DS_REF = "${DS_PROMETHEUS}"
#: Units of Grafana's unit picker that the dashboard may use.
GRAFANA_UNITS = {"percentunit", "bytes", "Bps", "watt", "celsius", "hertz", "s", "short",
                 "none"}
#: Families that exist only where the host has the thing (swap): excused from "served" and
#: "has data" only on a host without it.
HOST_HAS_SWAP = psutil.swap_memory().total > 0
NEEDS_SWAP = {"tracklab_swap_used_bytes", "tracklab_swap_utilization_ratio"}
#: Every family the server can serve (names.py), as sample names (counters with _total).
KNOWN = ({f.name for m in MAPPINGS for f in m.families}
         | {name for name, *_ in EXTRA_FAMILIES})
#: Grafana's variables in an expr, and what the tests evaluate them as.
VARIABLES = {"node": ".*", "gpu": ".*", "__rate_interval": "10s"}
#: Metric names in PromQL (``tracklab_`` prefix; labels inside braces never start with it).
METRIC = re.compile(r"\btracklab_[a-z0-9_]+")
BLOCK = re.compile(r"<!-- (scrape-config|targets-file): (\S+) -->\n```yaml\n(.*?)```", re.S)
JOB_TIMEOUT = 25.0


# -- helpers ---------------------------------------------------------------------------------


def binary(name: str) -> str:
    """The path of a Prometheus binary; skip without it (fail under CI=true)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is missing: run scripts/test-setup.sh (Debian package prometheus)"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the Prometheus checks must run)")
        pytest.skip(message)
    return path


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def data_panels(board: dict) -> list[dict]:
    """Every panel with queries (rows hold none), nested rows' panels included."""
    out = []
    for panel in board["panels"]:
        out += panel.get("panels", []) if panel["type"] == "row" else [panel]
    return out


def exprs(board: dict) -> list[tuple[str, str]]:
    """``(panel title, expr)`` of every query of the dashboard."""
    return [(p["title"], t["expr"]) for p in data_panels(board) for t in p["targets"]]


def evaluated(expr: str) -> str:
    """``expr`` with Grafana's variables replaced by what a test evaluates."""
    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        assert name in VARIABLES, f"unknown variable ${name} in {expr}"
        return VARIABLES[name]
    out = re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)
    assert "$" not in out, out
    return out


def doc_blocks() -> dict[tuple[str, str], str]:
    """The marked YAML blocks of docs/PROMETHEUS.md: ``(kind, name) -> text``."""
    blocks = BLOCK.findall(PAGE.read_text())
    found = {(kind, name): text for kind, name, text in blocks}
    assert len(found) == len(blocks), "a block name is repeated"
    return found


def localize(job: dict, tmp_path: Path, files: dict[str, str]) -> dict:
    """``job`` with every file it names (credentials, file_sd lists) moved into ``tmp_path``
    and written there: ``files`` maps a documented path's name to its content (default: a
    token)."""
    job = json.loads(json.dumps(job))
    auth = job.get("authorization", {})
    if "credentials_file" in auth:
        path = tmp_path / Path(auth["credentials_file"]).name
        path.write_text(files.get(path.name, "not-a-real-token\n"))
        auth["credentials_file"] = str(path)
    for sd in job.get("file_sd_configs", []):
        moved = []
        for name in sd["files"]:
            path = tmp_path / Path(name).name
            assert path.name in files, f"the page has no targets file for {name}"
            path.write_text(files[path.name])
            moved.append(str(path))
        sd["files"] = moved
    return job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served_names(text: str) -> set[str]:
    """Sample names of a text exposition (prometheus_client's parser drops ``_total`` from
    counter family names, not from their samples)."""
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def jp_server_config(tracklab_data_dir, fake_nvml_factory):
    # Two recorded H200s, installed before the server starts; kernels read twice a second.
    fake_nvml_factory(gpus=2)
    return {
        "ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
        "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                     "flush_interval": 0.5, "kernel_interval": 0.5},
    }


@pytest.fixture
def jp_base_url():
    # pytest-jupyter's default base_url is "/a%40b/": Prometheus, like any client that takes
    # a path rather than a raw URL, escapes its "%" (to "/a%2540b/"), which the server does
    # not route. A plain base_url that is not "/" still checks the docs' <base_url> rule.
    return "/hub/user/alice/"


async def start_kernel(jp_fetch) -> str:
    """A notebook session (python3 kernel) through the REST API; its kernel id."""
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps({
        "path": "work/train.ipynb", "name": "train.ipynb", "type": "notebook",
        "kernel": {"name": "python3"}}))
    return json.loads(response.body)["kernel"]["id"]


async def scrape_with_kernel(jp_fetch, kernel: str, timeout: float = 20.0) -> str:
    """``tracklab/metrics`` once it holds the kernel's series (its CPU needs two passes of
    the kernel tracker) and both GPUs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            text = (await jp_fetch("tracklab", "metrics")).body.decode()
        except HTTPClientError as error:
            assert error.code == 503, error  # no sample yet
            text = ""
        if (f'tracklab_kernel_resident_memory_bytes{{kernel="{kernel}"' in text
                and f'tracklab_kernel_cpu_utilization_ratio{{kernel="{kernel}"' in text
                and 'tracklab_gpu_info{' in text and 'gpu="1"' in text):
            return text
        assert loop.time() < deadline, "the scrape never showed the kernel and both GPUs"
        await asyncio.sleep(0.2)


# -- the dashboard ---------------------------------------------------------------------------


def test_the_dashboard_is_an_importable_grafana_model():
    board = dashboard()
    assert board["schemaVersion"] >= 36 and board["uid"] and board["title"]
    # Import asks for the data source: one input, and every query's panel names it.
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")]
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Host", "GPUs", "Nodes", "Kernels", "Sampler cost"]
    panels = data_panels(board)
    ids = [p["id"] for p in board["panels"]] + [p["id"] for p in panels
                                                 if p not in board["panels"]]
    assert len(ids) == len(set(ids)), "two panels share an id"
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat", "gauge", "table"), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DS_REF}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DS_REF, panel["title"]
            assert target["refId"] and target["expr"].strip(), panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in GRAFANA_UNITS, panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"node", "gpu"}
    assert variables["node"]["query"]["query"] == "label_values(tracklab_node_info, node)"
    assert variables["gpu"]["query"]["query"] == \
        'label_values(tracklab_gpu_info{node=~"$node"}, gpu)'
    for variable in variables.values():
        assert variable["multi"] and variable["includeAll"], variable["name"]
        assert variable["datasource"]["uid"] == DS_REF
    # The brief's panels, by their families and units.
    by_title = {p["title"]: p for p in panels}
    text = json.dumps(board)
    for needle in ("rate(tracklab_disk_read_bytes_total", "rate(tracklab_gpu_energy_joules_total",
                   "group_left(name) tracklab_gpu_info", "tracklab_kernel_info",
                   "tracklab_node_up", "tracklab_sampler_cpu_seconds_total"):
        assert needle in text, needle
    assert by_title["GPU power"]["fieldConfig"]["defaults"]["unit"] == "watt"
    assert by_title["Disk read / write"]["fieldConfig"]["defaults"]["unit"] == "Bps"
    assert by_title["CPU utilisation"]["fieldConfig"]["defaults"]["unit"] == "percentunit"


async def test_every_dashboard_query_names_only_families_a_real_server_serves(
        jp_fetch, tracklab_server):
    kernel = await start_kernel(jp_fetch)
    served = served_names(await scrape_with_kernel(jp_fetch, kernel))
    used = {name for _title, expr in exprs(dashboard()) for name in METRIC.findall(expr)}
    assert used <= KNOWN, f"not a tracklab family at all: {sorted(used - KNOWN)}"
    excused = set() if HOST_HAS_SWAP else NEEDS_SWAP
    missing = used - served - excused
    assert not missing, f"queried but not served by a real server: {sorted(missing)}"
    # Each row's families are there: two GPUs, the kernel named by its notebook.
    assert {"tracklab_gpu_energy_joules_total", "tracklab_kernel_info",
            "tracklab_disk_read_bytes_total", "tracklab_sampler_samples_total"} <= used


# -- the scrape configs of docs/PROMETHEUS.md ------------------------------------------------


def test_promtool_accepts_every_scrape_config_of_the_page(tmp_path):
    promtool = binary("promtool")
    blocks = doc_blocks()
    configs = {name: yaml.safe_load(text) for (kind, name), text in blocks.items()
               if kind == "scrape-config"}
    assert set(configs) == {"standalone", "jupyter", "jupyterhub"}
    # The targets file's documented path is its first line (a comment).
    files = {}
    for (kind, _name), text in blocks.items():
        if kind == "targets-file":
            first = text.splitlines()[0]
            assert first.startswith("# /"), first
            files[Path(first[2:]).name] = text
    assert files, "the page shows no targets file"
    for name, config in configs.items():
        assert list(config) == ["scrape_configs"], name
        jobs = [localize(job, tmp_path, files) for job in config["scrape_configs"]]
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"},
                                        "scrape_configs": jobs}))
        done = subprocess.run([promtool, "check", "config", str(path)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
        assert "SUCCESS" in done.stdout + done.stderr, name
    hub = configs["jupyterhub"]["scrape_configs"][0]
    assert hub["authorization"]["type"] == "token" and hub["file_sd_configs"]
    paths = [g["labels"]["__metrics_path__"] for text in files.values()
             for g in yaml.safe_load(text)]
    assert paths and all(re.fullmatch(r"/user/[^/]+/tracklab/metrics", p) for p in paths)
    page = PAGE.read_text()
    assert '"scopes": ["access:servers"]' in page and "c.JupyterHub.load_roles" in page


# -- a real Prometheus scraping a real server ------------------------------------------------


async def prom_query(client: AsyncHTTPClient, base: str, query: str) -> dict:
    """``/api/v1/query`` of the test's Prometheus; the decoded body (any status)."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    response = await client.fetch(url, raise_error=False)
    if response.code == 503:  # still starting (loading its TSDB)
        return {"status": "starting"}
    assert response.code in (200, 400, 422), (query, response.code, response.body)
    return json.loads(response.body)


async def test_a_real_prometheus_scrapes_the_server_and_answers_every_panel(
        jp_fetch, tracklab_server, jp_http_port, jp_base_url, jp_auth_header, tmp_path):
    prometheus = binary("prometheus")
    # The page's Jupyter block, pointed at this server: host:port, base_url, its token.
    job = yaml.safe_load(doc_blocks()["scrape-config", "jupyter"])["scrape_configs"][0]
    scheme, token = jp_auth_header["Authorization"].split(" ", 1)
    assert scheme.lower() == "token"
    job = localize(job, tmp_path, {"jupyter-token": token + "\n"})
    assert job["metrics_path"] == "/tracklab/metrics"  # the page's default base_url
    job["metrics_path"] = jp_base_url + "tracklab/metrics"
    job["scrape_interval"] = "1s"
    job["static_configs"] = [{"targets": [f"127.0.0.1:{jp_http_port}"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [job]}))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT)
    client = AsyncHTTPClient(force_instance=True)
    name = job["job_name"]
    try:
        # While Prometheus starts (its first scrape comes about 5 s later), a kernel.
        kernel = await start_kernel(jp_fetch)
        await scrape_with_kernel(jp_fetch, kernel)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + JOB_TIMEOUT
        # Up, with samples, for three scrapes (rate() over 10s needs two of them).
        scrapes = {}
        while True:
            try:
                scrapes = await prom_query(
                    client, base, f'count_over_time(up{{job="{name}"}}[1m]) >= 3 '
                    f'and on() (min(up{{job="{name}"}}) == 1)')
            except (ConnectionError, OSError):  # not listening yet
                scrapes = {}
            if scrapes.get("status") == "success" and scrapes["data"]["result"]:
                break
            assert proc.poll() is None, log.read_text()
            assert loop.time() < deadline, f"never up three times: {scrapes}\n" + (
                await targets_health(client, base)) + log.read_text()[-3000:]
            await asyncio.sleep(0.3)
        scraped = await prom_query(client, base, f'scrape_samples_scraped{{job="{name}"}}')
        assert float(scraped["data"]["result"][0]["value"][1]) > 0, scraped

        # The dashboard's variables resolve: this node, both GPUs.
        node = await label_values(client, base, "node", "tracklab_node_info")
        assert node == [tracklab_server.monitor.node], node
        gpus = await label_values(client, base, "gpu", "tracklab_gpu_info")
        assert gpus == ["0", "1"], gpus

        # Every panel query: a success, and data (swap only where the host has swap).
        pending = {(title, evaluated(expr)) for title, expr in exprs(dashboard())}
        results: dict[tuple[str, str], dict] = {}
        while True:
            for key in sorted(pending):
                body = await prom_query(client, base, key[1])
                assert body["status"] == "success", (key, body)
                results[key] = body
                if body["data"]["result"] or (not HOST_HAS_SWAP and set(
                        METRIC.findall(key[1])) <= NEEDS_SWAP):
                    pending.discard(key)
            if not pending or loop.time() >= deadline:
                break
            await asyncio.sleep(0.5)
        assert not pending, f"queries without data: {sorted(pending)}"
        # The joins carry the info labels: the GPU model, the kernel's notebook.
        joined = [r for (title, _), body in results.items() if title == "GPU utilisation"
                  for r in body["data"]["result"]]
        assert [r["metric"].get("name") for r in joined] == ["NVIDIA H200"] * 2, joined
        kernels = [r["metric"] for (title, _), body in results.items()
                   if title == "Kernel resident memory" for r in body["data"]["result"]]
        assert [(k.get("kernel"), k.get("notebook")) for k in kernels] == [
            (kernel, "work/train.ipynb")], kernels
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        client.close()


async def label_values(client: AsyncHTTPClient, base: str, label: str, match: str) -> list:
    """Grafana's ``label_values(match, label)``, through Prometheus's label API."""
    url = f"{base}/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": match})
    body = json.loads((await client.fetch(url)).body)
    assert body["status"] == "success", body
    return body["data"]


async def targets_health(client: AsyncHTTPClient, base: str) -> str:
    """What Prometheus says about its targets (for a failure message)."""
    try:
        body = json.loads((await client.fetch(f"{base}/api/v1/targets")).body)
    except (OSError, HTTPClientError) as error:
        return f"targets: {error}\n"
    return "".join(f"target {t['scrapeUrl']}: {t['health']} {t['lastError']}\n"
                   for t in body["data"]["activeTargets"])
