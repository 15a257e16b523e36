"""``bench compare`` / ``bench evaluate`` end to end on small inputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from benchmark import metrics as M
from benchmark.cli import cli
from benchmark.results import SCORE_COLUMNS, read_scores

RELEASED = ["clip-lit", "rave", "rave-paired", "latent-prompt"]  # names as the papers speak: rave = rave-unpaired
SYSTEMS = ["released-clip-lit", "released-rave-unpaired", "released-rave-paired", "released-latent-prompt-unpaired"]


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty torch hub cache, so weight-hungry metrics (musiq, lpips) are unavailable."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(M, "_LOADED", {})


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def _dataset(root: Path, n: int = 3, gt: bool = True, size: int = 96) -> Path:
    rng = np.random.default_rng(0)
    for k in range(n):
        scene = rng.integers(0, 256, (size, size, 3))
        _write(root / "low" / f"{k:04d}.png", scene * 0.3)
        if gt:
            _write(root / "high" / f"{k:04d}.png", scene)
    return root


def test_compare_released_on_sice_pairs(tmp_path: Path, reference_dir: Path, offline_cache: None) -> None:
    results = tmp_path / "results"
    args = ["compare", "--methods", ",".join(RELEASED), "--weights", "released", "--dataset",
            str(reference_dir / "sice-pairs"), "--limit", "2", "--results", str(results), "--metrics",
            "psnr,ssim,niqe,brisque,musiq", "--timing-mp", "0.02", "--repeats", "1",
            "--metric-weights", str(reference_dir / "metric-weights")]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    for header in ("psnr ↑", "ssim ↑", "niqe ↓", "brisque ↓", "ms/MP"):
        assert header in run.output
    table = run.stdout.split("sice-pairs (2 images from 2 scenes)")[1]
    assert max(len(line) for line in table.splitlines()) <= 120  # wrapped into blocks of columns
    for name in ["input", *SYSTEMS]:
        parts = [line for line in table.splitlines() if line.startswith(name + " ")]  # its line in each block
        row = "  ".join(parts)
        assert row.count("±") == 4 and " n/a " in row and " 2/2 " in f"{row} "  # musiq unavailable; scored/given
        if name != "input":
            assert float(parts[-1].split()[-1]) > 0  # ms/MP (the train s column is empty: not shown)
            assert "released (" in row and ("ok" in row.split() or "no-effect:" in row)  # origin and health
    assert "n/a musiq: weights not available offline" in run.output

    scores = read_scores(results / "scores.csv")
    assert set(SCORE_COLUMNS) <= set(scores.columns) and "seed" in scores.columns
    diag = scores["metric"].isin(["psnr_vs_input", "output_std", "output_clipped"])
    assert (~diag).sum() == 5 * 2 * 4 and diag.sum() == 4 * 2 * 3 + 2 * 2  # the input has no psnr_vs_input
    assert set(scores[scores.metric == "niqe"]["lower_better"]) == {True}
    assert set(scores[scores.metric == "psnr"]["lower_better"]) == {False}
    assert "musiq" not in set(scores["metric"])  # unavailable: no rows, never zeros
    assert "musiq" in json.loads((results / "metrics.json").read_text())["unavailable_metrics"]
    timing = json.loads((results / "timing" / "released-rave-unpaired.json").read_text())
    assert timing["params"] == 278_790 and timing["flops_per_pixel"] == 2 * 277_632
    pngs = sorted((results / "enhanced" / "released-rave-unpaired" / "sice-pairs").glob("*.png"))
    assert len(pngs) == 2
    before = [p.stat().st_mtime_ns for p in pngs]

    again = CliRunner().invoke(cli, args + ["--format", "csv"])
    assert again.exit_code == 0, again.output
    assert [p.stat().st_mtime_ns for p in pngs] == before  # images already done are skipped
    csv_text = again.output[again.output.index("dataset,"):]
    assert {"mean", "ci_low", "ci_high", "ms_per_mp"} <= set(csv_text.splitlines()[0].split(","))


def test_compare_unknown_released_name_suggests(tmp_path: Path) -> None:
    run = CliRunner().invoke(cli, ["compare", "--methods", "rave-unpared", "--weights", "released",
                                   "--dataset", str(tmp_path), "--results", str(tmp_path / "r")])
    assert run.exit_code == 2 and "did you mean 'rave-unpaired'" in run.output


def test_evaluate_records_failures_and_unavailable(tmp_path: Path, offline_cache: None) -> None:
    data = _dataset(tmp_path / "toy")
    enhanced = tmp_path / "enh"
    for k in range(2):
        _write(enhanced / f"{k:04d}.png", np.asarray(Image.open(data / "high" / f"{k:04d}.png")) * 0.9)
    _write(enhanced / "0002.png", np.zeros((50, 96, 3)))  # wrong size
    results = tmp_path / "results"
    run = CliRunner().invoke(cli, ["evaluate", "--dataset", str(data), "--system", "mine", "--enhanced", str(enhanced),
                                   "--metrics", "psnr,ssim@rave-paper,musiq", "--results", str(results)])
    assert run.exit_code == 0, run.output
    scores = read_scores(results / "scores" / "mine" / "toy.csv")
    assert sorted(scores["image"].unique()) == ["0000", "0001"]
    meta = json.loads((results / "scores" / "mine" / "toy.json").read_text())
    assert meta["metrics"]["musiq"]["status"] == "unavailable" and "offline" in meta["metrics"]["musiq"]["reason"]
    errors = [f["error"] for f in meta["failed"] if f["image"] == "0002"]
    assert len(errors) == 2 and all("0002.png" in e and "size mismatch" in e for e in errors)
    assert str(data / "high" / "0002.png") in errors[0]


def test_evaluate_without_ground_truth_skips_fr(tmp_path: Path) -> None:
    from benchmark.evaluate import evaluate_system

    data = _dataset(tmp_path / "nogt", n=2, gt=False)
    res = evaluate_system("input", "nogt", data / "low", dataset_dir=data, metrics=["psnr", "piqe"],
                          out_csv=tmp_path / "s.csv", progress=False)
    assert res.metrics["psnr"]["status"] == "skipped" and "ground truth" in res.metrics["psnr"]["reason"]
    assert set(res.scores["metric"]) == {"piqe", "output_std", "output_clipped"} and len(res.scores) == 2 * 3
    assert "psnr_vs_input" not in set(res.scores["metric"])  # the input is not compared with itself


def test_compare_trained_reads_results(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "toy", n=2)
    results = tmp_path / "results"
    run_dir = results / "train" / "rave-unpaired"
    run_dir.mkdir(parents=True)
    (run_dir / "train_summary.json").write_text(json.dumps({"status": "done", "wall_s": 12.5, "iterations": {"total": 4}}))
    pd.DataFrame({"iter": [1, 2, 3, 4], "phase": ["enhancer"] * 4, "loss": [1.0, 0.8, 0.7, 0.6],
                  "step_s": [3.0, 3.0, 3.0, 3.5], "wall_s": [3.0, 6.0, 9.0, 12.5]}).to_csv(run_dir / "train_log.csv", index=False)
    for k in range(2):
        _write(results / "enhanced" / "rave-unpaired" / "toy" / f"{k:04d}.png",
               np.asarray(Image.open(data / "high" / f"{k:04d}.png")))
    run = CliRunner().invoke(cli, ["compare", "--methods", "rave,clip-lit", "--dataset", str(data), "--results",
                                   str(results), "--metrics", "psnr", "--no-timing", "--format", "markdown"])
    assert run.exit_code == 0, run.output
    assert "note: no training runs of clip-lit in" in run.output and "--weights released`" in run.output
    row = next(line for line in run.output.splitlines() if line.startswith("| rave-unpaired"))
    assert "**" not in row and "12.50" in row  # one healthy system: nothing to be best against; training seconds
    assert "trained here" in row


def test_evaluate_skipped_system_has_reason(tmp_path: Path) -> None:
    from benchmark.evaluate import evaluate_system

    data = _dataset(tmp_path / "toy", n=1)
    enhanced = tmp_path / "enh"
    enhanced.mkdir()
    (enhanced / "summary.json").write_text(json.dumps({"skipped": "clip-lit needs a text encoder", "done": []}))
    res = evaluate_system("clip-lit-unpaired", "toy", enhanced, dataset_dir=data, metrics=["psnr"],
                          out_csv=tmp_path / "s.csv", progress=False)
    assert res.skipped == "clip-lit needs a text encoder" and res.scores.empty
    assert json.loads((tmp_path / "s.json").read_text())["skipped"] == "clip-lit needs a text encoder"


def _sice_subset(reference_dir: Path, dest: Path, names: tuple[str, str] = ("Low", "Target"), n: int = 3) -> Path:
    """``n`` real SICE pairs under folder names the user chose; the last pair's ground truth resized to 480x400."""
    stems = sorted(p.name for p in (reference_dir / "sice-pairs" / "low").iterdir())[:n]
    for stem in stems:
        for src, name in zip(("low", "high"), names):
            (dest / name).mkdir(parents=True, exist_ok=True)
            (dest / name / stem).write_bytes((reference_dir / "sice-pairs" / src / stem).read_bytes())
    Image.open(dest / names[1] / stems[-1]).resize((480, 400)).save(dest / names[1] / stems[-1])
    return dest


