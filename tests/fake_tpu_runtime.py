"""A fake TPU runtime: a real gRPC ``RuntimeMetricService`` server replaying recorded replies,
and a fake PCI sysfs tree with TPU chips.

The server is the service libtpu runs while a TPU program is up (tpu-info's generated stubs,
``grpc.local_server_credentials()``, as tpu-info's own metrics_test.py serves its fake). Its
answers come from ``fixtures/tpu/runtime_metrics.json`` (see the README there): one
recording, one point after another (``period_s`` each, looped) when it has several.

Test hooks: :meth:`FakeTpuRuntime.fail` (a status code for one metric),
:meth:`FakeTpuRuntime.omit` (an empty reply for one metric), :meth:`FakeTpuRuntime.stall`
(answers come late: a hung runtime), ``missing`` (what a metric the
recording lacks gets: ``"not_found"`` or ``"empty"``), :meth:`FakeTpuRuntime.stop` /
:meth:`FakeTpuRuntime.start` (the program ends / starts again on the same port), call
counters ``calls[metric]`` and ``connections`` (distinct client connections seen).
:class:`ConnectionCounter` listens on a port without speaking gRPC and counts the TCP
connections made to it, so a test can see how often a client tries while no runtime runs.

Run as a script to serve a recording from another process::

    python tests/fake_tpu_runtime.py --recording v6e-4-static --port 0
    # prints the address (host:port) on the first line, serves until killed
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from tpu_info.proto import tpu_metric_service_pb2 as pb
from tpu_info.proto import tpu_metric_service_pb2_grpc as pb_grpc

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "tpu"
GIB = 1 << 30

MEMORY_USAGE = "tpu.runtime.hbm.memory.usage.bytes"
TOTAL_MEMORY = "tpu.runtime.hbm.memory.total.bytes"
DUTY_CYCLE = "tpu.runtime.tensorcore.dutycycle.percent"
HBM_BW_UTIL = "tpu.runtime.hbm.utilization.percent"
# Byte counts are integer gauges in the runtime's replies (tpu-info reads gauge.as_int).
_INT_METRICS = (MEMORY_USAGE, TOTAL_MEMORY)

# PCI device ids of each generation (tpu-info's device.py), subsystem ids for v2/v3.
PCI_DEVICE_IDS = {"v4": "0x005e", "v5e": "0x0063", "v5p": "0x0062", "v6e": "0x006f",
                  "7x": "0x0076", "v2": "0x0027", "v3": "0x0027"}
_SUBSYSTEM_IDS = {"v2": "0x004e", "v3": "0x004f"}
_RECORDED_CHIP = "0000:00:05.0"


@functools.cache
def load_recordings(fixture_dir: Path = FIXTURE_DIR) -> dict[str, Any]:
    """``runtime_metrics.json``'s recordings by name."""
    return json.loads((fixture_dir / "runtime_metrics.json").read_text())["recordings"]


def recorded_values(recording: str, metric: str, point: int = 0) -> dict[int, float] | None:
    """Device id -> value of one metric in one point, as the fake serves it (GiB figures
    as bytes, rounded to whole bytes); None when the recording lacks the metric."""
    entry = load_recordings()[recording]["points"][point]
    raw = entry.get(metric)
    if raw is None:
        return None
    ids = entry["device_ids"]
    if isinstance(raw, dict) and "gib" in raw:
        values = [round(v * GIB) for v in raw["gib"]]
    elif isinstance(raw, dict):
        ids, values = raw["device_ids"], raw["values"]
    else:
        values = raw
    return dict(zip(ids, values, strict=True))


class _Servicer(pb_grpc.RuntimeMetricServiceServicer):
    def __init__(self, runtime: FakeTpuRuntime) -> None:
        self._rt = runtime

    def GetRuntimeMetric(self, request: Any, context: Any) -> Any:
        return self._rt.answer(request.metric_name, context)


