"""Aggregation over images: mean with a seeded percentile-bootstrap 95% CI, and paired comparisons."""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd

GROUP = ["dataset", "system", "method", "source", "regime", "metric", "protocol", "lower_better"]
AGGREGATE_COLUMNS = [*GROUP, "n", "mean", "std", "ci_low", "ci_high"]
PAIRED_COLUMNS = ["dataset", "metric", "protocol", "lower_better", "system_a", "system_b", "n", "wins_a", "wins_b",
                  "ties", "mean_a", "mean_b", "mean_diff", "statistic", "p_value"]


def bootstrap_ci(values: Sequence[float], *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; deterministic for a given ``seed``. NaN for no values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def aggregate(scores: pd.DataFrame, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, system, metric): n, mean, std and the bootstrap CI of the mean."""
    rows = []
    frame = scores.assign(regime=scores["regime"].fillna("")) if len(scores) else scores
    for key, group in frame.groupby(GROUP, sort=True, dropna=False):
        vals = group["value"].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        lo, hi = bootstrap_ci(vals, n_boot=n_boot, level=level, seed=seed)
        rows.append({**dict(zip(GROUP, key)), "n": int(vals.size),
                     "mean": float(vals.mean()) if vals.size else math.nan,
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def paired_test(a: Sequence[float], b: Sequence[float], *, lower_better: bool) -> dict[str, float | int]:
    """Per-image wins of ``a`` over ``b`` (direction-aware) and a two-sided Wilcoxon signed-rank test."""
    from scipy.stats import wilcoxon

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    diff = x - y
    better = -diff if lower_better else diff
    out: dict[str, float | int] = {"n": int(x.size), "wins_a": int((better > 0).sum()), "wins_b": int((better < 0).sum()),
                                   "ties": int((better == 0).sum()), "mean_a": float(x.mean()) if x.size else math.nan,
                                   "mean_b": float(y.mean()) if y.size else math.nan,
                                   "mean_diff": float(diff.mean()) if x.size else math.nan,
                                   "statistic": math.nan, "p_value": math.nan}
    if np.count_nonzero(diff) == 0:
        out["p_value"] = 1.0 if x.size else math.nan
        return out
    res = wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
    out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def paired_comparison(scores: pd.DataFrame, systems: Sequence[str] | None = None) -> pd.DataFrame:
    """Every pair of systems, per dataset and metric, on the images both have scored."""
    rows = []
    for (dataset, metric, protocol, lower), group in scores.groupby(["dataset", "metric", "protocol", "lower_better"]):
        wide = group.pivot_table(index="image", columns="system", values="value", aggfunc="first")
        names = [s for s in (systems or sorted(wide.columns)) if s in wide.columns]
        for sa, sb in combinations(names, 2):
            both = wide[[sa, sb]].dropna()
            if both.empty:
                continue
            res = paired_test(both[sa].to_numpy(), both[sb].to_numpy(), lower_better=bool(lower))
            rows.append({"dataset": dataset, "metric": metric, "protocol": protocol, "lower_better": bool(lower),
                         "system_a": sa, "system_b": sb, **res})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def best_systems(agg: pd.DataFrame, exclude_sources: Sequence[str] = ("input",)) -> dict[tuple[str, str], str]:
    """(dataset, metric) -> the system with the best mean, honouring each metric's direction."""
    best: dict[tuple[str, str], str] = {}
    ranked = agg[~agg["source"].isin(exclude_sources)].dropna(subset=["mean"])
    for (dataset, metric), group in ranked.groupby(["dataset", "metric"]):
        lower = bool(group["lower_better"].iloc[0])
        row = group.loc[group["mean"].idxmin() if lower else group["mean"].idxmax()]
        best[(dataset, metric)] = str(row["system"])
    return best
