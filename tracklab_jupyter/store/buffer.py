"""The writer's in-memory blocks: samples of one node in one minute, as they arrive.

While its minute is open, each flush stores what a block got since the previous flush as a
tail row (:meth:`Block.tail`), so readers in other processes see new samples within a flush
interval and a flush costs the same at second 59 as at second 1. When the minute closes the
block is encoded once (:meth:`Block.encode`), replaces its tail rows, and leaves memory.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

import numpy as np

from tracklab_jupyter.metrics.sample import Sample
from tracklab_jupyter.store.codec import encode_samples


@dataclass
class EncodedBlock:
    t0: int
    t1: int
    n: int
    ticks: bytes
    #: (metric name, presence mask or None when present in every sample, values)
    series: list[tuple[str, bytes | None, bytes]]


class Block:
    """Samples of one node within one minute."""

    __slots__ = ("cols", "flushed", "last_add", "minute", "node", "slots", "times")

    def __init__(self, node: str, minute: int) -> None:
        self.node = node
        self.minute = minute  # epoch seconds of the minute's start
        self.times: list[int] = []  # epoch ms, in arrival order
        # name -> (sample indices, values), both in arrival order
        self.cols: dict[str, tuple[list[int], list[float]]] = {}
        self.flushed = 0  # samples already stored as tail rows
        self.slots: list[int] = []  # the writer's tail slots holding them
        self.last_add = time.monotonic()

    def add(self, t_ms: int, metrics: dict[str, float]) -> int:
        """Add one sample; returns how many values were kept (finite numbers only)."""
        index = len(self.times)
        self.times.append(t_ms)
        kept = 0
        cols = self.cols
        isfinite = math.isfinite
        for name, value in metrics.items():
            if value.__class__ is not float:  # the common case skips the conversion
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
            if not isfinite(value):
                continue  # NaN/inf are stored like absent metrics
            col = cols.get(name)
            if col is None:
                col = cols[name] = ([], [])
            col[0].append(index)
            col[1].append(value)
            kept += 1
        self.last_add = time.monotonic()
        return kept

    @property
    def unflushed(self) -> int:
        return len(self.times) - self.flushed

    def tail(self) -> tuple[list[int], list[str], list[float]]:
        """The samples added since the last flush: their times (n), the names with a value
        in them (k), and the values, series after series (k * n), NaN where a sample lacks
        the metric. Plain lists: this runs on every flush, mostly for one sample, where
        numpy's per-call cost would dominate."""
        first = self.flushed
        n = len(self.times) - first
        names: list[str] = []
        flat: list[float] = []
        if n == 1:  # a flush per sample: the metrics whose last value is that sample's
            for name, (idx, vals) in self.cols.items():
                if idx[-1] == first:
                    names.append(name)
                    flat.append(vals[-1])
            return self.times[first:], names, flat
        nan = math.nan
        for name, (idx, vals) in self.cols.items():
            if not idx or idx[-1] < first:
                continue
            at = bisect_left(idx, first)
            names.append(name)
            if len(idx) - at == n:  # present in every new sample: the common case
                flat.extend(vals[at:])
                continue
            row = [nan] * n
            for i, value in zip(idx[at:], vals[at:], strict=True):
                row[i - first] = value
            flat.extend(row)
        return self.times[first:], names, flat

    def encode(self) -> EncodedBlock:
        """The whole block, sorted by time, through the store's codecs."""
        times = np.asarray(self.times, dtype=np.int64)
        names = list(self.cols)
        values = np.full((len(names), times.size), np.nan)
        for row, (idx, vals) in zip(values, self.cols.values(), strict=True):
            row[idx] = vals
        if times.size > 1 and np.any(times[1:] < times[:-1]):
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[:, order]
        ticks, series = encode_samples(times, values)
        return EncodedBlock(int(times[0]), int(times[-1]), int(times.size), ticks,
                            [(name, *enc) for name, enc in zip(names, series, strict=True)
                             if enc is not None])


class NodeBuffer:
    """One node's open block, closed blocks waiting to be sealed, and late blocks."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.open: Block | None = None
        self.closed: deque[Block] = deque()
        self.late: dict[int, Block] = {}
        # The newest minute ever opened: a sample for it or an earlier one after its block
        # closed is late, never a reopened block (whose tail rows the sealed minute, which
        # names the same writer, node and minute, would hide).
        self.newest: int | None = None

    def add(self, t_ms: int, metrics: dict[str, float]) -> int:
        minute = t_ms // 60_000 * 60
        block = self.open
        if block is None or minute != block.minute:
            if self.newest is None or minute > self.newest:
                if block is not None:
                    self.closed.append(block)
                block = self.open = Block(self.node, minute)
                self.newest = minute
            else:
                block = self._late_block(minute)
        return block.add(t_ms, metrics)

    def _late_block(self, minute: int) -> Block:
        for block in self.closed:
            if block.minute == minute:
                return block
        block = self.late.get(minute)
        if block is None:
            block = self.late[minute] = Block(self.node, minute)
        return block

    @property
    def has_pending(self) -> bool:
        """Whether a flush has anything of this node to write."""
        return bool(self.closed or self.late or (self.open is not None and self.open.unflushed))

    def close_open(self) -> None:
        if self.open is not None:
            self.closed.append(self.open)
            self.open = None

    def trim(self, max_blocks: int) -> tuple[int, bool]:
        """Drop the oldest closed blocks beyond ``max_blocks``; returns the samples dropped
        and whether any of them left tail rows in the store (which only maintenance can
        seal now)."""
        dropped = 0
        kept_tail = False
        while len(self.closed) > max_blocks:
            block = self.closed.popleft()
            dropped += len(block.times)
            kept_tail = kept_tail or bool(block.slots)
        while len(self.late) > max_blocks:
            dropped += len(self.late.pop(min(self.late)).times)
        return dropped, kept_tail

    @property
    def pending_samples(self) -> int:
        count = sum(len(b.times) for b in self.closed) + sum(
            len(b.times) for b in self.late.values())
        return count + (len(self.open.times) if self.open is not None else 0)


class SampleBuffer:
    """Every node's blocks."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeBuffer] = {}

    def add(self, sample: Sample) -> int:
        buf = self.nodes.get(sample.node)
        if buf is None:
            buf = self.nodes[sample.node] = NodeBuffer(sample.node)
        return buf.add(round(sample.time * 1000), sample.metrics)

    def close_idle(self, now: float, idle_s: float) -> None:
        """Close open blocks whose minute is over (wall clock) and that got nothing for
        ``idle_s`` seconds: a node that stopped sending must still get its rollups."""
        mono = time.monotonic()
        for buf in self.nodes.values():
            block = buf.open
            if (block is not None and now >= block.minute + 60 + idle_s
                    and mono - block.last_add >= idle_s):
                buf.close_open()

    def close_all(self) -> None:
        for buf in self.nodes.values():
            buf.close_open()

    def trim(self, max_blocks: int) -> tuple[int, bool]:
        results = [buf.trim(max_blocks) for buf in self.nodes.values()]
        return sum(r[0] for r in results), any(r[1] for r in results)

    @property
    def pending_samples(self) -> int:
        return sum(buf.pending_samples for buf in self.nodes.values())
