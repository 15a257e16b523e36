"""The code each pipeline stage runs, found from the import graph, as content hashes (``results/code``).

A stage's code is its ``bench run-stage`` function in :mod:`benchmark.commands.pipeline` (with the
module-level helpers it calls), every project module that function imports, transitively (imports
inside functions count; ``if TYPE_CHECKING:`` ones do not), and the method plugins the stage loads
through the registry: a training run its method's and the training loop the method names, an
operator's enhancement its operator's, the evaluation (for a system's kind), the inference timing
and the report all of them. Each DVC stage depends on its fingerprint file instead of a hand-kept
list of files, so changing Zero-DCE's loop retrains Zero-DCE only, and changing the report retrains
nothing. Files hold relative paths and sha256 only (no times, no machine).
"""
from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path

from backlit_core.atomic import write_json
from backlit_core.hashing import sha256_of
from backlit_core.paths import PROJECT_ROOT

PACKAGES = ("backlit_core", "methods", "benchmark")
ENTRY = "benchmark.commands.pipeline"
CLI = "benchmark.cli"  # ``bench``: imports the stage module by name, only when it runs
STAGES = {"prepare": "prepare", "train": "train", "enhance": "enhance", "evaluate": "evaluate",
          "time-inference": "time_inference", "report": "report"}


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


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes: Iterable[ast.AST], descend: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements among ``nodes`` (and, with ``descend``, inside them), skipping TYPE_CHECKING blocks
    and, without ``descend``, function and class bodies."""
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _import_nodes(node.orelse, descend)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif descend or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield from _import_nodes(ast.iter_child_nodes(node), descend)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """The dotted names an import statement loads (``from pkg import mod`` loads ``pkg.mod`` too)."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        parts = module.split(".")
        parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
        base = ".".join(parts + ([node.module] if node.module else []))
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _with_parents(name: str) -> Iterator[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages' ``__init__`` first."""
    parts = name.split(".")
    yield from (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _imports(module: str, nodes: Iterable[ast.AST], descend: bool) -> set[str]:
    modules = project_modules()
    is_package = modules[module].name == "__init__.py"
    found = set()
    for node in _import_nodes(nodes, descend):
        for target in _targets(node, module, is_package):
            found.update(m for m in _with_parents(target) if m in modules)
    return found


@cache
def _tree(module: str) -> ast.Module:
    path = project_modules()[module]
    return ast.parse(path.read_text(), str(path))


def closure(modules: Iterable[str]) -> set[str]:
    """``modules`` and every project module they import, transitively."""
    seen: set[str] = set()
    todo = [m for name in modules for m in _with_parents(name) if m in project_modules()]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports(module, _tree(module).body, descend=True) - seen
    return seen


def _local_functions(module: str, name: str) -> list[ast.FunctionDef]:
    """Function ``name`` of ``module`` and the module-level functions it refers to, transitively."""
    defs = {n.name: n for n in _tree(module).body if isinstance(n, ast.FunctionDef)}
    found, todo = {}, [name]
    while todo:
        fn = defs[todo.pop()]
        found[fn.name] = fn
        todo += [n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in defs and n.id not in found]
    return [found[k] for k in sorted(found)]


def entry_modules(stage: str) -> set[str]:
    """The modules ``bench run-stage <stage>`` imports: the CLI's, the entry module's own and its stage function's."""
    functions = _local_functions(ENTRY, STAGES[stage])
    packages = set(_with_parents(ENTRY)) - {ENTRY}
    return {CLI} | packages | _imports(ENTRY, _tree(ENTRY).body, descend=False) | \
        _imports(ENTRY, functions, descend=True)


def plugins_loaded(stage: str, method: str | None) -> list[str]:
    """The plugin modules a stage loads through the registry (see the module docstring)."""
    from methods.registry import METHODS, plugin_module

    if stage in ("evaluate", "time-inference", "report"):  # evaluate: a system's kind (the score's source column)
        return [plugin_module(m) for m in METHODS.names()]
    if stage == "train" and method:
        loop = getattr(METHODS.get(method), "training_loop", None)
        return [plugin_module(method)] + ([loop.split(":")[0]] if loop else [])
    if stage == "enhance" and method and getattr(METHODS.get(method), "kind", None) == "training-free":
        return [plugin_module(method)]
    return []


def stage_code(stage: str, method: str | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of the code a stage runs (the entry file hashed by its functions)."""
    root = PROJECT_ROOT
    modules = closure(entry_modules(stage) | set(plugins_loaded(stage, method))) - {ENTRY}
    files = {project_modules()[m].relative_to(root).as_posix(): sha256_of(project_modules()[m]) for m in modules}
    entry = project_modules()[ENTRY]
    source = entry.read_text()
    segments = [ast.get_source_segment(source, n) or "" for n in _local_functions(ENTRY, STAGES[stage])]
    files[f"{entry.relative_to(root).as_posix()}::{STAGES[stage]}"] = _sha256_text("\n".join(segments))
    return dict(sorted(files.items()))


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint_files() -> dict[str, tuple[str, str | None]]:
    """Fingerprint file (relative to ``results/code``) -> (stage, method) for every stage that runs code."""
    from methods.registry import METHODS

    out: dict[str, tuple[str, str | None]] = {f"{s}.json": (s, None) for s in STAGES if s != "train"}
    for name in METHODS.names():
        kind = getattr(METHODS.get(name), "kind", None)
        if kind == "training-free":
            out[f"enhance/{name}.json"] = ("enhance", name)
        else:
            out[f"train/{name}.json"] = ("train", name)
    return out


def write_fingerprints(out_dir: Path) -> list[Path]:
    """Write every stage's code fingerprint under ``out_dir`` (stale files removed)."""
    wanted = fingerprint_files()
    for old in out_dir.rglob("*.json") if out_dir.is_dir() else []:
        if old.relative_to(out_dir).as_posix() not in wanted:
            old.unlink()
    written = []
    for rel, (stage, method) in wanted.items():
        write_json(out_dir / rel, {"stage": stage, "method": method, "files": stage_code(stage, method)})
        written.append(out_dir / rel)
    return written
