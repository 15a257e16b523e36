"""Health checks (no-effect, degenerate, diverged, stale) and, on real held-out pairs, the verdict they lead to."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from benchmark import metrics as M
from benchmark.cli import cli
from benchmark.health import diverged, output_flags, stale_flags, training_flags
from benchmark.metrics import PSNR_CAP_DB, diagnostics


def test_diagnostics_known_values() -> None:
    img = torch.full((1, 3, 4, 4), 0.5)
    assert diagnostics(img, img.clone())["psnr_vs_input"] == PSNR_CAP_DB  # identical
    assert diagnostics(img, img + 0.1)["psnr_vs_input"] == pytest.approx(20.0)  # mse 0.01
    assert "psnr_vs_input" not in diagnostics(img, torch.zeros(1, 3, 4, 5))  # other size: not compared
    half = torch.cat([torch.zeros(1, 3, 2, 4), torch.ones(1, 3, 2, 4)], dim=2)
    d = diagnostics(half, None)
    assert d["output_clipped"] == 1.0 and d["output_std"] == pytest.approx(0.5, rel=0.1)
    assert diagnostics(img, None) == {"output_std": 0.0, "output_clipped": 0.0}


def _diag(system: str, psnr: float, std: float, clipped: float, n: int = 5) -> list[dict]:
    return [{"dataset": "d", "system": system, "image": f"i{k}", "metric": m, "value": v}
            for k in range(n)
            for m, v in (("psnr_vs_input", psnr + k), ("output_std", std), ("output_clipped", clipped))]


def test_output_flags_rules_and_values() -> None:
    frame = pd.DataFrame(_diag("idle", 53.0, 0.2, 0.1) + _diag("good", 18.0, 0.2, 0.1) + _diag("flat", 25.0, 0.004, 0.0)
                         + _diag("burnt", 12.0, 0.3, 0.8) + _diag("input", 100.0, 0.2, 0.0))
    flags = output_flags(frame)
    assert ("d", "input") not in flags and flags[("d", "good")] == []
    (idle,) = flags[("d", "idle")]
    assert idle.flag == "no-effect" and idle.value == "output 55.0 dB from its input"  # median of 53..57
    assert "≥ 40 dB" in idle.rule and idle.as_dict()["rule"] == idle.rule
    assert [f.text() for f in flags[("d", "flat")]] == ["degenerate: near-constant output, pixel sd 0.0040"]
    assert [f.text() for f in flags[("d", "burnt")]] == ["degenerate: mostly clipped output, 80% of values at 0 or 255"]


def test_diverged_reads_nan_losses_and_guidance_trend(tmp_path: Path) -> None:
    n = 40
    phase = ["warmup"] * 10 + ["enhance"] * 30
    falling = pd.DataFrame({"iter": range(1, n + 1), "phase": phase, "loss": 1.0,
                            "guidance": [None] * 10 + list(np.linspace(2.0, 1.0, 30))})
    assert diverged(falling) is None
    rising = falling.assign(guidance=[None] * 10 + list(np.linspace(1.0, 1.5, 30)))
    assert diverged(rising) == ("guidance loss did not fall: 1.017 (first 3 guided iterations) -> 1.483 (last 3)")
    runs = {}
    for seed, frame in (("0", falling), ("1", falling.assign(loss=["1.0"] * 20 + ["nan"] * 20))):
        run = tmp_path / "train" / "sys" / f"seed-{seed}"
        run.mkdir(parents=True)
        frame.to_csv(run / "train_log.csv", index=False, na_rep="")
        runs[seed] = run
    (flag,) = training_flags({"sys": runs, "ok": {"0": runs["0"]}})["sys"]
    assert flag.text() == "diverged: seed 1: non-finite loss loss at iteration 21"
    assert training_flags({"ok": {"0": runs["0"]}}) == {"ok": []}


def test_stale_not_checked_outside_the_pipeline_results(tmp_path: Path, project_root: Path) -> None:
    flags, note = stale_flags(tmp_path / "results", tmp_path)
    assert flags == {} and "not checked" in note and "dvc.yaml" in note
    flags, note = stale_flags(tmp_path / "results", project_root)
    assert flags == {} and "not the DVC pipeline's results folder" in note


@pytest.mark.skipif(shutil.which("dvc", path=os.path.dirname(sys.executable)) is None, reason="dvc is not installed")
def test_stale_after_a_code_change(tmp_path: Path) -> None:
    """A two-stage DVC project: changing the code behind the train stage makes its system stale."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    dvc = shutil.which("dvc", path=os.path.dirname(sys.executable))
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("lr: 1\n")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n    cmd: mkdir -p results/train/sys && cp code.py results/train/sys/w\n"
        "    deps: [code.py]\n    params: [lr]\n    outs: [results/train/sys]\n"
        "  score:\n    cmd: mkdir -p results/scores/sys && cp results/train/sys/w results/scores/sys/d.csv\n"
        "    deps: [results/train/sys]\n    outs: [results/scores/sys/d.csv]\n"
        "  other:\n    cmd: mkdir -p results/scores/other && echo 1 > results/scores/other/d.csv\n"
        "    outs: [results/scores/other/d.csv]\n")
    for args in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        subprocess.run([dvc, *args], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    assert stale_flags(tmp_path / "results", tmp_path) == ({}, "stale: checked with dvc status (0 stale stages)")
    (tmp_path / "code.py").write_text("x = 2\n")
    (tmp_path / "params.yaml").write_text("lr: 2\n")
    flags, note = stale_flags(tmp_path / "results", tmp_path)
    assert set(flags) == {"sys"} and note == "stale: checked with dvc status (1 stale stages)"
    assert flags["sys"][0].value == "code.py modified, params.yaml lr modified (stage train)"
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "params.yaml").write_text("lr: 1\n")
    shutil.rmtree(tmp_path / "results" / "train")  # as in a fresh clone: an input absent is not a change
    assert stale_flags(tmp_path / "results", tmp_path) == ({}, "stale: checked with dvc status (0 stale stages)")


