"""``bench verify``: rerun the pipeline in a scratch clone and compare it with what is committed.

Two checks, printed as one table:
- the DVC output hashes that ``dvc.lock`` records (data, weights, enhanced images, scores): the
  committed and the rerun lock must agree exactly, except for outputs that hold timings
  (``results/timing``, ``results/provenance``, the report), which are machine-dependent by design;
- every number in ``results/metrics.json`` (quality metrics per dataset, system and seed), within
  :data:`TOLERANCES` (exact agreement is expected on the same kind of CPU with the same lock file).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmark.results import ROOT, ResultsFolder, machine_dependent_outputs

# absolute tolerance by metric name as metrics.json keys it (found anywhere in a key path); RELATIVE otherwise
TOLERANCES = {"psnr": 0.05, "ssim": 0.002, "ssim@rgb": 0.002, "lpips": 0.002, "psnr_vs_input": 0.05}
RELATIVE = 0.01
MACHINE_DEPENDENT = machine_dependent_outputs()


@dataclass
class Check:
    what: str
    committed: object
    rerun: object
    tolerance: str
    ok: bool


def lock_hashes(lock_text: str) -> dict[str, str]:
    """``{stage:path: md5}`` of every output recorded in a dvc.lock (machine-dependent ones left out)."""
    lock = yaml.safe_load(lock_text) or {}
    out = {}
    for stage, info in (lock.get("stages") or {}).items():
        for o in info.get("outs") or []:
            if not o["path"].startswith(MACHINE_DEPENDENT):
                out[f"{stage}:{o['path']}"] = o.get("md5")
    return out


def numeric_leaves(data: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], float]]:
    if isinstance(data, dict):
        for k, v in data.items():
            yield from numeric_leaves(v, (*prefix, str(k)))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        yield prefix, float(data)


def tolerance_for(path: tuple[str, ...]) -> tuple[float, bool]:
    """(tolerance, is_absolute) of a metrics.json key path."""
    for part in reversed(path):
        if part in TOLERANCES:
            return TOLERANCES[part], True
    return RELATIVE, False


def compare_metrics(committed: dict, rerun: dict) -> list[Check]:
    ours = dict(numeric_leaves(rerun))
    checks = []
    for path, value in numeric_leaves(committed):
        tol, absolute = tolerance_for(path)
        new = ours.get(path)
        if new is None:
            checks.append(Check("/".join(path), value, "missing", "-", False))
            continue
        both_nan = math.isnan(value) and math.isnan(new)
        limit = tol if absolute else tol * max(abs(value), 1e-12)
        checks.append(Check("/".join(path), value, new, f"±{tol:g}" if absolute else f"±{tol:.0%}",
                            both_nan or abs(new - value) <= limit))
    return checks


def compare_locks(committed: str, rerun: str) -> list[Check]:
    a, b = lock_hashes(committed), lock_hashes(rerun)
    return [Check(key, a[key], b.get(key, "missing"), "exact", a[key] == b.get(key)) for key in sorted(a)]


def scratch_clone(project: Path, dest: Path) -> Path:
    """A clone of the committed project (HEAD) at ``dest`` (uncommitted changes are not verified)."""
    subprocess.run(["git", "clone", "-q", str(project), str(dest)], check=True)
    return dest


def run_repro(clone: Path, log: Path) -> int:
    """``dvc repro`` in ``clone`` with the clone's own code, the current environment's tools, and the
    released checkpoints and metric parameter files the original project finds beside it
    (``../shared/reference``)."""
    from benchmark.metrics import WEIGHTS_ENV, metric_weights_dir
    from benchmark.weights import mirror_dirs

    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(clone))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["BACKLIT_BENCH_WEIGHTS_MIRRORS"] = os.pathsep.join(str(d.resolve()) for d in mirror_dirs())
    if (metric_weights := metric_weights_dir()) is not None:  # NIQE/BRISQUE parameters etc.
        env[WEIGHTS_ENV] = str(metric_weights.resolve())
    env.pop("BACKLIT_BENCH_PARAMS", None)
    env.pop("BACKLIT_BENCH_DATA", None)
    with open(log, "w") as f:
        return subprocess.run(["dvc", "repro"], cwd=clone, env=env, stdout=f, stderr=subprocess.STDOUT).returncode


def verify(project: Path, workdir: Path | None = None, keep: bool = False) -> tuple[list[Check], list[Check], Path]:
    """Clone ``project``, ``dvc repro`` there, compare; returns (lock checks, metric checks, clone path)."""
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench-verify-"))
    clone = scratch_clone(project, base / "clone")
    log = base / "repro.log"
    code = run_repro(clone, log)
    if code != 0:
        raise RuntimeError(f"dvc repro failed in {clone} (exit {code}); see {log}")
    locks = compare_locks(_committed(project, "dvc.lock"),
                          (clone / "dvc.lock").read_text())
    committed, rerun = ResultsFolder(ROOT), ResultsFolder(clone / ROOT)
    metrics = compare_metrics(json.loads(_committed(project, committed.metrics_file.as_posix())),
                              json.loads(rerun.metrics_file.read_text()))
    if not keep and all(c.ok for c in locks + metrics):
        shutil.rmtree(clone, ignore_errors=True)
    return locks, metrics, clone


def _committed(project: Path, rel: str) -> str:
    return subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=project, capture_output=True, text=True,
                          check=True).stdout
