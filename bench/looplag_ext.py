"""A bench-only Jupyter server extension: measures the tornado event loop's lag.

A callback asks to run every 10 ms; how late it runs is the loop's lag (time spent in other
callbacks). ``GET {base_url}looplag`` returns percentiles since the last reset and
``?reset=1`` starts afresh; ``?samples=1`` adds every lag (``lags_ms``), so a long run can
drain them every few seconds and keep this process's memory flat (bench/soak.py). Loaded by
bench/server.py with ``PYTHONPATH=bench``.
"""

from __future__ import annotations

import gc
import json
import time

from jupyter_server.base.handlers import JupyterHandler
from tornado import ioloop, web

PERIOD_S = 0.010
_lags: list[float] = []
#: Garbage-collection pauses since the last reset, per generation: a full (gen 2) collection
#: of a large heap stops every thread, the loop's included.
_gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_gc_started = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc_pauses[info["generation"]].append(time.perf_counter() - _gc_started[0])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LoopLagHandler(JupyterHandler):
    @web.authenticated
    def get(self) -> None:
        body = {"n": len(_lags), "p50_ms": _percentile(_lags, 0.5) * 1e3,
                "p99_ms": _percentile(_lags, 0.99) * 1e3, "max_ms": max(_lags, default=0) * 1e3,
                "sum_ms": sum(_lags) * 1e3,  # one long stall is one sample: see the sum
                "gc": {str(gen): {"n": len(p), "max_ms": max(p, default=0) * 1e3,
                                  "sum_ms": sum(p) * 1e3} for gen, p in _gc_pauses.items()}}
        if self.get_argument("samples", None):
            body["lags_ms"] = [round(lag * 1e3, 4) for lag in _lags]
        if self.get_argument("reset", None):
            _lags.clear()
            for pauses in _gc_pauses.values():
                pauses.clear()
        self.finish(json.dumps(body))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "looplag_ext"}]


def _load_jupyter_server_extension(serverapp) -> None:
    expected = [time.perf_counter() + PERIOD_S]

    def tick() -> None:
        now = time.perf_counter()
        _lags.append(max(0.0, now - expected[0]))
        expected[0] = now + PERIOD_S
        loop.call_later(PERIOD_S, tick)

    gc.callbacks.append(_on_gc)
    loop = ioloop.IOLoop.current()
    loop.call_later(PERIOD_S, tick)
    base = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(base + "looplag", LoopLagHandler)])
