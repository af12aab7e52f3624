"""The metric catalogue is the single source of names, and its docs table stays in sync."""

from __future__ import annotations

from pathlib import Path

from tracklab_jupyter.cli import main
from tracklab_jupyter.commands.docs import metrics_markdown
from tracklab_jupyter.metrics.catalogue import CATALOGUE, spec_for

ROOT = Path(__file__).resolve().parents[1]


def test_docs_table_is_generated_from_the_catalogue():
    on_disk = (ROOT / "docs" / "METRICS.md").read_text(encoding="utf-8")
    assert on_disk == metrics_markdown(), \
        "docs/METRICS.md is stale: python -m tracklab_jupyter docs"


def test_docs_check_command_detects_a_stale_file(tmp_path, capsys):
    out = tmp_path / "METRICS.md"
    assert main(["docs", "--output", str(out)]) == 0
    assert main(["docs", "--check", "--output", str(out)]) == 0
    out.write_text(out.read_text() + "edited by hand\n")
    assert main(["docs", "--check", "--output", str(out)]) == 1
    assert "stale" in capsys.readouterr().err


def test_patterns_are_unique_and_well_formed():
    patterns = [s.pattern for s in CATALOGUE]
    assert len(patterns) == len(set(patterns))
    for spec in CATALOGUE:
        assert spec.kind in ("gauge", "rate"), spec
        assert spec.pattern == spec.pattern.lower()
        assert spec.description
        if spec.counter:
            assert spec.kind == "rate" and spec.pattern.endswith(("_per_s", "iops"))


def test_concrete_names_resolve_to_their_pattern():
    assert spec_for("gpu.3.util_pct").pattern == "gpu.{gpu}.util_pct"
    assert spec_for("cpu.core.15.util_pct").unit == "%"
    assert spec_for("disk./home.used_bytes").pattern == "disk.{mount}.used_bytes"
    assert spec_for("disk./mnt/data.v2.util_pct").pattern == "disk.{mount}.util_pct"
    assert spec_for("gpu.0.proc.4512.mem_used_bytes").unit == "B"
    assert spec_for("gpu.x.util_pct") is None
    assert spec_for("cpu.util") is None
