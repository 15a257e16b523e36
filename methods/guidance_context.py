"""What a CLIP-guided method is built from (:class:`MethodContext`) and how it declines to run
(:class:`MethodUnavailable`); shared by :mod:`methods.base` and the training loop."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from methods.encoder_base import Encoder
from methods.fidelity import Fidelity


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
    settings: dict[str, object] = field(default_factory=dict)  # the method's own ``parameters`` (missing: upstream's)
    fidelity: Fidelity = field(default_factory=Fidelity)  # the switches a method reads for itself
    find_weights: Callable[[str], Path] | None = None  # a released file by name (the caller's registry); None: none
