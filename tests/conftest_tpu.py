"""Pytest fixtures for the fake TPU host (imported by ``tests/conftest.py``).

``tpu_host(chips=4, generation="v6e")`` writes the recorded v5e VM's PCI tree with that many
chips under ``tmp_path`` and points ``TRACKLAB_HOST_ROOT`` at it; ``tpu_runtime("v6e-4-static",
...)`` starts a :class:`fake_tpu_runtime.FakeTpuRuntime` (stopped after the test) and points
``TRACKLAB_TPU_METRICS_ADDR`` at it. Both remove the TPU variables of the machine running the
tests (``TPU_VISIBLE_CHIPS``, ``TPU_RUNTIME_METRICS_PORTS``) so they cannot change what
tests see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as a package or as a plain folder on sys.path
    from .fake_tpu_runtime import FakeTpuRuntime, free_port, write_pci_tree
except ImportError:
    try:
        from fake_tpu_runtime import FakeTpuRuntime, free_port, write_pci_tree
    except ImportError as exc:  # no grpcio/tpu-info: only the TPU tests skip, not the suite
        _MISSING: str | None = f"the fake TPU runtime needs tpu-info ({exc})"
    else:
        _MISSING = None
else:
    _MISSING = None

__all__ = ["tpu_host", "tpu_runtime"]


def _unavailable(reason: str) -> None:
    """conftest.unavailable (a skip; under CI=true a failure: tpu-info is in the test extra),
    imported when needed: conftest imports this module."""
    from conftest import unavailable

    unavailable(reason)

_TPU_ENV = ("TPU_VISIBLE_CHIPS", "TPU_RUNTIME_METRICS_PORTS", "TRACKLAB_TPU_METRICS_ADDR")


@pytest.fixture
def tpu_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """A function writing a fake sysfs with TPU chips; it becomes TRACKLAB_HOST_ROOT."""
    if _MISSING:
        _unavailable(_MISSING)
    for name in _TPU_ENV:
        monkeypatch.delenv(name, raising=False)

    def make(chips: int = 4, generation: str = "v6e", **options: Any) -> Path:
        root = write_pci_tree(tmp_path / "host", chips=chips, generation=generation, **options)
        monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(root))
        return root

    return make


@pytest.fixture
def tpu_runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeTpuRuntime]]:
    """A function starting a fake TPU runtime; TRACKLAB_TPU_METRICS_ADDR names the last."""
    if _MISSING:
        _unavailable(_MISSING)
    started: list[FakeTpuRuntime] = []

    def make(recording: str = "v6e-4-static", *, start: bool = True,
             **options: Any) -> FakeTpuRuntime:
        runtime = FakeTpuRuntime(recording, **options)
        if start:
            runtime.start()
        else:  # serve later on a port that is free now
            runtime.port = free_port()
        started.append(runtime)
        monkeypatch.setenv("TRACKLAB_TPU_METRICS_ADDR", runtime.address)
        return runtime

    yield make
    for runtime in started:
        runtime.stop()