def _pairs(src: Path, dst: Path, n: int, size: int) -> Path:
    for sub in ("low", "high"):
        (dst / sub).mkdir(parents=True)
    for path in sorted((src / "low").glob("*.jpg"))[:n]:
        for sub in ("low", "high"):
            with Image.open(src / sub / path.name) as img:
                img.convert("RGB").resize((size, size), Image.BICUBIC).save(dst / sub / f"{path.stem}.png")
    return dst


@pytest.mark.reference
def test_no_effect_flag_and_verdict_on_held_out_pairs(tmp_path: Path, reference_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Done-when of the honest-results issue on 12 real SICE pairs (downscaled): the near-identity released
    clip-lit-init is flagged no-effect, rave-unpaired is not; no flagged system is best; p_holm >= p; the
    report's verdict names clip-lit-init as having no effect."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(M, "_LOADED", {})
    data = _pairs(reference_dir / "sice-pairs", tmp_path / "sice12", n=12, size=96)
    results = tmp_path / "results"
    run = CliRunner().invoke(cli, [
        "compare", "--methods", "clip-lit-init,rave-unpaired", "--weights", "released", "--dataset", str(data),
        "--results", str(results), "--metrics", "psnr,ssim,brisque", "--no-timing", "--format", "json",
        "--metric-weights", str(reference_dir / "metric-weights"), "--bootstrap", "200"])
    assert run.exit_code == 0, run.output
    rows = json.loads(run.stdout)
    assert {r["system"] for r in rows} == {"input", "released-clip-lit-init", "released-rave-unpaired"}
    assert all(isinstance(r["health"], list) and isinstance(r["best"], bool) for r in rows)
    init = [r for r in rows if r["system"] == "released-clip-lit-init"]
    for r in init:
        (flag,) = r["health"]
        assert flag["flag"] == "no-effect" and "≥ 40 dB" in flag["rule"]
        assert float(re.search(r"output ([\d.]+) dB", flag["value"]).group(1)) >= 40
    assert all(r["health"] == [] for r in rows if r["system"] == "released-rave-unpaired")
    assert not any(r["best"] and r["health"] for r in rows)
    assert all("n_scenes" in r and r["n_scenes"] == 12 for r in rows)

    paired = pd.read_csv(results / "tables" / "paired.csv")
    assert paired["p_holm"].notna().all() and (paired["p_holm"] >= paired["p_value"]).all()
    assert {"effect", "effect_low", "effect_high", "diff_low", "diff_high"} <= set(paired.columns)
    aggregates = pd.read_csv(results / "tables" / "aggregates.csv", keep_default_na=False)
    assert set(aggregates[aggregates["system"] == "released-clip-lit-init"]["health"].str.split(":").str[0]) == {
        "no-effect"}

    from benchmark.report import build_report

    build_report(results, {"evaluate": {"bootstrap": 200}}, perf_dir=tmp_path / "none")
    page = (results / "report.html").read_text()
    verdict = re.search(r'<div id="verdict">(.*?)</div>', page, re.DOTALL)
    assert verdict and page.index('id="verdict"') < page.index('id="metrics"')  # the verdict comes first
    text = re.sub(r"<[^>]+>", "", verdict.group(1))
    assert re.search(r"released-clip-lit-init had no effect: output [\d.]+ dB from its input", text)
    assert "12 images from 12 scenes" in text and "Caveats:" in text
    assert "nan" not in re.sub(r"<[^>]+>", "", page).lower().split()


def _score_files(root: Path, system: str, seed: int | None, psnr: list[float], vs_input: float, inputs: Path) -> None:
    """A scores CSV and sidecar as the evaluate step writes them (seed-<k>/ for trained runs)."""
    folder = root / "scores" / system / (f"seed-{seed}" if seed is not None else "")
    folder.mkdir(parents=True, exist_ok=True)
    source = "released" if system.startswith("released-") else "trained"
    method, regime = ("rave", "unpaired") if "rave" in system else ("clip-lit", "unpaired")
    rows = [(f"crop-{k}", metric, value, lb) for k, v in enumerate(psnr)
            for metric, value, lb in (("psnr", v, False), ("psnr_vs_input", vs_input + k % 2, False),
                                      ("output_std", 0.2, False), ("output_clipped", 0.01, True))]
    pd.DataFrame([{"dataset": "toy", "system": system, "method": method, "source": source, "regime": regime,
                   "image": img, "metric": m, "protocol": "pyiqa", "value": v, "lower_better": lb,
                   "seed": "" if seed is None else seed} for img, m, v, lb in rows]).to_csv(folder / "toy.csv",
                                                                                             index=False)
    (folder / "toy.json").write_text(json.dumps({
        "system": system, "dataset": "toy", "method": method, "source": source, "inputs_dir": str(inputs),
        "images": len(psnr), "failed": [],
        "metrics": {"psnr": {"status": "ok", "lower_better": False, "mode": "FR", "score_range": "~0, ~40",
                             "protocol": "pyiqa", "protocol_details": {}}}}))


def _run_files(root: Path, system: str, seed: int, guidance: np.ndarray) -> None:
    run = root / "train" / system / f"seed-{seed}"
    run.mkdir(parents=True)
    n = guidance.size
    pd.DataFrame({"iter": range(1, n + 1), "phase": "enhance", "round": 0, "loss": 1.0, "guidance": guidance,
                  "identity": 0.1}).to_csv(run / "train_log.csv", index=False)
    (run / "train_summary.json").write_text(json.dumps({
        "status": "done", "seed": seed, "encoder": "effnet-lite0", "identity_encoder": "effnet-lite0",
        "schedule": "quick", "schedule_values": {"crop": 96}, "iterations": {"total": 380}}))


def test_report_with_seeds_scenes_and_flags(tmp_path: Path) -> None:
    """The seed layout of results: per-seed rows, mean and sd across seeds, scenes from scenes.json, a
    diverged and a no-effect system greyed and named in the verdict, origins of every system."""
    inputs = tmp_path / "toy" / "test" / "input"
    inputs.mkdir(parents=True)
    (tmp_path / "toy" / "scenes.json").write_text(json.dumps({f"crop-{k}": f"photo-{k // 4}" for k in range(8)}))
    root = tmp_path / "results"
    base = [20.0 + 0.3 * k for k in range(8)]
    _score_files(root, "released-rave-unpaired", None, [v + 1.0 for v in base], 15.0, inputs)
    _score_files(root, "released-clip-lit-init", None, [v + 5.0 for v in base], 52.0, inputs)
    for seed in (0, 1, 2):
        _score_files(root, "rave-unpaired", seed, [v + 0.5 * seed for v in base], 18.0, inputs)
        _run_files(root, "rave-unpaired", seed, np.linspace(2.0, 1.0, 50))
        _score_files(root, "clip-lit-unpaired", seed, [v + 2.0 for v in base], 17.0, inputs)
        _run_files(root, "clip-lit-unpaired", seed, np.linspace(2.0, 2.2 if seed == 1 else 1.0, 50))

    from benchmark.report import build_report
    from benchmark.report.data import load_results

    res = load_results(root, n_boot=200, perf_dir=None, profile="embedded", project_root=tmp_path)
    rave = res.aggregates.set_index(["system", "metric"]).loc[("rave-unpaired", "psnr")]
    assert (rave["n"], rave["n_scenes"], rave["n_seeds"]) == (8, 2, 3)
    assert rave["mean"] == pytest.approx(np.mean(base) + 0.5) and rave["seed_sd"] == pytest.approx(0.5)
    assert [f.flag for f in res.flags("toy", "clip-lit-unpaired")] == ["diverged"]
    assert [f.flag for f in res.flags("toy", "released-clip-lit-init")] == ["no-effect"]
    assert res.labels["rave-unpaired"] == ("trained here: profile embedded, encoder effnet-lite0, schedule quick, "
                                           "96-px crops, 380 iterations, seeds 0, 1, 2")
    decision = res.decisions.iloc[0]  # 2 scenes: never separated, whatever the t-test says
    assert (decision["leader"], decision["runner_up"], decision["status"]) == (
        "released-rave-unpaired", "rave-unpaired", "not separated")
    assert decision["reason"].endswith("2 scenes cannot separate systems (at least 6 needed)")
    assert not res.aggregates["best"].any()

    build_report(root, {"profile": "embedded", "evaluate": {"bootstrap": 200}}, n_images=0,
                 perf_dir=tmp_path / "none")
    seeds = pd.read_csv(root / "tables" / "seeds.csv")
    assert sorted(seeds[seeds["system"] == "rave-unpaired"]["seed"]) == [0, 1, 2] and len(seeds) == 6
    page = (root / "report.html").read_text()
    verdict = html.unescape(re.sub(r"<[^>]+>", "", re.search(r'<div id="verdict">(.*?)</div>', page, re.DOTALL).group(1)))
    assert "8 images from 2 scenes" in verdict and "Healthy: released-rave-unpaired and rave-unpaired." in verdict
    assert "clip-lit-unpaired diverged in training: seed 1: guidance loss did not fall" in verdict
    assert "released-clip-lit-init had no effect: output 52.5 dB from its input" in verdict
    assert "The flagged released-clip-lit-init has the best psnr mean but is not ranked." in verdict
    assert "not the papers' settings" in verdict and "96-px crops" in verdict
    assert "seed sd 0.50" in page and page.count("<tr class='flagged'>") >= 4  # systems and metric tables
    text = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"\bnan\b|\bNone\b", text)
