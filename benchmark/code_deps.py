"""The code each pipeline stage runs, found from the import graph, as content hashes (``results/code``).

A stage's code starts at its ``bench run-stage`` function in :mod:`benchmark.commands.pipeline` and
follows, statically (``ast``), what runs: the module-level statements of every project module
imported, and each function or class reached through ``from module import name``, a reference to a
name of the same module, an import inside a function, or a registry's lazy ``"module:attr"``
entry (``if TYPE_CHECKING:`` imports and annotations do not count; a module used by name counts
whole). The method plugins a stage loads through the registry count whole: a training run's
method and the loop it names (``training_loop``, followed only there), an operator's enhancement
and evaluation its operator's, the inference timing and the report all of them. A function is a
node of its own; a class counts with its module's top-level statements (its body runs on import).

A module used in full is hashed whole (``path``); one used in part by the definitions reached
(``path::name,...``), so changing one function reruns only the stages that run it. Each DVC stage
depends on its fingerprint file instead of a hand-kept list of files: changing Zero-DCE's loop
retrains Zero-DCE only, changing the report retrains nothing. Files hold relative paths and sha256
only (no times, no machine). ``tests/test_code_deps.py`` runs the real commands and fails if one
executes a function or module its fingerprint lacks.
"""
from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

from backlit_core.atomic import write_json
from backlit_core.paths import PROJECT_ROOT

PACKAGES = ("backlit_core", "methods", "benchmark")
ENTRY = "benchmark.commands.pipeline"
CLI = "benchmark.cli"  # ``bench``: its "module:attr" command table loads only the command invoked
STAGES = {"prepare": "prepare", "train": "train", "enhance": "enhance", "evaluate": "evaluate",
          "envelope": "envelope", "time-inference": "time_inference", "report": "report"}
TOP = ""  # the node of a module's statements outside its functions and classes
Node = tuple[str, str]  # (module, definition name or TOP)
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef)  # a class body runs on import: classes are part of TOP
LAZY_ENTRY = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)")  # "module:attr", a registry's lazy entry


@cache
def project_modules(root: Path = PROJECT_ROOT) -> dict[str, Path]:
    """Every module of the project's packages by dotted name (packages by their ``__init__.py``)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


@cache
def _parsed(module: str) -> tuple[str, ast.Module, dict[str, ast.stmt]]:
    """Source, tree and top-level definitions (functions and classes by name) of a project module."""
    path = project_modules()[module]
    source = path.read_text()
    tree = ast.parse(source, str(path))
    return source, tree, {n.name: n for n in tree.body if isinstance(n, DEFS)}


def _statements(node: Node) -> list[ast.stmt]:
    _, tree, defs = _parsed(node[0])
    return [defs[node[1]]] if node[1] else [n for n in tree.body if not isinstance(n, DEFS)]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _children(node: ast.AST) -> Iterator[ast.AST]:
    """Child nodes, without annotations (never evaluated: every module has ``from __future__ import annotations``)."""
    skip = {"annotation", "returns"}
    for name, value in ast.iter_fields(node):
        if name in skip:
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                yield child


def _walk(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node under ``nodes`` except annotations and the bodies of ``if TYPE_CHECKING:`` blocks."""
    for node in nodes:
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _walk(node.orelse)
        else:
            yield from _walk(_children(node))


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _whole(module: str) -> set[Node]:
    return {(module, TOP)} | {(module, name) for name in _parsed(module)[2]}


