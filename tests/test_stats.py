"""Aggregation, scene-bootstrap intervals, seeds, paired comparisons, Holm and the best decision on known inputs."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.stats import (
    MIN_SCENES,
    NOT_SEPARATED,
    aggregate,
    attainable,
    best_systems,
    bootstrap_ci,
    families,
    holm,
    paired_comparison,
    paired_test,
    rank_biserial,
    scenes_for,
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


# Student's sleep data (Cushny and Peebles; R's `sleep`): extra hours of sleep of 10 patients under two drugs.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_paired_t_test_known_values() -> None:
    # R: t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9, p-value = 0.002833
    res = paired_test(SLEEP_1, SLEEP_2, lower_better=False)
    assert res["statistic"] == pytest.approx(-4.0621, abs=1e-4) and res["df"] == 9
    assert res["p_value"] == pytest.approx(0.002833, abs=1e-6)
    assert (res["wins_a"], res["wins_b"], res["ties"]) == (0, 9, 1)
    assert res["mean_diff"] == pytest.approx(-1.58)
    flipped = paired_test(SLEEP_1, SLEEP_2, lower_better=True)  # the direction turns t, not p
    assert flipped["statistic"] == pytest.approx(4.0621, abs=1e-4) and flipped["p_value"] == res["p_value"]
    assert (flipped["wins_a"], flipped["wins_b"]) == (9, 0)
    # R: t.test(1:4): t = 3.873, df = 3, p-value = 0.03047
    assert paired_test([11.0, 12.0, 13.0, 14.0], [10.0] * 4, lower_better=False)["p_value"] == pytest.approx(
        0.03047, abs=1e-5)
    same = paired_test(SLEEP_1, SLEEP_1, lower_better=False)
    assert same["ties"] == 10 and same["p_value"] == 1.0
    assert paired_test([2.0, 3.0], [1.0, 2.0], lower_better=False)["p_value"] == 0.0  # equal differences: t = inf
    assert math.isnan(paired_test([2.0], [1.0], lower_better=False)["p_value"])  # one scene: no test
    with pytest.raises(ValueError, match="length"):
        paired_test([1.0], [1.0, 2.0], lower_better=False)


def test_paired_comparison_uses_common_images_and_direction() -> None:
    worse = [1.0, 0.5, 2.0, -0.5, 1.5, -0.3]  # how much higher (worse) y's niqe is on each common image
    rows = [("x", f"i{k}", "niqe", 3.0 + k, True) for k in range(7)]
    rows += [("y", f"i{k}", "niqe", 3.0 + k + d, True) for k, d in enumerate(worse)]  # y lacks i6
    rows += [("input", f"i{k}", "niqe", 1.0, True) for k in range(7)]
    table = paired_comparison(_scores(rows)).set_index(["system_a", "system_b"])
    xy = table.loc[("x", "y")]
    assert (xy["n"], xy["wins_a"], xy["wins_b"]) == (6, 4, 2)  # lower niqe is better
    assert len(table) == 3 and list(table["family"]) == ["secondary", "secondary", "primary"]  # the input's apart
    assert xy["p_holm"] == xy["p_value"]  # alone in its family
    agg = aggregate(_scores(rows), n_boot=100)
    decision = best_systems(agg, table.reset_index()).iloc[0]
    assert (decision["leader"], decision["runner_up"]) == ("x", "y")  # input has the lowest niqe but is excluded
    # t = sqrt(3) on 5 df, p = 0.1438: not separated; the lead is on the common images, with its interval
    assert decision["status"] == NOT_SEPARATED and decision["best"] == ""
    assert decision["p_holm"] == pytest.approx(0.1438, abs=1e-4) and "not significant" in decision["reason"]
    assert decision["lead"] == pytest.approx(0.7)
    assert -0.5 <= decision["lead_low"] < 0.7 < decision["lead_high"] <= 2.0
    assert decision["reason"].startswith(f"lead 0.7 [{decision['lead_low']:.3g}, {decision['lead_high']:.3g}]")


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
    b = np.arange(8.0)
    a = b + [1, 2, 1, 2, 3, 4, 3, 4]  # a better on all 8 crops
    flat = paired_test(a, b, lower_better=False)
    assert flat["df"] == 7 and flat["p_value"] < 0.001
    clustered = paired_test(a, b, lower_better=False, clusters=["p", "p", "p", "p", "q", "q", "q", "q"])
    assert (clustered["n"], clustered["n_scenes"], clustered["wins_a"], clustered["df"]) == (8, 2, 8, 1)
    # two scene means 1.5 and 3.5: t = 2.5 on 1 df (Cauchy): p = 1 - 2 atan(2.5) / pi
    assert clustered["p_value"] == pytest.approx(1 - 2 * math.atan(2.5) / math.pi)
    assert clustered["effect"] == 1.0 and clustered["mean_diff"] == 2.5
    assert (clustered["diff_low"], clustered["diff_high"]) == (1.5, 3.5)
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
    rows = [(s, f"i{k}", m, v + k * 0.1 + (k * k % 5) * 0.05 * (s == "b"), False) for k in range(6)
            for m in ("psnr", "ssim") for s, v in (("a", 1.0), ("b", 0.5), ("c", 0.0))]
    table = paired_comparison(_scores(rows))
    assert len(table) == 6 and (table["p_holm"] >= table["p_value"]).all()
    for _, family in table.groupby(["metric", "family"]):  # each metric is its own family of 3 tests
        assert list(family["p_holm"]) == pytest.approx(list(holm(family["p_value"])))
    psnr = table[table["metric"] == "psnr"]
    first = psnr["p_value"].idxmin()
    assert psnr.loc[first, "p_holm"] == pytest.approx(min(1.0, 3 * psnr.loc[first, "p_value"]))


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
    assert (tie["status"], tie["best"], tie["leader"]) == (NOT_SEPARATED, "", "a")
    assert tie["seed_sd"] == pytest.approx(1.0) and "between-seed spread" in tie["reason"]
    single = _decide([r for r in rows if r[0] == "a"])
    assert single["status"] == "single" and single["best"] == ""


def test_a_flagged_system_changes_no_p_holm_among_healthy_ones() -> None:
    """The sleep data as two healthy systems, a third healthy one, and a flagged near-identity system: the
    healthy systems' tests are one family; the flagged one's and the input's are another."""
    rows = [(s, f"i{k}", "psnr", v, False) for s, vals in (("a", SLEEP_2), ("b", SLEEP_1),
                                                           ("c", [v - 0.4 for v in SLEEP_1[::-1]]))
            for k, v in enumerate(vals)]
    rows += [("input", f"i{k}", "psnr", v - 2.0, False) for k, v in enumerate(SLEEP_1)]
    before = paired_comparison(_scores(rows))
    init = [("init", f"i{k}", "psnr", v - 1.99, False) for k, v in enumerate(SLEEP_1)]  # flagged: no effect
    after = paired_comparison(_scores(rows + init), flagged={("d", "init"): True})
    key = ["system_a", "system_b"]
    healthy = before[before["family"] == "primary"].set_index(key)["p_holm"]
    assert len(healthy) == 3 and healthy.loc[("a", "b")] == pytest.approx(3 * 0.002833, abs=1e-5)
    assert after[after["family"] == "primary"].set_index(key)["p_holm"].equals(healthy)
    assert set(after[after["family"] == "secondary"]["system_a"] + "/" + after[after["family"] == "secondary"][
        "system_b"]) == {"a/init", "a/input", "b/init", "b/input", "c/init", "c/input", "init/input"}
    pooled = holm(after["p_value"])  # one family for all 10 tests, as before: a vs b would move
    a_vs_b = next(iter(after.index[(after["system_a"] == "a") & (after["system_b"] == "b")]))
    assert pooled[a_vs_b] > healthy.loc[("a", "b")]
    fam = families(after).set_index("family")
    assert fam.loc["primary", "systems"] == "a b c" and fam.loc["primary", "n_tests"] == 3
    assert fam.loc["secondary", "n_tests"] == 7 and fam.loc["primary", "n_scenes"] == 10


