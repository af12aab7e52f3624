"""Building a sampler with the collectors a configuration asks for."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from tracklab_jupyter.accelerators.registry import open_backends
from tracklab_jupyter.collectors.base import Collector
from tracklab_jupyter.sampler.hub import Hub
from tracklab_jupyter.sampler.sampler import Sampler, validate_interval
from tracklab_jupyter.settings import DEFAULT_INTERVAL

log = logging.getLogger("tracklab_jupyter.sampler")


@dataclass
class SamplerConfig:
    """What to sample and how often. ``gpus`` takes indices, ``npu.N``/``tpu.N`` or UUIDs of
    any vendor; None means every accelerator (each vendor's visibility variable, such as
    ``CUDA_VISIBLE_DEVICES``, still applies)."""

    interval: float = DEFAULT_INTERVAL
    enable_cpu: bool = True
    enable_memory: bool = True
    enable_disk: bool = True
    enable_network: bool = True
    enable_gpu: bool = True
    gpus: Sequence[str] | str | None = None
    node: str | None = None
    cache_dir: str | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.interval = validate_interval(self.interval)


def build_collectors(config: SamplerConfig) -> list[Collector]:
    """The enabled collectors; accelerator backends that find no device add a note instead."""
    from tracklab_jupyter.collectors.cpu import CpuCollector
    from tracklab_jupyter.collectors.disk import DiskCollector
    from tracklab_jupyter.collectors.memory import MemoryCollector
    from tracklab_jupyter.collectors.network import NetworkCollector

    collectors: list[Collector] = []
    if config.enable_cpu:
        collectors.append(CpuCollector())
    if config.enable_memory:
        collectors.append(MemoryCollector())
    if config.enable_disk:
        collectors.append(DiskCollector())
    if config.enable_network:
        collectors.append(NetworkCollector())
    if config.enable_gpu:
        backends, notes = open_backends(config.gpus)
        collectors.extend(backends)
        config.notes.extend(notes)
    return collectors


def build_sampler(config: SamplerConfig | None = None, hub: Hub | None = None) -> Sampler:
    """A ready (not started) sampler for ``config``."""
    from tracklab_jupyter.collectors.system_info import collect_system_info

    config = config or SamplerConfig()
    return Sampler(build_collectors(config), interval=config.interval, node=config.node,
                   hub=hub, system_info=collect_system_info)
