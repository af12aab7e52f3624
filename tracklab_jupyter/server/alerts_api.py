"""``api/alerts``: active and recent alerts.

(Placeholder wired into the endpoint list and the OpenAPI document; filled in by the
alerts work.)"""

from __future__ import annotations

from typing import Any

from tracklab_jupyter.server.endpoint import Endpoint

ALERT_ENDPOINTS: tuple[Endpoint, ...] = ()
#: OpenAPI component schemas of these endpoints.
ALERT_SCHEMAS: dict[str, Any] = {}
