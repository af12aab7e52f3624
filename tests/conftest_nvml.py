"""Pytest fixtures for the fake NVML (imported by ``tests/conftest.py``).

``fake_nvml`` is one busy H200 installed as ``sys.modules["pynvml"]``;
``fake_nvml_factory(gpus=8, mode="trace", mig=2, library_missing=True, ...)`` makes and
installs one configured as asked (the last one made is the one ``import pynvml`` returns).
Both remove ``CUDA_VISIBLE_DEVICES`` so a GPU host's setting cannot change what tests see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

try:  # tests/ as a package or as a plain folder on sys.path
    from .fake_nvml import FakeNvml
except ImportError:
    from fake_nvml import FakeNvml

__all__ = ["fake_nvml", "fake_nvml_factory"]


@pytest.fixture
def fake_nvml_factory(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeNvml]:
    """A function that builds a :class:`FakeNvml` and installs it as ``pynvml``."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def make(gpus: int = 1, mode: str = "busy", **options: Any) -> FakeNvml:
        fake = FakeNvml(gpus=gpus, mode=mode, **options)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        return fake

    return make


@pytest.fixture
def fake_nvml(fake_nvml_factory: Callable[..., FakeNvml]) -> FakeNvml:
    """One busy H200 replayed as ``pynvml``."""
    return fake_nvml_factory()