def test_what_a_family_can_show() -> None:
    assert MIN_SCENES == 6  # the fewest scenes at which an exact sign-flip test can reject at 5%: 2 / 2**6 < 0.05
    one = attainable(1, 3)  # one scene: no t-test at all
    assert (one["min_p_holm"], one["separable"]) == (1.0, False) and math.isnan(one["d_crit"])
    two = attainable(2, 1)  # t(1 df, 0.975) = 12.706: the mean difference must be 12.7 / sqrt(2) sd; never best
    assert (two["min_p_holm"], two["separable"]) == (1.0, False) and two["d_crit"] == pytest.approx(12.706 / 2**0.5,
                                                                                                     rel=1e-4)
    assert not attainable(5, 1)["separable"] and attainable(6, 1)["separable"]
    assert attainable(6, 1)["min_p_holm"] == 0.0  # the t-test has no floor
    # t(5 df, 0.975) / sqrt(6) = 2.571 / 2.449 > 1 >= t(6 df, 0.975) / sqrt(7) = 2.447 / 2.646
    assert scenes_for(1.0, 1) == 7 == attainable(6, 1)["scenes_for_d1"]
    # 7 scenes, 45 tests: p < 0.05 / 45 needs t(6 df) > 5.84, i.e. a lead of 2.2 sd of its per-scene differences
    assert attainable(7, 45)["d_crit"] == pytest.approx(5.84 / 7**0.5, rel=2e-3)
    assert scenes_for(1.0, 45) > scenes_for(1.0, 21) > scenes_for(1.0, 1)


