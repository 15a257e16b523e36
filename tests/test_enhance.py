"""`bench enhance` end to end: outputs, resume, failures that stay local, tiling, max-side."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from backlit_core.image_io import load_image
from benchmark.cli import cli
from methods.network import EnhanceNet
from methods.tiled_inference import TiledEnhancer


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = EnhanceNet()
    with torch.no_grad():
        net.cond_add1.bias.fill_(0.6)  # L around 0.6: a brightening enhancer
    path = tmp_path / "enhancer.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a.JPG", "b.png"):
        Image.fromarray(rng.integers(0, 120, (40, 56, 3), dtype=np.uint8)).save(d / name)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return d


def test_enhance_keeps_stems_brightens_and_isolates_failures(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["enhance", "-w", str(checkpoint), "-i", str(photos), "-o", str(out), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["failed"]) == 1 and "broken.jpg" in summary["failed"][0]["error"]
    assert load_image(out / "a.png").mean() > load_image(photos / "a.JPG").mean()


def test_enhance_resumes_without_redoing(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["enhance", "-w", str(checkpoint), "-i", str(photos), "-o", str(out), "--device", "cpu"]
    CliRunner().invoke(cli, args)
    first = json.loads((out / "timing.json").read_text())["seconds_per_image"]
    (out / "b.png").unlink()
    before = (out / "a.png").stat().st_mtime_ns
    CliRunner().invoke(cli, args)
    assert (out / "b.png").is_file()
    assert (out / "a.png").stat().st_mtime_ns == before
    second = json.loads((out / "timing.json").read_text())["seconds_per_image"]
    assert second["a.png"] == first["a.png"] and second["b.png"] > 0  # a kept output keeps its time
    CliRunner().invoke(cli, args)  # nothing to do: the record of how the outputs were made stays
    assert json.loads((out / "timing.json").read_text())["seconds_per_image"] == second
    assert "seconds" not in (out / "summary.json").read_text()  # times are kept out of the outputs


def test_max_side_downscales(checkpoint: Path, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    res = CliRunner().invoke(cli, ["enhance", "-w", str(checkpoint), "-i", str(photos / "a.JPG"), "-o", str(out), "--max-side", "28"])
    assert res.exit_code == 0, res.output
    assert Image.open(out / "a.png").size == (28, 20)


def test_unknown_weights_name_is_a_clear_error(photos: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["enhance", "-w", "rave-unpaierd", "-i", str(photos), "-o", str(tmp_path / "o")])
    assert res.exit_code != 0 and "did you mean 'rave-unpaired'" in res.output


def test_tiled_inference_equals_full_image(checkpoint: Path) -> None:
    net = torch.load(checkpoint)
    model = EnhanceNet()
    model.load_state_dict(net)
    img = torch.rand(3, 203, 311, generator=torch.Generator().manual_seed(3))
    full = TiledEnhancer(model, device="cpu", tile=1024)(img)
    tiled = TiledEnhancer(model, device="cpu", tile=64)(img)
    assert (full - tiled).abs().max() < 1e-3
