"""``bench compare``'s work: which systems a ``--methods`` list names (and how to train the missing ones),
their enhance and evaluate stages on every test set (as the pipeline runs them, every dropped image said),
and their inference timing unless a current record exists."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.results import ENHANCER, ROOT, TRAIN_TIMING, ResultsFolder, system_folder
from benchmark.system import System

if TYPE_CHECKING:
    from benchmark.evaluate import TestSet
    from benchmark.params import EnhanceSettings, EvaluateSettings, RunSettings

Note = Callable[[str], None]  # where a message line goes (the command's stderr)


def resolve_systems(methods: str, weights: str, folder: ResultsFolder) -> tuple[list[System], list[str]]:
    """``--methods`` -> (systems, method names without a training run): released names or aliases, or method
    names (trained runs, one per seed; training-free operators), run names or ``all`` (every training run).
    An unknown name raises :class:`~backlit_core.registry.UnknownNameError`."""
    from backlit_core.registry import UnknownNameError, unknown_name_message
    from benchmark.weights import RELEASED, released
    from methods.registry import METHODS

    names = [m.strip() for m in methods.split(",") if m.strip()]
    if weights == "released":
        return [System.released(released(n).name) for n in (list(RELEASED) if names == ["all"] else names)], []
    runs = [p.name for p in folder.train_system_dirs()]
    out: list[System] = []
    missing: list[str] = []
    for n in names:
        if n in METHODS and METHODS.get(n).kind == "training-free":
            out.append(System.parse(n))
            continue
        match = runs if n == "all" else [r for r in runs if r == n or System.parse(r).method == n]
        if not match and n not in METHODS and n != "all":
            raise UnknownNameError(unknown_name_message("method", n, METHODS.names() + runs))
        if not match:
            missing.append(n)
        out += [s for r in match for s in folder.trained_systems(r)]
    return list(dict.fromkeys(out)), missing


def training_hint(methods: list[str], folder: ResultsFolder, settings: RunSettings) -> str:
    """One line: how to train ``methods`` (or ``all``) for the comparison, how long the committed run took for
    them, and the released models to compare instead."""
    from benchmark.weights import ALIASES, RELEASED
    from methods.registry import METHODS

    seeds, regimes = list(settings.seeds), list(settings.regimes) or ["unpaired"]
    listed = list(settings.methods)
    everything = methods == ["all"]
    names = list(listed) if everything else methods
    absent = [m for m in names if m not in listed]
    how = "`dvc repro`" if everything else "`dvc repro --glob " + " ".join(
        f"'train@{m}-{r}-*'" for m in names for r in regimes) + "`" + (
        f" after adding {', '.join(absent)} to params.yaml methods" if absent else "")
    facts = [f"{len(seeds)} seed{'s' * (len(seeds) > 1)}"]
    seconds, cores = committed_training_s(names, regimes, seeds)
    if seconds:
        on = f" on the {'/'.join(map(str, sorted(cores)))}-core CPU of the committed run" if cores else ""
        facts.append(f"about {max(1, round(seconds / 60))} min of training{on}")
    text_only = [m for m in names if m in METHODS and METHODS.get(m).needs_text]
    guidance = str(settings.train.guidance_encoder or "")
    if text_only and not guidance.startswith("clip:"):
        facts.append(f"{', '.join(text_only)} needs a CLIP text encoder, so the image-only {guidance} skips it")
    which = "" if everything else f" of {', '.join(methods)}"
    line = f"no training runs{which} in {folder.train_root}: train with {how} ({'; '.join(facts)})"
    if everything or all(m in RELEASED or m in ALIASES for m in methods):
        line += f", or compare the released models: `bench compare --methods {','.join(methods)} --weights released`"
    return line


def committed_training_s(methods: list[str], regimes: list[str], seeds: list[int]) -> tuple[float, set[int]]:
    """Seconds the project's committed run took to train ``methods`` in ``regimes`` for ``len(seeds)`` seeds
    (mean of its finished runs per seed), and the CPU core counts it ran on."""
    from backlit_core.atomic import read_json
    from backlit_core.paths import PROJECT_ROOT

    committed = ResultsFolder(PROJECT_ROOT / ROOT)
    seconds, cores = 0.0, set()
    for m in methods:
        for regime in regimes:
            records = [read_json(committed.train_timing_dir(System.trained(m, regime, k)) / TRAIN_TIMING)
                       for k in seeds]
            walls = [r["wall_s"] for r in records if r.get("status") != "skipped" and r.get("wall_s")]
            seconds += sum(walls) / len(walls) * len(seeds) if walls else 0.0
            cores |= {r["machine"]["cpu_count"] for r in records if (r.get("machine") or {}).get("cpu_count")}
    return seconds, cores


def prepare_synthetic(name: str, settings: RunSettings, note: Note) -> None:
    """Generate dataset ``name`` if it is a synthetic card not yet (or no longer) prepared, as the pipeline's
    prepare stage does."""
    import time

    from benchmark.data import load_card, prepare, status
    from benchmark.data.cards import card_names

    if Path(name).is_dir() or name not in card_names():
        return
    card = load_card(name)
    if card.kind != "synthetic" or status(card).state == "present":
        return
    t0 = time.perf_counter()
    note(f"{name}: not prepared yet; generating it (offline) ...")
    path = prepare(name, seed=settings.synthetic_seed)
    note(f"{name}: ready at {path} ({time.perf_counter() - t0:.0f} s)")


def dropped_lines(label: str, failed: list[dict[str, str]], known: dict[str, str] | None = None) -> list[str]:
    """One line per dropped image (the metrics it lost and why), except pair problems already said
    (``known``: image -> why its ground truth is unusable)."""
    by_image: dict[str, tuple[list[str], str]] = {}
    for f in failed:
        if known and f["image"] in known and ("size mismatch" in f["error"] or "ground truth" in f["error"]):
            continue
        by_image.setdefault(f["image"], ([], f["error"]))[0].append(f["metric"])
    return [f"{label}: dropped {image} from {', '.join(names)}: {error}" for image, (names, error) in by_image.items()]


def run_stages(systems: list[System], tests: list[tuple[str, TestSet]], folder: ResultsFolder, limit: int | None,
               enhance: EnhanceSettings, evaluate: EvaluateSettings, note: Note) -> set[System]:
    """Enhance (as the pipeline does; a trained run without weights keeps its stored outputs) and score every
    system and the input on every test set (``(argument, test set)``); the systems skipped (weights
    unavailable, training skipped), each ``note``d once with the reason. Every pair that loses its ground
    truth and every dropped image is ``note``d."""
    from backlit_core.image_io import list_images
    from benchmark.evaluate import pair_problems
    from benchmark.stages import enhance_stage, evaluate_stage

    skipped: set[System] = set()
    for arg, test in tests:
        inputs = list_images(test.inputs)[:limit] if limit else list_images(test.inputs)
        scope = {"dataset_dir": arg if Path(arg).is_dir() else None, "stems": [p.stem for p in inputs]}
        problems = pair_problems(test, scope["stems"])
        for why in problems.values():
            note(f"{test.name}: pair dropped from the full-reference metrics: {why}")
        baseline = evaluate_stage(System.parse("input"), test.name, folder, evaluate, **scope)
        for line in dropped_lines(f"input/{test.name}", baseline.failed, problems):
            note(line)
        for system in systems:
            reason = None
            if system.source != "trained" or (folder.train_dir(system) / ENHANCER).is_file():
                reason = enhance_stage(system, test.name, inputs, folder, enhance).get("skipped")
            result = None if reason else evaluate_stage(system, test.name, folder, evaluate, **scope)
            reason = reason or result.skipped
            label = system_folder(system).as_posix()
            if reason and system not in skipped:
                skipped.add(system)
                note(f"{label}: skipped ({reason})")
            if result is not None:
                for line in dropped_lines(f"{label}/{test.name}", result.failed, problems):
                    note(line)
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
