"""The projects and runs endpoints (docs/RUNS.md). Each opens the store for the request,
off the event loop (they are all ``blocking``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tracklab_jupyter.monitor import Monitor
from tracklab_jupyter.runs.store import (
    RUN_STATES,
    ProjectNotFoundError,
    RunConflictError,
    RunNotFoundError,
    RunStore,
    check_project,
)
from tracklab_jupyter.server.api import (
    ApiError,
    Endpoint,
    Params,
    Reply,
    check_history_query,
    check_params,
    history_columns,
    int_param,
    many,
    one,
)

_PAGE = {"project", "state", "limit", "offset"}
_EDITABLE = ("name", "tags", "notes")


@contextmanager
def _store(monitor: Monitor, writable: bool = False) -> Iterator[RunStore]:
    """A store for one request; store errors become JSON errors."""
    try:
        store = RunStore(monitor.data_dir, writable=writable)
    except FileNotFoundError as exc:
        raise ApiError(404, "no store yet", str(exc)) from None
    try:
        yield store
    except (RunNotFoundError, ProjectNotFoundError) as exc:
        raise ApiError(404, "not found", exc.args[0]) from None
    except RunConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, "bad request", str(exc)) from None
    finally:
        store.close()


def _run_list(monitor: Monitor, params: Params, project: str | None) -> Reply:
    state = one(params, "state")
    if state is not None and state not in RUN_STATES:
        raise ApiError(400, f"bad state {state!r}", f"state is one of {', '.join(RUN_STATES)}")
    limit = int_param(params, "limit", 50, 1, 1000)
    offset = int_param(params, "offset", 0, 0, 10**9)
    with _store(monitor) as store:
        if project is not None:
            store.project(project)  # 404 for a project that does not exist
        runs, total = store.list_runs(project=project, state=state, limit=limit or 50,
                                      offset=offset or 0)
    return Reply({"runs": runs, "total": total, "limit": limit, "offset": offset})


def projects(monitor: Monitor, params: Params) -> Reply:
    check_params(params, set())
    with _store(monitor) as store:
        return Reply({"projects": store.list_projects()})


def project(monitor: Monitor, params: Params, project: str) -> Reply:
    check_params(params, set())
    with _store(monitor) as store:
        return Reply(store.project(project))


def project_runs(monitor: Monitor, params: Params, project: str) -> Reply:
    check_params(params, _PAGE - {"project"})
    return _run_list(monitor, params, project)


def runs(monitor: Monitor, params: Params) -> Reply:
    check_params(params, _PAGE)
    name = one(params, "project")
    if name is not None:
        try:
            check_project(name)
        except ValueError as exc:
            raise ApiError(400, "bad project", str(exc)) from None
    return _run_list(monitor, params, name)


def run(monitor: Monitor, params: Params, run_id: str) -> Reply:
    check_params(params, set())
    with _store(monitor) as store:
        return Reply(store.get_run(run_id))


def run_metrics(monitor: Monitor, params: Params, run_id: str) -> Reply:
    check_params(params, {"metrics", "start_step", "end_step"})
    start = int_param(params, "start_step", None, 0, 2**62)
    end = int_param(params, "end_step", None, 0, 2**62)
    with _store(monitor) as store:
        return Reply(store.metrics(run_id, many(params, "metrics") or None, start, end))


def run_system(monitor: Monitor, params: Params, run_id: str) -> Reply:
    from tracklab_jupyter.runs.history import run_span

    check_params(params, {"metrics", "step", "agg"})
    query = {"start": None, "end": None, "step": one(params, "step"),
             "agg": one(params, "agg", "mean")}
    check_history_query(query)
    with _store(monitor) as store:
        record = store.get_run(run_id)
        process = store.process_metrics(run_id)
    start, end = run_span(record)
    try:
        hist = monitor.history(metrics=many(params, "metrics") or None, node=record["node"],
                               start=start, end=end, step=query["step"], agg=query["agg"])
    except (ValueError, LookupError) as exc:
        raise ApiError(400, "bad system query", str(exc.args[0] if exc.args else exc)) from None
    return Reply({"run": run_id, "node": record["node"], "start": start, "end": end,
                  "history": history_columns(hist), "process": process})


def _patch_body(body: bytes) -> dict[str, Any]:
    try:
        changes = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed body", f"expected a JSON object: {exc}") from None
    if not isinstance(changes, dict) or not changes:
        raise ApiError(400, "malformed body", 'expected a JSON object with any of "name", '
                                              '"tags", "notes", e.g. {"name": "baseline"}')
    unknown = sorted(set(changes) - set(_EDITABLE))
    if unknown:
        raise ApiError(400, f"{unknown[0]!r} cannot be changed",
                       f"editable fields: {', '.join(_EDITABLE)}")
    if "name" in changes and changes["name"] is None:
        raise ApiError(400, "bad name", "a run's name cannot be null")
    return changes


def patch_run(monitor: Monitor, params: Params, run_id: str, body: bytes = b"") -> Reply:
    check_params(params, set())
    changes = _patch_body(body)
    with _store(monitor, writable=True) as store:
        updated = store.update_run(run_id, name=changes.get("name"), tags=changes.get("tags"),
                                   notes=changes.get("notes"))
    return Reply(updated)


def delete_run(monitor: Monitor, params: Params, run_id: str) -> Reply:
    check_params(params, set())
    with _store(monitor, writable=True) as store:
        store.delete_run(run_id)
    return Reply(None, status=204)


def _get(path: str, fn: Callable[..., Reply], summary: str) -> Endpoint:
    return Endpoint(path, fn, blocking=True, summary=summary)


RUN_ENDPOINTS: tuple[Endpoint, ...] = (
    _get("api/projects", projects, "Projects with their run counts"),
    _get("api/projects/{project}", project, "One project"),
    _get("api/projects/{project}/runs", project_runs, "A project's runs, newest first"),
    _get("api/runs", runs, "Runs, newest first, by project and state, paged"),
    _get("api/runs/{run_id}", run, "One run: config, summary, state, host, command, git"),
    Endpoint("api/runs/{run_id}", patch_run, blocking=True, method="PATCH",
             summary="Rename, retag or annotate a run"),
    Endpoint("api/runs/{run_id}", delete_run, blocking=True, method="DELETE",
             summary="Delete a finished run and its metrics"),
    _get("api/runs/{run_id}/metrics", run_metrics, "A run's logged metrics, by step"),
    _get("api/runs/{run_id}/system", run_system,
         "System metrics and the run's process tree during the run"),
)
