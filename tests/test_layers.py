"""The package's layers only point down: no module imports a module of a higher layer, not
even inside a function or for type checking, and the packages of one layer do not import
each other in a cycle. docs/DEVELOPING.md writes the layers down; this is the same table."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first. A module belongs to the layer of the longest prefix that names it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base: names, settings, the sample", (
        "tracklab_jupyter._version", "tracklab_jupyter.threads", "tracklab_jupyter.settings",
        "tracklab_jupyter.addresses",
        "tracklab_jupyter.metrics")),
    ("hardware: collectors and accelerator backends", (
        "tracklab_jupyter.collectors", "tracklab_jupyter.accelerators")),
    ("sampling", ("tracklab_jupyter.sampler",)),
    ("storage", ("tracklab_jupyter.store", "tracklab_jupyter.snapshot")),
    ("services: recorder, history, kernels, cluster, alerts, run records, doctor", (
        "tracklab_jupyter.recorder", "tracklab_jupyter.system_history",
        "tracklab_jupyter.kernels", "tracklab_jupyter.cluster", "tracklab_jupyter.alerts",
        "tracklab_jupyter.runs", "tracklab_jupyter.doctor")),
    ("the monitor and its start-up", (
        "tracklab_jupyter.monitor", "tracklab_jupyter.process_monitor",
        "tracklab_jupyter.startup")),
    ("runs as a script uses them", (
        "tracklab_jupyter.runs.run", "tracklab_jupyter.runs.gpu")),
    ("surfaces: servers, notebook, command line", (
        "tracklab_jupyter.prometheus", "tracklab_jupyter.server", "tracklab_jupyter.notebook",
        "tracklab_jupyter.snapshot_table", "tracklab_jupyter.commands", "tracklab_jupyter.cli",
        "tracklab_jupyter.__main__", "tracklab_jupyter")),
    ("the public API", ("tracklab",)),
)


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("tracklab_jupyter", "tracklab"):
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> int:
    best, found = -1, -1
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found >= 0, f"{module} is in no layer: add it to LAYERS (and docs/DEVELOPING.md)"
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every module of ours ``module`` imports, anywhere in it."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        found.update(t for t in targets if t.split(".")[0] in ("tracklab", "tracklab_jupyter"))
    return found


def _package(module: str) -> str:
    """The package of ``module`` within its layer (``runs`` holds records low and the API a
    script calls higher up: two parts)."""
    parts = module.split(".")
    package = ".".join(parts[:2]) if parts[0] == "tracklab_jupyter" else parts[0]
    return f"{package} ({LAYERS[layer_of(module)][0].split(':')[0]})"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        for target in _imports(module, path):
            if target in MODULES and layer_of(target) > mine:
                upward.append(f"{module} ({LAYERS[mine][0]}) imports {target} "
                              f"({LAYERS[layer_of(target)][0]})")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_packages_of_a_layer_import_each_other_without_cycles():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target in _imports(module, path):
            if target in MODULES and _package(target) != _package(module):
                graph[_package(module)].add(_package(target))

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = {" -> ".join(c) for p in list(graph) if (c := cycle_from(p))}
    assert not cycles, "package cycles:\n" + "\n".join(sorted(cycles))
