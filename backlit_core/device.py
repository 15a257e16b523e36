"""Device resolution: ``auto`` -> a CUDA device when one is available (claimed per process), else the CPU."""
from __future__ import annotations

from typing import TYPE_CHECKING

from backlit_core.gpu_claim import claim_gpu

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available (with several GPUs, one not claimed by a concurrent job: see
    :mod:`backlit_core.gpu_claim`); errors clearly when CUDA is asked for but absent."""
    import torch

    if str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device(f"cuda:{claim_gpu(torch.cuda.device_count())}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return dev
