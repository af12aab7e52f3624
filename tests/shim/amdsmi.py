"""``amdsmi`` for subprocess tests (CLI, servers): the fake amdsmi instead of the real one.

Put this folder first on ``PYTHONPATH`` (``PYTHONPATH=tests/shim``) and ``import amdsmi`` gives
a :class:`fake_amdsmi.FakeAmdSmi` configured from the environment:

- ``TRACKLAB_FAKE_AMD_GPUS``: number of GPUs (default 1; 0 means amdsmi finds none)
- ``TRACKLAB_FAKE_AMD_MODE``: ``mi250`` (default, an Instinct MI250) or ``r9700`` (two Radeon
  AI PRO R9700, with VRAM, fan and processes); see ``fixtures/amd-mi/README.md``
- ``TRACKLAB_FAKE_AMD_INIT_ERROR``: an AMDSMI status name (``DRIVER_NOT_LOADED``, ``NO_PERM``)
  that ``amdsmi_init`` fails with
- ``TRACKLAB_FAKE_AMD_NO_LIBRARY``: ``1`` makes ``import amdsmi`` fail as the real package does
  without ``libamd_smi.so``: two lines on stdout, then ``KeyError: 'libamd_smi.so'``

The AMD backend only imports amdsmi once ``/sys/module/amdgpu/initstate`` says ``live``, and it
finds that file through ``TRACKLAB_HOST_ROOT`` — which this shim cannot set, since it is
imported after the check. So a subprocess that should see fake AMD GPUs also gets
``TRACKLAB_HOST_ROOT=<repo>/tests/fixtures/amdgpu-sysfs`` (a recorded amdgpu sysfs tree whose
initstate reads ``live``); ``fake_amdsmi.shim_env(gpus, mode)`` returns all these variables.
With ``TRACKLAB_FAKE_AMD_NO_LIBRARY=1`` the backend then reads that tree's two cards instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

if os.environ.get("TRACKLAB_FAKE_AMD_NO_LIBRARY", "") not in ("", "0"):
    # What amdsmi_wrapper.py (amdsmi 7.0.2) does when no libamd_smi.so loads.
    print("Could not load libamd_smi.so")
    print("Unable to find libamd_smi.so library try installing amd-smi-lib from your "
          "package manager")
    raise KeyError("libamd_smi.so")

# Loaded by path: the tests folder is not on sys.path in a subprocess, and must not be put
# there (its modules would shadow others).
_FAKE_PATH = Path(__file__).resolve().parent.parent / "fake_amdsmi.py"
_spec = importlib.util.spec_from_file_location("tracklab_fake_amdsmi", _FAKE_PATH)
assert _spec is not None and _spec.loader is not None
_fake_module = importlib.util.module_from_spec(_spec)
sys.modules["tracklab_fake_amdsmi"] = _fake_module  # dataclasses look their module up here
_spec.loader.exec_module(_fake_module)

# Replacing our own sys.modules entry makes `import amdsmi` return the fake itself.
sys.modules[__name__] = _fake_module.fake_from_env(os.environ)
