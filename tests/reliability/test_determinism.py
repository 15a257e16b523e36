"""Determinism on CPU: the same seed gives bit-identical enhancer weights and identical metric
tables; the seeds are recorded in the run files, the provenance and the report."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from rel_helpers import FAST_ENCODER, TINY, scene, write_image

from benchmark.evaluate import evaluate_system, read_scores
from methods.train_api import train_method


@pytest.fixture(scope="module")
def runs(train_data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two runs with seed 5 and one with seed 6 (tiny RAVE, 12 iterations)."""
    root = tmp_path_factory.mktemp("runs")
    kw = {"encoder": FAST_ENCODER, "iters": 12, "overrides": TINY, "progress": False}
    for name, seed in (("a", 5), ("b", 5), ("other", 6)):
        train_method("rave", train_data["backlit"], train_data["welllit"], root / name, seed=seed, **kw)
    return {name: root / name for name in ("a", "b", "other")}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "enhancer.pth", weights_only=True)


def test_same_seed_gives_bit_identical_weights(runs: dict[str, Path]) -> None:
    a, b, other = (_weights(runs[n]) for n in ("a", "b", "other"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], other[k]) for k in a)  # the seed matters
    for name in ("train_log.csv", "train_summary.json", "enhancer.pth", "checkpoint.pt"):  # the model files: byte-identical
        assert (runs["a"] / name).read_bytes() == (runs["b"] / name).read_bytes(), name


def test_same_inputs_give_identical_metric_tables(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    for k in range(3):
        write_image(data / "input" / f"{k}.png", scene(k) * 0.3)
        write_image(data / "gt" / f"{k}.png", scene(k))
    tables = []
    for n in range(2):
        out = tmp_path / f"run{n}" / "ds.csv"
        evaluate_system("input", "ds", data / "input", dataset_dir=data, out_csv=out, metrics=["psnr", "ssim", "piqe"],
                        device="cpu", progress=False)
        tables.append(out)
    assert tables[0].read_bytes() == tables[1].read_bytes()
    pd.testing.assert_frame_equal(read_scores(tables[0]), read_scores(tables[1]))
    again = evaluate_system("input", "ds", data / "input", dataset_dir=data, out_csv=tables[0],
                            metrics=["psnr", "ssim", "piqe"], device="cpu", force=True, progress=False)
    assert tables[0].read_bytes() == tables[1].read_bytes() and len(again.scores) == 3 * (3 + 2)  # rescored, same bytes
    # (3 images x 3 metrics and 2 health diagnostics: output sd and clipped share)


def test_seeds_are_recorded_in_run_files_provenance_and_report(runs: dict[str, Path], tmp_path: Path) -> None:
    from benchmark.report import build_report

    for name, seed in (("a", 5), ("other", 6)):
        assert json.loads((runs[name] / "train_summary.json").read_text())["seed"] == seed
        prov = json.loads((runs[name] / "provenance.json").read_text())
        assert prov["seed"] == seed and prov["training"]["seed"] == seed
        assert str(runs[name] / "enhancer.pth") in prov["weights"]  # with its sha256
    results = tmp_path / "results"
    shutil.copytree(runs["a"], results / "train" / "rave-unpaired")
    shutil.copytree(runs["other"], results / "train" / "rave-paired")
    md = build_report(results, {"seed": 11}, n_boot=20, n_images=0, perf_dir=tmp_path / "none")["md"].read_text()
    assert "| bootstrap seed | 11 |" in md
    assert "| run rave-unpaired | status done, seed 5," in md and "| run rave-paired | status done, seed 6," in md
