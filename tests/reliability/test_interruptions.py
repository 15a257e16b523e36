"""Interruptions: ``bench train``, ``bench enhance`` and ``bench evaluate`` processes killed with
SIGKILL midway resume without redoing finished work, without half-written files, and (training)
to weights bit-identical to an uninterrupted run."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rel_helpers import (
    FAST_ENCODER,
    TINY,
    bench_subprocess,
    finish,
    kill_when,
    scene,
    temporaries,
    write_image,
)

from backlit_core.image_io import load_image
from benchmark import metrics as M
from benchmark.enhance import enhance_folder
from benchmark.evaluate import evaluate_system, read_scores
from methods.train_api import train_method

TOTAL = 16  # iterations; checkpoints every 4


def _rows(run: Path) -> list[list[str]]:
    """train_log.csv rows without the timing columns."""
    with open(run / "train_log.csv", newline="") as f:
        return [[r[c] for c in ("iter", "phase", "round", "loss", "guidance", "identity", "psnr")]
                for r in csv.DictReader(f)]


def test_training_sigkilled_at_a_random_iteration_resumes_bit_identical(train_data: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    kill_at = random.Random(2024).randint(5, 9)  # seeded: a checkpoint (iteration 4 or 8) exists by then
    train_method("rave", train_data["backlit"], train_data["welllit"], tmp_path / "straight", encoder=FAST_ENCODER,
                 iters=TOTAL, overrides=TINY, seed=2, progress=False)
    run = tmp_path / "killed"
    args = ["train", "-m", "rave", "--backlit", str(train_data["backlit"]), "--welllit", str(train_data["welllit"]),
            "--encoder", FAST_ENCODER, "--iters", str(TOTAL), "--seed", "2", "--out", str(run), "-q"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]

    def logged() -> int:
        try:
            return len((run / "train_log.csv").read_text().splitlines()) - 1
        except FileNotFoundError:
            return 0

    kill_when(bench_subprocess(args, tmp_path), lambda: logged() >= kill_at)
    assert not (run / "enhancer.pth").exists()  # killed mid-run
    state = torch.load(run / "checkpoint.pt", weights_only=True)["state"]
    assert state["iteration"] in (4, 8, 12) and state["iteration"] <= logged() < TOTAL

    finish(bench_subprocess([*args, "--resume"], tmp_path))
    straight, resumed = (torch.load(tmp_path / d / "enhancer.pth", weights_only=True) for d in ("straight", "killed"))
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), "resumed weights differ"
    assert _rows(run) == _rows(tmp_path / "straight")  # the rows after the checkpoint were rewritten
    assert json.loads((run / "train_summary.json").read_text())["iterations"]["total"] == TOTAL
    assert temporaries(run) == []


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for k in range(14):
        write_image(folder / f"{k:02d}.png", scene(k, 192, 256) * 0.4)
    return folder


def test_enhance_sigkilled_midway_resumes_without_redoing(photos: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"

    def done() -> list[str]:
        try:
            return json.loads((out / "summary.json").read_text())["done"]
        except (FileNotFoundError, ValueError):
            return []

    proc = bench_subprocess(["enhance", "-w", str(checkpoint), "-i", str(photos), "-o", str(out), "--device", "cpu"],
                            tmp_path)
    kill_when(proc, lambda: len(done()) >= 3)
    finished = done()
    assert 3 <= len(finished) < 14
    visible = sorted(p.name for p in out.glob("*.png"))
    assert set(finished) <= set(visible)
    for name in visible:  # every visible output is whole: written to a temporary name, then renamed
        assert load_image(out / name).shape == (3, 192, 256)
    mtimes = {name: (out / name).stat().st_mtime_ns for name in finished}

    summary = enhance_folder(str(checkpoint), photos, out, device="cpu", progress=False)
    assert sorted(summary["done"]) == [f"{k:02d}.png" for k in range(14)] and not summary["failed"]
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == mtimes  # not redone
    assert set(summary["timing"]["seconds_per_image"]) == set(summary["done"]) - set(finished)
    assert temporaries(out) == []


def test_evaluate_sigkilled_midway_resumes_without_rescoring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "toy"
    n, metrics = 48, ["psnr", "ssim", "piqe"]
    for k in range(n):
        write_image(data / "input" / f"{k:03d}.png", scene(k, 160, 160) * 0.3)
        write_image(data / "gt" / f"{k:03d}.png", scene(k, 160, 160))
    results = tmp_path / "results"
    out = results / "scores" / "input" / "toy.csv"

    def progress() -> dict:
        try:
            return json.loads(out.with_suffix(".json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    args = ["evaluate", "-d", str(data), "-s", "input", "-e", str(data / "input"), "--metrics", ",".join(metrics),
            "--device", "cpu", "--results", str(results)]
    proc = bench_subprocess(args, tmp_path, setup="import benchmark.evaluate as E; E.CHECKPOINT_S = 0")
    kill_when(proc, lambda: len(progress().get("fingerprints", {})) >= 3)
    meta = progress()
    kept = set(meta["fingerprints"])
    assert meta["complete"] is False and 3 <= len(kept) < n
    partial = read_scores(out)  # a whole CSV, consistent with its sidecar
    assert set(partial["image"]) == kept and len(partial) == len(kept) * (len(metrics) + 2)  # + 2 diagnostics

    calls = {"n": 0}
    real = M.Metric.score

    def counted(self: M.Metric, pair: M.Pair) -> float:
        calls["n"] += 1
        return real(self, pair)

    monkeypatch.setattr(M.Metric, "score", counted)
    monkeypatch.setattr(M, "_LOADED", {})
    evaluate_system("input", "toy", data / "input", dataset_dir=data, out_csv=out, metrics=metrics, device="cpu",
                    progress=False)
    assert calls["n"] == (n - len(kept)) * len(metrics)  # only the unfinished images were scored
    final = json.loads(out.with_suffix(".json").read_text())
    assert final["complete"] is True and len(final["fingerprints"]) == n and not final["failed"]
    assert temporaries(results) == []

    fresh = tmp_path / "fresh.csv"  # the resumed table equals an uninterrupted one
    evaluate_system("input", "toy", data / "input", dataset_dir=data, out_csv=fresh, metrics=metrics, device="cpu",
                    progress=False)
    assert out.read_bytes() == fresh.read_bytes()
    pd.testing.assert_frame_equal(read_scores(out), read_scores(fresh))
    assert np.isfinite(read_scores(out)["value"]).all()
