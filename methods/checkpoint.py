"""Training checkpoints (atomic) and the RNG states they carry (python, numpy, torch, cuda)."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch

from backlit_core.atomic import save_torch

CHECKPOINT_VERSION = 1


def capture_rng() -> dict:
    """All RNG states, in a form ``torch.load(weights_only=True)`` accepts."""
    version, keys, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [version, list(keys), gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    name, keys_t, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys_t.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, data: dict) -> None:
    save_torch(path, {"version": CHECKPOINT_VERSION, **data})


def load_checkpoint(path: Path) -> dict:
    from backlit_core.torch_files import CheckpointError, load_tensors

    must_hold = (f"a training checkpoint is bench train's checkpoint.pt (version {CHECKPOINT_VERSION}: "
                 "enhancer, guidance, optimiser and RNG states); move it away to start the run afresh")
    data = load_tensors(path, must_hold)
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: not a version-{CHECKPOINT_VERSION} training checkpoint; {must_hold}")
    return data


def resumable(path: Path, config: dict, total: int) -> dict | None:
    """The checkpoint at ``path`` if this run continues it: same settings and no more iterations done than
    ``total`` (a longer run is not a prefix of this one). Otherwise None, with a warning saying why."""
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    done = ckpt["state"]["iteration"]
    if ckpt.get("config") != config:
        changed = sorted(k for k in config if ckpt.get("config", {}).get(k) != config[k])
        warnings.warn(f"{path}: settings differ ({', '.join(changed)}); starting afresh", stacklevel=3)
        return None
    if done > total:
        warnings.warn(f"{path}: {done} iterations done, {total} asked; starting afresh", stacklevel=3)
        return None
    return ckpt
