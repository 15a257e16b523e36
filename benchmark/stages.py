"""The enhance and evaluate stages of one system on one dataset: the DVC stages (``bench run-stage``) and
``bench compare``/``bench evaluate`` all call these, so their outputs are the same files."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmark.evaluate import Evaluation, evaluate_system, resolve_test_set
from benchmark.results_store import ResultsStore
from benchmark.system import System


def enhance_settings(params: dict, device: str | None = None) -> dict[str, Any]:
    """The :func:`~benchmark.enhance.enhance_folder` settings of a run (params ``enhance``, ``device``);
    ``device`` overrides the params' one."""
    enh = params.get("enhance") or {}
    return {"padding": enh.get("padding", "reflect"), "device": device or params.get("device", "auto"),
            "max_side": enh.get("max_side") or None, "tile": enh.get("tile") or None,
            "precision": enh.get("precision", "fp32")}


def enhance_stage(system: System, dataset: str, inputs: Path | Sequence[Path], store: ResultsStore,
                  **settings: Any) -> dict:
    """Enhance ``inputs`` (a folder or files) with ``system`` into its enhanced folder of ``dataset``.

    Returns the folder's summary (``done``, ``failed``; ``skipped`` with the reason when the run's
    training was skipped or its weights are unavailable, which is recorded as the stage's outputs).
    """
    from benchmark.enhance import enhance_folder
    from benchmark.weights import WeightsUnavailable

    if system.source == "trained":
        train = store.train_summary(system)
        if train.get("status") == "skipped":
            return store.mark_enhance_skipped(system, dataset, train.get("reason") or "training skipped")
        weights: str | Path = system.train_dir(store.root)
    elif system.weights is not None:
        weights = system.weights
    else:
        raise ValueError(f"{system.name}: nothing to enhance with (only trained, released or training-free systems)")
    try:
        return enhance_folder(weights, inputs, system.enhanced_dir(store.root, dataset),
                              timing_file=system.enhance_timing_file(store.root, dataset), **settings)
    except WeightsUnavailable as exc:
        return store.mark_enhance_skipped(system, dataset, str(exc))


def evaluate_stage(system: System, dataset: str, store: ResultsStore, *, dataset_dir: str | Path | None = None,
                   enhanced_dir: str | Path | None = None, **options: Any) -> Evaluation:
    """Score ``system``'s enhanced folder of ``dataset`` (``input``: the test inputs themselves; ``enhanced_dir``
    overrides) into its scores CSV; ``options`` go to :func:`~benchmark.evaluate.evaluate_system`."""
    if enhanced_dir is None:
        enhanced_dir = resolve_test_set(dataset_dir if dataset_dir is not None else dataset).inputs \
            if system.source == "input" else system.enhanced_dir(store.root, dataset)
    return evaluate_system(system, dataset, enhanced_dir, dataset_dir=dataset_dir,
                           out_csv=system.scores_csv(store.root, dataset), **options)
