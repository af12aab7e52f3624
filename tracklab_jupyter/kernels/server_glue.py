"""The Jupyter server's side of kernel tracking: which kernels exist, their notebooks, their
processes, and when one dies.

Everything here runs on the server's event loop and is cheap: a periodic callback lists the
kernel manager's kernels (attributes it already holds) and the session manager's sessions,
and hands the list to the :class:`~tracklab_jupyter.kernels.tracker.KernelTracker`, whose
own thread reads /proc and writes the store. Deaths come from the kernel restarter's
callbacks (``"restart"``: the kernel died and is being restarted; ``"dead"``: the server gave
up), at which moment the dead process's exit status is still on its ``Popen``.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tracklab_jupyter.kernels.deaths import Death

log = logging.getLogger("tracklab_jupyter.kernels")

#: Why a kernel is listed without figures.
REMOTE = "remote"
NO_LOCAL_PROCESS = "no local process"


@dataclass(frozen=True)
class KernelListing:
    """One kernel as the server knows it, read on the event loop."""

    id: str
    name: str
    notebook: str | None
    execution_state: str
    last_activity: float | None
    connections: int
    #: The local kernel process (the tree's root); None when there is none to read.
    pid: int | None
    #: Why the kernel is not sampled (``"remote"``, ``"no local process"``); None: sampled.
    not_sampled: str | None = None


class ListingSink(Protocol):
    """What the glue hands its findings to (the tracker)."""

    def update_listing(self, kernels: list[KernelListing], at: float) -> None: ...

    def report_death(self, death: Death) -> None: ...


def _is_gateway(*objects: Any) -> bool:
    """A kernel (or manager) of jupyter_server's gateway client: the kernel runs on a
    Kernel/Enterprise Gateway, no process of it is on this machine."""
    try:
        from jupyter_server.gateway import managers
    except ImportError:  # pragma: no cover - the gateway ships with jupyter_server
        return False
    kinds = (managers.GatewayMappingKernelManager, managers.GatewayKernelManager)
    return any(isinstance(obj, kinds) for obj in objects)


def local_process(manager: Any, km: Any) -> tuple[int | None, str | None]:
    """``(pid, None)`` for a kernel whose process runs here, else ``(None, reason)``.

    Only jupyter_client's LocalProvisioner (and its subclasses) starts the kernel as a child
    of this server; other provisioners (containers, clusters) and gateway kernels run it
    elsewhere: "remote"."""
    if _is_gateway(manager, km) or not hasattr(km, "provisioner"):
        return None, REMOTE
    provisioner = km.provisioner
    if provisioner is None:  # not launched yet (pending kernels)
        return None, NO_LOCAL_PROCESS
    from jupyter_client.provisioning import LocalProvisioner

    if not isinstance(provisioner, LocalProvisioner):
        return None, REMOTE
    process = getattr(provisioner, "process", None)
    pid = getattr(process, "pid", None) if process is not None else None
    if pid is None:  # between a shutdown and the restart's launch
        return None, NO_LOCAL_PROCESS
    return int(pid), None


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _connections(manager: Any, kernel_id: str) -> int:
    """Open connections (browser tabs, consoles) as the server counts them."""
    model_of = getattr(manager, "kernel_model", None)
    if model_of is None or inspect.iscoroutinefunction(model_of):
        return 0
    try:
        model = model_of(kernel_id)
    except Exception:  # the kernel left between the listing and this call
        return 0
    value = model.get("connections", 0) if isinstance(model, dict) else 0
    return int(value) if isinstance(value, int) else 0


def describe(manager: Any, kernel_id: str, notebooks: dict[str, str]) -> KernelListing | None:
    """One kernel of ``manager`` (a MappingKernelManager or alike) as a listing; None when
    it left meanwhile."""
    try:
        km = manager.get_kernel(kernel_id)
    except KeyError:
        return None
    pid, not_sampled = local_process(manager, km)
    return KernelListing(
        id=kernel_id, name=str(getattr(km, "kernel_name", "") or ""),
        notebook=notebooks.get(kernel_id),
        execution_state=str(getattr(km, "execution_state", "") or "unknown"),
        last_activity=_epoch(getattr(km, "last_activity", None)),
        connections=_connections(manager, kernel_id), pid=pid, not_sampled=not_sampled)


async def session_notebooks(session_manager: Any) -> dict[str, str]:
    """``{kernel id: notebook path}`` from the server's sessions."""
    if session_manager is None:
        return {}
    sessions = session_manager.list_sessions()
    if inspect.isawaitable(sessions):
        sessions = await sessions
    out: dict[str, str] = {}
    for session in sessions or ():
        kernel = session.get("kernel") or {}
        path = session.get("path") or (session.get("notebook") or {}).get("path")
        if kernel.get("id") and path:
            out[str(kernel["id"])] = str(path)
    return out


