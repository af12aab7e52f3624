"""The Prometheus exposition: one mapping table from the catalogue, a real server's reply
accepted by a real ``promtool`` (text) and prometheus_client's strict OpenMetrics parser,
counters that only go up and count real traffic, kernels in every scrape, limits."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess

import pytest
from conftest import IN_CI, loopback_transfer
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import HTTPClientError

from tracklab_jupyter.metrics.catalogue import CATALOGUE
from tracklab_jupyter.prometheus.exposition import TooManySeries, render
from tracklab_jupyter.prometheus.names import MAPPINGS, PLACEHOLDER_LABELS, UNITS, mapping_for
from tracklab_jupyter.prometheus.view import NodeView, ScrapeView

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
MB = 1 << 20


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is missing: run scripts/test-setup.sh (Debian package prometheus)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """``(sample name, labels) -> value`` of a text exposition."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


# -- the mapping table ---------------------------------------------------------------------


def test_every_catalogued_metric_has_a_mapping_and_nothing_else_does():
    patterns = [spec.pattern for spec in CATALOGUE]
    missing = [p for p in patterns if mapping_for(p) is None]
    assert not missing, f"catalogued metrics without a Prometheus mapping: {missing}"
    assert sorted(m.pattern for m in MAPPINGS) == sorted(patterns)
    for mapping in MAPPINGS:
        assert mapping.families or mapping.not_exported, mapping.pattern


def test_family_names_follow_the_conventions():
    names = [f.name for m in MAPPINGS for f in m.families]
    assert len(names) == len(set(names)), "two catalogue metrics share a family"
    for mapping in MAPPINGS:
        for family in mapping.families:
            name = family.name
            assert re.fullmatch(r"tracklab_[a-z][a-z0-9_]*", name), name
            assert (family.type == "counter") == name.endswith("_total"), name
            # no abbreviated or derived units: the catalogue's _pct, _ms, _mhz, _c, _w, _j,
            # _per_s become base units, ratios and counters
            assert not re.search(r"_(pct|ms|mhz|c|w|j|s|per_s|count)(_total)?$", name), name
            words = family.base_name.split("_")
            if mapping.pattern.endswith(("_bytes", "_bytes_per_s")):
                assert "bytes" in words, name
            if family.unit:
                assert family.unit in UNITS
            if family.scale == 0.01:
                assert family.unit == "ratio", name
            assert family.help and "\n" not in family.help
    for key in PLACEHOLDER_LABELS.values():
        assert re.fullmatch(r"[a-z_]+", key)


def test_a_view_becomes_labelled_families_with_base_units_and_per_device_counters():
    info = {"nvidia": {"vendor": "nvidia", "kind": "gpu", "driver": "580.159.04", "devices": [
        {"index": 0, "kind": "gpu", "vendor": "nvidia", "name": "NVIDIA H200",
         "uuid": "GPU-5f1c"}]},
        "disk": {"mounts": [{"mountpoint": "/home", "device": "/dev/vda1", "fstype": "ext4"}]},
        "system": {"hostname": "h", "os": "Linux", "architecture": "x86_64",
                   "cpu_model": "EPYC"}}
    metrics = {"gpu.0.util_pct": 87.0, "gpu.0.sm_clock_mhz": 1980.0, "gpu.0.energy_j": 5e6,
               "disk./home.used_bytes": 1e9, "cpu.core.3.util_pct": 50.0,
               "net.recv_bytes_per_s": 123.0, "kernel.ab12.rss_bytes": 1.0}
    counters = {"net": {"lo": (10, 20, 1, 2, 0, 0, 0, 0), "eth0.100": (1, 2, 3, 4, 5, 6, 7, 8)},
                "disk": {"vda": (100, 200, 4096, 8192)}}
    local = NodeView("h", True, 1.0, metrics, counters, info, local=True)
    down = NodeView("w2", False, 0.5, {}, {}, {})
    view = ScrapeView([local, down], kernel_series={"kernel.cd34.rss_bytes": 2.0},
                      kernels=[{"id": "cd34", "notebook": "a/b.ipynb", "name": "python3"}],
                      sampler={"samples": 10.0, "cpu_s": 0.5})
    got = samples(render(view)[0].decode())

    def value(family: str, **labels: str) -> float:
        return got[(family, frozenset(labels.items()))]

    gpu = {"node": "h", "gpu": "0", "uuid": "GPU-5f1c", "vendor": "nvidia"}
    assert value("tracklab_gpu_utilization_ratio", **gpu) == pytest.approx(0.87)
    assert value("tracklab_gpu_sm_clock_hertz", **gpu) == 1.98e9
    assert value("tracklab_gpu_energy_joules_total", **gpu) == 5e6
    assert value("tracklab_filesystem_used_bytes", node="h", mountpoint="/home",
                 device="/dev/vda1", fstype="ext4") == 1e9
    assert value("tracklab_cpu_core_utilization_ratio", node="h", cpu="3") == 0.5
    # network and disk counters per interface and device, from the raw counters (a VLAN's
    # dotted name kept whole); the catalogue's summed rate is not exported
    assert value("tracklab_network_receive_bytes_total", node="h", interface="lo") == 20
    assert value("tracklab_network_transmit_drops_total", node="h", interface="eth0.100") == 8
    assert value("tracklab_disk_written_bytes_total", node="h", device="vda") == 8192
    assert value("tracklab_disk_reads_completed_total", node="h", device="vda") == 100
    assert {dict(lab)["interface"] for n, lab in got
            if n == "tracklab_network_receive_bytes_total"} == {"lo", "eth0.100"}
    # kernels come from the tracker, not from the (sparse) sample
    assert value("tracklab_kernel_resident_memory_bytes", node="h", kernel="cd34") == 2.0
    assert not any(dict(lab).get("kernel") == "ab12" for _n, lab in got)
    assert value("tracklab_kernel_info", node="h", kernel="cd34", notebook="a/b.ipynb",
                 kernel_name="python3") == 1
    assert value("tracklab_gpu_info", node="h", gpu="0", uuid="GPU-5f1c", name="NVIDIA H200",
                 vendor="nvidia", driver="580.159.04") == 1
    assert value("tracklab_node_up", node="h") == 1 and value("tracklab_node_up", node="w2") == 0
    assert value("tracklab_sampler_samples_total", node="h") == 10
    assert not any(dict(lab).get("node") == "w2" for n, lab in got
                   if n not in ("tracklab_node_up", "tracklab_node_info",
                                "tracklab_node_last_sample_timestamp_seconds"))
    with pytest.raises(TooManySeries, match="max_prometheus_series"):
        render(view, max_series=5)


