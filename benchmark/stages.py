"""Every pipeline stage, one function each: prepare -> train -> enhance -> evaluate -> time-inference ->
report, envelope (a trained run again under perturbed numerics) and code (the stages' code fingerprints).

``bench run-stage`` (dvc.yaml), ``bench compare`` and ``bench evaluate`` call these, with settings built
from params.yaml by :func:`benchmark.params.load_settings`, so their outputs are the same files. Paths
come from :class:`~benchmark.results.ResultsFolder`. Heavy imports stay inside the functions: a stage's
code fingerprint (:mod:`benchmark.code_deps`) holds only what it runs.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.results import ENHANCER, TRAIN_SUMMARY, ResultsFolder
from benchmark.system import System

if TYPE_CHECKING:
    from benchmark.evaluate import Evaluation
    from benchmark.params import EnhanceSettings, EvaluateSettings, RunSettings, TrainSettings

DATA = Path("datasets") / "data"  # the datasets live in the project that runs the pipeline (its cwd)


def dataset_path(name: str) -> Path:
    """``datasets/data/<name>`` of the project that runs the pipeline."""
    from benchmark.data import dataset_dir

    return dataset_dir(name, root=DATA)


def prepare_stage(dataset: str, settings: RunSettings) -> Path:
    """Obtain ``dataset`` and lay it out under ``datasets/data/<name>/``; its folder."""
    from benchmark.data import prepare as prepare_dataset

    return prepare_dataset(dataset, root=DATA, seed=settings.synthetic_seed)


def _train(system: System, settings: TrainSettings, out_dir: Path, *, threads: int, **records: Any) -> dict:
    """``train_method`` of ``system`` on the training dataset into ``out_dir`` with ``settings``; ``records``:
    where the run's timing and provenance go, resume, progress."""
    from benchmark.weights import resolve_weights
    from methods.train_api import train_method

    if system.seed is None:
        raise ValueError(f"{system.name}: a training run needs its training seed")
    data = dataset_path(str(settings.dataset)) / "train"
    return train_method(system.method, backlit_dir=data / "backlit", welllit_dir=data / f"welllit-{system.regime}",
                        out_dir=out_dir, encoder=settings.guidance_encoder, identity_encoder=settings.identity_encoder,
                        schedule=settings.schedule, seed=system.seed, device=settings.device,
                        overrides=settings.method_overrides(system.method), threads=threads,
                        fidelity=settings.fidelity, find_weights=resolve_weights, **records)


def train_stage(system: System, settings: TrainSettings, folder: ResultsFolder) -> dict:
    """Train ``system`` (a trained method, regime and seed) on the training dataset; resumes a killed run. A
    method that cannot run is recorded as skipped. Returns the run's summary."""
    return _train(system, settings, folder.train_dir(system), threads=settings.threads, resume=True,
                  timing_dir=folder.train_timing_dir(system), provenance_file=folder.train_provenance_file(system))


def enhance_stage(system: System, dataset: str, inputs: Path | Sequence[Path], folder: ResultsFolder,
                  settings: EnhanceSettings) -> dict:
    """Enhance ``inputs`` (a folder or files) with ``system`` into its enhanced folder of ``dataset``.

    Returns the folder's summary (``done``, ``failed``; ``skipped`` with the reason when the run's
    training was skipped or its weights are unavailable, which is recorded as the stage's outputs).
    """
    from benchmark.batch_enhance import enhance_folder
    from benchmark.weights import WeightsUnavailable

    if system.source == "trained":
        train = folder.train_summary(system)
        if train.get("status") == "skipped":
            return folder.mark_enhance_skipped(system, dataset, train.get("reason") or "training skipped")
        weights: str | Path = folder.train_dir(system)
    elif system.weights is not None:
        weights = system.weights
    else:
        raise ValueError(f"{system.name}: nothing to enhance with (only trained, released or training-free systems)")
    try:
        return enhance_folder(weights, inputs, folder.enhanced_dir(system, dataset),
                              timing_file=folder.enhance_timing_file(system, dataset), **settings.options())
    except WeightsUnavailable as exc:  # recorded without the machine's paths (the terminal gets them all)
        reason = str(exc).split(". Place ")[0]
        return folder.mark_enhance_skipped(system, dataset, reason + ("" if reason == str(exc) else
                                                                      "; where to place the file: bench weights --help"))


def evaluate_stage(system: System, dataset: str, folder: ResultsFolder, settings: EvaluateSettings, *,
                   dataset_dir: str | Path | None = None, enhanced_dir: str | Path | None = None,
                   stems: Sequence[str] | None = None, limit: int | None = None) -> Evaluation:
    """Score ``system``'s enhanced folder of ``dataset`` (``input``: the test inputs themselves; ``enhanced_dir``
    overrides) into its scores CSV, only the images ``stems`` (the first ``limit``) when given."""
    from benchmark.evaluate import evaluate_system, resolve_test_set

    if enhanced_dir is None:
        enhanced_dir = resolve_test_set(dataset_dir if dataset_dir is not None else dataset).inputs \
            if system.source == "input" else folder.enhanced_dir(system, dataset)
    return evaluate_system(system, dataset, enhanced_dir, dataset_dir=dataset_dir,
                           out_csv=folder.scores_csv(system, dataset), stems=stems, limit=limit, force=settings.force,
                           **_scoring(settings))


def _scoring(settings: EvaluateSettings) -> dict[str, Any]:
    """How the pipeline scores: metrics (params, else the defaults), device and metric weights."""
    from benchmark.metrics import DEFAULT_METRICS

    return {"metrics": settings.metrics or DEFAULT_METRICS, "device": settings.device,
            "metric_weights": settings.metric_weights}


