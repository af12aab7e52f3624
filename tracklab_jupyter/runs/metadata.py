"""Facts about where a run started: command, git commit, Python version, the config."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 2.0


def command_line() -> str:
    """``python train.py --lr 0.1`` for a script; the notebook's path in a Jupyter kernel."""
    if "ipykernel" in sys.modules and any("ipykernel" in a for a in sys.argv[:1]):
        session = os.environ.get("JPY_SESSION_NAME")  # set by Jupyter Server 2 for kernels
        return f"notebook {session}" if session else "notebook"
    return shlex.join([Path(sys.executable).name, *sys.argv]) if sys.argv else ""


def python_version() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}"


def _git(args: list[str], cwd: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                                timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state(cwd: str) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the repository around ``cwd``; None outside one (or
    without git). ``dirty`` counts tracked files only: untracked ones are often data."""
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def _plain(value: Any) -> Any:
    """JSON-ready: numpy/torch scalars by ``.item()``, arrays by ``.tolist()``, paths and
    other objects by ``str``; non-finite floats become None."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v) for v in value), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    for method in ("item", "tolist"):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                return _plain(fn())
            except (TypeError, ValueError):
                pass
    return str(value)


def config_json(config: Any) -> str:
    """The run's config as JSON text. Accepts a mapping, an ``argparse.Namespace``, a
    dataclass instance or None."""
    if config is None:
        return "{}"
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    elif not isinstance(config, Mapping) and hasattr(config, "__dict__"):
        config = vars(config)  # argparse.Namespace and similar
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict (or argparse.Namespace or dataclass) of "
                        f"settings, e.g. config={{'lr': 0.001}}; got {type(config).__name__}")
    return json.dumps(_plain(config), allow_nan=False)
