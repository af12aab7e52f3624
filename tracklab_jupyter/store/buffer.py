"""The writer's in-memory blocks: samples of one node in one minute, as they arrive.

A block is written on every flush while its minute is open (replacing the previous partial
version, so readers in other processes see new samples within a flush interval) and once
more, final, when the minute closes; then it leaves memory.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from tracklab_jupyter.sampler.sample import Sample
from tracklab_jupyter.store.codec import encode_ints, encode_mask, encode_values


@dataclass
class EncodedSeries:
    name: str
    n: int
    mask: bytes | None
    data: bytes
    # The rollup of this block: min, max, sum, count, last.
    vmin: float
    vmax: float
    vsum: float
    last: float


@dataclass
class EncodedBlock:
    t0: int
    t1: int
    n: int
    ticks: bytes
    series: list[EncodedSeries]


class Block:
    """Samples of one node within one minute."""

    __slots__ = ("cols", "dirty", "last_add", "late", "merge", "minute", "node", "times",
                 "written_t0")

    def __init__(self, node: str, minute: int, *, late: bool = False) -> None:
        self.node = node
        self.minute = minute  # epoch seconds of the minute's start
        self.times: list[int] = []  # epoch ms
        # name -> (tick indices, values), both in arrival order
        self.cols: dict[str, tuple[list[int], list[float]]] = {}
        self.dirty = False
        self.late = late  # samples for a minute already written and gone from memory
        # Other blocks of this minute may exist in the database (written before a restart,
        # or late samples): then rollups are rebuilt from everything stored. None: not
        # checked yet.
        self.merge: bool | None = True if late else None
        self.written_t0: int | None = None
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
        self.dirty = True
        self.last_add = time.monotonic()
        return kept

    @property
    def points(self) -> int:
        return sum(len(c[1]) for c in self.cols.values())

    def encode(self) -> EncodedBlock:
        times = np.asarray(self.times, dtype=np.int64)
        n = times.size
        remap: np.ndarray | None = None
        if n > 1 and np.any(times[1:] < times[:-1]):
            order = np.argsort(times, kind="stable")
            times = times[order]
            remap = np.empty(n, dtype=np.int64)
            remap[order] = np.arange(n)
        series = []
        for name, (idx, vals) in self.cols.items():
            values = np.asarray(vals, dtype=np.float64)
            mask = None
            if remap is not None:
                positions = remap[np.asarray(idx, dtype=np.int64)]
                order = np.argsort(positions, kind="stable")
                positions, values = positions[order], values[order]
            else:
                positions = None
            if len(idx) != n:
                present = np.zeros(n, dtype=bool)
                present[positions if positions is not None else idx] = True
                mask = encode_mask(present)
            series.append(EncodedSeries(
                name, values.size, mask, encode_values(values), float(values.min()),
                float(values.max()), float(values.sum()), float(values[-1])))
        return EncodedBlock(int(times[0]), int(times[-1]), n, encode_ints(times), series)


class NodeBuffer:
    """One node's open block, closed blocks waiting to be written, and late blocks."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.open: Block | None = None
        self.closed: deque[Block] = deque()
        self.late: dict[int, Block] = {}

    def add(self, t_ms: int, metrics: dict[str, float]) -> int:
        minute = t_ms // 60_000 * 60
        block = self.open
        if block is None or minute > block.minute:
            if block is not None:
                self.closed.append(block)
            block = self.open = Block(self.node, minute)
        elif minute < block.minute:
            block = self._late_block(minute)
        return block.add(t_ms, metrics)

    def _late_block(self, minute: int) -> Block:
        for block in self.closed:
            if block.minute == minute:
                return block
        block = self.late.get(minute)
        if block is None:
            block = self.late[minute] = Block(self.node, minute, late=True)
        return block

    def close_open(self) -> None:
        if self.open is not None:
            self.closed.append(self.open)
            self.open = None

    def trim(self, max_blocks: int) -> int:
        """Drop the oldest closed blocks beyond ``max_blocks``; returns samples dropped."""
        dropped = 0
        while len(self.closed) > max_blocks:
            dropped += len(self.closed.popleft().times)
        while len(self.late) > max_blocks:
            dropped += len(self.late.pop(min(self.late)).times)
        return dropped

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

    def trim(self, max_blocks: int) -> int:
        return sum(buf.trim(max_blocks) for buf in self.nodes.values())

    @property
    def pending_samples(self) -> int:
        return sum(buf.pending_samples for buf in self.nodes.values())