def envelope_stage(system: System, settings: RunSettings, folder: ResultsFolder) -> dict:
    """Retrain ``system`` (a trained method, regime and seed) with the same seed under perturbed numerics
    (params ``envelope``), enhance every test set with it and score it as the pipeline does, into its
    envelope folder; the model and images are not kept. Returns the folder's summary."""
    import shutil

    import torch

    from backlit_core.atomic import write_json
    from benchmark.batch_enhance import enhance_folder
    from benchmark.evaluate import evaluate_system

    out = folder.envelope_dir(system)
    summary: dict[str, Any] = {"system": system.name, "seed": system.seed,
                               "perturbation": settings.envelope.perturbation()}
    if not settings.envelope.enabled:
        summary |= {"status": "skipped", "reason": "params envelope.enabled is false"}
        write_json(out / "summary.json", summary)
        return summary
    torch.set_num_threads(settings.envelope.threads)
    # The run and its images live in a scratch folder of the stage's own output, removed at the end: a fixed
    # relative path, so that the score sidecars (which name the images' folder) are the same bytes every run.
    scratch = out / ".scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        run = _train(system, settings.train, scratch / "train", threads=settings.envelope.threads, progress=False)
        summary |= {"status": run.get("status"), "reason": run.get("reason")}
        if run.get("status") == "done":
            for dataset in settings.test_datasets:
                enhanced = scratch / "enhanced" / dataset
                enhance_folder(scratch / "train", dataset_path(dataset) / "test" / "input", enhanced,
                               progress=False, **settings.enhance.options())
                evaluate_system(system, dataset, enhanced, dataset_dir=dataset_path(dataset),
                                out_csv=folder.envelope_scores_csv(system, dataset), **_scoring(settings.evaluate))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_json(out / "summary.json", summary)
    return summary


def _timed_systems(folder: ResultsFolder, settings: RunSettings
                  ) -> tuple[list[tuple[str, int | None, str | Path]], list[dict]]:
    """The enhancer systems a run has, as (system, seed, weights): trained runs per seed (or the older
    seedless run directory) and released weights and operators; and the ones that cannot be timed, with
    the reason."""
    from backlit_core.atomic import read_json

    systems: list[tuple[str, int | None, str | Path]] = []
    missing: list[dict] = []
    for method in settings.methods:
        for regime in settings.regimes:
            name = System.trained(method, regime).name
            for k, run in folder.seed_run_dirs(method, regime, settings.seeds):
                status = read_json(run / TRAIN_SUMMARY)
                if status.get("status") == "skipped":
                    missing.append({"system": name, "seed": k, "reason": f"training skipped: {status.get('reason')}"})
                elif not (run / ENHANCER).is_file():
                    where = (run / ENHANCER).relative_to(folder.root).as_posix()
                    missing.append({"system": name, "seed": k, "reason": f"no trained weights ({where} not found)"})
                else:
                    systems.append((name, k, run))
    for s in [System.released(w) for w in settings.released] + [System.parse(op) for op in settings.operators]:
        systems.append((s.name, None, s.weights or s.name))
    return systems, missing


def time_inference_stage(folder: ResultsFolder, settings: RunSettings) -> dict[str, Any]:
    """Time every enhancer system of the run in one interleaved sample set (its timing file)."""
    from backlit_core.atomic import write_json
    from benchmark.inference_timing import network_enhancer, time_callables
    from benchmark.machine import timing_environment
    from benchmark.weights import WeightsUnavailable

    systems, not_timed = _timed_systems(folder, settings)
    enh, timing = settings.enhance, settings.timing
    enhancers = []
    for system, seed, weights in systems:
        try:
            enhancers.append(network_enhancer(system, weights, seed=seed, device=settings.device, tile=enh.tile,
                                              precision=enh.precision, padding=enh.padding))
        except (WeightsUnavailable, FileNotFoundError, RuntimeError) as exc:
            not_timed.append({"system": system, "seed": seed, "reason": str(exc)})
    sizes = list(timing.sizes_mp)
    records = time_callables(enhancers, sizes_mp=sizes, repeats=timing.repeats, warmup=timing.warmup)
    device = enhancers[0].device if enhancers else str(settings.device)
    doc = {**timing_environment(device), "sizes_mp": sizes, "reference_megapixels": max(sizes) if sizes else None,
           "repeats": timing.repeats, "systems": records, "not_timed": not_timed}
    write_json(folder.inference_timing_file, doc)
    return doc


def report_stage(folder: ResultsFolder, settings: RunSettings) -> dict[str, Path]:
    """The reproduction envelope (:func:`benchmark.envelope.envelope_document`), the run's provenance, then the
    report (report.md/html, scores.csv, metrics.json, figures, tables)."""
    from backlit_core.atomic import write_json
    from benchmark.envelope import envelope_document
    from benchmark.report import build_report

    perturbation = settings.envelope.perturbation() if settings.envelope.enabled else {}
    write_json(folder.envelope_file, envelope_document(folder.all_scores(), folder.envelope_scores(),
                                                       perturbation=perturbation))
    folder.write_provenance(seeds=settings.seeds, bootstrap_seed=settings.evaluate.bootstrap_seed,
                            weights=folder.enhancer_weights(), profile=settings.profile, params=settings.params)
    return build_report(results=folder.root, params=settings.params)


def code_stage(folder: ResultsFolder) -> list[Path]:
    """The content hashes of the code each stage runs (each stage's DVC dependency)."""
    from benchmark.code_deps import write_fingerprints

    return write_fingerprints(folder.code_dir)
