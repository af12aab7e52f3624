"""Every notebook under notebooks/ runs top to bottom in a real kernel (nbclient), on a
machine without a GPU."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKLAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PYTHONPATH", raising=False)  # no fake GPU: as on a CPU-only box
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "⏱ tracklab:" in text  # the cell-cost line
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plot
    assert os.environ["TRACKLAB_DATA_DIR"] == str(tmp_path / "data")
