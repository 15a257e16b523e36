"""Device resolution: ``auto`` -> the visible GPU when there is one, else the CPU."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks the first visible CUDA device (``bench repro`` gives each worker its own GPU through
    ``CUDA_VISIBLE_DEVICES``) or the CPU; errors clearly when CUDA is asked for but absent."""
    import torch

    if str(device) == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return dev
