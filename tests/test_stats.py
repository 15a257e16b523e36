"""Aggregation, scene-bootstrap intervals, seeds, paired comparisons, Holm and the best decision on known inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.stats import (
    aggregate,
    best_systems,
    bootstrap_ci,
    holm,
    paired_comparison,
    paired_test,
    rank_biserial,
    seed_aggregate,
)


def _scores(rows: list[tuple], source: str = "released") -> pd.DataFrame:
    """Rows (system, image, metric, value, lower_better[, seed]) as a long scores table."""
    return pd.DataFrame([{"dataset": "d", "system": r[0], "method": r[0],
                          "source": "input" if r[0] == "input" else source,
                          "regime": "", "image": r[1], "metric": r[2], "protocol": "pyiqa", "value": r[3],
                          "lower_better": r[4], "seed": r[5] if len(r) > 5 else ""} for r in rows])


def test_bootstrap_ci_known_cases() -> None:
    assert bootstrap_ci([2.5, 2.5, 2.5]) == (2.5, 2.5)
    assert bootstrap_ci([4.0]) == (4.0, 4.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    # two values {0, 1}: resampled means are 0, 0.5, 1 with p = 1/4, 1/2, 1/4 -> 95% interval [0, 1]
    assert bootstrap_ci([0.0, 1.0], n_boot=2000) == (0.0, 1.0)


def test_bootstrap_ci_deterministic_and_close_to_normal_theory() -> None:
    x = np.random.default_rng(1).normal(10.0, 2.0, 400)
    lo, hi = bootstrap_ci(x, n_boot=2000, seed=7)
    assert (lo, hi) == bootstrap_ci(x, n_boot=2000, seed=7)
    assert (lo, hi) != bootstrap_ci(x, n_boot=2000, seed=8)
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


def test_aggregate_known_table() -> None:
    rows = [("a", f"i{k}", "psnr", v, False) for k, v in enumerate([10.0, 12.0, 14.0])]
    rows += [("b", f"i{k}", "psnr", v, False) for k, v in enumerate([20.0, 20.0, 20.0])]
    rows += [("a", "i0", "niqe", 5.0, True)]
    agg = aggregate(_scores(rows), n_boot=500, seed=0).set_index(["system", "metric"])
    a = agg.loc[("a", "psnr")]
    assert (a["n"], a["mean"], a["std"]) == (3, 12.0, 2.0)
    assert 10.0 <= a["ci_low"] < 12.0 < a["ci_high"] <= 14.0
    b = agg.loc[("b", "psnr")]
    assert (b["ci_low"], b["ci_high"]) == (20.0, 20.0)
    assert bool(agg.loc[("a", "niqe")]["lower_better"]) is True and agg.loc[("a", "niqe")]["n"] == 1


def test_paired_test_exact_wilcoxon() -> None:
    a = np.arange(1.0, 11.0)
    b = a - np.arange(1, 11) / 10  # a better on all 10 images, distinct differences
    res = paired_test(a, b, lower_better=False)
    assert (res["wins_a"], res["wins_b"], res["ties"]) == (10, 0, 0)
    assert res["p_value"] == pytest.approx(2 / 2**10)  # exact two-sided signed-rank p for 10/10 positive
    assert res["mean_diff"] == pytest.approx(0.55)
    flipped = paired_test(a, b, lower_better=True)
    assert (flipped["wins_a"], flipped["wins_b"]) == (0, 10)
    same = paired_test(a, a, lower_better=False)
    assert same["ties"] == 10 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="length"):
        paired_test([1.0], [1.0, 2.0], lower_better=False)


def test_paired_comparison_uses_common_images_and_direction() -> None:
    rows = [("x", f"i{k}", "niqe", 3.0 + k, True) for k in range(4)]
    rows += [("y", f"i{k}", "niqe", 4.0 + k, True) for k in range(3)]  # y lacks i3
    rows += [("input", f"i{k}", "niqe", 1.0, True) for k in range(4)]
    table = paired_comparison(_scores(rows)).set_index(["system_a", "system_b"])
    xy = table.loc[("x", "y")]
    assert (xy["n"], xy["wins_a"], xy["wins_b"]) == (3, 3, 0)  # lower niqe is better: x wins
    assert len(table) == 3
    agg = aggregate(_scores(rows), n_boot=100)
    decision = best_systems(agg, table.reset_index()).iloc[0]
    assert (decision["leader"], decision["runner_up"]) == ("x", "y")  # input has the lowest niqe but is excluded
    assert decision["status"] == "tie" and decision["best"] == ""  # 3 images: p = 0.25 at best
    assert "not significant" in decision["reason"]


def test_scene_bootstrap_resamples_whole_scenes() -> None:
    # 8 crops of 2 photos: scene a all 0, scene b all 1 -> as two values {0, 1}, the interval is [0, 1]
    values, scenes = [0.0] * 4 + [1.0] * 4, ["a"] * 4 + ["b"] * 4
    assert bootstrap_ci(values, clusters=scenes, n_boot=2000) == (0.0, 1.0)
    lo, hi = bootstrap_ci(values, n_boot=2000)  # as 8 independent images the interval is much narrower
    assert 0.1 < lo < 0.5 < hi < 0.9
    assert all(math.isnan(v) for v in bootstrap_ci([1.0, 2.0, 3.0], clusters=["p"] * 3))  # one scene: unknown
    agg = aggregate(_scores([("s", f"img-{k}", "psnr", v, False) for k, v in enumerate(values)]),
                    scenes={"d": {f"img-{k}": s for k, s in enumerate(scenes)}}, n_boot=2000).iloc[0]
    assert (agg["n"], agg["n_scenes"], agg["ci_low"], agg["ci_high"]) == (8, 2, 0.0, 1.0)


def test_paired_test_on_scenes_and_effect_size() -> None:
    a, b = np.arange(8.0) + 1.0, np.arange(8.0)  # a better on all 8 crops
    assert paired_test(a, b, lower_better=False)["p_value"] == pytest.approx(2 / 2**8)
    clustered = paired_test(a, b, lower_better=False, clusters=["p", "p", "p", "p", "q", "q", "q", "q"])
    assert (clustered["n"], clustered["n_scenes"], clustered["wins_a"]) == (8, 2, 8)
    assert clustered["p_value"] == pytest.approx(0.5)  # two scenes: the smallest two-sided p is 2 / 2**2
    assert clustered["effect"] == 1.0 and clustered["mean_diff"] == 1.0
    assert clustered["diff_low"] == clustered["diff_high"] == 1.0
    # rank-biserial: d = [1, -2, 3] -> ranks 1, 2, 3 -> (1 + 3 - 2) / 6; zeros are dropped
    assert rank_biserial(np.array([1.0, -2.0, 3.0]))[0] == pytest.approx(1 / 3)
    assert rank_biserial(np.array([0.0, 1.0, -2.0, 3.0]))[0] == pytest.approx(1 / 3)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, 30)
    res = paired_test(x + 0.3, x + rng.normal(0, 0.5, 30), lower_better=False)
    assert res["diff_low"] < res["mean_diff"] < res["diff_high"]
    assert res["effect_low"] <= res["effect"] <= res["effect_high"]


def test_holm_known_values() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, 2 x 0.03, max(1 x 0.04, previous) = 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)
    rows = [(s, f"i{k}", m, v + k * 0.1, False) for k in range(6) for m in ("psnr", "ssim")
            for s, v in (("a", 1.0), ("b", 0.5), ("c", 0.0))]
    table = paired_comparison(_scores(rows))
    assert len(table) == 6 and (table["p_holm"] >= table["p_value"]).all()
    assert table["p_holm"].iloc[0] == pytest.approx(min(1.0, 6 * table["p_value"].iloc[0]))


def test_seeds_are_averaged_and_their_spread_reported() -> None:
    rows = [("t", f"i{k}", "psnr", 10.0 + k + seed, False, seed) for k in range(4) for seed in (0, 1, 2)]
    scores = _scores(rows, source="trained")
    agg = aggregate(scores, n_boot=100).iloc[0]
    assert (agg["n"], agg["mean"], agg["n_seeds"]) == (4, 12.5, 3)  # per image: mean over seeds 0, 1, 2
    assert agg["seed_sd"] == pytest.approx(1.0)  # per-seed means 11.5, 12.5, 13.5
    per_seed = seed_aggregate(scores, n_boot=100)
    assert list(per_seed["seed"]) == ["0", "1", "2"] and list(per_seed["mean"]) == [11.5, 12.5, 13.5]


def _decide(rows: list[tuple], flagged: dict | None = None, source: str = "released") -> pd.Series:
    scores = _scores(rows, source)
    paired = paired_comparison(scores)
    return best_systems(aggregate(scores, n_boot=100), paired, flagged).iloc[0]


def test_best_needs_a_healthy_significant_lead_beyond_the_seed_spread() -> None:
    rows = [(s, f"i{k}", "psnr", 20.0 + k * 0.37 % 1 + gain + k * 0.01 * (s == "a"), False)
            for k in range(12) for s, gain in (("a", 2.0), ("b", 1.0), ("c", 0.0))]
    best = _decide(rows)
    assert (best["status"], best["best"], best["runner_up"]) == ("best", "a", "b")
    assert best["p_holm"] < 0.05 and best["lead"] == pytest.approx(1.0 + 0.055)
    flagged = _decide(rows, {("d", "a"): True})  # a had no effect, say: never best, b leads c
    assert (flagged["best"], flagged["runner_up"]) == ("b", "c")
    # two trained systems 0.5 apart whose seeds spread by 1: a tie, however significant
    seeded = [(s, f"i{k}", "psnr", 20.0 + k + gain + seed, False, seed) for k in range(12) for seed in (-1, 0, 1)
              for s, gain in (("a", 0.5), ("b", 0.0))]
    tie = _decide(seeded, source="trained")
    assert (tie["status"], tie["best"], tie["leader"]) == ("tie", "", "a")
    assert tie["seed_sd"] == pytest.approx(1.0) and "between-seed spread" in tie["reason"]
    single = _decide([r for r in rows if r[0] == "a"])
    assert single["status"] == "single" and single["best"] == ""
