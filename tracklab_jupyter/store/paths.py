"""Where the store lives: the data dir and the files in it."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "TRACKLAB_DATA_DIR"
DB_NAME = "metrics.db"
LOCK_NAME = "recorder.lock"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: the argument, else ``$TRACKLAB_DATA_DIR``, else ``~/.tracklab``.

    Only resolves the path; :func:`ensure_data_dir` creates it.
    """
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_DATA_DIR) or "~/.tracklab"
    return Path(data_dir).expanduser().absolute()


def ensure_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data dir and create it with owner-only permissions (0700) if missing.

    An existing directory keeps its permissions: the user may have widened them on purpose.
    """
    path = resolve_data_dir(data_dir)
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is filtered by the umask; owner-only is what we promise.
        os.chmod(path, 0o700)
    return path


def db_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``{data_dir}/metrics.db`` (the directory is not created)."""
    return resolve_data_dir(data_dir) / DB_NAME

