"""One GPU per concurrent job: ``device: auto`` on a machine with several GPUs claims the lowest free one.

DVC's experiment queue (``dvc queue start --jobs N``) runs N workers, each running its stages one at
a time, and gives them no GPU index. So each stage process claims a GPU itself: it takes an exclusive
``flock`` on ``$BACKLIT_BENCH_GPU_LOCKS/gpu<k>.lock`` (default: the system temp folder) for the
lowest k whose lock is free, and holds it until the process exits (the OS drops the lock even on a
kill). With N <= number of GPUs every worker gets a GPU of its own. When every GPU is claimed, the
process shares GPU 0 with a warning. ``CUDA_VISIBLE_DEVICES`` set by the user is respected: the
claim is made among the visible devices.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import warnings
from pathlib import Path
from typing import IO

_held: IO | None = None  # the claimed lock file, open for the process's lifetime


def lock_dir() -> Path:
    return Path(os.environ.get("BACKLIT_BENCH_GPU_LOCKS", Path(tempfile.gettempdir()) / "backlit-bench-gpus"))


def claim_gpu(count: int) -> int:
    """Index (among the visible devices) of the GPU this process holds; claims one on first call."""
    global _held
    if _held is not None:
        return int(Path(_held.name).stem.removeprefix("gpu"))
    if count <= 1:
        return 0
    folder = lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    for k in range(count):
        physical = visible.split(",")[k].strip() if visible else str(k)
        handle = open(folder / f"gpu{physical}.lock", "a")  # noqa: SIM115 - held until the process exits
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held = handle
        return k
    warnings.warn(f"all {count} GPUs are claimed by other jobs (locks in {folder}); sharing GPU 0", stacklevel=2)
    return 0
