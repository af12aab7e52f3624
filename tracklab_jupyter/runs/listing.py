"""``tracklab.runs()``: the stored runs as a DataFrame."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tracklab_jupyter.runs.store import RUN_STATES, RunStore, check_project

if TYPE_CHECKING:
    import pandas as pd


def runs_frame(project: str | None = None, state: str | None = None, limit: int = 1000,
               data_dir: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Runs newest first, one row each (index ``id``): project, name, state, node, pid,
    start, end (UTC), duration_s, tags, and one ``summary.<metric>`` column per metric."""
    import pandas as pd

    if project is not None:
        check_project(project)
    if state is not None and state not in RUN_STATES:
        raise ValueError(f"state must be one of {', '.join(RUN_STATES)}; got {state!r}")
    with RunStore(data_dir) as store:
        found, _total = store.list_runs(project=project, state=state, limit=limit)
    rows = []
    for run in found:
        row = {k: v for k, v in run.items() if k != "summary"}
        row.update({f"summary.{k}": v for k, v in run["summary"].items()})
        rows.append(row)
    columns = ["id", "project", "name", "state", "node", "pid", "start", "end",
               "heartbeat", "duration_s", "tags"]
    frame = pd.DataFrame(rows, columns=columns + sorted(
        {c for r in rows for c in r if c.startswith("summary.")}))
    for column in ("start", "end", "heartbeat"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame.set_index("id")
