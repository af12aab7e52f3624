"""``pynvml`` for subprocess tests (CLI, servers): the fake NVML instead of the real one.

Put this folder first on ``PYTHONPATH`` (``PYTHONPATH=tests/shim``) and ``import pynvml``
gives a :class:`fake_nvml.FakeNvml` configured from the environment:

- ``TRACKLAB_FAKE_NVML_GPUS``: number of GPUs (default 1; 0 means NVML finds none)
- ``TRACKLAB_FAKE_NVML_MODE``: ``idle``, ``busy`` (default) or ``trace``
- ``TRACKLAB_FAKE_NVML_MIG``: MIG devices per GPU (default 0: MIG off)
- ``TRACKLAB_FAKE_NVML_NO_LIBRARY``: ``1`` makes nvmlInit raise LibraryNotFound
- ``TRACKLAB_FAKE_NVML_STAGGER_S``: trace offset between GPUs in seconds (default 0)
- ``TRACKLAB_FAKE_NVML_LOAD_PID``: the pid the recorded load's process is reported as
  (default: the recorded pid)
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Loaded by path: the tests folder is not on sys.path in a subprocess, and must not be put
# there (its modules would shadow others).
_FAKE_PATH = Path(__file__).resolve().parent.parent / "fake_nvml.py"
_spec = importlib.util.spec_from_file_location("tracklab_fake_nvml", _FAKE_PATH)
assert _spec is not None and _spec.loader is not None
_fake_module = importlib.util.module_from_spec(_spec)
sys.modules["tracklab_fake_nvml"] = _fake_module  # dataclasses look their module up here
_spec.loader.exec_module(_fake_module)

# Replacing our own sys.modules entry makes `import pynvml` return the fake itself.
sys.modules[__name__] = _fake_module.fake_from_env(os.environ)
