"""The DVC pipeline end to end, on a copy of the project with tiny settings.

What issue #4 asks of `dvc repro`: it runs offline from data to report, CLIP-LIT is reported as
skipped with its reason, a second `dvc repro` runs nothing, and changing RAVE's learning rate
re-runs only RAVE's stages and what follows them.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
TINY_SCHEDULE = {"iters": 8, "ce_iters": 2, "warmup_iters": 2, "enhancer_iters": 2, "prompt_iters": 1,
                 "crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 2, "checkpoint_every": 4}

pytestmark = pytest.mark.skipif(shutil.which("dvc", path=os.path.dirname(sys.executable)) is None
                                and shutil.which("dvc") is None, reason="dvc is not installed")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("BACKLIT_BENCH_DATA", None)
    env.pop("BACKLIT_BENCH_PARAMS", None)
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)


def _repro(project: Path) -> list[str]:
    """Run `dvc repro`; the names of the stages it ran."""
    done = _run(["dvc", "repro"], project)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return RUNNING.findall(done.stdout)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git-tracked copy of the project with params shrunk to seconds per stage."""
    dst = tmp_path_factory.mktemp("project")
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\n")
    for rel in filter(None, tracked):
        src = ROOT / rel
        if rel == "dvc.lock" or rel.startswith(("results/", "datasets/data/")) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["released"] = ["rave-unpaired"]
    params["train"] = {m: {**TINY_SCHEDULE, **(params["train"].get(m) or {})} for m in params["methods"]}
    params["evaluate"] = {"metrics": ["psnr", "ssim"], "bootstrap": 50}
    params["timing"] = {"sizes_mp": [0.01], "repeats": 1}
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


@pytest.fixture(scope="module")
def first_run(project: Path) -> list[str]:
    return _repro(project)


def test_repro_runs_every_stage_to_the_report(project: Path, first_run: list[str]) -> None:
    families = {name.split("@")[0] for name in first_run}
    assert {"prepare", "train", "enhance", "evaluate", "evaluate-input", "time-inference", "report"} <= families
    report = (project / "results" / "report.md").read_text()
    assert (project / "results" / "report.html").stat().st_size > 10_000
    assert "needs a text encoder" in report  # CLIP-LIT: skipped with its one-line reason
    scores = (project / "results" / "scores.csv").read_text()
    assert "rave-unpaired" in scores and "latent-prompt-unpaired" in scores and ",input," in scores
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert metrics, "results/metrics.json (the DVC metrics file) is empty"
    assert (project / "dvc.lock").is_file()


def test_second_repro_runs_nothing(project: Path, first_run: list[str]) -> None:
    assert _repro(project) == []


def test_changing_rave_lr_reruns_only_rave(project: Path, first_run: list[str]) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["rave"]["lr"] = params["train"]["rave"]["lr"] * 2
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = _repro(project)
    assert "train@rave-unpaired" in ran
    others = [s for s in ran if s.startswith(("train", "enhance@", "evaluate@")) and "rave-unpaired" not in s]
    assert others == [], f"stages of other methods re-ran: {others}"
    assert set(ran) <= {"train@rave-unpaired", "enhance@rave-unpaired-synthetic-backlit",
                        "evaluate@rave-unpaired-synthetic-backlit", "time-inference", "report"}  # times every run
