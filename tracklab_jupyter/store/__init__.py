"""The SQLite store: raw samples in compressed time blocks, 1-min and 1-h rollups, events.

* :class:`StoreWriter` writes (one per data dir: the recorder's), from its own thread.
* :class:`StoreReader` reads, from any process.
* :class:`StoreConfig` holds retention, size cap and batching.

Names are loaded on first use, so importing a light submodule (``timespec``, ``paths``)
does not pull in numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tracklab_jupyter.store.config import StoreConfig
    from tracklab_jupyter.store.db import StoreCorruptError, StoreUnavailableError
    from tracklab_jupyter.store.paths import db_path, ensure_data_dir, resolve_data_dir
    from tracklab_jupyter.store.reader import Frame, StoreNotFoundError, StoreReader
    from tracklab_jupyter.store.schema import SCHEMA_VERSION, StoreVersionError
    from tracklab_jupyter.store.writer import StoreWriter

_WHERE = {
    "StoreConfig": "config",
    "StoreCorruptError": "db",
    "StoreUnavailableError": "db",
    "db_path": "paths",
    "ensure_data_dir": "paths",
    "resolve_data_dir": "paths",
    "Frame": "reader",
    "StoreNotFoundError": "reader",
    "StoreReader": "reader",
    "SCHEMA_VERSION": "schema",
    "StoreVersionError": "schema",
    "StoreWriter": "writer",
}

__all__ = [
    "SCHEMA_VERSION",
    "Frame",
    "StoreConfig",
    "StoreCorruptError",
    "StoreNotFoundError",
    "StoreReader",
    "StoreUnavailableError",
    "StoreVersionError",
    "StoreWriter",
    "db_path",
    "ensure_data_dir",
    "resolve_data_dir",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
