"""`bench verify` reruns the pipeline in a scratch clone with what the original finds beside it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

import benchmark.metrics as M
import benchmark.verify_reproduction as V


def test_scratch_rerun_gets_the_metric_parameter_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clone in /tmp has no ../shared beside it: without the metric files NIQE and BRISQUE were
    'unavailable' there and 122 of 348 checks failed on the committed embedded run."""
    weights = tmp_path / "metric-weights"
    weights.mkdir()
    monkeypatch.delenv(M.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(M, "SHARED_METRIC_WEIGHTS", weights)  # ../shared/reference/metric-weights of this checkout
    seen: dict[str, str] = {}

    def fake_run(args: list[str], cwd: Path, env: dict[str, str], **_: object) -> subprocess.CompletedProcess:
        seen.update(env)
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(V.subprocess, "run", fake_run)
    assert V.run_repro(tmp_path, tmp_path / "log.txt") == 0
    assert seen[M.WEIGHTS_ENV] == str(weights.resolve())
    assert seen["PYTHONPATH"] == str(tmp_path) and seen["HF_HUB_OFFLINE"] == "1"


def _lock(hashes: dict[str, str]) -> str:
    import yaml

    stages = {stage: {"cmd": "x", "outs": [{"path": path, "md5": md5}]} for (stage, path), md5 in
              ((tuple(k.split(" ")), v) for k, v in hashes.items())}
    return yaml.safe_dump({"schema": "2.0", "stages": stages})


def _scores(rows: list[tuple[str, int | str, float]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([{"dataset": "d", "system": s, "seed": k, "image": f"i{j}", "metric": "psnr", "value": v}
                         for s, k, v in rows for j in range(2)])


COMMITTED_LOCK = {"prepare@d datasets/data/d": "a1", "train@rave-unpaired-0 results/train/rave-unpaired/seed-0": "b1",
                  "train@rave-unpaired-1 results/train/rave-unpaired/seed-1": "b2",
                  "evaluate-operator@gamma-d results/scores/gamma/d.csv": "c1",
                  "time-inference results/timing/inference.json": "t1"}


def _envelope() -> dict:
    from benchmark.envelope import envelope_document

    committed = _scores([("rave-unpaired", 0, 20.0), ("rave-unpaired", 1, 21.0), ("gamma", "", 11.0)])
    perturbed = _scores([("rave-unpaired", 0, 20.4), ("rave-unpaired", 1, 20.8)])
    return envelope_document(committed, perturbed, perturbation={"threads": 1})


def test_identical_rerun_is_exact_everywhere() -> None:
    from benchmark.envelope import EXACT

    scores = _scores([("rave-unpaired", 0, 20.0), ("rave-unpaired", 1, 21.0), ("gamma", "", 11.0)])
    checks = V.judge_rerun(_lock(COMMITTED_LOCK), _lock(COMMITTED_LOCK), _envelope(), scores)
    assert {c.level for c in checks} == {EXACT}
    assert len(checks) == 4 + 2  # timing output not compared; one metric check per system
    assert {c.family for c in checks} == {"prepare", "train", "evaluate-operator", "metric"}


def test_other_weights_within_the_envelope_and_outside_it() -> None:
    from benchmark.envelope import EXACT, OUTSIDE, WITHIN

    rerun_lock = {**COMMITTED_LOCK, "train@rave-unpaired-0 results/train/rave-unpaired/seed-0": "other",
                  "time-inference results/timing/inference.json": "t2"}
    env = _envelope()
    margin = next(e for e in env["entries"] if e["system"] == "rave-unpaired")["margin"]
    assert margin == pytest.approx(12.7062 * (2 ** 0.5 * 0.5 ** 0.5) / 2 ** 0.5, abs=1e-3)  # seed spread: 6.35 dB
    near = _scores([("rave-unpaired", 0, 20.3), ("rave-unpaired", 1, 21.0), ("gamma", "", 11.0)])
    checks = {c.what: c for c in V.judge_rerun(_lock(COMMITTED_LOCK), _lock(rerun_lock), env, near)}
    assert checks["train@rave-unpaired-0:results/train/rave-unpaired/seed-0"].level == WITHIN
    assert checks["d/rave-unpaired/psnr"].level == WITHIN
    assert checks["d/gamma/psnr"].level == EXACT
    far = _scores([("rave-unpaired", 0, 30.0), ("rave-unpaired", 1, 31.0), ("gamma", "", 11.2)])
    checks = {c.what: c for c in V.judge_rerun(_lock(COMMITTED_LOCK), _lock(rerun_lock), env, far)}
    assert checks["train@rave-unpaired-0:results/train/rave-unpaired/seed-0"].level == OUTSIDE
    assert checks["d/gamma/psnr"].level == OUTSIDE  # 0.2 dB > the 0.05 dB tolerance of a deterministic system


def test_other_bytes_with_the_same_metrics_are_not_exact() -> None:
    """A sidecar that names a temporary folder changes an output's hash but no score: within, never exact."""
    from benchmark.envelope import EXACT, WITHIN

    rerun_lock = {**COMMITTED_LOCK, "train@rave-unpaired-0 results/train/rave-unpaired/seed-0": "other"}
    scores = _scores([("rave-unpaired", 0, 20.0), ("rave-unpaired", 1, 21.0), ("gamma", "", 11.0)])
    checks = {c.what: c for c in V.judge_rerun(_lock(COMMITTED_LOCK), _lock(rerun_lock), _envelope(), scores)}
    assert checks["d/rave-unpaired/psnr"].level == EXACT
    changed = checks["train@rave-unpaired-0:results/train/rave-unpaired/seed-0"]
    assert changed.level == WITHIN and changed.detail == "hash differs; rave-unpaired's metrics are exact"


def test_data_and_code_must_be_exact() -> None:
    from benchmark.envelope import OUTSIDE

    rerun_lock = {**COMMITTED_LOCK, "prepare@d datasets/data/d": "other"}
    scores = _scores([("rave-unpaired", 0, 20.0), ("rave-unpaired", 1, 21.0), ("gamma", "", 11.0)])
    checks = {c.what: c for c in V.judge_rerun(_lock(COMMITTED_LOCK), _lock(rerun_lock), _envelope(), scores)}
    assert checks["prepare@d:datasets/data/d"].level == OUTSIDE


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_records_of_one_run_of_the_committed_code(tmp_path: Path) -> None:
    import json

    repo = tmp_path / "p"
    (repo / "methods").mkdir(parents=True)
    (repo / "methods" / "m.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "code")
    code = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    prov = repo / "results" / "provenance" / "train" / "rave-unpaired"
    prov.mkdir(parents=True)
    for k in (0, 1):
        (prov / f"seed-{k}.json").write_text(json.dumps({"git_commit": code}))
    timing = repo / "results" / "timing" / "train" / "rave-unpaired" / "seed-0"
    timing.mkdir(parents=True)
    (timing / "train_timing.json").write_text(json.dumps({"wall_s": 93.7, "s_per_iter": {"enhance": 0.78}}))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "run")
    assert V.record_checks(repo) == []
    # a finished run whose timing was lost, a record of an older commit, code changed since
    (timing / "train_timing.json").write_text(json.dumps({"wall_s": 0.0, "s_per_iter": {}}))
    (prov / "seed-1.json").write_text(json.dumps({"git_commit": "0" * 40}))
    (repo / "methods" / "m.py").write_text("x = 2\n")
    _git(repo, "commit", "-qam", "edit")
    problems = V.record_checks(repo)
    assert any("train_timing.json: a finished run's timing is empty" in p for p in problems)
    assert any("records of 2 commits" in p for p in problems)
    assert any("not in this repository's history" in p for p in problems)
    assert any("the code changed since the records' commit" in p and "methods/m.py" in p for p in problems)


def test_every_tolerance_is_keyed_by_a_metric_name() -> None:
    """A key that names no metric (``ssim_rgb`` for ``ssim@rgb``) would silently give that metric the 1%
    relative tolerance instead of its own."""
    from benchmark.envelope import RESOLUTION, TOLERANCES, tolerance

    names = set(M.metric_names()) | set(M.DIAGNOSTICS)
    assert set(TOLERANCES) <= names and set(RESOLUTION) <= names
    assert tolerance("ssim@rgb", 0.5) == 0.002 and tolerance("niqe", 5.0) == pytest.approx(0.05)
