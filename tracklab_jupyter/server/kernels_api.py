"""``api/kernels``: the Jupyter server's kernels with their process trees' resources
(docs/KERNELS.md).

The body is the kernel tracker's latest pass, from memory (no /proc, no SQLite on the event
loop); the standalone server, which runs no kernels, answers an empty list saying so.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from tracklab_jupyter.server.endpoint import ApiError, Endpoint, Reply, Request, json_response
from tracklab_jupyter.server.limits import Limits, clip
from tracklab_jupyter.server.params import Param, ParamError

#: A kernel id as Jupyter makes them (a UUID), at most 64 characters: the catalogue's
#: ``{kernel}`` placeholder.
KERNEL_ID_PATTERN = r"^[0-9a-f][0-9a-f-]{0,63}$"
MAX_KERNEL_ID_CHARS = 64
_KERNEL_ID_RE = re.compile(KERNEL_ID_PATTERN[1:-1])
NO_KERNELS_NOTE = "this server manages no kernels (standalone server)"


def _kernel_id(text: str) -> str:
    if not _KERNEL_ID_RE.fullmatch(text):  # fullmatch: "$" would let a final newline in
        raise ParamError(f"bad id {clip(text)!r}: a kernel id is 1 to {MAX_KERNEL_ID_CHARS} "
                         "lower-case hex digits and dashes, starting with a digit")
    return text


def _params(limits: Limits) -> tuple[Param, ...]:
    return (Param("id", "Only this kernel (its id); an unknown id is a 404",
                  {"type": "string", "pattern": KERNEL_ID_PATTERN,
                   "maxLength": MAX_KERNEL_ID_CHARS}, _kernel_id),)


def _empty(request: Request) -> dict[str, Any]:
    from tracklab_jupyter.kernels.tracker import empty_body

    return empty_body(request.monitor.node, None, NO_KERNELS_NOTE)


def kernels(request: Request) -> Reply:
    tracker = request.monitor.kernels
    body = tracker.snapshot() if tracker is not None else _empty(request)
    wanted = request.args["id"]
    if wanted is not None:
        chosen = [k for k in body["kernels"] if k["id"] == wanted]
        if not chosen:
            known = ", ".join(k["id"] for k in body["kernels"]) or "none"
            raise ApiError(404, f"unknown kernel {clip(wanted)!r}",
                           clip(f"kernels of this server: {known}", 400))
        body = {**body, "kernels": chosen}
    stamp = body["time"]
    etag = None if stamp is None else (
        f'W/"k{stamp:.3f}-{zlib.crc32((wanted or "").encode()):08x}"')
    return Reply(body, etag=etag, last_modified=stamp)


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_STRING_OR_NULL = {"type": ["string", "null"]}
_LIMIT_SOURCE = {"enum": ["cgroup", "host", None],
                 "description": "cgroup: the memory limit of the process's cgroup (below "
                                "the host's memory); host: the host's memory"}
_REF = "#/components/schemas/"

#: OpenAPI component schemas of these endpoints.
KERNEL_SCHEMAS: dict[str, Any] = {
    "KernelProcess": {
        "type": "object", "required": ["pid", "name", "cpu_pct", "rss_bytes", "threads",
                                       "gpu_mem_bytes"],
        "properties": {"pid": {"type": "integer"}, "name": {"type": "string"},
                       "cpu_pct": {"type": "number"}, "rss_bytes": {"type": "number"},
                       "threads": {"type": "integer"}, "gpu_mem_bytes": _NUMBER_OR_NULL}},
    "Kernel": {
        "type": "object",
        "required": ["id", "name", "notebook", "execution_state", "last_activity",
                     "connections", "sampled", "not_sampled", "pid", "procs", "threads",
                     "cpu_pct", "rss_bytes", "pss_bytes", "uss_bytes", "mem_limit_bytes",
                     "mem_limit_source", "gpu_mem_bytes", "gpus", "pid_namespace",
                     "processes"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string", "description": "The kernel spec, e.g. python3"},
            "notebook": {"type": ["string", "null"],
                         "description": "The session's path, e.g. work/train.ipynb"},
            "execution_state": {"type": "string",
                                "examples": ["idle", "busy", "starting", "dead", "unknown"]},
            "last_activity": {"type": ["number", "null"], "description": "Epoch seconds"},
            "connections": {"type": "integer"},
            "sampled": {"type": "boolean"},
            "not_sampled": {"type": ["string", "null"],
                            "examples": ["remote", "no local process"]},
            "pid": {"type": ["integer", "null"]},
            "procs": {"type": "integer"}, "threads": {"type": "integer"},
            "cpu_pct": {"type": ["number", "null"],
                        "description": "Percent of one core, whole tree; null at the "
                                       "first read"},
            "rss_bytes": _NUMBER_OR_NULL, "pss_bytes": _NUMBER_OR_NULL,
            "uss_bytes": _NUMBER_OR_NULL,
            "mem_limit_bytes": _NUMBER_OR_NULL, "mem_limit_source": _LIMIT_SOURCE,
            "gpu_mem_bytes": {"type": ["number", "null"],
                              "description": "Accelerator memory of the tree's processes, "
                                             "summed over devices; null when no device "
                                             "reports one of them"},
            "gpus": {"type": "object",
                     "description": "Per device (gpu.0, npu.1, ...) where the tree holds "
                                    "memory; util_pct is the device's, proc_util_pct the "
                                    "tree's own",
                     "additionalProperties": {
                         "type": "object",
                         "required": ["mem_used_bytes", "util_pct", "proc_util_pct"],
                         "properties": {
                             "mem_used_bytes": {"type": "number"},
                             "util_pct": _NUMBER_OR_NULL,
                             "proc_util_pct": {
                                 "type": ["number", "null"],
                                 "description": "Summed utilisation of the tree's processes "
                                                "on the device (gpu.N.proc.PID.util_pct); "
                                                "null where the driver reports none for "
                                                "them (other vendors, MIG, containers, a "
                                                "process not read yet)"}}}},
            "pid_namespace": _STRING_OR_NULL,
            "processes": {"type": "array", "maxItems": 32,
                          "items": {"$ref": _REF + "KernelProcess"}}}},
    "Kernels": {
        "type": "object",
        "required": ["time", "node", "interval_s", "mem_limit_bytes", "mem_limit_source",
                     "notes", "kernels"],
        "properties": {
            "time": {"type": ["number", "null"],
                     "description": "When the kernels were read; null before the first read "
                                    "or on a server without kernels"},
            "node": {"type": "string"},
            "interval_s": {"type": ["number", "null"],
                           "description": "Seconds between reads (c.TrackLab.kernel_interval); "
                                          "null on a server without kernels"},
            "mem_limit_bytes": _NUMBER_OR_NULL, "mem_limit_source": _LIMIT_SOURCE,
            "notes": {"type": "array", "items": {"type": "string"}},
            "kernels": {"type": "array", "description": "Largest RSS first",
                        "items": {"$ref": _REF + "Kernel"}}}},
}

KERNEL_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("api/kernels", kernels,
             "The Jupyter server's kernels: notebook, state, CPU, memory against the limit, "
             "accelerator memory, processes", json_response("Kernels"), _params,
             errors=(404,), etag=True,
             description="From memory (the kernel tracker's latest pass, every "
                         "c.TrackLab.kernel_interval seconds). The standalone server and a "
                         "server before its first pass answer an empty list with a note."),
)
