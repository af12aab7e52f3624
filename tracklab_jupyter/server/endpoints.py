"""Every REST endpoint, grouped into routes for the two servers."""

from __future__ import annotations

import re

from tracklab_jupyter.server.alerts_api import ALERT_ENDPOINTS
from tracklab_jupyter.server.api import SYSTEM_ENDPOINTS, Endpoint
from tracklab_jupyter.server.kernels_api import KERNEL_ENDPOINTS
from tracklab_jupyter.server.runs_api import RUN_ENDPOINTS

ENDPOINTS: tuple[Endpoint, ...] = (SYSTEM_ENDPOINTS + RUN_ENDPOINTS + KERNEL_ENDPOINTS
                                   + ALERT_ENDPOINTS)


def path_pattern(path: str) -> str:
    """``api/runs/{run_id}`` -> ``api/runs/(?P<run_id>[^/]+)`` (tornado passes named
    groups to the handler as keyword arguments)."""
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)


def routes() -> list[tuple[str, dict[str, Endpoint]]]:
    """``(path pattern, {method: endpoint})``, one entry per path, in definition order."""
    grouped: dict[str, dict[str, Endpoint]] = {}
    for endpoint in ENDPOINTS:
        grouped.setdefault(path_pattern(endpoint.path), {})[endpoint.method] = endpoint
    return list(grouped.items())
