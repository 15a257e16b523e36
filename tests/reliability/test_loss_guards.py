"""Loss guards: a NaN or infinite loss stops training with a clear message and keeps the last good
checkpoint, from which the run resumes."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from rel_helpers import FAST_ENCODER, TINY

from benchmark.cli import cli
from methods.plugins.rave import Rave
from methods.run_files import TrainingDiverged
from methods.train_api import train_method

# warm-up is iterations 1-3; guidance losses start at iteration 4; checkpoints at 4, 8, ...
POISONED_CALL = 3  # the third guidance loss: iteration 6


def poison(monkeypatch: pytest.MonkeyPatch, value: float) -> None:
    """Make RAVE's guidance loss ``value`` at its ``POISONED_CALL``-th call."""
    real = Rave.guidance_loss
    calls = {"n": 0}

    def guidance_loss(self: Rave, emb: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        loss = real(self, emb)
        return loss * value if calls["n"] == POISONED_CALL else loss

    monkeypatch.setattr(Rave, "guidance_loss", guidance_loss)


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf")])
def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(value: float, shown: str, train_data: dict[str, Path],
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = {"encoder": FAST_ENCODER, "iters": 10, "overrides": TINY, "progress": False, "seed": 1}
    poison(monkeypatch, value)
    with pytest.raises(TrainingDiverged) as err:
        train_method("rave", train_data["backlit"], train_data["welllit"], tmp_path, **kw)
    msg = str(err.value)
    assert msg.startswith(f"non-finite loss ({shown}) at iteration 6 (enhance, round 0); stopped.")
    assert f"last good checkpoint is {tmp_path / 'checkpoint.pt'}" in msg and "\n" not in msg
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["iteration"] == 4
    assert all(torch.isfinite(v).all() for v in ckpt["enhancer"].values())
    assert not (tmp_path / "enhancer.pth").exists()  # a diverged run never publishes weights
    with open(tmp_path / "train_log.csv", newline="") as f:
        assert [r["iter"] for r in csv.DictReader(f)] == ["1", "2", "3", "4", "5"]
    monkeypatch.undo()  # the cause is gone: the run resumes from the kept checkpoint
    summary = train_method("rave", train_data["backlit"], train_data["welllit"], tmp_path, resume=True, **kw)
    assert summary["status"] == "done" and summary["iterations"]["total"] == 10
    assert (tmp_path / "enhancer.pth").is_file()


def test_bench_train_reports_divergence_in_one_line(train_data: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    poison(monkeypatch, float("nan"))
    args = ["train", "-m", "rave", "--backlit", str(train_data["backlit"]), "--welllit", str(train_data["welllit"]),
            "--encoder", FAST_ENCODER, "--iters", "10", "--out", str(tmp_path), "-q", "--seed", "1"]
    for key, value in TINY.items():
        args += ["--set", f"{key}={value}"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1].startswith("Error: non-finite loss (nan) at iteration 6")
