"""Zero-DCE's entry in the method registry (:mod:`methods.registry`): name, kind, loss weights, ``train()``.

A module of its own so that imports run one way: the training loop (:mod:`methods.zero_dce_train`)
imports the network and losses (:mod:`methods.zero_dce`), and this entry imports the loop only when
a run is trained.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from methods.zero_dce import W_COL, W_EXP, W_SPA, W_TV

if TYPE_CHECKING:
    from methods.trainer import RunFiles


class ZeroDCE:
    """Zero-DCE in the method registry: a trained baseline with its own network, loss and loop."""

    name: ClassVar[str] = "zero-dce"
    kind: ClassVar[str] = "trained baseline"
    needs_text: ClassVar[bool] = False
    source: ClassVar[str] = "Guo et al., CVPR 2020 (Li-Chongyi/Zero-DCE@e0f4adc)"
    # each logged term's weight in the logged total, by phase (its one phase: "train")
    loss_weights: ClassVar[dict[str, dict[str, float]]] = {"train": {"tv": W_TV, "spa": W_SPA, "col": W_COL,
                                                                     "exp": W_EXP}}

    @staticmethod
    def train(backlit_dir: str | Path, files: RunFiles, **kwargs: object) -> dict:
        """:func:`methods.zero_dce_train.train_zero_dce` (well-lit images are not used)."""
        from methods.zero_dce_train import train_zero_dce

        return train_zero_dce(backlit_dir, files, **kwargs)
