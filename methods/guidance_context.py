"""What a CLIP-guided method is built from (:class:`MethodContext`) and how it declines to run
(:class:`MethodUnavailable`); shared by :mod:`methods.base` and the training loop."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from methods.encoder_base import Encoder
from methods.losses import LOGIT_SCALE


class MethodUnavailable(RuntimeError):
    """The method cannot run in this setting; ``reason`` is one line (the run is marked skipped)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class MethodContext:
    """What a method may use when it is set up."""

    encoder: Encoder
    backlit_paths: list[Path]
    welllit_paths: list[Path]
    seed: int
    ref_preprocess: str = "center-crop"
    shift_tokens: int = 15
    vocabulary: str = "decoded-text"  # rave-shifted's vocabulary (methods.fidelity)
    latent_logit_scale: float | str = LOGIT_SCALE  # a number or "calibrated" (latent-prompt only)
