"""Aggregation over images, paired comparisons and the "best" decision, honest about what the data hold.

Scenes: images that are crops of one photo form one scene (cluster). Bootstrap intervals resample
whole scenes and paired tests run on per-scene mean differences, so 8 crops of 2 photos count as 2
observations, not 8. Without a scene map every image is its own scene.
Seeds: a trained system with several seeds is averaged per image over its seeds; the standard
deviation of its per-seed means (``seed_sd``) is reported beside it and per-seed rows are kept apart.
Multiplicity: every paired p-value gets ``p_holm``, Holm-Bonferroni adjusted over the whole family.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

GROUP = ["dataset", "system", "method", "source", "regime", "metric", "protocol", "lower_better"]
AGGREGATE_COLUMNS = [*GROUP, "n", "n_scenes", "mean", "std", "ci_low", "ci_high", "n_seeds", "seed_sd"]
SEED_COLUMNS = [*GROUP[:2], "seed", *GROUP[2:], "n", "mean", "std", "ci_low", "ci_high"]
PAIRED_COLUMNS = ["dataset", "metric", "protocol", "lower_better", "system_a", "system_b", "n", "n_scenes", "wins_a",
                  "wins_b", "ties", "mean_a", "mean_b", "mean_diff", "diff_low", "diff_high", "effect", "effect_low",
                  "effect_high", "statistic", "p_value", "p_holm"]
DECISION_COLUMNS = ["dataset", "metric", "status", "best", "leader", "runner_up", "lead", "p_holm", "seed_sd", "reason"]
ALPHA = 0.05  # family-wise error rate of the Holm-adjusted tests behind "best"

Scenes = Mapping[str, Mapping[str, str]]  # dataset -> image stem -> scene id


def _codes(clusters: Sequence | np.ndarray | None, n: int) -> np.ndarray:
    """Integer cluster codes 0..k-1 (each value its own cluster when ``clusters`` is None)."""
    if clusters is None:
        return np.arange(n)
    return pd.factorize(np.asarray(clusters, dtype=object))[0]


def _cluster_means(idx: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Means of bootstrap resamples ``idx`` (rows of cluster indices), weighting clusters by image count."""
    return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)


