"""Metric globs as one matcher, shared by the REST endpoints and the WebSocket."""

from __future__ import annotations

import fnmatch
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tracklab_jupyter.threads import name_os_thread

#: Match decisions a metric filter remembers (metric names repeat every sample).
MAX_REMEMBERED_NAMES = 4096
#: Glob characters compiled on the event loop; a larger set is compiled off it.
INLINE_PATTERN_CHARS = 2000


class MetricFilter:
    """A subscription's globs as one compiled regex (case-sensitive, like fnmatchcase), with
    each metric name's answer remembered: a tick costs one dict lookup per name."""

    def __init__(self, globs: tuple[str, ...]) -> None:
        self.globs = globs
        self._regex = re.compile("|".join(map(fnmatch.translate, globs))) if globs else None
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        if self._regex is None:
            return True
        hit = self._seen.get(name)
        if hit is None:
            if len(self._seen) >= MAX_REMEMBERED_NAMES:
                self._seen.clear()
            hit = self._seen[name] = self._regex.match(name) is not None
        return hit

    def select(self, metrics: dict[str, Any]) -> dict[str, Any]:
        if self._regex is None:
            return metrics
        return {k: v for k, v in metrics.items() if self(k)}


_COMPILER: ThreadPoolExecutor | None = None


def compiler() -> ThreadPoolExecutor:
    """The one thread that compiles large glob sets (WebSocket subscriptions and REST
    ``metrics``). One, not a pool: compiling holds the GIL, and several threads at it would
    starve the event loop as surely as compiling on it."""
    global _COMPILER
    if _COMPILER is None:
        _COMPILER = ThreadPoolExecutor(1, thread_name_prefix="tracklab-glob-compile",
                                       initializer=name_os_thread)
    return _COMPILER
