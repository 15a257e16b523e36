"""The reproduction envelope: how far a change of machine can move a trained system's scores, and the
level a rerun of the pipeline reaches against the committed run.

A trained system is trained once per seed. The ``envelope`` stage retrains the same seeds under
perturbed but legitimate numerics (``params.yaml: envelope``, by default another thread count, which
sums every reduction in another order, as another CPU or a GPU does) and scores them as the
pipeline does. Per (dataset, system, metric) the envelope holds, over the ``n`` committed seeds:

- ``seed_sd``: the sd of the per-seed means (what another seed does);
- ``numerics_sd``: the root mean square of the per-seed differences perturbed - committed (what
  other numerics do to the same seed; the mean of these differences is 0 when numerics only add noise);
- ``spread`` = max(numerics_sd, sqrt(2) * seed_sd): training amplifies last-bit differences, so a
  change of machine can move a run as far as a change of seed, and the difference of two such runs
  has sqrt(2) times their sd;
- ``margin`` = t(1 - alpha/2, max(n - 1, 1)) * spread / sqrt(n), at least the metric's resolution.

The equivalence rule (:func:`level`): a rerun whose mean over the same seeds lies within ``margin``
of the committed mean is *within the envelope*; identical bytes are *exact*; anything else is
*outside*. Systems without seeds (released weights, operators, the inputs) are deterministic up to
the last bits of their kernels; their envelope is the fixed tolerance :data:`TOLERANCES`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
EXACT, WITHIN, OUTSIDE = "exact", "within envelope", "outside"
LEVELS = (EXACT, WITHIN, OUTSIDE)  # best first
# Deterministic systems: absolute tolerance by metric (relative RELATIVE otherwise); also the margin's floor.
TOLERANCES = {"psnr": 0.05, "ssim": 0.002, "ssim@rgb": 0.002, "lpips": 0.002, "psnr_vs_input": 0.05}
RELATIVE = 0.01
RESOLUTION = {"psnr": 0.01, "ssim": 0.0005, "ssim@rgb": 0.0005, "lpips": 0.0005, "psnr_vs_input": 0.01}
RESOLUTION_RELATIVE = 0.001
RULE = ("|rerun mean - committed mean| <= t(1 - alpha/2, max(n - 1, 1)) * max(numerics sd, sqrt(2) * seed sd)"
        " / sqrt(n) over the n committed seeds (alpha = {alpha}); systems without seeds: fixed tolerances")


@dataclass(frozen=True)
class Envelope:
    """The envelope of one (dataset, system, metric) of a trained system."""

    n_seeds: int
    mean: float
    seed_sd: float
    numerics_sd: float
    spread: float
    margin: float
    alpha: float = ALPHA

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def resolution(metric: str, value: float) -> float:
    """The smallest difference of ``metric`` that is read as one (the margin's floor)."""
    return RESOLUTION.get(metric, RESOLUTION_RELATIVE * max(abs(value), 1e-12))


def tolerance(metric: str, value: float) -> float:
    """The envelope of a system without seeds: an absolute tolerance, or :data:`RELATIVE` of ``value``."""
    return TOLERANCES.get(metric, RELATIVE * max(abs(value), 1e-12))


def seed_means(scores: pd.DataFrame, *, seeded_only: bool = True) -> pd.DataFrame:
    """Per (dataset, system, metric, seed): the mean over images of the finite values; ``seed`` is -1 for a
    system without seeds (kept only when ``seeded_only`` is False)."""
    frame = scores.assign(value=pd.to_numeric(scores["value"], errors="coerce"))
    frame = frame[np.isfinite(frame["value"])].copy()
    frame["seed"] = pd.to_numeric(frame["seed"], errors="coerce").fillna(-1).astype(int)
    if seeded_only:
        frame = frame[frame["seed"] >= 0]
    return frame.groupby(["dataset", "system", "metric", "seed"], sort=True)["value"].mean().reset_index()


def system_values(scores: pd.DataFrame) -> dict[tuple[str, str, str], dict[int, float]]:
    """(dataset, system, metric) -> {seed: mean over images} (seed -1 for a system without seeds): what the
    envelope and a rerun are compared on."""
    means = seed_means(scores, seeded_only=False)
    return {key: dict(zip(g["seed"], g["value"])) for key, g in means.groupby(["dataset", "system", "metric"])}


def envelope_of(metric: str, committed: Mapping[int, float], perturbed: Mapping[int, float],
                alpha: float = ALPHA) -> Envelope:
    """The envelope from the per-seed means of the committed run and of its perturbed-numerics rerun
    (seeds missing from either are left out of the numerics spread)."""
    values = np.array([committed[k] for k in sorted(committed)], dtype=float)
    n = int(values.size)
    if n == 0:
        raise ValueError(f"{metric}: no committed seeds")
    mean = float(values.mean())
    seed_sd = float(values.std(ddof=1)) if n > 1 else 0.0
    diffs = np.array([perturbed[k] - committed[k] for k in sorted(committed) if k in perturbed], dtype=float)
    numerics_sd = float(math.sqrt(np.mean(diffs ** 2))) if diffs.size else math.nan
    spread = max(0.0 if math.isnan(numerics_sd) else numerics_sd, math.sqrt(2) * seed_sd)
    t = float(stats.t.ppf(1 - alpha / 2, max(n - 1, 1)))
    margin = max(t * spread / math.sqrt(n), resolution(metric, mean))
    return Envelope(n, mean, seed_sd, numerics_sd, spread, margin, alpha)


def envelope_table(committed: pd.DataFrame, perturbed: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (dataset, system, metric) of the seeded systems in ``committed`` (long score tables with a
    ``seed`` column, as results/scores holds them): the :class:`Envelope` fields."""
    ours, theirs = seed_means(committed), seed_means(perturbed)
    other = {key: dict(zip(g["seed"], g["value"])) for key, g in theirs.groupby(["dataset", "system", "metric"])}
    rows = []
    for (dataset, system, metric), g in ours.groupby(["dataset", "system", "metric"], sort=True):
        env = envelope_of(metric, dict(zip(g["seed"], g["value"])), other.get((dataset, system, metric), {}), alpha)
        rows.append({"dataset": dataset, "system": system, "metric": metric, **env.as_dict()})
    return pd.DataFrame(rows, columns=["dataset", "system", "metric", *Envelope.__dataclass_fields__])


def level(committed: float, rerun: float, margin: float, *, exact: bool = False) -> str:
    """:data:`EXACT` when the bytes agree, :data:`WITHIN` when ``|rerun - committed| <= margin`` (NaN on both
    sides agrees), else :data:`OUTSIDE`."""
    if exact:
        return EXACT
    if math.isnan(committed) and math.isnan(rerun):
        return WITHIN
    return WITHIN if abs(rerun - committed) <= margin else OUTSIDE


def worst(levels: list[str]) -> str:
    """The lowest level of several (:data:`EXACT` for none)."""
    return max(levels, key=LEVELS.index, default=EXACT)


def envelope_document(scores: pd.DataFrame, perturbed: pd.DataFrame, *, perturbation: Mapping[str, object],
                      alpha: float = ALPHA) -> dict:
    """``results/envelope.json``: per (dataset, system, metric) of ``scores`` the committed per-seed means and
    the margin a rerun must stay within (seeded systems: :func:`envelope_of` against ``perturbed``; others:
    :func:`tolerance`)."""
    other = system_values(perturbed) if len(perturbed) else {}
    entries = []
    for (dataset, system, metric), seeds in sorted(system_values(scores).items()):
        entry: dict[str, object] = {"dataset": dataset, "system": system, "metric": metric,
                                    "seeds": {str(k): v for k, v in seeds.items() if k >= 0}}
        if entry["seeds"]:
            committed = {k: v for k, v in seeds.items() if k >= 0}
            env = envelope_of(metric, committed, other.get((dataset, system, metric), {}), alpha)
            entry |= {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in env.as_dict().items()}
        else:
            mean = seeds[-1]
            entry |= {"n_seeds": 0, "mean": mean, "margin": tolerance(metric, mean)}
        entries.append(entry)
    return {"alpha": alpha, "rule": RULE.format(alpha=alpha), "perturbation": dict(perturbation),
            "tolerances": {**TOLERANCES, "other": f"{RELATIVE:.0%} of the value"}, "entries": entries}


def judge(entry: Mapping[str, object], rerun: Mapping[int, float]) -> tuple[str, str]:
    """(level, detail) of a rerun's per-seed means ``rerun`` against one :func:`envelope_document` entry."""
    seeds = {int(k): float(v) for k, v in (entry.get("seeds") or {}).items()}
    committed = seeds or {-1: float(entry["mean"])}
    missing = sorted(k for k in committed if k not in rerun)
    if missing:
        return OUTSIDE, "no rerun value" + (f" for seed {', '.join(map(str, missing))}" if seeds else "")
    ours = float(np.mean([committed[k] for k in sorted(committed)]))
    theirs = float(np.mean([rerun[k] for k in sorted(committed)]))
    margin = float(entry["margin"])
    if all(rerun[k] == committed[k] for k in committed):
        return EXACT, f"{ours:.4g}"
    lvl = level(ours, theirs, margin)
    return lvl, f"{ours:.4g} -> {theirs:.4g} (diff {theirs - ours:+.3g}, margin {margin:.3g})"
