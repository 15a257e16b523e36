"""One-way layers, checked statically (``ast``, no imports run, no torch): backlit_core <- methods <- benchmark.

- ``backlit_core`` imports neither ``methods`` nor ``benchmark``;
- ``methods`` imports ``backlit_core`` but never ``benchmark``;
- ``benchmark`` may import both;
- no import cycles between the modules of the three packages.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, relative ones.
"""
from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backlit_core", "methods", "benchmark")
FORBIDDEN = {"backlit_core": {"methods", "benchmark"}, "methods": {"benchmark"}, "benchmark": set()}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _imported(path: Path, name: str) -> list[tuple[str, int]]:
    """``(imported module, line)`` for every import statement in the file, at any depth."""
    is_package = path.name == "__init__.py"
    out: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # ``from pkg import mod`` names the submodule pkg.mod when there is one
                sub = f"{target}.{alias.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return out


def _resolve(target: str) -> str | None:
    """The project module ``target`` names (its longest known prefix), or None for third-party ones."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported project module: first line}; a module's own package ``__init__`` is not an edge
    unless named (importing ``a.b`` runs ``a/__init__`` first, but that is no dependency of the code)."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        edges: dict[str, int] = {}
        for target, line in _imported(path, name):
            dep = _resolve(target)
            if dep is not None and dep != name:
                edges.setdefault(dep, line)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            for child in children:
                if state.get(child) == 1:
                    return path[path.index(child):] + [child]
                if not state.get(child):
                    state[child] = 1
                    path.append(child)
                    stack.append((child, iter(sorted(graph.get(child, {})))))
                    break
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return None


def test_the_packages_are_found():
    assert {"backlit_core", "methods", "benchmark"} <= set(MODULES)
    assert len(MODULES) > 30


@pytest.mark.parametrize("layer", PACKAGES)
def test_layers_import_one_way(layer):
    bad = []
    for name, path in MODULES.items():
        if name.split(".")[0] != layer:
            continue
        for target, line in _imported(path, name):
            if target.split(".")[0] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    assert not bad, f"{layer} may not import {sorted(FORBIDDEN[layer])}:\n" + "\n".join(dict.fromkeys(bad))


def test_no_import_cycles():
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in itertools.pairwise(cycle)]
        pytest.fail("import cycle: " + " ".join(cycle) + "\n" + "\n".join(steps))


def test_cycle_finder_reports_a_cycle():
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1, "b": 1}}) is None


STAGE_CODE = ("benchmark.stages", "benchmark.compare", "benchmark.commands", "benchmark.report", "benchmark.evaluate",
              "benchmark.batch_enhance", "benchmark.inference_timing", "benchmark.data.prepare", "benchmark.code_deps",
              "methods.train_api")


def test_the_results_module_imports_no_stage():
    """benchmark/results.py sits below what it serves: nothing it imports, directly or not, runs a stage."""
    graph = import_graph()
    seen, todo = set(), ["benchmark.results"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, {})
    assert "benchmark.system" in seen
    assert not [m for m in seen if m.startswith(STAGE_CODE)]
