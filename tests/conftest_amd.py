"""Pytest fixtures for the AMD backend (imported by ``tests/conftest.py``).

``amd_host`` makes this machine look like one with the amdgpu driver loaded: a copy of
``fixtures/amdgpu-sysfs`` (recorded sysfs files) becomes ``TRACKLAB_HOST_ROOT``, so tests may
change or delete its files. ``fake_amdsmi`` is one MI250 replayed as ``sys.modules["amdsmi"]``
on such a host; ``fake_amdsmi_factory(gpus=2, mode="r9700", init_error="NO_PERM")`` makes and
installs one as asked. ``no_amdsmi`` makes ``import amdsmi`` fail as on a machine without it.
All of them remove the ROCm visibility variables so the host's settings cannot leak in.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

try:  # tests/ as a package or as a plain folder on sys.path
    from .fake_amdsmi import FakeAmdSmi
except ImportError:
    from fake_amdsmi import FakeAmdSmi

__all__ = ["amd_host", "fake_amdsmi", "fake_amdsmi_factory", "no_amdsmi"]

AMDGPU_SYSFS = Path(__file__).resolve().parent / "fixtures" / "amdgpu-sysfs"


@pytest.fixture
def amd_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of the recorded amdgpu sysfs tree, set as ``TRACKLAB_HOST_ROOT``."""
    root = tmp_path / "host"
    shutil.copytree(AMDGPU_SYSFS, root)
    monkeypatch.setenv("TRACKLAB_HOST_ROOT", str(root))
    for name in ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def no_amdsmi(amd_host: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The amdgpu host without the amdsmi package (``import amdsmi`` fails)."""
    monkeypatch.setitem(sys.modules, "amdsmi", None)
    return amd_host


@pytest.fixture
def fake_amdsmi_factory(amd_host: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> Callable[..., FakeAmdSmi]:
    """A function that builds a :class:`FakeAmdSmi` and installs it as ``amdsmi``."""

    def make(gpus: int = 1, mode: str = "mi250", **options: Any) -> FakeAmdSmi:
        fake = FakeAmdSmi(gpus=gpus, mode=mode, **options)
        monkeypatch.setitem(sys.modules, "amdsmi", fake)
        return fake

    return make


@pytest.fixture
def fake_amdsmi(fake_amdsmi_factory: Callable[..., FakeAmdSmi]) -> FakeAmdSmi:
    """One MI250 replayed as ``amdsmi``."""
    return fake_amdsmi_factory()