class ServerGlue:
    """Lists the server's kernels every ``interval`` seconds and watches for deaths.

    Construct and :meth:`start` on (or before) the event loop; :meth:`stop` from any thread.
    """

    def __init__(self, serverapp: Any, sink: ListingSink, interval: float) -> None:
        self.kernel_manager = serverapp.kernel_manager
        self.session_manager = getattr(serverapp, "session_manager", None)
        self.io_loop = getattr(serverapp, "io_loop", None)
        self.interval = interval
        self._sink = sink
        self._periodic: Any = None
        self._stopped = False
        self._polling = False
        self._failed: set[str] = set()
        # kernel id -> the kernel manager whose restarter holds our callbacks, and them.
        self._watched: dict[str, tuple[Any, Callable[[], None], Callable[[], None]]] = {}
        # kernel id -> pid of the last death handed on (one report per process).
        self._reported: dict[str, int | None] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Begin listing once the event loop runs (safe to call before it does)."""
        if self.io_loop is not None:
            self.io_loop.add_callback(self._start_periodic)
        else:
            self._start_periodic()

    def _start_periodic(self) -> None:
        from tornado.ioloop import PeriodicCallback

        if self._stopped or self._periodic is not None:
            return
        self._periodic = PeriodicCallback(self.poll, self.interval * 1000)
        self._periodic.start()
        # The first listing now, not one interval later.
        if self.io_loop is not None:
            self.io_loop.add_callback(self.poll)

    def stop(self) -> None:
        """Stop listing and forget our restart callbacks (any thread; idempotent)."""
        self._stopped = True
        if self.io_loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                self.io_loop.add_callback(self._stop_on_loop)
        else:
            self._stop_on_loop()

    def _stop_on_loop(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
        for km, on_restart, on_dead in self._watched.values():
            with contextlib.suppress(Exception):
                km.remove_restart_callback(on_restart, "restart")
                km.remove_restart_callback(on_dead, "dead")
        self._watched.clear()

    # -- the listing -----------------------------------------------------------------------
    async def poll(self) -> None:
        """One listing: cheap attribute reads plus the session list; no /proc, no files."""
        if self._stopped or self._polling:
            return
        self._polling = True
        try:
            await self._poll()
        except Exception as exc:
            self._warn_once("listing", exc)
        finally:
            self._polling = False

    async def _poll(self) -> None:
        manager = self.kernel_manager
        try:
            notebooks = await session_notebooks(self.session_manager)
        except Exception as exc:  # sessions are a nicety: list the kernels without them
            self._warn_once("sessions", exc)
            notebooks = {}
        listing: list[KernelListing] = []
        ids = list(manager.list_kernel_ids())
        for kernel_id in ids:
            entry = describe(manager, kernel_id, notebooks)
            if entry is None:
                continue
            listing.append(entry)
            if entry.not_sampled is None:
                self._watch(kernel_id)
        for gone in [k for k in self._watched if k not in ids]:
            self._unwatch(gone)
        for gone in [k for k in self._reported if k not in ids]:
            del self._reported[gone]
        if not self._stopped:
            self._sink.update_listing(listing, time.time())

    def _watch(self, kernel_id: str) -> None:
        """Hear of the kernel's deaths: through its restarter's callbacks where it has one,
        else by polling its process (Popen.poll does not block)."""
        try:
            km = self.kernel_manager.get_kernel(kernel_id)
        except KeyError:
            return
        held = self._watched.get(kernel_id)
        if held is not None and held[0] is km:
            return
        if getattr(km, "_restarter", None) is not None:
            def on_restart() -> None:
                self._on_death(kernel_id, km, restarted=True)

            def on_dead() -> None:
                self._on_death(kernel_id, km, restarted=False)

            km.add_restart_callback(on_restart, "restart")
            km.add_restart_callback(on_dead, "dead")
            self._watched[kernel_id] = (km, on_restart, on_dead)
            return
        # No restarter (autorestart off): a process that ended while the kernel is listed.
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is not None:
            self._on_death(kernel_id, km, restarted=False)

    def _unwatch(self, kernel_id: str) -> None:
        km, on_restart, on_dead = self._watched.pop(kernel_id)
        with contextlib.suppress(Exception):
            km.remove_restart_callback(on_restart, "restart")
            km.remove_restart_callback(on_dead, "dead")

    def _on_death(self, kernel_id: str, km: Any, *, restarted: bool) -> None:
        """A restarter callback (on the event loop): read the exit status while the dead
        process's Popen is still there, hand the rest to the tracker's thread."""
        if self._stopped:
            return
        provisioner = getattr(km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        pid = getattr(process, "pid", None) or getattr(provisioner, "pid", None)
        code = getattr(process, "returncode", None)
        if code is None and process is not None:
            with contextlib.suppress(Exception):
                code = process.poll()
        if kernel_id in self._reported and self._reported[kernel_id] == pid:
            return
        self._reported[kernel_id] = pid
        self._sink.report_death(Death(kernel_id, int(pid) if pid is not None else None,
                                      code, restarted, time.time()))

    def _warn_once(self, what: str, exc: Exception) -> None:
        key = f"{what}:{type(exc).__name__}"
        if key not in self._failed:
            self._failed.add(key)
            log.warning("tracklab: listing the server's kernels (%s) failed: %s: %s (logged "
                        "once)", what, type(exc).__name__, exc)
