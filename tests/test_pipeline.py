"""The DVC pipeline end to end, on a git-tracked copy of the project with tiny settings.

`dvc repro` runs offline from data to report over every seed, CLIP-LIT is reported as skipped with
its reason, a second `dvc repro` runs nothing, changing RAVE's learning rate re-runs only RAVE's
stages, changing the bootstrap count re-runs only the report, `bench verify` (a scratch clone
from nothing) reproduces every committed output hash and metric, a 2-job DVC experiment queue
completes and both experiments reach `bench experiments`, and a trained run travels to another
clone through a local-directory DVC remote. Every test that changes the project gets it back as
committed after the first run, whether it passes or fails (the ``committed`` fixture).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNNING = re.compile(r"Running stage '([^']+)'")
TINY_SCHEDULE = {"iters": 8, "ce_iters": 2, "warmup_iters": 2, "enhancer_iters": 2, "prompt_iters": 1,
                 "crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 2, "checkpoint_every": 4}
TINY_ZERO_DCE = {"iters": 6, "crop": 32, "batch_size": 2, "checkpoint_every": 3}

pytestmark = pytest.mark.skipif(shutil.which("dvc", path=os.path.dirname(sys.executable)) is None
                                and shutil.which("dvc") is None, reason="dvc is not installed")


def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", DVC_NO_ANALYTICS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env.pop("BACKLIT_BENCH_DATA", None)
    env.pop("BACKLIT_BENCH_PARAMS", None)
    return env


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run in ``cwd`` with its own copy of the code (the code stage hashes what runs)."""
    return subprocess.run(args, cwd=cwd, env={**_env(), "PYTHONPATH": str(cwd)}, capture_output=True, text=True,
                          timeout=timeout)


def _git(project: Path, *args: str) -> None:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=project,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


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
    params["seeds"] = [0, 1]
    params["train"] = {m: {**(TINY_ZERO_DCE if m == "zero-dce" else TINY_SCHEDULE), **(params["train"].get(m) or {})}
                       for m in params["methods"]}
    params["evaluate"] = {"metrics": ["psnr", "ssim"], "bootstrap": 50}
    params["timing"] = {"sizes_mp": [0.01], "repeats": 1}
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True, capture_output=True)
    return dst


@pytest.fixture(scope="module")
def first_run(project: Path) -> list[str]:
    ran = _repro(project)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "results")
    return ran