def _from_base(node: ast.ImportFrom, module: str) -> str:
    """The absolute module a ``from ... import`` names (relative ones resolved against ``module``)."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    parts = parts[: len(parts) - node.level + (1 if project_modules()[module].name == "__init__.py" else 0)]
    return ".".join(parts + ([node.module] if node.module else []))


def _loaded(node: ast.Import | ast.ImportFrom, module: str) -> set[Node]:
    """The module-level code an import statement runs (each module's TOP, its packages' first)."""
    modules = project_modules()
    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
        [_from_base(node, module)] + [f"{_from_base(node, module)}.{a.name}" for a in node.names]
    return {(m, TOP) for name in names if name in modules for m in _with_parents(name)}


@cache
def _bindings(module: str) -> dict[str, tuple[str, str | None]]:
    """Name -> (module, attribute or None for the module itself) for every import in ``module``."""
    out: dict[str, tuple[str, str | None]] = {}
    for node in _walk(_parsed(module)[1].body):
        if isinstance(node, ast.Import):
            out.update({(a.asname or a.name.split(".")[0]): (a.name if a.asname else a.name.split(".")[0], None)
                        for a in node.names})
        elif isinstance(node, ast.ImportFrom):
            base = _from_base(node, module)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out[a.asname or a.name] = (sub, None) if sub in project_modules() else (base, a.name)
    return out


def _resolve(module: str, name: str | None, depth: int = 0) -> set[Node]:
    """The nodes that ``module.name`` runs when called or used (a module used as such counts whole)."""
    if module not in project_modules():
        return set()
    if name is None or depth > 10:
        return _whole(module)
    if name in _parsed(module)[2]:
        return {(module, name)}
    if name in _bindings(module):  # a re-export
        return _resolve(*_bindings(module)[name], depth + 1)
    return {(module, TOP)}


def _edges(node: Node) -> set[Node]:
    """What running ``node`` runs next: its module's TOP, the module-level code of what it imports, and
    every definition it names (of its own module or imported)."""
    module = node[0]
    defs, bindings = _parsed(module)[2], _bindings(module)
    out: set[Node] = {(module, TOP)}
    statements = _statements(node)
    loops = {id(s.value) for s in _walk(statements) if isinstance(s, (ast.Assign, ast.AnnAssign))
             and any(isinstance(t, ast.Name) and t.id == "training_loop"
                     for t in (s.targets if isinstance(s, ast.Assign) else [s.target]))}
    for sub in _walk(statements):
        if isinstance(sub, (ast.Import, ast.ImportFrom)):
            out |= _loaded(sub, module)
        elif isinstance(sub, ast.Name) and sub.id in defs:
            out.add((module, sub.id))
        elif isinstance(sub, ast.Name) and sub.id in bindings:
            out |= _resolve(*bindings[sub.id])
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str) and id(sub) not in loops and module != CLI and \
                (target := LAZY_ENTRY.fullmatch(sub.value)) and target[1] in project_modules():
            out |= {(m, TOP) for m in _with_parents(target[1])} | _resolve(target[1], target[2])
    return out


def reached(start: Iterable[Node]) -> set[Node]:
    """``start`` and every node it runs, transitively."""
    seen: set[Node] = set()
    todo = list(start)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += _edges(node) - seen
    return seen


def plugins_loaded(stage: str, method: str | None) -> list[str]:
    """The plugin modules a stage loads through the registry (see the module docstring)."""
    from methods.registry import METHODS, plugin_module

    if stage in ("evaluate", "time-inference", "report"):
        return [plugin_module(m) for m in METHODS.names()]
    if stage in ("train", "envelope") and method:
        loop = getattr(METHODS.get(method), "training_loop", None)
        scoring = [plugin_module(m) for m in METHODS.names() if m != method] if stage == "envelope" else []
        return [plugin_module(method)] + ([loop.split(":")[0]] if loop else []) + scoring
    if stage in ("enhance", "evaluate") and method and getattr(METHODS.get(method), "kind", None) == "training-free":
        return [plugin_module(method)]
    return []


def stage_nodes(stage: str, method: str | None = None) -> set[Node]:
    """Every node ``bench run-stage <stage>`` runs (for ``method``'s run or operator where it applies)."""
    whole = [CLI] + plugins_loaded(stage, method)
    start = {(ENTRY, STAGES[stage])} | {n for m in whole for n in _whole(m)}
    packages = {(p, TOP) for m in [ENTRY, *whole] for p in _with_parents(m)}  # imported first
    return reached(start | packages)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stage_code(stage: str, method: str | None = None) -> dict[str, str]:
    """``{relative path[::definitions]: sha256}`` of the code a stage runs."""
    by_module: dict[str, set[str]] = {}
    for module, name in stage_nodes(stage, method):
        by_module.setdefault(module, set()).add(name)
    out = {}
    for module, names in by_module.items():
        rel = project_modules()[module].relative_to(PROJECT_ROOT).as_posix()
        source = _parsed(module)[0]
        if names >= {n for _, n in _whole(module)}:
            out[rel] = _sha256(source)
            continue
        parts = [ast.get_source_segment(source, s) or "" for name in sorted(names) for s in _statements((module, name))]
        out[f"{rel}::{','.join(sorted(n for n in names if n))}"] = _sha256("\n".join(parts))
    return dict(sorted(out.items()))


def fingerprint_files() -> dict[str, tuple[str, str | None]]:
    """Fingerprint file (relative to ``results/code``) -> (stage, method) for every stage that runs code."""
    from methods.registry import METHODS

    out: dict[str, tuple[str, str | None]] = {f"{s}.json": (s, None) for s in STAGES if s not in ("train", "envelope")}
    for name in METHODS.names():
        kind = getattr(METHODS.get(name), "kind", None)
        stages = ("enhance", "evaluate") if kind == "training-free" else ("train", "envelope")
        out.update({f"{stage}/{name}.json": (stage, name) for stage in stages})
    return out


def write_fingerprints(out_dir: Path) -> list[Path]:
    """Write every stage's code fingerprint under ``out_dir`` (stale files removed)."""
    wanted = fingerprint_files()
    for old in out_dir.rglob("*.json") if out_dir.is_dir() else []:
        if old.relative_to(out_dir).as_posix() not in wanted:
            old.unlink()
    written = []
    for rel, (stage, method) in wanted.items():
        write_json(out_dir / rel, {"stage": stage, "method": method, "code": stage_code(stage, method)})
        written.append(out_dir / rel)
    return written
