"""Checkpoints that cannot be used get our own one-line message (the file, what it is, what a checkpoint
must hold), never torch's text, and the failed command leaves no output folder."""
from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from rel_helpers import scene, write_image

from backlit_core.torch_files import CheckpointError
from benchmark.cli import cli
from methods.checkpoint import load_checkpoint

WRITERS: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "random-bytes": (lambda p, good: p.write_bytes(bytes(range(256)) * 20), "data of no known format"),
    "empty": (lambda p, good: p.write_bytes(b""), "an empty file, 0 bytes"),
    "truncated": (lambda p, good: p.write_bytes(good.read_bytes()[:3000]), "a damaged or truncated zip archive"),
    "pickled-object": (lambda p, good: p.write_bytes(pickle.dumps(object)), "a Python pickle that holds more than"),
    "objects-in-torch-file": (lambda p, good: torch.save({"model": torch.nn.Linear(2, 2)}, p),
                              "a PyTorch file that holds Python objects besides tensors"),
    "list": (lambda p, good: torch.save([torch.zeros(2)], p), "holds a list, not a state dict"),
    "wrong-tensors": (lambda p, good: torch.save({"conv.weight": torch.zeros(2)}, p),
                      "a state dict of 1 entry, not the enhancement network's (30 of its 30 tensors missing"),
    "wrong-shape": (lambda p, good: torch.save({**torch.load(good, weights_only=True),
                                                "cond1.bias": torch.zeros(3)}, p),
                    "1 of another shape (first: cond1.bias is (3,), the network needs"),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_unusable_checkpoint_gets_one_line_of_ours(kind: str, checkpoint: Path, tmp_path: Path) -> None:
    write, what = WRITERS[kind]
    bad = tmp_path / f"{kind}.pth"
    write(bad, checkpoint)
    write_image(tmp_path / "in" / "a.png", scene(0) * 0.3)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["enhance", "-w", str(bad), "-i", str(tmp_path / "in"), "-o", str(out)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {bad}: "), res.output
    assert what in lines[0] and "an enhancer checkpoint holds the state dict of the 278,790-parameter" in lines[0]
    assert "weights_only" not in res.output and "issue" not in res.output and "Traceback" not in res.output
    assert not out.exists()  # no empty output folder


def test_unusable_training_checkpoint_says_what_it_must_hold(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    assert str(err.value).startswith(f"{bad}: not a readable checkpoint: data of no known format (")
    assert "1,024 bytes; a training checkpoint is" in str(err.value) and "weights_only" not in str(err.value)
