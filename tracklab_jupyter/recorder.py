"""One recorder per host and data dir.

The first process to take an OS lock on ``{data_dir}/recorder.lock`` (``fcntl.flock``)
samples the machine and writes the store; every other process (a second Jupyter server, a
kernel, a training script) reads the store instead. The lock dies with its process, however
it dies, so a reader that retries every few seconds takes over within seconds of the
recorder's end. The holder writes its pid and host name into the lock file so others can say
who records.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracklab_jupyter.sampler.factory import SamplerConfig, build_sampler
from tracklab_jupyter.sampler.hub import Hub
from tracklab_jupyter.sampler.sampler import Sampler
from tracklab_jupyter.store.config import StoreConfig
from tracklab_jupyter.store.paths import LOCK_NAME, ensure_data_dir
from tracklab_jupyter.store.reader import StoreReader
from tracklab_jupyter.store.writer import StoreWriter
from tracklab_jupyter.threads import name_os_thread

log = logging.getLogger("tracklab_jupyter.recorder")

RECORDER = "recorder"
READER = "reader"


@dataclass
class RecorderConfig:
    """Where to record, what to sample, how to store, how often a reader tries to take over."""

    data_dir: str | os.PathLike[str] | None = None
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    takeover_interval: float = 2.0


_LOCKS: weakref.WeakSet[DataDirLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker, say) must not keep the lock alive after the
    # recorder dies: drop the child's copies of the descriptors.
    for lock in list(_LOCKS):
        lock._forget_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class DataDirLock:
    """An exclusive, non-blocking ``flock`` on ``{data_dir}/recorder.lock``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None
        _LOCKS.add(self)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if free; True when this object holds it."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        holder = json.dumps({"pid": os.getpid(), "hostname": socket.gethostname(),
                             "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)
            finally:
                os.close(fd)  # closing the last descriptor releases the flock

    def _forget_in_child(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock, as the holder wrote it (None when unknown)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    """``"pid 123 on host"`` for messages, from :meth:`DataDirLock.holder`."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid', '?')} on {holder.get('hostname', '?')}"


class Recorder:
    """Records when it gets the data dir's lock, reads otherwise (and takes over later).

    Args:
        config: what and where to record.
        hub: the hub the sampler publishes to (a server's live clients).
        sampler_factory: builds the sampler when this process becomes the recorder (default
            :func:`~tracklab_jupyter.sampler.factory.build_sampler` on ``config.sampler``).
        on_role_change: called with ``"recorder"`` when a reader takes over.
        takeover: whether a reader keeps trying to take the lock.
    """

    def __init__(self, config: RecorderConfig | None = None, *, hub: Hub | None = None,
                 sampler_factory: Callable[[], Sampler] | None = None,
                 on_role_change: Callable[[str], None] | None = None,
                 takeover: bool = True) -> None:
        self.config = config or RecorderConfig()
        self.data_dir = ensure_data_dir(self.config.data_dir)
        self.hub = hub
        self._factory = sampler_factory or (
            lambda: build_sampler(self.config.sampler, hub=self.hub))
        self._on_role_change = on_role_change
        self._lock = DataDirLock(self.data_dir)
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.sampler: Sampler | None = None
        self.writer: StoreWriter | None = None
        self.reader = StoreReader(self.data_dir)
        if not self._try_record() and takeover:
            self._watcher = threading.Thread(target=self._watch, name="tracklab-takeover",
                                             daemon=True)
            self._watcher.start()

    @property
    def role(self) -> str:
        """``"recorder"`` while this process samples and writes, else ``"reader"``."""
        return RECORDER if self.writer is not None else READER

    def holder(self) -> dict[str, Any] | None:
        """pid and host name of the process that records (this one, when recording)."""
        return self._lock.holder()

    def _try_record(self) -> bool:
        with self._state:
            if self._stop.is_set() or self.writer is not None:
                return self.writer is not None
            if not self._lock.acquire():
                return False
            try:
                writer = StoreWriter(self.data_dir, self.config.store)
                try:
                    sampler = self._factory()
                    sampler.add_sink(writer.write)
                    sampler.add_event_sink(writer.write_event)
                    writer.write_info(sampler.node, sampler.info)
                    sampler.start()
                except BaseException:
                    writer.close()
                    raise
            except BaseException:
                self._lock.release()
                raise
            self.writer, self.sampler = writer, sampler
            log.info("recording %s to %s", sampler.node, writer.path)
            return True

    def _watch(self) -> None:
        name_os_thread()
        while not self._stop.wait(self.config.takeover_interval):
            try:
                if self._try_record():
                    log.info("the previous recorder is gone; this process records now")
                    if self._on_role_change is not None:
                        self._on_role_change(RECORDER)
                    return
            except Exception:
                log.exception("taking over the recorder role failed; retrying")

    def stop(self) -> None:
        """Stop sampling, flush and close the store, release the lock (idempotent)."""
        self._stop.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(self.config.takeover_interval + 1.0)
        with self._state:
            if self.sampler is not None:
                self.sampler.close()
            if self.writer is not None:
                self.writer.close()
            self.sampler = self.writer = None
            self._lock.release()
        self.reader.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
