"""Zero-DCE (Guo et al., CVPR 2020) as a method: name, kind, loss weights, training loop.

Its network, losses and enhancer are :mod:`methods.zero_dce` (also used for the released weights),
its training loop :mod:`methods.zero_dce_train`, imported by name only when a run is trained.
"""
from __future__ import annotations

from typing import ClassVar

from methods.zero_dce import W_COL, W_EXP, W_SPA, W_TV


class ZeroDCE:
    """Zero-DCE in the method registry: a trained baseline with its own network, loss and loop."""

    name: ClassVar[str] = "zero-dce"
    kind: ClassVar[str] = "trained baseline"
    training_loop: ClassVar[str] = "methods.zero_dce_train:train_zero_dce"
    needs_text: ClassVar[bool] = False
    source: ClassVar[str] = "Guo et al., CVPR 2020 (Li-Chongyi/Zero-DCE@e0f4adc)"
    # each logged term's weight in the logged total, by phase (its one phase: "train")
    loss_weights: ClassVar[dict[str, dict[str, float]]] = {"train": {"tv": W_TV, "spa": W_SPA, "col": W_COL,
                                                                     "exp": W_EXP}}


METHOD = ZeroDCE
