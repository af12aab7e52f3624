"""Samples as columnar float64 buffers, the widget's wire format (js/PROTOCOL.md)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tracklab_jupyter.sampler.sample import Sample


def select(names: Iterable[str], globs: Sequence[str]) -> list[str]:
    """Names matching any glob (all names when there are no globs), sorted."""
    if not globs:
        return sorted(names)
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs))


def to_columns(samples: Sequence[Sample], globs: Sequence[str]) -> tuple[dict[str, Any],
                                                                         list[bytes]]:
    """``({"names", "n"}, [times, values])``: times as float64 epoch seconds, values
    series-major float64 with NaN where a metric was absent."""
    names = select({k for s in samples for k in s.metrics}, globs)
    n = len(samples)
    times = np.fromiter((s.time for s in samples), dtype=np.float64, count=n)
    values = np.full((len(names), n), np.nan)
    index = {name: i for i, name in enumerate(names)}
    for j, sample in enumerate(samples):
        for name, value in sample.metrics.items():
            i = index.get(name)
            if i is not None:
                values[i, j] = value
    return {"names": names, "n": n}, [times.tobytes(), values.tobytes()]