@pytest.fixture
def committed(project: Path, first_run: list[str]) -> Iterator[Path]:
    """The project as committed after the first run, and again after the test, pass or fail: tracked
    files (params, code, dvc.lock, timings, DVC settings) reset to that commit, untracked ones removed,
    the cached outputs checked out from the DVC cache."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True,
                          check=True).stdout.strip()
    yield project
    _git(project, "reset", "-q", "--hard", head)
    _git(project, "clean", "-fdq")
    restored = _run(["dvc", "checkout", "--force"], project)
    assert restored.returncode == 0, restored.stdout + restored.stderr


def test_repro_runs_every_stage_to_the_report(project: Path, first_run: list[str]) -> None:
    families = {name.split("@")[0] for name in first_run}
    assert {"prepare", "train", "enhance", "evaluate", "evaluate-input", "time-inference", "report"} <= families
    report = (project / "results" / "report.md").read_text()
    assert (project / "results" / "report.html").stat().st_size > 10_000
    assert "needs a text encoder" in report  # CLIP-LIT: skipped with its one-line reason
    verdict = report.split("## Verdict")[1].split("\n## ")[0]
    assert "clip-lit-unpaired" not in verdict.split("Healthy: ")[1].split(".")[0]  # never called healthy
    assert "Not trained here (no outputs; see the systems table): clip-lit-unpaired" in verdict
    scores = (project / "results" / "scores.csv").read_text()
    assert "rave-unpaired" in scores and "latent-prompt-unpaired" in scores and ",input," in scores
    assert {f"train@{m}-unpaired-{s}" for m in ("clip-lit", "latent-prompt", "rave") for s in (0, 1)} <= set(first_run)
    for seed in (0, 1):  # model files hold no timings; timings and provenance sit beside them
        run = project / "results" / "train" / "rave-unpaired" / f"seed-{seed}"
        assert json.loads((run / "train_summary.json").read_text())["seed"] == seed
        assert "wall_s" not in (run / "train_summary.json").read_text() and "step_s" not in (run / "train_log.csv").read_text()
        assert json.loads((project / "results/timing/train/rave-unpaired" / f"seed-{seed}" / "train_timing.json")
                          .read_text())["wall_s"] > 0
    assert _md5(project / "results/train/rave-unpaired/seed-0/enhancer.pth") != _md5(
        project / "results/train/rave-unpaired/seed-1/enhancer.pth")
    metrics = json.loads((project / "results" / "metrics.json").read_text())
    assert metrics, "results/metrics.json (the DVC metrics file) is empty"
    assert (project / "dvc.lock").is_file()


def test_second_repro_runs_nothing(committed: Path) -> None:
    assert _repro(committed) == []


def test_changing_rave_lr_reruns_only_rave(committed: Path) -> None:
    params = yaml.safe_load((committed / "params.yaml").read_text())
    params["train"]["rave"]["lr"] = params["train"]["rave"]["lr"] * 2
    (committed / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    ran = _repro(committed)
    assert {"train@rave-unpaired-0", "train@rave-unpaired-1"} <= set(ran)
    others = [s for s in ran if s.startswith(("train", "enhance@", "evaluate@")) and "rave-unpaired" not in s]
    assert others == [], f"stages of other methods re-ran: {others}"
    assert set(ran) <= {f"{stage}@rave-unpaired-{seed}{suffix}" for seed in (0, 1)
                        for stage, suffix in (("train", ""), ("envelope", ""), ("enhance", "-synthetic-backlit"),
                                              ("evaluate", "-synthetic-backlit"))} | {"time-inference", "report"}


def test_changing_bootstrap_reruns_only_the_report(committed: Path) -> None:
    params = yaml.safe_load((committed / "params.yaml").read_text())
    params["evaluate"]["bootstrap"] += 10
    (committed / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _repro(committed) == ["report"]


def test_changing_zero_dce_loop_retrains_only_zero_dce(committed: Path) -> None:
    loop = committed / "methods" / "zero_dce_train.py"
    loop.write_text(loop.read_text().replace("def _step(self) -> dict:\n", "def _step(self) -> dict:\n        # edited\n"))
    ran = _repro(committed)
    assert {"code", "train@zero-dce-unpaired-0", "train@zero-dce-unpaired-1"} <= set(ran)
    assert not [s for s in ran if s.startswith("train@") and "zero-dce" not in s], ran
    assert not [s for s in ran if s.startswith(("enhance", "evaluate"))], ran  # same weights: nothing downstream


def test_verify_reproduces_every_committed_hash_and_metric(committed: Path, tmp_path: Path) -> None:
    """On the machine that made the run, the rerun from nothing is exact (--strict): every output hash and
    every per-seed metric; the envelope it would otherwise be judged by is committed with the run."""
    envelope = json.loads((committed / "results" / "envelope.json").read_text())
    rave = [e for e in envelope["entries"] if e["system"] == "rave-unpaired" and e["metric"] == "psnr"]
    assert len(rave) == 1 and rave[0]["n_seeds"] == 2 and rave[0]["numerics_sd"] is not None
    assert rave[0]["margin"] > 0 and envelope["perturbation"] == {"threads": 1}
    done = _run(["bench", "verify", "--project", str(committed), "--workdir", str(tmp_path), "--strict",
                 "--format", "json"], committed)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["records"] == [] and result["levels"]["outside"] == 0 and result["levels"]["within envelope"] == 0
    families = {c["family"] for c in result["checks"]}
    assert {"prepare", "code", "train", "enhance", "evaluate", "envelope", "metric"} <= families
    assert result["committed_machine"]["cpu"] == result["this_machine"]["cpu"]
    assert "checks reproduce" in done.stderr


def test_two_job_experiment_queue_reaches_the_experiments_table(committed: Path) -> None:
    try:
        for lr in (3e-4, 4e-4):
            queued = _run(["dvc", "exp", "run", "--queue", "-S", f"train.rave.lr={lr}"], committed)
            assert queued.returncode == 0, queued.stderr
        started = _run(["dvc", "queue", "start", "--jobs", "2"], committed)
        assert started.returncode == 0, started.stderr
        deadline = time.monotonic() + 900  # a hang fails here, not in CI's overall timeout
        while time.monotonic() < deadline:
            status = _run(["dvc", "queue", "status"], committed).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(5)
        assert status.count("Success") == 2, status
    finally:
        _run(["dvc", "queue", "stop", "--kill"], committed)
    done = _run(["bench", "experiments"], committed)
    assert done.returncode == 0, done.stderr
    table = (committed / "results" / "experiments.csv").read_text()
    assert "train.rave.lr=0.0003" in table and "train.rave.lr=0.0004" in table


def test_trained_run_travels_through_a_local_remote(committed: Path, tmp_path: Path) -> None:
    project = committed
    remote = tmp_path / "remote"
    for args in (["dvc", "remote", "add", "-f", "-d", "store", str(remote)], ["dvc", "push"]):
        done = _run(args, project)
        assert done.returncode == 0, done.stdout + done.stderr
    # As a user shares a run: commit dvc.lock (earlier tests reran stages), the timings and the remote, then push.
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "run and remote")
    other = tmp_path / "other"
    _git(tmp_path, "clone", "-q", str(project), str(other))
    pulled = _run(["dvc", "pull"], other)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    weights = "results/train/rave-unpaired/seed-0/enhancer.pth"
    assert _md5(other / weights) == _md5(project / weights)
    assert _repro(other) == []  # nothing to recompute: the run came with its timings and provenance
