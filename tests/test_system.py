"""System ids: parse/name round trip for every kind; the results folder's paths (benchmark/results.py), and
the provenance writer's seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from backlit_core.provenance import write_provenance
from benchmark.results import (
    ResultsFolder,
    folder_seed,
    machine_dependent_outputs,
    run_timing_files,
    system_folder,
    system_of_output,
)
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
    folder = ResultsFolder()
    run = System.trained("rave", "unpaired", 2)
    assert system_folder(run) == Path("rave-unpaired/seed-2") and folder_seed(system_folder(run)) == 2
    assert folder.enhanced_dir(run, "baid") == Path("results/enhanced/rave-unpaired/seed-2/baid")
    assert folder.scores_csv(run, "baid") == Path("results/scores/rave-unpaired/seed-2/baid.csv")
    assert folder.enhance_timing_file(run, "baid") == Path("results/timing/enhance/rave-unpaired/seed-2/baid.json")
    assert folder.train_dir(run) == Path("results/train/rave-unpaired/seed-2")
    assert folder.train_timing_dir(run) == Path("results/timing/train/rave-unpaired/seed-2")
    assert folder.train_provenance_file(run) == Path("results/provenance/train/rave-unpaired/seed-2.json")
    released = System.released("clip-lit")
    assert folder.enhanced_dir(released, "sice") == Path("results/enhanced/released-clip-lit/sice")
    assert folder.scores_csv(System.parse("input"), "sice") == Path("results/scores/input/sice.csv")
    assert folder_seed("seed-x") is None and folder_seed("rave-unpaired") is None


def test_layout_matches_the_pipeline_and_the_trainer() -> None:
    """The paths dvc.yaml declares and the file names the training loops write are the results folder's."""
    import yaml

    from benchmark import results
    from methods import run_files

    assert (results.CHECKPOINT, results.ENHANCER, results.TRAIN_LOG, results.TRAIN_SUMMARY, results.RUN_PROVENANCE,
            results.TRAIN_TIMING, results.TRAIN_STEPS) == (run_files.CHECKPOINT, run_files.ENHANCER, run_files.LOG,
                                                           run_files.SUMMARY, run_files.PROVENANCE, run_files.TIMING,
                                                           run_files.STEPS)
    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]
    folder, run = ResultsFolder(), System.trained("${item.method}", "${item.regime}", 0)

    def seeded(path: Path) -> str:  # as dvc.yaml writes it: the matrix's seed
        return path.as_posix().replace("seed-0", "seed-${item.seed}")

    train = [next(iter(o)) if isinstance(o, dict) else o
             for o in stages["train"]["outs"] + stages["train"].get("metrics", [])]
    assert seeded(folder.train_dir(run)) in train and seeded(folder.train_provenance_file(run)) in train
    timing, steps = run_timing_files(folder.train_dir(run))
    assert {seeded(timing), seeded(steps)} <= set(train)
    enhance = [next(iter(o)) for o in stages["enhance"]["outs"]]
    assert seeded(folder.enhanced_dir(run, "${item.dataset}")) in enhance
    assert seeded(folder.enhance_timing_file(run, "${item.dataset}")) in enhance
    assert seeded(folder.scores_csv(run, "${item.dataset}")) in stages["evaluate"]["outs"]
    assert next(iter(stages["time-inference"]["outs"][0])) == folder.inference_timing_file.as_posix()
    assert system_of_output(folder.train_dir(run)) == "${item.method}-${item.regime}"
    assert system_of_output(folder.inference_timing_file) is None
    assert "results/timing" in machine_dependent_outputs() and "results/scores.csv" in machine_dependent_outputs()


def test_store_trained_systems_and_skip(tmp_path: Path) -> None:
    store = ResultsFolder(tmp_path)
    for k in (1, 0):
        (tmp_path / "train" / "rave-unpaired" / f"seed-{k}").mkdir(parents=True)
    (tmp_path / "train" / "clip-lit-paired").mkdir()
    assert store.trained_systems("rave-unpaired") == [System.trained("rave", "unpaired", k) for k in (0, 1)]
    assert store.trained_systems("clip-lit-paired") == [System.trained("clip-lit", "paired")]
    run = System.trained("rave", "unpaired", 0)
    summary = store.mark_enhance_skipped(run, "baid", "no weights")
    assert summary["skipped"] == "no weights"
    assert json.loads(store.enhance_timing_file(run, "baid").read_text()) == {"skipped": "no weights"}


def test_provenance_seeds_mean_one_thing(tmp_path: Path) -> None:
    run = ResultsFolder(tmp_path).write_provenance(seeds=[0, 1], bootstrap_seed=7, profile="smoke")
    assert (run["role"], run["seeds"], run["bootstrap_seed"], run["profile"]) == ("run", [0, 1], 7, "smoke")
    assert "seed" not in run and json.loads((tmp_path / "provenance.json").read_text())["seeds"] == [0, 1]
    train = write_provenance(tmp_path / "t.json", role="training", seed=3, training={"method": "rave"})
    assert train["seed"] == 3 and "seeds" not in train and "bootstrap_seed" not in train
    with pytest.raises(ValueError):
        write_provenance(tmp_path / "x.json", role="training", seeds=[1])
    with pytest.raises(ValueError):
        write_provenance(tmp_path / "x.json", role="run", seed=1)


def test_compare_resolves_operators_and_every_trained_method(tmp_path: Path) -> None:
    from benchmark.compare import resolve_systems

    (tmp_path / "train" / "zero-dce-unpaired" / "seed-0").mkdir(parents=True)
    systems, untrained = resolve_systems("clahe,zero-dce,rave", "trained", ResultsFolder(tmp_path))
    assert systems == [System.parse("clahe"), System.trained("zero-dce", "unpaired", 0)] and untrained == ["rave"]
    released, _ = resolve_systems("rave,latent-prompt", "released", ResultsFolder(tmp_path))  # the papers' names
    assert [s.name for s in released] == ["released-rave-unpaired", "released-latent-prompt-unpaired"]
