"""The report from a synthetic results folder: tables, figures, grids, skips; chromium rendering."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark import metrics as M
from benchmark.evaluate import evaluate_system
from benchmark.timing import speed_ratios, time_inference, training_timing

SYSTEMS = {"released-rave-unpaired": 0.95, "rave-unpaired": 0.8, "clip-lit-unpaired": 0.6}


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)


def _train_run(root: Path, name: str, phases: list[str], step_s: float, encoders: dict, status: str = "done") -> None:
    run = root / "train" / name
    run.mkdir(parents=True)
    if status == "skipped":
        (run / "train_summary.json").write_text(json.dumps({"status": "skipped", "reason": "needs a text encoder"}))
        return
    n = 20
    phase = [phases[k * len(phases) // n] for k in range(n)]
    log = pd.DataFrame({"iter": range(1, n + 1), "phase": phase, "round": 0, "loss": np.linspace(3, 0.7, n),
                        "guidance": np.linspace(2, 0.5, n), "identity": np.linspace(1, 0.2, n),
                        "psnr": 30.0, "step_s": step_s, "wall_s": np.arange(1, n + 1) * step_s})
    log.to_csv(run / "train_log.csv", index=False)
    counts = {p: phase.count(p) for p in phases}
    (run / "train_summary.json").write_text(json.dumps({  # the trainer's format (methods/trainer.py)
        "status": "done", "reason": None, "wall_s": n * step_s, "iterations": {**counts, "total": n},
        "s_per_iter": {p: step_s for p in phases}, "peak_rss_mb": 512.0, "peak_cuda_mb": None, "seed": 0,
        "encoder": encoders["guidance"], "identity_encoder": encoders.get("identity"), "is_random": "random" in str(encoders)}))
    (run / "provenance.json").write_text(json.dumps({"device": {"platform": "test-machine"}}))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    data, root = base / "baid", base / "results"
    rng = np.random.default_rng(0)
    for k in range(4):
        scene = rng.integers(0, 256, (72, 96, 3)).astype(float)
        _png(data / "input" / f"{k:04d}.png", scene * 0.3)
        _png(data / "gt" / f"{k:04d}.png", scene)
        for system, gain in SYSTEMS.items():
            _png(root / "enhanced" / system / "baid" / f"{k:04d}.png", scene * gain + k)
    (root / "enhanced" / "rave-unpaired" / "baid" / "summary.json").write_text(
        json.dumps({"done": [], "failed": [{"file": "broken.jpg", "error": "broken.jpg: cannot decode image"}]}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(base / "torch-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(M, "_LOADED", {})
        for system in ["input", *SYSTEMS]:
            folder = data / "input" if system == "input" else root / "enhanced" / system / "baid"
            evaluate_system(system, "baid", folder, dataset_dir=data, out_csv=root / "scores" / system / "baid.csv",
                            metrics=["psnr", "ssim", "piqe", "musiq"], progress=False)
    _train_run(root, "rave-unpaired", ["warmup", "enhancer"], 0.5, {"guidance": "tiny-clip-random", "identity": "effnet-lite0"})
    _train_run(root, "clip-lit-unpaired", ["warmup", "enhancer", "prompt"], 1.5, {"guidance": "clip:ViT-B-32-quickgelu:openai"})
    _train_run(root, "latent-prompt-unpaired", [], 0, {}, status="skipped")
    time_inference(root / "timing" / "network.json", device="cpu", sizes_mp=[0.01], repeats=2, warmup=0)
    for sidecar in (root / "scores").glob("*/baid.json"):  # a reason with markup must be escaped in HTML
        sidecar.write_text(sidecar.read_text().replace("not available offline", "<urlopen> offline"))
    (root / "provenance.json").write_text(json.dumps({"seed": 0, "profile": "embedded", "packages": {"torch": "x"}}))
    bench = base / "benchmarks"
    bench.mkdir()
    (bench / "pipeline.json").write_text(json.dumps({"environment": {"cpu": "test-cpu", "cores": 2},
                                                     "by_family_s": {"train": 321.5, "report": 9.25}, "total_s": 400.0}))
    from benchmark.report import build_report

    build_report(root, {"profile": "embedded", "seed": 0, "evaluate": {"bootstrap": 200}}, benchmarks_dir=bench)
    return root


def test_markdown_report_tables_and_sections(results: Path) -> None:
    md = (results / "report.md").read_text()
    assert re.search(r"\| system \| from \| psnr ↑ \(dB\) \| ssim ↑ \(0–1\) \| musiq \(score ≈0–100\) \| "
                     r"piqe ↓ \(score 0–100\) \|", md)
    metrics = md.split("## Metrics")[1]
    psnr_cells = [line.split("|")[3] for line in metrics.splitlines() if line.startswith("| released-rave-unpaired")]
    assert psnr_cells and "**" not in psnr_cells[0] and "±" in psnr_cells[0]  # highest psnr (gain 0.95), mean ± CI
    decisions = md.split("#### Best or tie, per metric")[1].split("####")[0]  # 4 images: p >= 0.125, a tie
    assert re.search(r"\| psnr ↑ \(dB\) \| none \(tie\) \| released-rave-unpaired \| rave-unpaired \|.*not significant",
                     decisions)
    assert "4 images from 4 scenes" in md.split("## Verdict")[1]
    assert "Published reference numbers" in md and "Han et al." in md and "21.57" in md
    assert "WARNING: random test encoder" in md and "rave-unpaired: encoders" in md
    skipped = md.split("## Skipped")[1]
    assert "needs a text encoder" in skipped and "musiq" in skipped and "broken.jpg" in skipped
    assert "3.00×" in md  # clip-lit took 3x longer than rave on the same machine
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (results / link).is_file(), link
    assert {p.name for p in (results / "figures").glob("*.png")} == {
        "metrics_baid.png", "quality_vs_time_baid.png", "training_loss.png", "inference_speed.png", "grid_baid.png"}
    assert json.loads((results / "metrics.json").read_text())["baid"]["rave-unpaired"]["psnr"]["n"] == 4
    assert (results / "tables" / "paired.csv").is_file() and "Whole pipeline" in md
    assert "| train | 321.50 |" in md and "measured on test-cpu, 2 cores" in md


def test_html_is_self_contained(results: Path) -> None:
    html = (results / "report.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assert html.count("data:image/png;base64,") == 4  # metric bars, quality vs time, loss, speed
    assert 'class="grid"' in html and html.count("data:image/jpeg;base64,") >= 2 * 5
    assert 'href="enhanced/rave-unpaired/baid/' in html  # full-resolution links, relative to the report
    assert "<urlopen>" not in html and "&lt;urlopen&gt; offline" in html


def test_training_timing_and_ratios(results: Path) -> None:
    rave = training_timing(results / "train" / "rave-unpaired")
    clip = training_timing(results / "train" / "clip-lit-unpaired")
    assert rave["wall_s"] == 10.0 and rave["iterations"] == 20 and rave["peak_memory_mb"] == 512.0
    assert rave["phases"]["enhancer"] == {"iterations": 10, "s_per_iter": 0.5, "wall_s": 5.0}
    assert set(clip["phases"]) == {"warmup", "enhancer", "prompt"}
    ratios = {r["quantity"]: r for r in speed_ratios({"r": rave, "c": clip}, [("r", "c")])}
    assert ratios["training wall time (s)"]["ratio"] == 3.0 and ratios["s/iter, phase warmup"]["ratio"] == 3.0
    other = dict(clip, machine="elsewhere")
    assert speed_ratios({"r": rave, "c": other}, [("r", "c")])[0]["ratio"] is None


def test_report_renders_in_chromium(results: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run"]
    url = (results / "report.html").resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        shot = Path(profile) / "r.png"
        subprocess.run([browser, *flags, f"--user-data-dir={profile}", f"--screenshot={shot}",
                        "--window-size=1400,3000", url], check=True, capture_output=True, timeout=120,
                       env={**os.environ, "HOME": profile})
        dom = subprocess.run([browser, *flags, f"--user-data-dir={profile}", "--dump-dom", url], check=True,
                             capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": profile}).stdout
        img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (3000, 1400) and img.std() > 20  # rendered content, not a blank page
    assert dom.count("<table") >= 8 and 'class="grid"' in dom
    assert dom.count('src="data:image/png;base64,') == 4 and "psnr ↑" in dom
