"""Turning cumulative counters into per-second rates."""

from __future__ import annotations

# A counter that drops, or jumps by more than this many units per second, wrapped or was
# reset (a NIC re-created, a 32-bit counter rolled over): that tick's rate is left out.
MAX_PLAUSIBLE_RATE = 1e13


class RateTracker:
    """Keeps the previous value and time of each counter and yields rates.

    Time is a monotonic clock reading in seconds, so wall-clock jumps cannot distort rates.
    The first reading of a counter yields nothing; so does a reset or wrap.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def update(self, counters: dict[str, float], now: float) -> dict[str, float]:
        rates: dict[str, float] = {}
        last = self._last
        for name, value in counters.items():
            prev = last.get(name)
            last[name] = (value, now)
            if prev is None:
                continue
            prev_value, prev_time = prev
            elapsed = now - prev_time
            delta = value - prev_value
            if elapsed <= 0 or delta < 0:
                continue
            rate = delta / elapsed
            if rate <= MAX_PLAUSIBLE_RATE:
                rates[name] = rate
        # Forget counters that vanished (an unmounted disk), so a return starts afresh.
        if len(last) != len(counters):
            for name in set(last) - set(counters):
                del last[name]
        return rates