@pytest.mark.parametrize("accept", ["", OPENMETRICS])
def test_the_reply_is_encoded_in_pieces_that_join_into_prometheus_clients_own_output(
        accept, monkeypatch):
    from prometheus_client.exposition import choose_encoder

    from tracklab_jupyter.prometheus import exposition
    from tracklab_jupyter.prometheus.families import ScrapeCollector, build_families

    metrics = {f"gpu.{i}.util_pct": float(i) for i in range(4)} | {"mem.used_bytes": 1e9}
    view = ScrapeView([NodeView("h", True, 1.0, metrics, {"net": {"lo": (1,) * 8}}, {},
                                local=True)])
    monkeypatch.setattr(exposition, "PIECE_SECONDS", 0.0)  # one family per piece
    pieces, _content_type = exposition.render_pieces(view, accept)
    pieces = list(pieces)
    families, _count = build_families(view)
    encoder, _type = choose_encoder(accept)
    whole = encoder(ScrapeCollector(families))
    assert len(pieces) >= len(families) > 5
    assert b"".join(pieces) == whole
    if accept:
        assert pieces[-1] == b"# EOF\n" and all(b"# EOF" not in p for p in pieces[:-1])


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture
def jp_server_config(tracklab_data_dir, fake_nvml_factory):
    fake_nvml_factory(gpus=2)
    return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
            "TrackLab": {"data_dir": str(tracklab_data_dir), "interval": 0.2,
                         "flush_interval": 0.5, "kernel_interval": 0.5}}


