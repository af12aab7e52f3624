"""Shared by the kernel-side widget tests: a fresh kernel monitor per test, and a recorder of
what a widget sends to its front end."""

from __future__ import annotations

import json
import threading

import pytest

from tracklab_jupyter.notebook import feed as feed_module
from tracklab_jupyter.process_monitor import stop_process_monitor


@pytest.fixture(autouse=True)
def _fresh_kernel_monitor(monkeypatch):
    """Import this into a test module: each test gets its own kernel monitor (0.2 s
    interval) and a fast feed, both stopped afterwards."""
    monkeypatch.setenv("TRACKLAB_INTERVAL", "0.2")
    monkeypatch.setattr(feed_module, "FLUSH_PERIOD_S", 0.05)
    yield
    feed_module.close_feeds()
    stop_process_monitor()


class Recorded:
    """Captures what a widget sends to its front end (from any thread)."""

    def __init__(self, widget) -> None:
        self.messages: list[tuple[dict, list]] = []
        self.lock = threading.Lock()
        widget.send = self.send  # type: ignore[method-assign]

    def send(self, content, buffers=None) -> None:
        json.dumps(content, allow_nan=False)  # what the comm must be able to send
        with self.lock:
            self.messages.append((content, list(buffers or [])))

    def of(self, kind: str, source: str | None = None) -> list[tuple[dict, list]]:
        """Messages of ``kind``; ``source`` picks run or process data of a run widget."""
        with self.lock:
            return [m for m in self.messages
                    if m[0]["type"] == kind and m[0].get("source") == source]


def ready(widget) -> None:
    """What the front end says once rendered."""
    widget._on_front_end_message(widget, {"type": "ready"}, [])


def feed_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tracklab-widget-feed"]
