"""Training runs read back: status, wall time, iterations and s/iter by phase, peak memory and machine.

Per run, from its timing files (:func:`~benchmark.results.run_timing_files`) or, in the older
seedless layout, from ``train_summary.json`` and ``train_log.csv``; read defensively (missing keys
fall back to the per-step log).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from backlit_core.atomic import read_json
from benchmark.results import (
    RUN_PROVENANCE,
    TRAIN_LOG,
    TRAIN_SUMMARY,
    ResultsFolder,
    folder_seed,
    is_seed_folder,
    run_timing_files,
    seed_folders,
)


def read_train_log(path: str | Path) -> pd.DataFrame:
    """A training ``train_log.csv`` (or its timing CSV); empty if absent or unreadable."""
    try:
        return pd.read_csv(path)
    except (OSError, ValueError):
        return pd.DataFrame()


def _seed(run_dir: Path, summary: dict) -> int | None:
    seed = folder_seed(run_dir)
    return seed if seed is not None else summary.get("seed")


def _numeric_order(folders: list[Path]) -> list[Path]:
    return sorted(folders, key=lambda p: (len(p.name), p.name))


def run_steps(run: dict) -> pd.DataFrame:
    """Per-iteration ``iter, phase, step_s`` (+ loss terms where the log has them) of a run from
    :func:`training_timing`, in iteration order; empty when the run has no step timings."""
    steps = read_train_log(run["steps_csv"]) if run.get("steps_csv") else pd.DataFrame()
    if not len(steps) or "step_s" not in steps.columns:
        return pd.DataFrame()
    log = read_train_log(run["log"]) if run.get("log") and run["log"] != run["steps_csv"] else pd.DataFrame()
    if len(log) and "iter" in log.columns and "iter" in steps.columns:
        extra = [c for c in log.columns if c not in steps.columns or c == "iter"]
        steps = steps.merge(log[extra], on="iter", how="left")
    return steps.sort_values("iter") if "iter" in steps.columns else steps


def training_timing(run_dir: str | Path) -> dict[str, Any]:
    """Status, wall time, iterations and s/iter by phase, peak memory and machine of one training run.

    ``run_dir`` is a seeded run (a seed folder in ``<results>/train/<system>``; timings in its
    :func:`~benchmark.results.run_timing_files`) or an older run directory whose ``train_summary.json``
    and ``train_log.csv`` hold the timings too. s/iter is the median step time of the phase. A system
    directory holding seeded runs gives :func:`pool_runs` of them.
    """
    run_dir = Path(run_dir)
    summary = read_json(run_dir / TRAIN_SUMMARY)
    seeds = _numeric_order(seed_folders(run_dir))
    if seeds and not summary:
        return pool_runs([training_timing(p) for p in seeds])
    files = run_timing_files(run_dir)
    timing = read_json(files[0]) if files else {}
    steps_csv = files[1] if files and files[1].is_file() else run_dir / TRAIN_LOG
    run = {"log": run_dir / TRAIN_LOG, "steps_csv": steps_csv}
    steps = run_steps(run)
    phases: dict[str, dict[str, float]] = {}
    if len(steps):
        for phase, group in steps.groupby("phase", sort=False):
            phases[str(phase)] = {"iterations": len(group), "s_per_iter": float(group["step_s"].median()),
                                  "wall_s": float(group["step_s"].sum())}
    else:
        iters = _by_phase(timing.get("iterations")) or _by_phase(summary.get("iterations"))
        for phase, s in (timing.get("s_per_iter") or summary.get("s_per_iter") or {}).items():
            phases[phase] = {"iterations": iters.get(phase), "s_per_iter": s, "wall_s": None}
    wall = timing.get("wall_s", summary.get("wall_s"))
    if wall is None and len(steps):
        wall = float(steps["wall_s"].max()) if "wall_s" in steps.columns else float(steps["step_s"].sum())
    log_rows = len(read_train_log(run["log"]))
    iters = (_by_phase(summary.get("iterations")) or _by_phase(timing.get("iterations"))).get("total", log_rows or None)
    encoders = {"guidance": summary["encoder"], "identity": summary.get("identity_encoder")} if summary.get("encoder") else None
    system = run_dir.parent.name if is_seed_folder(run_dir) else run_dir.name
    status = summary.get("status", "done" if log_rows else "missing")
    return {"run": run_dir.name, "system": system, "seed": _seed(run_dir, summary), "dir": str(run_dir),
            **{k: str(v) for k, v in run.items()}, "status": status, "reason": summary.get("reason"),
            "wall_s": float(wall) if wall is not None else None,
            "iterations": int(iters) if iters is not None else None, "phases": phases,
            "peak_memory_mb": _peak_memory_mb({**summary, **timing}), "machine": _train_machine(run_dir, summary, timing),
            "encoders": encoders, "random_encoder": bool(summary.get("is_random")), "method": summary.get("method")}


def pool_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One system-level record from the runs of its seeds: the finished runs' mean wall time and median s/iter
    by phase; iterations, machine and the per-step files of the first finished run."""
    done = [r for r in runs if r["status"] == "done"] or runs[:1]
    first = done[0]
    phases = {}
    for phase in dict.fromkeys(p for r in done for p in r["phases"]):
        vals = [r["phases"][phase] for r in done if phase in r["phases"]]
        s_iter = [v["s_per_iter"] for v in vals if v.get("s_per_iter") is not None]
        walls = [v["wall_s"] for v in vals if v.get("wall_s") is not None]
        phases[phase] = {"iterations": vals[0].get("iterations"), "s_per_iter": statistics.median(s_iter) if s_iter else None,
                         "wall_s": statistics.mean(walls) if walls else None}
    walls = [r["wall_s"] for r in done if r.get("wall_s") is not None]
    return {**first, "run": first["system"], "dir": str(Path(first["dir"]).parent), "seed": None,
            "seeds": [r["seed"] for r in done], "phases": phases, "wall_s": statistics.mean(walls) if walls else None,
            "random_encoder": any(r.get("random_encoder") for r in runs)}


def training_runs(folder: ResultsFolder) -> dict[str, dict[str, Any]]:
    """Every training run in ``folder``: ``<system>/<seed folder>`` (or ``<system>``, older layout) -> timing."""
    out = {}
    for system in folder.train_system_dirs():
        seeds = _numeric_order(seed_folders(system))
        for run in seeds or [system]:
            out[f"{system.name}/{run.name}" if seeds else system.name] = training_timing(run)
    return out


def _by_phase(iterations: object) -> dict:
    """Iterations by phase (and ``total``) as the run's files record them; {} when they hold only a count."""
    return iterations if isinstance(iterations, dict) else {}


def _peak_memory_mb(summary: dict) -> float | None:
    peaks = [summary.get(k) for k in ("peak_cuda_mb", "peak_rss_mb")]
    return next((float(v) for v in peaks if v is not None), None)


def _train_machine(run_dir: Path, summary: dict, timing: dict) -> str | None:
    if timing.get("device") or timing.get("cpu"):
        return " / ".join(str(timing[k]) for k in ("device", "cpu") if timing.get(k))
    if summary.get("machine"):
        return str(summary["machine"])
    dev = read_json(run_dir / RUN_PROVENANCE).get("device", {})
    return " / ".join(str(dev[k]) for k in ("platform", "processor", "cuda_device", "cpu_count") if dev.get(k)) or None