def test_compare_prints_a_dropped_pair_and_counts_it(tmp_path: Path, reference_dir: Path) -> None:
    data = _sice_subset(reference_dir, tmp_path / "pairs")
    low, gt = max((data / "Low").iterdir()), max((data / "Target").iterdir())
    results = tmp_path / "results"
    args = ["compare", "--methods", "gamma", "--dataset", str(data), "--results", str(results), "--metrics",
            "psnr,ssim,piqe", "--no-timing"]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    dropped = [line for line in run.stderr.splitlines() if "size mismatch" in line]
    assert len(dropped) == 1  # once for the dataset, not again for every system
    assert f"{low} is 512x512 but its ground truth {gt} is 480x400" in dropped[0]
    assert dropped[0].startswith("pairs: pair dropped from the full-reference metrics:")
    table = run.stdout.split("pairs (3 images from 3 scenes)")[1]
    for name in ("input", "gamma"):
        row = "  ".join(line for line in table.splitlines() if line.startswith(name + " "))  # all blocks
        assert " 2/3 " in f"{row} "  # scored/given
    assert "scored/given: images scored by every metric / images given" in table
    assert max(len(line) for line in run.stdout.splitlines()) <= 120
    aggregates = pd.read_csv(results / "tables" / "aggregates.csv")
    counts = {(r.system, r.metric): (r.n, r.n_given) for r in aggregates.itertuples()}
    assert counts[("gamma", "psnr")] == (2, 3) and counts[("gamma", "piqe")] == (3, 3)
    headline = json.loads((results / "metrics.json").read_text())["pairs"]["gamma"]  # means; counts in tables/
    assert headline["ssim"] == pytest.approx(aggregates.set_index(["system", "metric"]).loc[("gamma", "ssim"), "mean"],
                                             rel=1e-3)
    as_json = CliRunner().invoke(cli, args + ["--format", "json"])
    rows = {r["metric"]: r for r in json.loads(as_json.stdout) if r["system"] == "gamma"}
    assert (rows["psnr"]["n"], rows["psnr"]["n_given"], rows["piqe"]["n"]) == (2, 3, 3)