def test_too_few_scenes_are_never_separated() -> None:
    """Two photos of 4 crops each, a lead that is the same on both: the t-test's p is 0, yet not best."""
    rows = [(s, f"{scene}-{k}", "psnr", 20.0 + k + gain, False) for scene in ("p", "q") for k in range(4)
            for s, gain in (("a", 1.0), ("b", 0.0))]
    scores = _scores(rows)
    scenes = {"d": {f"{scene}-{k}": scene for scene in ("p", "q") for k in range(4)}}
    paired = paired_comparison(scores, scenes=scenes)
    assert paired["p_value"].iloc[0] == 0.0 and paired["n_scenes"].iloc[0] == 2
    decision = best_systems(aggregate(scores, scenes=scenes, n_boot=100), paired).iloc[0]
    assert (decision["status"], decision["best"], decision["leader"]) == (NOT_SEPARATED, "", "a")
    assert decision["reason"] == "lead 1 [1, 1]; 2 scenes cannot separate systems (at least 6 needed)"


@pytest.mark.reference
def test_adding_flagged_clip_lit_init_leaves_clip_lit_vs_rave_alone(tmp_path: Path, reference_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's example with real numbers: the released CLIP-LIT and RAVE (unpaired) models on 12 real SICE
    pairs, then the near-identity clip-lit-init beside them (flagged no-effect): the p_holm of clip-lit vs RAVE
    is the same with and without it; one family for every test, as before, would have moved it."""
    from click.testing import CliRunner
    from test_health import _pairs

    from benchmark import metrics as M
    from benchmark.cli import cli
    from benchmark.report.results_loader import load_results

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(M, "_LOADED", {})
    data = _pairs(reference_dir / "sice-pairs", tmp_path / "sice12", n=12, size=96)
    results = tmp_path / "results"
    run = CliRunner().invoke(cli, [
        "compare", "--methods", "clip-lit,rave-unpaired,clip-lit-init", "--weights", "released", "--dataset", str(data),
        "--results", str(results), "--metrics", "psnr,ssim,brisque", "--no-timing", "--metric-weights",
        str(reference_dir / "metric-weights"), "--bootstrap", "200"])
    assert run.exit_code == 0, run.output
    res = load_results(results, n_boot=200, perf_dir=None)
    flagged = {k: bool(v) for k, v in res.health.items()}
    assert [k[1] for k, v in flagged.items() if v] == ["released-clip-lit-init"]  # no-effect
    without = paired_comparison(res.scores[res.scores["system"] != "released-clip-lit-init"], scenes=res.scenes,
                                flagged=flagged, n_boot=200)

    def clip_lit_vs_rave(table: pd.DataFrame) -> pd.Series:
        rows = table[(table["system_a"] == "released-clip-lit") & (table["system_b"] == "released-rave-unpaired")]
        return rows.set_index("metric")["p_holm"].sort_index()

    assert len(clip_lit_vs_rave(res.paired)) == 3 and (res.paired["n_scenes"] == 12).all()
    assert clip_lit_vs_rave(res.paired).equals(clip_lit_vs_rave(without))  # the flagged system changes nothing
    assert (res.paired[res.paired["family"] == "primary"]["p_holm"] == res.paired[
        res.paired["family"] == "primary"]["p_value"]).all()  # one healthy pair per metric: a family of one
    pooled = res.paired.assign(p_holm=holm(res.paired["p_value"]))  # the old design: one family of 18 tests
    assert (clip_lit_vs_rave(pooled) > clip_lit_vs_rave(res.paired)).any()


def test_operators_are_compared_in_the_secondary_family_only() -> None:
    """The primary family (behind "best") holds trained/released systems; an operator added to the run changes
    none of their p_holm, and is never called best."""
    import numpy as np

    from benchmark.stats import PRIMARY, SECONDARY, aggregate, best_systems, paired_comparison

    rng = np.random.default_rng(0)
    rows = []
    for system, source, shift in (("rave-unpaired", "trained", 1.0), ("released-clip-lit", "released", 0.0),
                                  ("clahe", "training-free", 3.0)):
        for scene in range(8):
            rows.append({"dataset": "d", "system": system, "method": system, "source": source, "regime": "",
                         "seed": "", "image": f"s{scene}", "metric": "psnr", "protocol": "", "lower_better": False,
                         "value": 15 + scene * 0.5 + shift + rng.normal(0, 0.1)})
    scores = pd.DataFrame(rows)
    without = paired_comparison(scores[scores["system"] != "clahe"])
    with_op = paired_comparison(scores)
    key = ("rave-unpaired", "released-clip-lit")
    p_without = without.set_index(["system_a", "system_b"]).loc[key[::-1] if key[::-1] in
                                                                set(zip(without.system_a, without.system_b)) else key]
    both = with_op.set_index(["system_a", "system_b"])
    p_with = both.loc[key[::-1] if key[::-1] in both.index else key]
    assert p_with["family"] == PRIMARY and p_with["p_holm"] == p_without["p_holm"]
    assert set(with_op[with_op["system_a"].eq("clahe") | with_op["system_b"].eq("clahe")]["family"]) == {SECONDARY}
    best = best_systems(aggregate(scores), with_op)
    assert list(best["best"]) == ["rave-unpaired"]  # clahe's mean is higher, but it is a baseline
