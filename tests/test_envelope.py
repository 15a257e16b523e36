"""The reproduction envelope (benchmark/envelope.py): its spread, margin and the level of a rerun."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.envelope import EXACT, OUTSIDE, WITHIN, envelope_of, envelope_table, level, worst


def _scores(values: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    rows = [{"dataset": "d", "system": s, "metric": "psnr", "seed": k, "image": f"i{j}", "value": v}
            for (s, k), vals in values.items() for j, v in enumerate(vals)]
    return pd.DataFrame(rows)


def test_numerics_spread_is_the_rms_of_same_seed_differences() -> None:
    env = envelope_of("psnr", {0: 20.0, 1: 20.2, 2: 19.8}, {0: 20.3, 1: 19.8, 2: 19.8})
    assert env.n_seeds == 3
    assert env.mean == pytest.approx(20.0)
    assert env.seed_sd == pytest.approx(0.2)
    assert env.numerics_sd == pytest.approx(math.sqrt((0.09 + 0.16 + 0.0) / 3))  # 0.2887
    # spread = max(numerics 0.2887, sqrt(2) * seed sd 0.2828); t(0.975, 2) = 4.3027
    assert env.spread == pytest.approx(0.288675, abs=1e-5)
    assert env.margin == pytest.approx(4.302653 * 0.288675 / math.sqrt(3), abs=1e-5)  # 0.7171 dB


def test_seed_spread_bounds_the_envelope_when_numerics_agree() -> None:
    env = envelope_of("psnr", {0: 20.0, 1: 21.0}, {0: 20.0, 1: 21.0})
    assert env.numerics_sd == 0.0
    assert env.spread == pytest.approx(math.sqrt(2) * math.sqrt(0.5))  # sqrt(2) * seed sd = 1.0
    assert env.margin == pytest.approx(12.7062 * 1.0 / math.sqrt(2), abs=1e-3)  # t(0.975, 1) = 12.706


def test_margin_never_falls_below_the_metric_resolution() -> None:
    env = envelope_of("psnr", {0: 20.0, 1: 20.0, 2: 20.0}, {0: 20.0, 1: 20.0, 2: 20.0})
    assert env.margin == 0.01
    assert envelope_of("niqe", {0: 4.0}, {}).margin == pytest.approx(0.004)  # 0.1 % of the value
    assert math.isnan(envelope_of("niqe", {0: 4.0}, {}).numerics_sd)


def test_table_pairs_seeds_and_levels_order() -> None:
    committed = _scores({("rave", 0): [20.0, 22.0], ("rave", 1): [21.0, 21.0], ("rave", 2): [20.0, 20.0]})
    perturbed = _scores({("rave", 0): [20.5, 22.5], ("rave", 1): [21.0, 21.0]})  # seed 2 not perturbed
    table = envelope_table(committed, perturbed)
    row = table.iloc[0]
    assert (row["dataset"], row["system"], row["metric"], row["n_seeds"]) == ("d", "rave", "psnr", 3)
    assert row["numerics_sd"] == pytest.approx(math.sqrt(0.25 / 2))
    assert level(21.0, 21.0 + row["margin"] * 0.99, row["margin"]) == WITHIN
    assert level(21.0, 21.0 + row["margin"] * 1.01, row["margin"]) == OUTSIDE
    assert level(21.0, 30.0, row["margin"], exact=True) == EXACT
    assert level(math.nan, math.nan, 0.1) == WITHIN
    assert worst([EXACT, WITHIN]) == WITHIN and worst([EXACT, OUTSIDE, WITHIN]) == OUTSIDE and worst([]) == EXACT


def test_document_and_judge_seeded_and_deterministic_systems() -> None:
    from benchmark.envelope import envelope_document, judge

    committed = pd.concat([_scores({("rave", 0): [20.0, 22.0], ("rave", 1): [21.0, 21.0], ("rave", 2): [20.0, 20.0]}),
                           _scores({("gamma", -1): [10.0, 12.0]}).assign(seed="")])
    perturbed = _scores({("rave", 0): [20.5, 22.5], ("rave", 1): [21.0, 21.0], ("rave", 2): [20.0, 20.4]})
    doc = envelope_document(committed, perturbed, perturbation={"threads": 1})
    by_system = {e["system"]: e for e in doc["entries"]}
    rave, gamma = by_system["rave"], by_system["gamma"]
    assert rave["seeds"] == {"0": 21.0, "1": 21.0, "2": 20.0} and rave["n_seeds"] == 3
    assert rave["numerics_sd"] == pytest.approx(math.sqrt((0.25 + 0 + 0.04) / 3))
    assert gamma == {"dataset": "d", "system": "gamma", "metric": "psnr", "seeds": {}, "n_seeds": 0, "mean": 11.0,
                     "margin": 0.05}
    assert judge(rave, {0: 21.0, 1: 21.0, 2: 20.0})[0] == EXACT
    assert rave["margin"] == pytest.approx(4.302653 * math.sqrt(2) * math.sqrt(1 / 3) / math.sqrt(3), abs=1e-5)  # 2.03
    assert judge(rave, {0: 22.9, 1: 22.9, 2: 22.0})[0] == WITHIN  # +1.93 dB
    assert judge(rave, {0: 23.2, 1: 23.0, 2: 22.0})[0] == OUTSIDE  # +2.07 dB
    assert judge(rave, {0: 21.0, 1: 21.0}) == (OUTSIDE, "no rerun value for seed 2")
    assert judge(gamma, {-1: 11.04})[0] == WITHIN and judge(gamma, {-1: 11.06})[0] == OUTSIDE
    assert judge(gamma, {-1: 11.0}) == (EXACT, "11")
