"""Aggregation over images, paired comparisons and the "best" decision, honest about what the data hold.

Scenes: images that are crops of one photo form one scene (cluster). Bootstrap intervals resample
whole scenes and paired tests run on per-scene mean differences, so 8 crops of 2 photos count as 2
observations, not 8. Without a scene map every image is its own scene.
Seeds: a trained system with several seeds is averaged per image over its seeds; the standard
deviation of its per-seed means (``seed_sd``) is reported beside it and per-seed rows are kept apart.
Test: a two-sided paired t-test on the per-scene mean differences (df = scenes - 1), the analysis of
cluster summaries that stays valid with few clusters. A rank test on scenes would have a floor: with n
scenes no exact signed-rank or sign-flip p is below 2 / 2**n (0.031 for 6 scenes), which after
correction for a handful of pairs can never be significant; the t-test has no such floor, at the price
of assuming roughly normal per-scene differences. That assumption cannot carry a result alone: below
:data:`MIN_SCENES` (the fewest scenes at which an exact sign-flip test could reject at all, 2 / 2**n <
alpha: 6 at 5%) no system is called best, whatever the t-test says.
Multiplicity: Holm-Bonferroni within a family. The ``primary`` family of a (dataset, metric) holds the
pairwise comparisons among its candidates (the healthy trained, released and external systems): the only
tests behind "best". Comparisons with the input, with a training-free operator (a baseline) or with a
flagged system form the ``secondary`` family, reported but never used for "best", so that adding a
flagged system or a baseline changes no p_holm among the candidates.
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
PAIRED_COLUMNS = ["dataset", "metric", "protocol", "lower_better", "family", "system_a", "system_b", "n", "n_scenes",
                  "wins_a", "wins_b", "ties", "mean_a", "mean_b", "mean_diff", "diff_low", "diff_high", "effect",
                  "effect_low", "effect_high", "statistic", "df", "p_value", "p_holm"]
FAMILY_COLUMNS = ["dataset", "metric", "family", "systems", "n_systems", "n_tests", "n_scenes", "min_p_holm",
                  "separable", "d_crit", "scenes_for_d1"]
DECISION_COLUMNS = ["dataset", "metric", "status", "best", "leader", "runner_up", "lead", "lead_low", "lead_high",
                    "p_holm", "seed_sd", "reason"]
ALPHA = 0.05  # family-wise error rate of the Holm-adjusted tests behind "best"
TEST = "paired t-test on per-scene mean differences"
PRIMARY, SECONDARY = "primary", "secondary"
NOT_SEPARATED = "not separated"
MIN_SCENES = math.ceil(math.log2(2 / ALPHA))  # 6: 2 / 2**6 = 0.031 < 0.05
MAX_SCENES_SEARCHED = 10_000

Scenes = Mapping[str, Mapping[str, str]]  # dataset -> image stem -> scene id
Flagged = Mapping[tuple[str, str], object]  # (dataset, system) -> truthy for a system with a health flag


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
    """One row per (dataset, system, metric) over seed-averaged images: n, scenes, mean, std, the
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
    """Matched-pairs rank-biserial correlation of each row of ``better`` (zeros dropped), from -1 (b always
    better) to 1 (a always better): a rank-based effect size, robust to one scene's extreme difference."""
    from scipy.stats import rankdata

    d = np.atleast_2d(np.asarray(better, dtype=float))
    zeros = (d == 0).sum(axis=1, keepdims=True)
    ranks = rankdata(np.abs(d), axis=1) - zeros  # zeros take the lowest ranks: shift the others down
    pos, neg = (ranks * (d > 0)).sum(axis=1), (ranks * (d < 0)).sum(axis=1)
    total = pos + neg
    return np.divide(pos - neg, total, out=np.zeros_like(total), where=total > 0)


