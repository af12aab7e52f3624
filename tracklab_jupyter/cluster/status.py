"""The one vocabulary of a node's status, for this host and every cluster node alike.

``status`` is the only field that says how a node is (REST ``cluster/info`` and
``system/status``, the WebSocket ``node_status`` message, the widget's ``node`` message, the
sidebar); docs/CLUSTER.md ("Node status") describes it once:

- ``up``: answering; its samples are current.
- ``starting``: this host's recorder before its first sample (a cluster node is listed only
  once it has answered, so it is never ``starting``).
- ``stale``: this host's recorder runs but its newest sample is older than a few intervals.
- ``down``: not answering (a cluster node after the node timeout, or one that left the
  cluster); this host when no sample came in its first 30 s.

A change of a cluster node's status is stored as the event ``node_<status>`` (``node_up``,
``node_down``) or ``node_left``.
"""

from __future__ import annotations

UP, STARTING, STALE, DOWN = "up", "starting", "stale", "down"
#: Every status, in the order the OpenAPI schema lists them.
STATUSES = (UP, STARTING, STALE, DOWN)
#: The events a status change of a cluster node is stored as.
NODE_EVENTS = ("node_up", "node_down", "node_left")


def counted(status: str) -> bool:
    """Whether a node in this status counts in the cluster's totals and use (``up``, and
    this host while ``starting``: its resources are there, its first sample is coming)."""
    return status in (UP, STARTING)
