"""``bench compare``'s work: which systems a ``--methods`` list names, their enhance and evaluate stages on
every test set (as the pipeline runs them), and their inference timing unless a current record exists."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.results import ENHANCER, ResultsFolder, system_folder
from benchmark.system import System

if TYPE_CHECKING:
    from benchmark.evaluate import TestSet
    from benchmark.params import EnhanceSettings, EvaluateSettings


def resolve_systems(methods: str, weights: str, folder: ResultsFolder,
                    note: Callable[[str], None] = print) -> list[System]:
    """``--methods`` -> systems: released names, or method names (trained runs, one per seed; training-free
    operators), run names or ``all`` (every training run). An unknown name raises
    :class:`~backlit_core.registry.UnknownNameError`; a method without runs is ``note``d."""
    from backlit_core.registry import UnknownNameError, unknown_name_message
    from benchmark.weights import RELEASED
    from methods.registry import METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if weights == "released":
        names = list(RELEASED) if names == ["all"] else names
        for n in names:
            if n not in RELEASED:
                raise UnknownNameError(unknown_name_message("released weights", n, list(RELEASED)))
        return [System.released(n) for n in names]
    runs = [p.name for p in folder.train_system_dirs()]
    out: list[System] = []
    for n in names:
        if n in METHODS and METHODS.get(n).kind == "training-free":
            out.append(System.parse(n))
            continue
        match = runs if n == "all" else [r for r in runs if r == n or System.parse(r).method == n]
        if not match and n not in METHODS and n != "all":
            raise UnknownNameError(unknown_name_message("method", n, METHODS.names() + runs))
        if not match:
            note(f"note: no training run for {n!r} under {folder.train_root} "
                 "(run `bench train` or `dvc repro`)")
        out += [s for r in match for s in folder.trained_systems(r)]
    return list(dict.fromkeys(out))


def run_stages(systems: list[System], tests: list[tuple[str, TestSet]], folder: ResultsFolder, limit: int | None,
               enhance: EnhanceSettings, evaluate: EvaluateSettings,
               note: Callable[[str], None] = print) -> set[System]:
    """Enhance (as the pipeline does; a trained run without weights keeps its stored outputs) and score every
    system and the input on every test set (``(argument, test set)``); the systems skipped (weights
    unavailable, training skipped), each ``note``d once with the reason."""
    from backlit_core.image_io import list_images
    from benchmark.stages import enhance_stage, evaluate_stage

    skipped: set[System] = set()
    for arg, test in tests:
        inputs = list_images(test.inputs)[:limit] if limit else list_images(test.inputs)
        scope = {"dataset_dir": arg if Path(arg).is_dir() else None, "stems": [p.stem for p in inputs]}
        evaluate_stage(System.parse("input"), test.name, folder, evaluate, **scope)
        for system in systems:
            reason = None
            if system.source != "trained" or (folder.train_dir(system) / ENHANCER).is_file():
                reason = enhance_stage(system, test.name, inputs, folder, enhance).get("skipped")
            reason = reason or evaluate_stage(system, test.name, folder, evaluate, **scope).skipped
            if reason and system not in skipped:
                skipped.add(system)
                note(f"{system_folder(system).as_posix()}: skipped ({reason})")
    return skipped


def time_compared(systems: list[System], folder: ResultsFolder, device: str, size_mp: float, repeats: int,
                  force: bool) -> None:
    """Time inference of every system (interleaved; a trained one by its first seed), except those with a
    record for the same settings."""
    from benchmark.inference_timing import time_systems

    def current(system: str) -> bool:
        path = folder.system_timing_file(system)
        if force or not path.is_file():
            return False
        old = json.loads(path.read_text())
        sizes = [s["megapixels"] for s in old.get("sizes", [])]
        return old.get("repeats") == repeats and len(sizes) == 1 and abs(sizes[0] - size_mp) < 0.01 and \
            device in ("auto", old.get("device"))

    todo: dict[str, str | Path | None] = {}
    for s in systems:
        if not current(s.name):
            todo.setdefault(s.name, folder.train_dir(s) if s.source == "trained" else s.weights)
    if todo:
        time_systems(folder, todo, device=device, sizes_mp=[size_mp], repeats=repeats, warmup=1)

