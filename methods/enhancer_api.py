"""The common enhancer interface: a 3 x H x W image tensor in [0, 1] in, the enhanced one out.

Every system ``bench enhance`` runs is an :class:`Enhancer`: the shared network's
:class:`~methods.tiled_inference.TiledEnhancer` (CLIP-LIT, latent-prompt, RAVE; released or trained),
:class:`~methods.zero_dce.ZeroDCEEnhancer`, and the training-free operators of
:mod:`methods.classical`. The folder loop (:func:`benchmark.enhance.enhance_folder`) sees only this.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch


class Enhancer(Protocol):
    """``enhancer(image)``: 3 x H x W float in [0, 1] -> float32 CPU tensor of the same shape, in [0, 1]."""

    device: torch.device

    def __call__(self, image: torch.Tensor) -> torch.Tensor: ...


def training_free_names() -> list[str]:
    """The registered training-free methods (usable as ``--weights NAME``)."""
    from methods.registry import METHODS

    return [n for n in METHODS.names() if getattr(METHODS.get(n), "kind", None) == "training-free"]


def training_free(name: str) -> Enhancer | None:
    """The training-free operator ``name`` with its default parameters, or None if it is not one."""
    from methods.registry import METHODS

    cls = METHODS.get(name) if name in METHODS else None
    return cls() if getattr(cls, "kind", None) == "training-free" else None


def checkpoint_network(path: str | Path) -> str:
    """``zero-dce`` or ``enhance-net``: which network a state dict holds (by its parameter names)."""
    from methods.network import read_state_dict
    from methods.zero_dce import is_zero_dce_state

    return "zero-dce" if is_zero_dce_state(read_state_dict(path)) else "enhance-net"


def open_checkpoint(path: str | Path, *, padding: str = "reflect", device: str | torch.device = "auto",
                    tile: int | None = None, precision: str = "fp32") -> Enhancer:
    """The enhancer of a checkpoint file: Zero-DCE or the shared network (``padding`` applies to the latter)."""
    if checkpoint_network(path) == "zero-dce":
        from methods.zero_dce import ZeroDCEEnhancer, load_zero_dce

        return ZeroDCEEnhancer(load_zero_dce(path), device=device, tile=tile, precision=precision)
    from methods.network import load_enhancer
    from methods.tiled_inference import TiledEnhancer

    return TiledEnhancer(load_enhancer(path, padding=padding), device=device, tile=tile, precision=precision)
