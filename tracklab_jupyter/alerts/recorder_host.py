"""What the alert engine needs of a monitor, for a bare :class:`~tracklab_jupyter.recorder.
Recorder` (``tracklab-jupyter record --alerts``): its hub, node, role, latest sample and
facts, and a way to store events and read them back."""

from __future__ import annotations

from typing import Any

from tracklab_jupyter.metrics.sample import Event, Sample
from tracklab_jupyter.sampler.hub import EVENT


class RecorderHost:
    """A recorder seen as the alert engine's monitor. No kernels, no cluster."""

    kernels = None
    cluster = None
    alerts: Any = None

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.hub = recorder.hub
        self.node = recorder.config.sampler.node or _hostname()
        self.interval = recorder.config.sampler.interval

    @property
    def role(self) -> str:
        return self.recorder.role

    @property
    def latest(self) -> Sample | None:
        sampler = self.recorder.sampler
        return sampler.latest if sampler is not None else None

    @property
    def info(self) -> dict[str, Any]:
        sampler = self.recorder.sampler
        return sampler.info if sampler is not None else {}

    def record_event(self, event: Event) -> None:
        """Store the event with the recorder's writer and tell the hub (as a monitor
        does); dropped while this process does not record (it then evaluates nothing)."""
        writer = self.recorder.writer
        if writer is not None:
            writer.write_event(event)
            self.hub.publish(EVENT, event)

    def events(self, *, start: Any, kinds: list[str], node: str, limit: int
               ) -> list[dict[str, Any]]:
        """Stored events (blocking), as :meth:`Monitor.events` answers them."""
        import time

        from tracklab_jupyter.store.reader import StoreReader
        from tracklab_jupyter.store.timespec import parse_time

        now = time.time()
        reader = StoreReader(self.recorder.data_dir)
        try:
            found = reader.events(parse_time(start, now), now + 1, node=node, kinds=kinds,
                                  limit=limit)
        finally:
            reader.close()
        return [e.to_dict() for e in found]


def _hostname() -> str:
    import socket

    return socket.gethostname()
