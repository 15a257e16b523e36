"""System ids: parse/name round trip for every kind, result paths, and the provenance writer's seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backlit_core.provenance import write_provenance
from benchmark.results_store import ResultsStore
from benchmark.system import System


@pytest.mark.parametrize(("name", "seed", "expected"), [
    ("rave-unpaired", 3, System("rave", "trained", "unpaired", 3)),
    ("clip-lit-paired", None, System("clip-lit", "trained", "paired")),
    ("zero-dce-unpaired", 0, System("zero-dce", "trained", "unpaired", 0)),
    ("released-rave-unpaired", None, System("rave", "released", "unpaired", weights="rave-unpaired")),
    ("released-nonesuch", None, System("nonesuch", "released", "", weights="nonesuch")),
    ("clahe", None, System("clahe", "training-free", weights="clahe")),
    ("input", None, System("input", "input")),
    ("mine", None, System("mine", "external")),
])
def test_parse_name_round_trip(name: str, seed: int | None, expected: System) -> None:
    system = System.parse(name, seed)
    assert system == expected and system.name == name
    assert System.parse(system.name, system.seed) == system


def test_seed_only_for_trained() -> None:
    for name in ("released-rave-unpaired", "clahe", "input", "mine"):
        with pytest.raises(ValueError, match="training seed"):
            System.parse(name, 1)


def test_result_paths() -> None:
    root = Path("results")
    run = System.trained("rave", "unpaired", 2)
    assert run.results_sub == Path("rave-unpaired/seed-2")
    assert run.enhanced_dir(root, "baid") == Path("results/enhanced/rave-unpaired/seed-2/baid")
    assert run.scores_csv(root, "baid") == Path("results/scores/rave-unpaired/seed-2/baid.csv")
    assert run.enhance_timing_file(root, "baid") == Path("results/timing/enhance/rave-unpaired/seed-2/baid.json")
    assert run.train_dir(root) == Path("results/train/rave-unpaired/seed-2")
    assert run.train_timing_dir(root) == Path("results/timing/train/rave-unpaired/seed-2")
    assert run.train_provenance_file(root) == Path("results/provenance/train/rave-unpaired/seed-2.json")
    released = System.released("clip-lit")
    assert released.enhanced_dir(root, "sice") == Path("results/enhanced/released-clip-lit/sice")
    assert System.parse("input").scores_csv(root, "sice") == Path("results/scores/input/sice.csv")


def test_store_trained_systems_and_skip(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    for k in (1, 0):
        (tmp_path / "train" / "rave-unpaired" / f"seed-{k}").mkdir(parents=True)
    (tmp_path / "train" / "clip-lit-paired").mkdir()
    assert store.trained_systems("rave-unpaired") == [System.trained("rave", "unpaired", k) for k in (0, 1)]
    assert store.trained_systems("clip-lit-paired") == [System.trained("clip-lit", "paired")]
    run = System.trained("rave", "unpaired", 0)
    summary = store.mark_enhance_skipped(run, "baid", "no weights")
    assert summary["skipped"] == "no weights"
    assert json.loads(run.enhance_timing_file(tmp_path, "baid").read_text()) == {"skipped": "no weights"}


def test_provenance_seeds_mean_one_thing(tmp_path: Path) -> None:
    run = ResultsStore(tmp_path).write_provenance(seeds=[0, 1], bootstrap_seed=7, profile="smoke")
    assert (run["role"], run["seeds"], run["bootstrap_seed"], run["profile"]) == ("run", [0, 1], 7, "smoke")
    assert "seed" not in run and json.loads((tmp_path / "provenance.json").read_text())["seeds"] == [0, 1]
    train = write_provenance(tmp_path / "t.json", role="training", seed=3, training={"method": "rave"})
    assert train["seed"] == 3 and "seeds" not in train and "bootstrap_seed" not in train
    with pytest.raises(ValueError):
        write_provenance(tmp_path / "x.json", role="training", seeds=[1])
    with pytest.raises(ValueError):
        write_provenance(tmp_path / "x.json", role="run", seed=1)


def test_compare_resolves_operators_and_every_trained_method(tmp_path: Path) -> None:
    from benchmark.commands.evaluate import _resolve_systems

    (tmp_path / "train" / "zero-dce-unpaired" / "seed-0").mkdir(parents=True)
    systems, untrained = _resolve_systems("clahe,zero-dce,rave", "trained", ResultsStore(tmp_path))
    assert systems == [System.parse("clahe"), System.trained("zero-dce", "unpaired", 0)] and untrained == ["rave"]
    released, _ = _resolve_systems("rave,latent-prompt", "released", ResultsStore(tmp_path))  # the papers' names
    assert [s.name for s in released] == ["released-rave-unpaired", "released-latent-prompt-unpaired"]
