"""Bit-reproducible training: fixed thread count, deterministic kernels, recorded CPU numerics.

Bit-identity holds on one kind of machine; with ``numerics: portable`` (:mod:`backlit_core.numerics`,
chosen when the process starts) on any x86-64 CPU with AVX2.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from backlit_core import numerics


def make_deterministic(threads: int | None, seed: int) -> dict[str, object]:
    """Fix torch's intra-op threads (``None``/0 keeps torch's default), turn on deterministic algorithms
    and seed the global RNGs (Python, NumPy, torch) from ``seed``.

    The training code draws from its own seeded generators; the global states are seeded because the
    checkpoint stores them, and an unseeded Python or NumPy state would make checkpoints differ
    between processes. Returns what was set, for the run's records, with the effective CPU numerics
    (:func:`backlit_core.numerics.settings`; raises :class:`~backlit_core.numerics.NumericsError`
    when ``portable`` was asked for and did not take effect). On CUDA, cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG`` for deterministic results; it is set here unless the user set it.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN (a guard against kernels that read memory they
    # never wrote; none of ours do: the outputs are bit-identical without it), 13% of a CPU training step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = False
    return {"threads": torch.get_num_threads(), "deterministic_algorithms": True, "numerics": numerics.settings()}
