"""Aggregation, bootstrap confidence intervals and paired comparisons on known inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.stats import aggregate, best_systems, bootstrap_ci, paired_comparison, paired_test


def _scores(rows: list[tuple[str, str, str, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "system": s, "method": s, "source": "input" if s == "input" else "released",
                          "regime": "", "image": i, "metric": m, "protocol": "pyiqa", "value": v, "lower_better": lb}
                         for s, i, m, v, lb in rows])


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
    best = best_systems(aggregate(_scores(rows), n_boot=100))
    assert best[("d", "niqe")] == "x"  # input has the lowest niqe but is excluded