async def scrape(jp_fetch, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    response = await jp_fetch("tracklab", "metrics", headers=headers)
    return response.body.decode(), response.headers["Content-Type"]


async def scrape_when(jp_fetch, predicate, what: str, timeout: float = 20.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            text, _type = await scrape(jp_fetch)
        except HTTPClientError as exc:
            if exc.code != 503:  # 503 while the monitor starts
                raise
            text = ""
        if text and predicate(text):
            return text
        assert loop.time() < deadline, f"no scrape with {what}:\n{text[:2000]}"
        await asyncio.sleep(0.2)


async def test_promtool_finds_nothing_to_lint_and_openmetrics_parses(jp_fetch, tmp_path):
    tool = promtool()
    text = await scrape_when(jp_fetch, lambda t: "tracklab_gpu_utilization_ratio{" in t
                             and "tracklab_cpu_utilization_ratio{" in t
                             and "tracklab_network_receive_bytes_total{" in t
                             and "tracklab_gpu_energy_joules_total{" in t,
                             "GPU (with the slow reads), CPU and network families")
    checked = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0 and not checked.stdout.strip(), \
        f"promtool: {checked.stdout}{checked.stderr}"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(f.documentation for f in families.values()), "a family without HELP"
    assert families["tracklab_gpu_energy_joules"].type == "counter"
    assert families["tracklab_gpu_info"].type == "gauge"  # info is a gauge of 1 in text

    body, content_type = await scrape(jp_fetch, OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith("# EOF\n")
    parsed = {f.name: f for f in om_families(body)}  # strict: raises on any flaw
    assert parsed["tracklab_gpu"].type == "info"  # OpenMetrics names info families bare
    assert parsed["tracklab_network_receive_bytes"].type == "counter"
    assert parsed["tracklab_network_receive_bytes"].unit == "bytes"
    assert parsed["tracklab_gpu_utilization_ratio"].unit == "ratio"
    # the same series either way; families the slow thread fills in may appear between two
    # scrapes, so compare two taken back to back once the set has settled
    for _attempt in range(50):
        text_names = {s.name for f in text_string_to_metric_families((await scrape(jp_fetch))[0])
                      for s in f.samples}
        body, _type = await scrape(jp_fetch, OPENMETRICS)
        om_names = {s.name for f in om_families(body) for s in f.samples}
        if om_names == text_names:
            break
        await asyncio.sleep(0.2)
    assert om_names == text_names
    # and the text reply stays the default for any other Accept
    _body, plain = await scrape(jp_fetch, "text/html,*/*")
    assert plain.startswith("text/plain; version=0.0.4")


async def test_counters_never_decrease_and_count_a_loopback_transfer(jp_fetch):
    def ready(text: str) -> bool:
        return ('interface="lo"' in text and "tracklab_disk_read_bytes_total{" in text
                and "tracklab_gpu_energy_joules_total{" in text)

    first = samples(await scrape_when(jp_fetch, ready, "loopback and disk counters"))
    counters = {k: v for k, v in first.items() if k[0].endswith("_total")}
    assert any(k[0] == "tracklab_gpu_energy_joules_total" for k in counters)
    lo = ("tracklab_network_receive_bytes_total",
          frozenset({"node": next(dict(k[1])["node"] for k in counters), "interface": "lo"}
                    .items()))
    assert lo in counters
    size = 20 * MB
    await asyncio.get_running_loop().run_in_executor(None, loopback_transfer, size)
    text = await scrape_when(jp_fetch, lambda t: samples(t).get(lo, 0) >= counters[lo] + size,
                             f"{size} more bytes received on lo")
    second = samples(text)
    for key, before in counters.items():
        if key in second:
            assert second[key] >= before, f"{key} went down: {before} -> {second[key]}"
    sent = ("tracklab_network_transmit_bytes_total", lo[1])
    assert second[sent] >= first[sent] + size


async def test_every_scrape_has_each_kernel_with_its_notebook(jp_fetch):
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps({
        "path": "lab/analysis.ipynb", "name": "analysis.ipynb", "type": "notebook",
        "kernel": {"name": "python3"}}))
    kernel = json.loads(response.body)["kernel"]["id"]
    rss = re.compile(r'tracklab_kernel_resident_memory_bytes\{[^}]*kernel="' + kernel + '"')
    await scrape_when(jp_fetch, lambda t: bool(rss.search(t)), "the kernel's memory",
                      timeout=60)
    # not only on the tick after a kernel pass: five scrapes in a row all have it
    for _ in range(5):
        text, _type = await scrape(jp_fetch)
        assert rss.search(text)
        assert re.search(r'tracklab_kernel_info\{[^}]*kernel="' + kernel +
                         r'"[^}]*notebook="lab/analysis.ipynb"', text)
        await asyncio.sleep(0.07)


async def test_scrapes_need_a_token_and_too_many_series_is_a_clear_413(jp_fetch,
                                                                       tracklab_server):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("tracklab", "metrics", headers={"Authorization": ""})
    assert refused.value.code == 403
    await scrape_when(jp_fetch, lambda t: "tracklab_cpu_utilization_ratio{" in t, "a sample")
    from tracklab_jupyter.server.limits import LIMITS_KEY, Limits

    settings = tracklab_server.serverapp.web_app.settings
    settings[LIMITS_KEY] = Limits(max_prometheus_series=10)
    with pytest.raises(HTTPClientError) as too_big:
        await jp_fetch("tracklab", "metrics")
    assert too_big.value.code == 413
    body = json.loads(too_big.value.response.body)
    assert "max_prometheus_series (10)" in body["error"]
    assert "c.TrackLab.max_prometheus_series" in body["detail"]
