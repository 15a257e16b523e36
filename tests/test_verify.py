"""`bench verify` reruns the pipeline in a scratch clone with what the original finds beside it."""
from __future__ import annotations

import subprocess
from pathlib import Path

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
