"""``%load_ext tracklab`` and the ``%tracklab`` line magic.

Loading registers the magic and nothing else: the monitor, anywidget, numpy and pandas are
imported on first use, so ``%load_ext`` stays well under 100 ms.
"""

from __future__ import annotations

import shlex
from typing import Any

USAGE = """\
%tracklab                     show the live panel
%tracklab status              recorder or reader, data dir, interval, GPUs seen
%tracklab cells on [EVERY]    after each cell: wall time, CPU, the kernel's RAM peak and
                              change, its GPU memory peak and the GPU's use (docs/CELLS.md);
                              EVERY: how often the kernel's memory is read (default 20ms)
%tracklab cells off           stop printing per-cell costs
%tracklab history START [METRIC ...]
                              history as a DataFrame, e.g. %tracklab history -1h gpu.*.util_pct"""

_state: dict[str, Any] = {"timer": None}


def load(shell: Any) -> None:
    shell.register_magic_function(tracklab_magic, magic_kind="line", magic_name="tracklab")


def unload(shell: Any) -> None:
    """Stop every thread started here and remove the magic (``%unload_ext tracklab``)."""
    cells(shell, on=False)
    shell.magics_manager.magics["line"].pop("tracklab", None)
    from tracklab_jupyter.notebook.feed import close_feeds
    from tracklab_jupyter.process_monitor import stop_process_monitor

    close_feeds()
    stop_process_monitor()


def cells(shell: Any, on: bool, period: float | None = None) -> None:
    """Turn per-cell costs on (``period``: seconds between the probe's readings) or off."""
    timer = _state["timer"]
    if on and timer is None:
        from tracklab_jupyter.notebook.cell_probe import DEFAULT_PERIOD_S
        from tracklab_jupyter.notebook.cells import CellTimer
        from tracklab_jupyter.process_monitor import process_monitor

        timer = CellTimer(shell, process_monitor(), period=period or DEFAULT_PERIOD_S)
        _state["timer"] = timer
        timer.register()
    elif on and period is not None:
        timer.set_period(period)
    elif not on and timer is not None:
        timer.unregister()
        _state["timer"] = None


def status_text() -> str:
    from tracklab_jupyter.accelerators.registry import device_label, devices_in
    from tracklab_jupyter.process_monitor import process_monitor

    monitor = process_monitor()
    monitor.wait_started()
    health = monitor.health()
    devices = devices_in(monitor.info)
    holder = (health.get("store") or {}).get("recorder") or {}
    lines = [f"tracklab {health['versions']['tracklab-jupyter']} on {monitor.node}: "
             f"{monitor.role} ({health['status']})",
             f"  data dir   {monitor.data_dir}",
             f"  interval   {monitor.interval:g} s",
             f"  recorder   pid {holder.get('pid', '?')} on {holder.get('hostname', '?')}",
             f"  devices    {len(devices)}" + "".join(
                 f"\n    {device_label(d)}: {d.get('vendor')} {d.get('name')} "
                 f"({d.get('state', 'ok')})" for d in devices),
             f"  cells      {'on' if _state['timer'] is not None else 'off'}"]
    lines += [f"  note       {n}" for n in monitor.notes]
    return "\n".join(lines)


def tracklab_magic(line: str) -> Any:
    """Live system and GPU monitoring; ``%tracklab help`` lists the forms."""
    from IPython.core.error import UsageError
    from IPython.core.getipython import get_ipython

    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"{exc}\n{USAGE}") from None
    if not args:
        from tracklab_jupyter.notebook.monitor_widget import make_widget
        from tracklab_jupyter.process_monitor import process_monitor

        return make_widget(process_monitor())
    command, rest = args[0], args[1:]
    if command == "status" and not rest:
        print(status_text())
        return None
    if command == "cells" and (rest in (["on"], ["off"]) or (len(rest) == 2
                                                              and rest[0] == "on")):
        period = None
        if len(rest) == 2:
            from tracklab_jupyter.notebook.cell_probe import check_period
            from tracklab_jupyter.store.timespec import parse_duration

            try:
                period = check_period(parse_duration(rest[1]))
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        cells(get_ipython(), rest[0] == "on", period)
        every = f" (kernel memory read every {period * 1000:g} ms)" if period else ""
        print(f"tracklab: per-cell costs {rest[0]}{every}")
        return None
    if command == "history" and rest:
        from tracklab_jupyter.process_monitor import process_monitor
        from tracklab_jupyter.system_history import history

        try:
            hist = history(rest[1:] or None, start=rest[0], data_dir=process_monitor().data_dir)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return hist.to_pandas()
    if command in ("help", "-h", "--help"):
        print(USAGE)
        return None
    raise UsageError(f"unknown form: %tracklab {line}\n{USAGE}")
