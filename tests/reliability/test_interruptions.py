"""Interruptions: ``bench train``, ``bench enhance`` and ``bench evaluate`` processes killed with
SIGKILL midway resume without redoing finished work, without half-written files, and (training)
to weights bit-identical to an uninterrupted run. Each process pauses at a known point (after an
iteration, image or score file; ``rel_helpers.pause_after``) and is killed there, so where the kill
lands does not depend on the machine's speed."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rel_helpers import (
    FAST_ENCODER,
    TINY,
    bench_subprocess,
    kill_at_marker,
    pause_after,
    run_bench,
    scene,
    temporaries,
    write_image,
)

from backlit_core.image_io import load_image
from benchmark import metrics as M
from benchmark.batch_enhance import enhance_folder
from benchmark.evaluate import evaluate_system
from benchmark.results import read_scores
from methods.train_api import train_method

TOTAL = 16  # iterations; checkpoints every 4
KILL_AT = 8  # killed after logging iteration 8, before its checkpoint is written: the run resumes from 4


def _rows(run: Path) -> list[list[str]]:
    """train_log.csv rows without the timing columns."""
    with open(run / "train_log.csv", newline="") as f:
        return [[r[c] for c in ("iter", "phase", "round", "loss", "guidance", "identity", "psnr")]
                for r in csv.DictReader(f)]


def test_training_sigkilled_midway_resumes_from_its_checkpoint_bit_identical(
        train_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        iterations_run: dict[str, int]) -> None:
    train_method("rave", train_data["backlit"], train_data["welllit"], tmp_path / "straight", encoder=FAST_ENCODER,
                 iters=TOTAL, overrides=TINY, seed=2, progress=False)
    run = tmp_path / "killed"
    args = ["train", "-m", "rave", "--backlit", str(train_data["backlit"]), "--welllit", str(train_data["welllit"]),
            "--encoder", FAST_ENCODER, "--iters", str(TOTAL), "--seed", "2", "--out", str(run), "-q"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    marker = tmp_path / "paused"
    setup = pause_after("methods.run_files:Session.record", f"args[1]['iter'] == {KILL_AT}", marker)
    kill_at_marker(bench_subprocess(args, tmp_path, setup), marker)
    assert not (run / "enhancer.pth").exists()  # killed mid-run
    assert [r[0] for r in _rows(run)] == [str(i) for i in range(1, KILL_AT + 1)]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["state"]["iteration"] == 4

    iterations_run["n"] = 0
    code, err = run_bench([*args, "--resume"], monkeypatch, capsys)  # the real entry point, in this process
    assert code == 0, err
    assert iterations_run["n"] == TOTAL - 4  # resumed from the checkpoint: iterations 1-4 were not redone
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

    marker = tmp_path / "paused"
    setup = pause_after("benchmark.batch_enhance:write_json",
                        "args[0].name == 'summary.json' and len(args[1].get('done', ())) == 3", marker)
    proc = bench_subprocess(["enhance", "-w", str(checkpoint), "-i", str(photos), "-o", str(out), "--device", "cpu"],
                            tmp_path, setup)
    kill_at_marker(proc, marker)  # paused right after recording its third image
    finished = done()
    assert len(finished) == 3
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
    marker = tmp_path / "paused"
    setup = "import benchmark.evaluate as E; E.CHECKPOINT_S = 0\n" + pause_after(
        "benchmark.evaluate:write_json", "len(args[1].get('fingerprints', {})) == 3", marker)
    kill_at_marker(bench_subprocess(args, tmp_path, setup), marker)  # paused right after saving 3 images' scores
    meta = progress()
    kept = set(meta["fingerprints"])
    assert meta["complete"] is False and len(kept) == 3
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