def test_compare_without_training_runs_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKLIT_BENCH_DATA", str(tmp_path / "data"))  # the embedded set is prepared here
    results = tmp_path / "results"
    run = CliRunner().invoke(cli, ["compare", "--methods", "clip-lit,rave", "--results", str(results)])
    assert run.exit_code == 1
    error = [line for line in run.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1
    assert error[0].startswith(f"Error: no training runs of clip-lit, rave in {results / 'train'}: ")
    assert "`dvc repro --glob 'train@clip-lit-unpaired-*' 'train@rave-unpaired-*'`" in error[0]
    assert "min of training" in error[0]  # from the committed run's results/timing/train
    assert "`bench compare --methods clip-lit,rave --weights released`" in error[0]
    assert (tmp_path / "data" / "synthetic-backlit" / "test" / "input").is_dir()  # the default test set, prepared
    assert not results.exists()  # nothing half-made


def test_compare_and_evaluate_accept_every_layout(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    for k in range(2):
        _write(flat / f"{k}.png", np.full((32, 32, 3), 40 + 20 * k))
    run = CliRunner().invoke(cli, ["compare", "--methods", "gamma", "--dataset", str(flat), "--results",
                                   str(tmp_path / "r"), "--metrics", "piqe", "--no-timing"])
    assert run.exit_code == 0, run.output  # a flat folder: inputs only, no-reference metrics
    data = _dataset(tmp_path / "toy", n=2)
    (data / "high").rename(data / "TARGET")
    enhanced = tmp_path / "enh"
    _write(enhanced / "0000.png", np.asarray(Image.open(data / "TARGET" / "0000.png")))  # 0001 has no output
    ev = CliRunner().invoke(cli, ["evaluate", "--dataset", str(data), "--system", "mine", "--enhanced", str(enhanced),
                                  "--metrics", "psnr", "--results", str(tmp_path / "r")])
    assert ev.exit_code == 0, ev.output
    assert "mine/toy: 1 scored / 2 given" in ev.stdout
    assert f"mine/toy: dropped 0001 from all: {enhanced / '0001'}.png: no enhanced output" in ev.stderr
    assert json.loads((tmp_path / "r" / "scores" / "mine" / "toy.json").read_text())["images"] == 2
    for command in (["compare"], ["evaluate"], ["datasets", "verify"]):
        help_text = CliRunner().invoke(cli, [*command, "--help"]).output
        assert "Accepted folder layouts" in help_text and "target/" in help_text and "DIR/low/" in help_text
