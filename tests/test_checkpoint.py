"""Training checkpoints: RNG states round-trip exactly, a checkpoint of another kind is refused with the
reason, and a run resumes only a checkpoint of its own settings that is not ahead of it."""
from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from backlit_core.torch_files import CheckpointError
from methods.checkpoint import CHECKPOINT_VERSION, capture_rng, load_checkpoint, restore_rng, resumable, save_checkpoint


def _draws() -> tuple:
    return (random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), float(np.random.normal()),
            torch.rand(3).tolist())


def test_rng_states_survive_a_checkpoint_file_exactly(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # leaves a cached second normal in both generators
    np.random.normal()
    save_checkpoint(tmp_path / "c.pt", {"rng": capture_rng(), "state": {"iteration": 2}})
    expected = _draws()
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    loaded = load_checkpoint(tmp_path / "c.pt")  # weights_only: every value is a plain type or a tensor
    assert loaded["version"] == CHECKPOINT_VERSION and loaded["state"] == {"iteration": 2}
    restore_rng(loaded["rng"])
    assert _draws() == expected


MUST_HOLD = ("a training checkpoint is bench train's checkpoint.pt (version 1: enhancer, guidance, optimiser and RNG "
             "states); move it away to start the run afresh")


def test_a_file_that_is_not_a_current_checkpoint_is_refused_with_the_reason(tmp_path: Path) -> None:
    torch.save({"version": CHECKPOINT_VERSION + 1, "state": {}}, tmp_path / "newer.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    for name in ("newer.pt", "list.pt"):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        assert str(err.value) == f"{tmp_path / name}: not a version-1 training checkpoint; {MUST_HOLD}"
    (tmp_path / "text.pt").write_text("not a torch file")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "text.pt")
    assert str(err.value).startswith(str(tmp_path / "text.pt")) and str(err.value).endswith(MUST_HOLD)


def _checkpoint(tmp_path: Path, done: int, config: dict) -> Path:
    save_checkpoint(tmp_path / "ckpt.pt", {"state": {"iteration": done}, "config": config})
    return tmp_path / "ckpt.pt"


def test_a_run_resumes_its_own_checkpoint_up_to_its_length(tmp_path: Path) -> None:
    config = {"lr": 0.1, "crop": 32}
    assert resumable(tmp_path / "absent.pt", config, 10) is None
    path = _checkpoint(tmp_path, 10, config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # resuming warns about nothing
        assert resumable(path, config, 10)["state"]["iteration"] == 10  # finished: nothing left to run
        assert resumable(path, dict(config), 11)["state"]["iteration"] == 10


def test_a_longer_or_other_run_starts_afresh_and_says_why(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path, 10, {"lr": 0.1, "crop": 32, "seed": 0})
    with pytest.warns(UserWarning, match=r"10 iterations done, 9 asked; starting afresh"):
        assert resumable(path, {"lr": 0.1, "crop": 32, "seed": 0}, 9) is None
    with pytest.warns(UserWarning, match=r"ckpt\.pt: settings differ \(crop, lr\); starting afresh"):
        assert resumable(path, {"seed": 0, "lr": 0.2, "crop": 64}, 20) is None
    save_checkpoint(path, {"state": {"iteration": 1}})  # written before checkpoints carried their settings
    with pytest.warns(UserWarning, match=r"settings differ \(crop, lr, seed\)"):
        assert resumable(path, {"lr": 0.1, "crop": 32, "seed": 0}, 20) is None