def t_test(scene_better: np.ndarray) -> tuple[float, float]:
    """(t, two-sided p) of the one-sample t-test of per-scene differences against 0 (NaN below 2 scenes).
    Equal differences on every scene (to rounding) give p = 1 when they are 0 and p = 0 otherwise (t = ±inf)."""
    from scipy.stats import ttest_1samp

    d = np.asarray(scene_better, dtype=float)
    if d.size < 2:
        return math.nan, math.nan
    if np.allclose(d, d[0], rtol=1e-9, atol=1e-12):
        m = float(d.mean())
        return (0.0, 1.0) if abs(m) <= 1e-12 else (math.copysign(math.inf, m), 0.0)
    res = ttest_1samp(d, 0.0)
    return float(res.statistic), float(res.pvalue)


def paired_test(a: Sequence[float], b: Sequence[float], *, lower_better: bool, clusters: Sequence | None = None,
                n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, float | int]:
    """Per-image wins of ``a`` over ``b`` (direction-aware); the two-sided paired t-test on per-scene mean
    differences (:data:`TEST`); the mean difference a - b and the rank-biserial effect (positive: a
    better) with scene-bootstrap intervals."""
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
        "effect_high": math.nan, "df": int(counts.size) - 1 if counts.size > 1 else math.nan}
    if counts.size > 1:
        idx = np.random.default_rng(seed).integers(0, counts.size, size=(n_boot, counts.size))
        q = [(1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0]
        out["diff_low"], out["diff_high"] = map(float, np.quantile(
            _cluster_means(idx, np.bincount(codes, weights=diff), counts), q))
        out["effect_low"], out["effect_high"] = map(float, np.quantile(rank_biserial(scene_better[idx]), q))
    out["statistic"], out["p_value"] = t_test(scene_better)
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


NOT_CANDIDATES = ("input", "training-free")  # sources never called best: the inputs, the baseline operators


def candidate(dataset: str, system: str, flagged: Flagged | None = None, source: str | None = None) -> bool:
    """Whether ``system`` (of ``source``) may be called best on ``dataset``: a trained, released or external
    system (not the input or a training-free operator), healthy there."""
    return system != "input" and source not in NOT_CANDIDATES and not (flagged or {}).get((dataset, system))


def paired_comparison(scores: pd.DataFrame, systems: Sequence[str] | None = None, *, scenes: Scenes | None = None,
                      flagged: Flagged | None = None, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Every pair of systems, per dataset and metric, on the (seed-averaged) images both have scored.

    ``family`` is :data:`PRIMARY` for pairs of two candidates (:func:`candidate`), else
    :data:`SECONDARY`; ``p_holm`` adjusts within each (dataset, metric, family).
    """
    rows = []
    frame = collapse_seeds(scores)
    for (dataset, metric, protocol, lower), group in frame.groupby(["dataset", "metric", "protocol", "lower_better"]):
        wide = group.pivot_table(index="image", columns="system", values="value", aggfunc="first")
        names = [s for s in (systems or sorted(wide.columns)) if s in wide.columns]
        source = dict(zip(group["system"], group["source"]))
        for sa, sb in combinations(names, 2):
            both = wide[[sa, sb]].dropna()
            if both.empty:
                continue
            res = paired_test(both[sa].to_numpy(), both[sb].to_numpy(), lower_better=bool(lower),
                              clusters=scene_of(scenes, str(dataset), list(both.index)), n_boot=n_boot, seed=seed)
            primary = (candidate(str(dataset), sa, flagged, source.get(sa))
                       and candidate(str(dataset), sb, flagged, source.get(sb)))
            rows.append({"dataset": dataset, "metric": metric, "protocol": protocol, "lower_better": bool(lower),
                         "family": PRIMARY if primary else SECONDARY, "system_a": sa, "system_b": sb, **res})
    out = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    for idx in out.groupby(["dataset", "metric", "family"]).groups.values():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_value"].to_numpy())
    return out


# ------------------------------------------------------------------------------- families
def critical_t(n_scenes: int, n_tests: int, alpha: float = ALPHA) -> float:
    """The |t| that the family's smallest p must exceed to be significant after Holm (p < alpha / n_tests)."""
    from scipy.stats import t

    return float(t.ppf(1.0 - alpha / (2 * n_tests), n_scenes - 1)) if n_scenes > 1 and n_tests else math.nan


def scenes_for(d: float, n_tests: int, alpha: float = ALPHA) -> int | None:
    """The fewest scenes (at least :data:`MIN_SCENES`) at which a lead of ``d`` standard deviations of its
    per-scene differences can be significant in a family of ``n_tests`` (None beyond
    :data:`MAX_SCENES_SEARCHED`)."""
    lo, hi = MIN_SCENES, MAX_SCENES_SEARCHED
    if n_tests < 1 or critical_t(hi, n_tests, alpha) / math.sqrt(hi) > d:
        return None
    while lo < hi:  # critical_t(n) / sqrt(n) falls with n
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if critical_t(mid, n_tests, alpha) / math.sqrt(mid) > d else (lo, mid)
    return lo


def attainable(n_scenes: int, n_tests: int, alpha: float = ALPHA) -> dict[str, Any]:
    """What a family of ``n_tests`` paired t-tests on ``n_scenes`` scenes can show at all.

    ``min_p_holm``: the smallest p_holm that can decide "best" (0 from :data:`MIN_SCENES` scenes on: the
    t-test has no floor; 1 below, where no result is called best); ``separable``: ``min_p_holm < alpha``;
    ``d_crit``: the smallest lead, in standard deviations of its per-scene differences, that can be
    significant (``critical_t / sqrt(n_scenes)``); ``scenes_for_d1``: the scenes a lead of one such sd
    would need.
    """
    min_p = 0.0 if n_scenes >= MIN_SCENES and n_tests else 1.0
    crit = critical_t(n_scenes, n_tests, alpha)
    return {"min_p_holm": min_p, "separable": min_p < alpha,
            "d_crit": crit / math.sqrt(n_scenes) if not math.isnan(crit) else math.nan,
            "scenes_for_d1": scenes_for(1.0, n_tests, alpha) if n_tests else None}


def families(paired: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (dataset, metric, family): its systems, number of tests, scenes (the fewest of any of its
    tests) and what it can show (:func:`attainable`)."""
    rows = []
    for (dataset, metric, family), group in paired.groupby(["dataset", "metric", "family"], sort=False):
        systems = list(dict.fromkeys([*group["system_a"], *group["system_b"]]))
        tests = group[group["p_value"].notna()] if group["p_value"].notna().any() else group
        n_tests, n_scenes = len(group), int(tests["n_scenes"].min())
        rows.append({"dataset": dataset, "metric": metric, "family": family, "systems": " ".join(systems),
                     "n_systems": len(systems), "n_tests": n_tests, "n_scenes": n_scenes,
                     **attainable(n_scenes, n_tests, alpha)})
    return pd.DataFrame(rows, columns=FAMILY_COLUMNS)


# ------------------------------------------------------------------------------- decisions
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


def best_systems(agg: pd.DataFrame, paired: pd.DataFrame, flagged: Flagged | None = None, *,
                 alpha: float = ALPHA) -> pd.DataFrame:
    """Per (dataset, metric): ``best`` is the leading candidate (:func:`candidate`) only when its lead over
    the candidate runner-up is significant in the primary family (Holm-adjusted p < ``alpha``) and, where
    seeds exist, larger than the seed-to-seed spread (the larger ``seed_sd`` of the two); otherwise
    ``status`` is :data:`NOT_SEPARATED` and ``reason`` says why, with the interval of the lead
    (``lead_low``, ``lead_high``: the scene-bootstrap 95% interval of leader minus runner-up, oriented
    so that positive favours the leader)."""
    enhancers = agg[agg["system"] != "input"].dropna(subset=["mean"])
    rows = [_decide(dataset, metric, group, paired, flagged or {}, alpha)
            for (dataset, metric), group in sorted(enhancers.groupby(["dataset", "metric"]),
                                                   key=lambda g: _order(*g[0]))]
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def _decide(dataset: str, metric: str, group: pd.DataFrame, paired: pd.DataFrame, flagged: Flagged,
            alpha: float) -> dict[str, Any]:
    """The :func:`best_systems` row of one (dataset, metric) from its enhancer systems ``group``."""
    lower = bool(group["lower_better"].iloc[0])
    ranked = group[[candidate(dataset, s, flagged, src) for s, src in zip(group["system"], group["source"])]]
    ranked = ranked.sort_values("mean", ascending=lower, kind="stable")
    row = {"dataset": dataset, "metric": metric, "best": "", "leader": "", "runner_up": "", "lead": math.nan,
           "lead_low": math.nan, "lead_high": math.nan, "p_holm": math.nan, "seed_sd": math.nan}
    if ranked.empty:
        return {**row, "status": "none", "reason": "no healthy system"}
    row["leader"] = str(ranked.iloc[0]["system"])
    if len(ranked) < 2:
        return {**row, "status": "single", "reason": "only one healthy system: nothing to compare it with"}
    lead_row, run_row = ranked.iloc[0], ranked.iloc[1]
    row["runner_up"] = str(run_row["system"])
    row["lead"] = abs(float(lead_row["mean"]) - float(run_row["mean"]))  # until a paired test says it on common images
    sds = [float(s) for s in (lead_row["seed_sd"], run_row["seed_sd"]) if not math.isnan(s)]
    row["seed_sd"] = max(sds) if sds else math.nan
    test, forward = _pair_row(paired, dataset, metric, row["leader"], row["runner_up"])
    if test is None:
        return {**row, "status": NOT_SEPARATED, "reason": "no paired test (no images in common)"}
    sign = (1 if forward else -1) * (-1 if lower else 1)  # leader better by = sign * (a - b)
    row["lead"] = sign * float(test["mean_diff"])  # on the images both have, like its interval
    row["lead_low"], row["lead_high"] = sorted((sign * float(test["diff_low"]), sign * float(test["diff_high"])))
    if int(test["n_scenes"]) < MIN_SCENES:
        return {**row, "p_holm": float(test["p_holm"]), "status": NOT_SEPARATED,
                "reason": f"lead {row['lead']:.3g}{_interval(row)}; {_scenes(int(test['n_scenes']))} cannot separate "
                          f"systems (at least {MIN_SCENES} needed)"}
    return _significance(row, test, row["lead"] > 0, bool(sds), alpha)


def _scenes(n: int) -> str:
    return f"{n} scene{'' if n == 1 else 's'}"


def _interval(row: dict[str, Any]) -> str:
    return "" if math.isnan(row["lead_low"]) else f" [{row['lead_low']:.3g}, {row['lead_high']:.3g}]"


def _significance(row: dict[str, Any], test: pd.Series, favours: bool, seeded: bool, alpha: float) -> dict[str, Any]:
    """``row`` decided by the leader-vs-runner-up ``test``: best, or not separated with the reason."""
    row["p_holm"] = float(test["p_holm"])
    lead = f"lead {row['lead']:.3g}{_interval(row)}"
    if not favours:
        reason = f"{lead}; on the images both have, the runner-up is not worse"
    elif row["p_holm"] >= alpha:
        reason = f"{lead} not significant (p = {float(test['p_value']):.2g}, p_holm = {row['p_holm']:.2g} ≥ {alpha:g})"
    elif seeded and row["lead"] <= row["seed_sd"]:
        reason = f"{lead} within the seed-to-seed spread (sd {row['seed_sd']:.3g})"
    else:
        return {**row, "status": "best", "best": row["leader"],
                "reason": f"{lead} significant (p_holm = {row['p_holm']:.2g} < {alpha:g})"
                          + (f" and above the seed sd {row['seed_sd']:.3g}" if seeded else "")}
    return {**row, "status": NOT_SEPARATED, "reason": reason}
