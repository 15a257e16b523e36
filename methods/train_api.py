"""``train_method``: the API that trains any registered method with the loop its class names.

A method declares ``training_loop = "module:function"`` (CLIP-guided: :func:`methods.guided_training.train_guided`;
Zero-DCE: :func:`methods.zero_dce_train.train_zero_dce`; training-free: None); the loop is imported
by name, so nothing here or in a plugin imports a loop it does not run (see benchmark/code_deps.py).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from methods.registry import METHODS
from methods.run_files import RunFiles


@dataclass(frozen=True)
class TrainOptions:
    """How a run is trained; each loop reads what applies to it (Zero-DCE: no encoders, no fidelity)."""

    encoder: str = "effnet-lite0"
    identity_encoder: str | None = None  # None: ``encoder``
    schedule: str = "quick"
    iters: int | None = None  # the total iteration budget (all phases)
    seed: int = 0
    device: str = "auto"
    overrides: dict | None = None  # schedule settings by name
    resume: bool = False
    stop_after: int | None = None  # testing hook: stop as if killed after this many iterations
    progress: bool = True
    threads: int | None = None
    fidelity: object = None  # dict or methods.fidelity.Fidelity; None: the upstream code's choices
    find_weights: Callable[[str], Path] | None = None  # released files by name (benchmark.weights.resolve_weights)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.stop_after is not None and self.stop_after <= 0:
            raise ValueError(f"stop_after must be positive, got {self.stop_after!r}")

    def schedule_overrides(self) -> dict:
        """``overrides`` with ``iters`` as ``total_iters``."""
        return {**(self.overrides or {}), **({"total_iters": self.iters} if self.iters is not None else {})}


def train_method(method: str, backlit_dir: str | Path, welllit_dir: str | Path, out_dir: str | Path, *,
                 timing_dir: str | Path | None = None, provenance_file: str | Path | None = None,
                 **options: object) -> dict:
    """Train ``method`` and write the run files into ``out_dir``; return the summary dict.

    The model files (enhancer, checkpoint, loss log, summary) depend only on the inputs, settings and
    seed, never on the machine's speed; timings (``train_timing.json``, ``train_steps.csv``) go to
    ``timing_dir`` and provenance to ``provenance_file`` (both default to ``out_dir``). ``options``
    are :class:`TrainOptions` fields. ``resume`` continues from ``out_dir/checkpoint.pt`` when its
    settings match (else starts afresh with a warning); ``stop_after`` returns ``status: "stopped"``.
    A method that cannot run in the setting (CLIP-LIT with an image-only encoder, encoder weights
    unavailable offline) returns, and writes, a summary with ``status: "skipped"`` and a ``reason``.
    Raises UnknownNameError (unknown method, encoder, schedule, setting or fidelity switch),
    ValueError (invalid numbers or values; a training-free method), FileNotFoundError (no images),
    :class:`methods.run_files.TrainingDiverged` (NaN/inf loss).
    """
    cls = METHODS.get(method)
    opts = TrainOptions(**options)  # type: ignore[arg-type]
    if cls.training_loop is None:
        raise ValueError(f"{method} is training-free: there is nothing to train "
                         f"(enhance with `bench enhance --weights {method}`)")
    module, function = cls.training_loop.split(":")
    loop = getattr(importlib.import_module(module), function)
    return loop(cls, backlit_dir, welllit_dir, RunFiles.at(out_dir, timing_dir, provenance_file), opts)