class FakeTpuRuntime:
    """A gRPC metrics server replaying one recording (see the module docstring)."""

    def __init__(self, recording: str = "v6e-4-static", *, port: int = 0,
                 host: str = "127.0.0.1", period_s: float = 1.0,
                 missing: str = "not_found") -> None:
        if recording not in load_recordings():
            raise KeyError(f"no recording {recording!r}; have {sorted(load_recordings())}")
        if missing not in ("not_found", "empty"):
            raise ValueError("missing must be 'not_found' or 'empty'")
        self.recording = recording
        self.host = host
        self.port = port
        self.period_s = period_s
        self.missing = missing
        self.calls: Counter[str] = Counter()
        self._peers: set[str] = set()
        self._errors: dict[str, grpc.StatusCode] = {}
        self._omitted: set[str] = set()
        self._stall_s = 0.0
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._t0 = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeTpuRuntime:
        """Serve (again) on ``port``; the first start picks a free port when it is 0."""
        if self._server is not None:
            return self
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_RuntimeMetricServiceServicer_to_server(_Servicer(self), server)
        bound = server.add_secure_port(f"{self.host}:{self.port}",
                                       grpc.local_server_credentials())
        if bound == 0:
            raise OSError(f"cannot bind the fake TPU runtime to {self.address}")
        self.port = bound
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """The TPU program ends: the server goes away (its port can be served again)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait(5)

    def __enter__(self) -> FakeTpuRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks ---------------------------------------------------------------------------
    def fail(self, metric: str, code: grpc.StatusCode = grpc.StatusCode.INTERNAL) -> None:
        """Every call for ``metric`` ends with ``code`` until :meth:`clear`."""
        with self._lock:
            self._errors[metric] = code

    def omit(self, metric: str) -> None:
        """Every call for ``metric`` gets a reply without entries until :meth:`clear`."""
        with self._lock:
            self._omitted.add(metric)

    def stall(self, seconds: float) -> None:
        """Every answer waits ``seconds`` first (a hung runtime) until :meth:`clear`."""
        with self._lock:
            self._stall_s = seconds

    def clear(self) -> None:
        with self._lock:
            self._errors.clear()
            self._omitted.clear()
            self._stall_s = 0.0

    @property
    def connections(self) -> int:
        """Distinct client connections (peer addresses) that made calls."""
        with self._lock:
            return len(self._peers)

    # -- answers -------------------------------------------------------------------------
    def point(self) -> int:
        """The index of the recording's point served now."""
        count = len(load_recordings()[self.recording]["points"])
        return int((time.monotonic() - self._t0) / self.period_s) % count

    def answer(self, name: str, context: Any) -> Any:
        with self._lock:
            self.calls[name] += 1
            self._peers.add(context.peer())
            error = self._errors.get(name)
            omitted = name in self._omitted
            stall = self._stall_s
        if stall:
            time.sleep(stall)
        if error is not None:
            context.abort(error, f"injected {error.name} for {name}")
        values = None if omitted else recorded_values(self.recording, name, self.point())
        if values is None and not omitted and self.missing == "not_found":
            context.abort(grpc.StatusCode.NOT_FOUND, f"metric {name} not found")
        metrics = [
            pb.Metric(attribute=pb.Attribute(key="device-id",
                                             value=pb.AttrValue(int_attr=dev)),
                      gauge=_gauge(name, value))
            for dev, value in (values or {}).items()]
        return pb.MetricResponse(metric=pb.TPUMetric(name=name, metrics=metrics))


def _gauge(name: str, value: float) -> Any:
    if name in _INT_METRICS:
        return pb.Gauge(as_int=int(value))
    return pb.Gauge(as_double=float(value))


def start_fake_runtime(recording: str = "v6e-4-static", **options: Any) -> FakeTpuRuntime:
    """A started :class:`FakeTpuRuntime` on a free port: use ``.address`` as
    ``TRACKLAB_TPU_METRICS_ADDR`` and ``.stop()`` when done."""
    return FakeTpuRuntime(recording, **options).start()


class ConnectionCounter:
    """A TCP port that accepts connections and closes them at once (no gRPC), counting
    them: what a client's connection attempts look like while no runtime serves."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket()
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.address = f"{host}:{self._sock.getsockname()[1]}"
        self.count = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.count += 1
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # not connected: nothing to shut down
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for a runtime that starts later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


# -- the PCI tree ----------------------------------------------------------------------------
@functools.cache
def load_pci(fixture_dir: Path = FIXTURE_DIR) -> list[dict[str, str]]:
    """The recorded v5e VM's PCI functions (``pci_v5e_litepod1.json``)."""
    return json.loads((fixture_dir / "pci_v5e_litepod1.json").read_text())["devices"]


def write_pci_tree(root: Path, chips: int = 1, generation: str = "v5e",
                   device_id: str | None = None) -> Path:
    """Write ``root/sys/bus/pci/devices`` as the recorded v5e VM has it, for ``chips`` TPU
    chips of ``generation``; returns ``root`` (use it as ``TRACKLAB_HOST_ROOT``).

    One chip: the recording as it is (with the other generation's device id when asked).
    More chips: copies of the recorded TPU function at the next free slots of bus 0
    (``0000:00:08.0``, ...), IOMMU groups 1, 2, ...: a derived layout, not a recorded one.
    ``chips=0`` leaves only the VM's other devices (gVNIC shares Google's vendor id);
    ``device_id`` writes another PCI device id (a generation tpu-info does not know yet).
    """
    root = Path(root)
    base = root / "sys" / "bus" / "pci" / "devices"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    recorded = load_pci()
    tpu = next(d for d in recorded if d["address"] == _RECORDED_CHIP)
    others = [d for d in recorded if d is not tpu]
    used = {d["address"] for d in others}
    slots = [_RECORDED_CHIP] + [f"0000:00:{n:02x}.0" for n in range(8, 0x20)
                                if f"0000:00:{n:02x}.0" not in used]
    for n in range(chips):
        chip = {**tpu, "address": slots[n], "iommu_group": str(n),
                "device": device_id or PCI_DEVICE_IDS[generation]}
        if generation in _SUBSYSTEM_IDS:
            chip["subsystem_device"] = _SUBSYSTEM_IDS[generation]
        others.append(chip)
    for dev in others:
        _write_function(root, base / dev["address"], dev)
    return root


def _write_function(root: Path, path: Path, dev: dict[str, str]) -> None:
    path.mkdir()
    for key in ("vendor", "device", "class", "subsystem_device"):
        if key in dev:
            (path / key).write_text(dev[key] + "\n")
    if "iommu_group" in dev:
        groups = root / "sys" / "kernel" / "iommu_groups" / dev["iommu_group"]
        groups.mkdir(parents=True, exist_ok=True)
        (path / "iommu_group").symlink_to(groups)
    if "driver" in dev:
        driver = root / "sys" / "bus" / "pci" / "drivers" / dev["driver"]
        driver.mkdir(parents=True, exist_ok=True)
        (path / "driver").symlink_to(driver)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", default="v6e-4-static", choices=sorted(load_recordings()))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--period", type=float, default=1.0)
    args = parser.parse_args(argv)
    runtime = start_fake_runtime(args.recording, port=args.port, period_s=args.period)
    print(runtime.address, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        runtime.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
