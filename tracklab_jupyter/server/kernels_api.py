"""``api/kernels``: the Jupyter server's kernels with their process trees' resources.

(Placeholder wired into the endpoint list and the OpenAPI document; filled in by the
kernels work.)"""

from __future__ import annotations

from typing import Any

from tracklab_jupyter.server.endpoint import Endpoint

KERNEL_ENDPOINTS: tuple[Endpoint, ...] = ()
#: OpenAPI component schemas of these endpoints.
KERNEL_SCHEMAS: dict[str, Any] = {}