def bootstrap_ci(values: Sequence[float], *, clusters: Sequence | None = None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean, resampling whole ``clusters`` (default: single values).

    Deterministic for a given ``seed``. NaN for no values, and for several values from a single
    cluster (the spread between scenes cannot be estimated from one scene).
    """
    x = np.asarray(values, dtype=float)
    keep = np.isfinite(x)
    codes = _codes(None if clusters is None else np.asarray(clusters, dtype=object)[keep], int(keep.sum()))
    x = x[keep]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    sums, counts = np.bincount(codes, weights=x), np.bincount(codes)
    if sums.size == 1:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, sums.size, size=(n_boot, sums.size))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(_cluster_means(idx, sums, counts), [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def with_seed_column(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with a text ``seed`` column ("" for systems without seeds; old files have none)."""
    frame = scores.copy()
    if "seed" not in frame.columns:
        frame["seed"] = ""
    seeds = pd.to_numeric(frame["seed"], errors="coerce").astype("Int64")
    frame["seed"] = seeds.astype(str).where(seeds.notna(), "")
    frame["regime"] = frame["regime"].fillna("")
    return frame


def collapse_seeds(scores: pd.DataFrame) -> pd.DataFrame:
    """One value per (system, image, metric): the mean over a trained system's seeds."""
    frame = with_seed_column(scores)
    if frame.empty:
        return frame.drop(columns="seed")
    return frame.groupby([*GROUP, "image"], sort=False, dropna=False)["value"].mean().reset_index()


def scene_of(scenes: Scenes | None, dataset: str, images: Sequence[str]) -> list[str]:
    table = (scenes or {}).get(dataset, {})
    return [str(table.get(i, i)) for i in images]


def aggregate(scores: pd.DataFrame, *, scenes: Scenes | None = None, n_boot: int = 1000, level: float = 0.95,
              seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, system, metric) over images averaged over seeds: n, scenes, mean, std, the
    scene-bootstrap CI of the mean, and for trained systems the number of seeds and the sd of their means."""
    spread = _seed_spread(scores)
    rows = []
    for key, group in collapse_seeds(scores).groupby(GROUP, sort=True, dropna=False):
        group = group[np.isfinite(group["value"].to_numpy(dtype=float))]
        vals = group["value"].to_numpy(dtype=float)
        clusters = scene_of(scenes, str(key[0]), list(group["image"]))
        lo, hi = bootstrap_ci(vals, clusters=clusters, n_boot=n_boot, level=level, seed=seed)
        n_seeds, sd = spread.get((key[0], key[1], key[5]), (0, math.nan))
        rows.append({**dict(zip(GROUP, key)), "n": int(vals.size), "n_scenes": len(set(clusters)),
                     "mean": float(vals.mean()) if vals.size else math.nan,
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0, "ci_low": lo, "ci_high": hi,
                     "n_seeds": n_seeds, "seed_sd": sd})
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def _seed_spread(scores: pd.DataFrame) -> dict[tuple[str, str, str], tuple[int, float]]:
    """(dataset, system, metric) -> (number of seeds, sd of the per-seed means; NaN below 2 seeds)."""
    frame = with_seed_column(scores)
    frame = frame[frame["seed"] != ""]
    out = {}
    for key, group in frame.groupby(["dataset", "system", "metric"], sort=False):
        means = group.groupby("seed")["value"].mean()
        out[key] = (int(means.size), float(means.std(ddof=1)) if means.size > 1 else math.nan)
    return out


def seed_aggregate(scores: pd.DataFrame, *, scenes: Scenes | None = None, n_boot: int = 1000, level: float = 0.95,
                   seed: int = 0) -> pd.DataFrame:
    """Per-seed rows of the systems that have seeds (``tables/seeds.csv``)."""
    frame = with_seed_column(scores)
    rows = []
    for key, group in frame[frame["seed"] != ""].groupby(SEED_COLUMNS[:9], sort=True, dropna=False):
        vals = group["value"].to_numpy(dtype=float)
        vals, images = vals[np.isfinite(vals)], list(group["image"][np.isfinite(vals)])
        lo, hi = bootstrap_ci(vals, clusters=scene_of(scenes, str(key[0]), images), n_boot=n_boot, level=level,
                              seed=seed)
        rows.append({**dict(zip(SEED_COLUMNS[:9], key)), "n": int(vals.size),
                     "mean": float(vals.mean()) if vals.size else math.nan,
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def rank_biserial(better: np.ndarray) -> np.ndarray:
    """Matched-pairs rank-biserial correlation of each row of ``better`` (zeros dropped): the effect
    size of the Wilcoxon signed-rank test, from -1 (b always better) to 1 (a always better)."""
    from scipy.stats import rankdata

    d = np.atleast_2d(np.asarray(better, dtype=float))
    zeros = (d == 0).sum(axis=1, keepdims=True)
    ranks = rankdata(np.abs(d), axis=1) - zeros  # zeros take the lowest ranks: shift the others down
    pos, neg = (ranks * (d > 0)).sum(axis=1), (ranks * (d < 0)).sum(axis=1)
    total = pos + neg
    return np.divide(pos - neg, total, out=np.zeros_like(total), where=total > 0)


def paired_test(a: Sequence[float], b: Sequence[float], *, lower_better: bool, clusters: Sequence | None = None,
                n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Per-image wins of ``a`` over ``b`` (direction-aware); a two-sided Wilcoxon signed-rank test on
    per-scene mean differences; the mean difference a - b and the rank-biserial effect (positive: a
    better) with scene-bootstrap intervals."""
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    diff = x - y
    better = -diff if lower_better else diff
    codes = _codes(clusters, x.size)
    counts = np.bincount(codes) if x.size else np.zeros(0)
    scene_better = np.bincount(codes, weights=better) / counts if x.size else np.zeros(0)
    out: dict[str, float | int] = {
        "n": int(x.size), "n_scenes": int(counts.size), "wins_a": int((better > 0).sum()),
        "wins_b": int((better < 0).sum()), "ties": int((better == 0).sum()),
        "mean_a": float(x.mean()) if x.size else math.nan, "mean_b": float(y.mean()) if y.size else math.nan,
        "mean_diff": float(diff.mean()) if x.size else math.nan, "diff_low": math.nan, "diff_high": math.nan,
        "effect": float(rank_biserial(scene_better)[0]) if x.size else math.nan, "effect_low": math.nan,
        "effect_high": math.nan, "statistic": math.nan, "p_value": math.nan}
    if counts.size > 1:
        idx = np.random.default_rng(seed).integers(0, counts.size, size=(n_boot, counts.size))
        q = [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0]
        out["diff_low"], out["diff_high"] = map(float, np.quantile(
            _cluster_means(idx, np.bincount(codes, weights=diff), counts), q))
        out["effect_low"], out["effect_high"] = map(float, np.quantile(rank_biserial(scene_better[idx]), q))
    if np.count_nonzero(scene_better) == 0:
        out["p_value"] = 1.0 if x.size else math.nan
        return out
    res = wilcoxon(scene_better, zero_method="wilcox", alternative="two-sided")
    out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values over the finite ones (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def paired_comparison(scores: pd.DataFrame, systems: Sequence[str] | None = None, *, scenes: Scenes | None = None,
                      n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every pair of systems, per dataset and metric, on the images (averaged over seeds) both have scored;
    ``p_holm`` adjusts over all the rows returned (the family)."""
    rows = []
    frame = collapse_seeds(scores)
    for (dataset, metric, protocol, lower), group in frame.groupby(["dataset", "metric", "protocol", "lower_better"]):
        wide = group.pivot_table(index="image", columns="system", values="value", aggfunc="first")
        names = [s for s in (systems or sorted(wide.columns)) if s in wide.columns]
        for sa, sb in combinations(names, 2):
            both = wide[[sa, sb]].dropna()
            if both.empty:
                continue
            res = paired_test(both[sa].to_numpy(), both[sb].to_numpy(), lower_better=bool(lower),
                              clusters=scene_of(scenes, str(dataset), list(both.index)), n_boot=n_boot, seed=seed)
            rows.append({"dataset": dataset, "metric": metric, "protocol": protocol, "lower_better": bool(lower),
                         "system_a": sa, "system_b": sb, **res})
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    return out


def _pair_row(paired: pd.DataFrame, dataset: str, metric: str, a: str, b: str) -> tuple[pd.Series | None, bool]:
    """The paired row of ``a`` and ``b`` and whether ``a`` is its system_a."""
    sel = paired[(paired["dataset"] == dataset) & (paired["metric"] == metric)]
    for first, second, forward in ((a, b, True), (b, a, False)):
        hit = sel[(sel["system_a"] == first) & (sel["system_b"] == second)]
        if len(hit):
            return hit.iloc[0], forward
    return None, True


def _order(dataset: str, metric: str) -> tuple:
    from benchmark.metrics import metric_order

    return dataset, metric_order(metric)


def best_systems(agg: pd.DataFrame, paired: pd.DataFrame, flagged: Mapping[tuple[str, str], object] | None = None,
                 *, alpha: float = ALPHA, exclude_sources: Sequence[str] = ("input",)) -> pd.DataFrame:
    """Per (dataset, metric): ``best`` is the leading healthy system only when its lead over the
    healthy runner-up is significant (Holm-adjusted p < ``alpha``) and, where seeds exist, larger than
    the between-seed spread (the larger ``seed_sd`` of the two); otherwise ``status`` says tie and why.

    ``flagged`` maps (dataset, system) to a truthy value for systems with a health flag.
    """
    flagged = flagged or {}
    candidates = agg[~agg["source"].isin(exclude_sources)].dropna(subset=["mean"])
    rows = [_decide(dataset, metric, group, paired, flagged, alpha)
            for (dataset, metric), group in sorted(candidates.groupby(["dataset", "metric"]),
                                                   key=lambda g: _order(*g[0]))]
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def _decide(dataset: str, metric: str, group: pd.DataFrame, paired: pd.DataFrame,
            flagged: Mapping[tuple[str, str], object], alpha: float) -> dict[str, Any]:
    """The :func:`best_systems` row of one (dataset, metric) from its candidate systems ``group``."""
    lower = bool(group["lower_better"].iloc[0])
    healthy = group[[not flagged.get((dataset, s)) for s in group["system"]]]
    ranked = healthy.sort_values("mean", ascending=lower, kind="stable")
    row = {"dataset": dataset, "metric": metric, "best": "", "leader": "", "runner_up": "", "lead": math.nan,
           "p_holm": math.nan, "seed_sd": math.nan}
    if ranked.empty:
        return {**row, "status": "none", "reason": "no healthy system"}
    lead_row = ranked.iloc[0]
    row["leader"] = str(lead_row["system"])
    if len(ranked) < 2:
        return {**row, "status": "single", "reason": "only one healthy system: nothing to compare it with"}
    run_row = ranked.iloc[1]
    row["runner_up"] = str(run_row["system"])
    row["lead"] = abs(float(lead_row["mean"]) - float(run_row["mean"]))
    sds = [float(s) for s in (lead_row["seed_sd"], run_row["seed_sd"]) if not math.isnan(s)]
    row["seed_sd"] = max(sds) if sds else math.nan
    test, forward = _pair_row(paired, dataset, metric, row["leader"], row["runner_up"])
    if test is None or math.isnan(test["p_holm"]):
        return {**row, "status": "tie", "reason": "no paired test (no images in common)"}
    return _significance(row, test, forward, lower, bool(sds), alpha)


def _significance(row: dict[str, Any], test: pd.Series, forward: bool, lower: bool, seeded: bool,
                  alpha: float) -> dict[str, Any]:
    """``row`` decided by the leader-vs-runner-up ``test``: best, or tie with the reason."""
    row["p_holm"], p_raw = float(test["p_holm"]), float(test["p_value"])
    favours = (float(test["mean_diff"]) * (1 if forward else -1)) * (-1 if lower else 1) > 0
    if not favours:
        reason = "on the images both have, the runner-up is not worse"
    elif row["p_holm"] >= alpha:
        reason = (f"lead not significant after Holm correction (p = {p_raw:.2g}, "
                  f"p_holm = {row['p_holm']:.2g} ≥ {alpha:g})")
    elif seeded and row["lead"] <= row["seed_sd"]:
        reason = f"lead {row['lead']:.3g} within the between-seed spread (sd {row['seed_sd']:.3g})"
    else:
        return {**row, "status": "best", "best": row["leader"],
                "reason": f"lead {row['lead']:.3g} significant (p_holm = {row['p_holm']:.2g} < {alpha:g})"
                          + (f" and above the seed sd {row['seed_sd']:.3g}" if seeded else "")}
    return {**row, "status": "tie", "reason": reason}
