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


def test_every_tolerance_is_keyed_by_a_metric_name_of_metrics_json() -> None:
    """A key that names no metric (``ssim_rgb`` for ``ssim@rgb``) silently gave that metric the 1% relative
    tolerance instead of its own."""
    import json

    names = set(M.metric_names()) | set(M.DIAGNOSTICS)
    assert set(V.TOLERANCES) <= names
    committed = json.loads((Path(__file__).resolve().parents[1] / "results" / "metrics.json").read_text())
    keys = {part for path, _ in V.numeric_leaves(committed) for part in path}
    assert "ssim@rgb" in keys  # as the committed run's metrics.json names it
    assert V.tolerance_for(("synthetic-backlit", "clahe", "ssim@rgb", "mean")) == (0.002, True)
    assert V.tolerance_for(("synthetic-backlit", "clahe", "ssim@rgb")) == (0.002, True)  # the compact headline
    committed = {"d": {"s": {"ssim@rgb": {"mean": 0.5}}}}
    near, far = ({"d": {"s": {"ssim@rgb": {"mean": value}}}} for value in (0.5015, 0.503))
    assert V.compare_metrics(committed, near)[0].ok and V.compare_metrics(committed, near)[0].tolerance == "±0.002"
    assert not V.compare_metrics(committed, far)[0].ok  # 0.6% off: within the 1% it used to get, not within ±0.002

