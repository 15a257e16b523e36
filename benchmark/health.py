"""Health checks per system: did it act at all, is its output sane, did training converge, are its
results current. Each :class:`Flag` states its rule and the measured value; a flagged system is
grey in every table and figure of the report and never called best, and its paired comparisons form a
family of their own (:mod:`benchmark.stats`), apart from those among healthy systems.

- ``no-effect``: the median per-image PSNR between output and input (score rows ``psnr_vs_input``,
  written by the evaluate step) is at least :data:`NO_EFFECT_DB`.
- ``degenerate``: near-constant output (median per-image pixel standard deviation below
  :data:`NEAR_CONSTANT_STD`) or mostly clipped output (median fraction of values at 0 or 255 above
  :data:`MOSTLY_CLIPPED`).
- ``diverged``: a non-finite loss in ``train_log.csv``, or guidance loss that did not fall (mean of the
  last 10% of guided iterations not below the mean of the first 10%).
- ``stale``: ``dvc status`` finds changed code, params or data behind a pipeline stage that produced
  the system's results, or behind a stage upstream of it (only for the DVC pipeline's own results folder).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.metrics import PSNR_CAP_DB

NO_EFFECT_DB = 40.0
NEAR_CONSTANT_STD = 0.02  # on the [0, 1] scale: about 5 grey levels of 255
MOSTLY_CLIPPED = 0.5
EDGE_FRACTION = 0.1  # first / last share of guided iterations compared for "diverged"
GUIDED_PHASES = ("enhance", "enhancer")
KINDS = ("train", "enhanced", "scores")  # results/<kind>/<system>/... produced by a pipeline stage

RULES = {
    "no-effect": f"median over images of PSNR(output, input) ≥ {NO_EFFECT_DB:g} dB (identical images count "
                 f"{PSNR_CAP_DB:g} dB)",
    "degenerate": f"median per-image pixel sd < {NEAR_CONSTANT_STD:g} (near-constant) or median share of values "
                  f"at 0 or 255 > {MOSTLY_CLIPPED:.0%} (mostly clipped)",
    "diverged": "a non-finite loss in train_log.csv, or guidance loss that did not fall (mean over the last "
                f"{EDGE_FRACTION:.0%} of guided iterations ≥ mean over the first {EDGE_FRACTION:.0%})",
    "stale": "`dvc status` finds changed code, params or data behind a stage that produced the system's "
             "results or one upstream of it",
}


@dataclass(frozen=True)
class Flag:
    """One failed check: its name, the rule and what was measured."""

    flag: str
    value: str

    @property
    def rule(self) -> str:
        return RULES[self.flag]

    def text(self) -> str:
        return f"{self.flag}: {self.value}"

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "rule": self.rule}


def output_flags(diagnostics: pd.DataFrame) -> dict[tuple[str, str], list[Flag]]:
    """``no-effect`` and ``degenerate`` per (dataset, system) from the diagnostic score rows (all seeds
    pooled; the unprocessed input is not checked)."""
    out: dict[tuple[str, str], list[Flag]] = {}
    frame = diagnostics[diagnostics["system"] != "input"]
    for (dataset, system), group in frame.groupby(["dataset", "system"], sort=True):
        med = {m: float(np.median(v)) for m, g in group.groupby("metric") if (v := g["value"].dropna()).size}
        flags = []
        if med.get("psnr_vs_input", -math.inf) >= NO_EFFECT_DB:
            flags.append(Flag("no-effect", f"output {med['psnr_vs_input']:.1f} dB from its input"))
        if med.get("output_std", math.inf) < NEAR_CONSTANT_STD:
            flags.append(Flag("degenerate", f"near-constant output, pixel sd {med['output_std']:.4f}"))
        elif med.get("output_clipped", 0.0) > MOSTLY_CLIPPED:
            share = med["output_clipped"]
            flags.append(Flag("degenerate", f"mostly clipped output, {share:.0%} of values at 0 or 255"))
        out[(str(dataset), str(system))] = flags
    return out


def diverged(log: pd.DataFrame) -> str | None:
    """Why a training log counts as diverged (None when it does not)."""
    losses = [c for c in ("loss", "guidance", "identity", "ce", "rank") if c in log.columns]
    for col in losses:
        vals = pd.to_numeric(log[col], errors="coerce").to_numpy(dtype=float)
        bad = log[log[col].notna().to_numpy() & ~np.isfinite(vals)]  # "nan"/"inf" text; empty cells are NA
        if len(bad):
            where = f" at iteration {bad['iter'].iloc[0]}" if "iter" in log.columns else ""
            return f"non-finite {col} loss{where}"
    if "guidance" not in log.columns:
        return None
    guided = log if "phase" not in log.columns else log[log["phase"].isin(GUIDED_PHASES)]
    g = pd.to_numeric(guided["guidance"], errors="coerce").dropna().to_numpy()
    if g.size < 2:
        return None
    k = max(1, math.ceil(EDGE_FRACTION * g.size))
    first, last = float(g[:k].mean()), float(g[-k:].mean())
    if last >= first:
        return f"guidance loss did not fall: {first:.4g} (first {k} guided iterations) -> {last:.4g} (last {k})"
    return None


def training_flags(runs: Mapping[str, Mapping[str, Path]]) -> dict[str, list[Flag]]:
    """``diverged`` per system from ``runs`` (system -> seed label -> run directory)."""
    out: dict[str, list[Flag]] = {}
    for system, seeds in runs.items():
        reasons = []
        for seed, run_dir in sorted(seeds.items()):
            path = Path(run_dir) / "train_log.csv"
            try:
                log = pd.read_csv(path, keep_default_na=False, na_values=[""])  # "nan" losses stay visible
            except (OSError, ValueError):
                continue
            why = diverged(log)
            if why:
                reasons.append(f"seed {seed}: {why}" if seed else why)
        out[system] = [Flag("diverged", "; ".join(reasons))] if reasons else []
    return out


def _change_items(entry: object) -> list[str]:
    """A ``dvc status`` entry as texts, for changes of code, params, data or command (not of outputs, nor an input
    that is absent: a stage that has not run in this checkout, as in a fresh clone, made nothing here)."""
    if isinstance(entry, str):
        return [entry] if entry in ("changed command", "always changed") else []
    if isinstance(entry, dict) and "changed deps" in entry:
        return [f"{path} {k} {v}" if isinstance(what, dict) else f"{path} {what}"
                for path, what in entry["changed deps"].items() if what != "deleted"
                for k, v in (what.items() if isinstance(what, dict) else [(None, None)])]
    return []


def stale_flags(results: str | Path, project_root: str | Path) -> tuple[dict[str, list[Flag]], str]:
    """``stale`` per system from ``dvc status`` of ``project_root``, and a note saying how it was checked.

    Only the pipeline's own results folder (``<project_root>/results``) is checked; anywhere else, or
    without DVC, the note says why nothing was checked.
    """
    root, project = Path(results).resolve(), Path(project_root).resolve()
    if not (project / "dvc.yaml").is_file() or not (project / "dvc.lock").is_file():
        return {}, f"stale: not checked ({project} has no dvc.yaml and dvc.lock)"
    if root != project / "results":
        return {}, f"stale: not checked ({root} is not the DVC pipeline's results folder)"
    if os.environ.get("DVC_STAGE"):  # dvc repro holds the repository lock that dvc status needs
        return {}, "stale: not checked inside `dvc repro` (it reruns every stale stage upstream of this one first)"
    try:
        changes, systems_of = _dvc_changes(project)
    except Exception as exc:  # noqa: BLE001 - any DVC failure leaves the check undone, with the reason
        return {}, f"stale: not checked (dvc status failed: {type(exc).__name__}: {exc})"
    out: dict[str, list[Flag]] = {}
    for system, stages in systems_of.items():
        stale = sorted(s for s in stages if changes.get(s))
        items = list(dict.fromkeys(i for s in stale for i in changes[s]))
        if stale:
            more = f" and {len(items) - 4} more" if len(items) > 4 else ""
            out[system] = [Flag("stale", f"{', '.join(items[:4])}{more} (stage{'s' * (len(stale) > 1)} "
                                         f"{', '.join(stale)})")]
    return out, f"stale: checked with dvc status ({sum(map(bool, changes.values()))} stale stages)"


def _dvc_changes(project: Path) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    """(stage -> changes of code, params or data) and (system -> its stages and all upstream ones)."""
    import networkx as nx
    from dvc.repo import Repo

    cwd = os.getcwd()
    repo = Repo(str(project))
    try:
        os.chdir(project)  # stage paths resolve against the repository root
        graph = repo.index.graph
        status = repo.status(check_updates=False)
        changes: dict[str, list[str]] = {}
        systems_of: dict[str, set[str]] = {}
        for stage in repo.index.stages:
            changes[stage.addressing] = [t for e in status.get(stage.addressing, []) for t in _change_items(e)]
            for out in stage.outs:
                parts = Path(os.path.relpath(out.fs_path, project)).parts
                if len(parts) >= 3 and parts[0] == "results" and parts[1] in KINDS:
                    upstream = {s.addressing for s in nx.descendants(graph, stage)} | {stage.addressing}
                    systems_of.setdefault(parts[2], set()).update(upstream)
    finally:
        os.chdir(cwd)
        repo.close()
    return changes, systems_of
