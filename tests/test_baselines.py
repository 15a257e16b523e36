"""The non-CLIP baselines: Zero-DCE (released weights, losses, retraining) and the classical operators."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from backlit_core.image_io import list_images, load_image, save_png
from backlit_core.registry import UnknownNameError
from benchmark.cli import cli
from benchmark.enhance import downscale, enhance_folder, open_system
from benchmark.weights import RELEASED, resolve_weights
from methods.network import count_parameters
from methods.plugins.clahe import Clahe
from methods.plugins.gamma import Gamma
from methods.plugins.hist_eq import HistEq
from methods.zero_dce import (
    ZeroDCEEnhancer,
    ZeroDCENet,
    colour_loss,
    exposure_loss,
    illumination_smoothness_loss,
    spatial_consistency_loss,
)

SIDE = 160  # held-out photos are downscaled to this longer side


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Zero-DCE written from the spec's equations with the state dict's tensors (1 x 3 x H x W), in
    float64 (exact to float32's rounding; the checkpoint's denormal float32 weights are normal there)."""
    def conv(k: int, t: torch.Tensor) -> torch.Tensor:
        w, b = state[f"e_conv{k}.weight"].double(), state[f"e_conv{k}.bias"].double()
        return F.conv2d(t, w, b, stride=1, padding=1)

    x = x.double()

    x1 = torch.relu(conv(1, x))
    x2 = torch.relu(conv(2, x1))
    x3 = torch.relu(conv(3, x2))
    x4 = torch.relu(conv(4, x3))
    x5 = torch.relu(conv(5, torch.cat([x3, x4], 1)))
    x6 = torch.relu(conv(6, torch.cat([x2, x5], 1)))
    a = torch.tanh(conv(7, torch.cat([x1, x6], 1)))
    for n in range(8):
        a_n = a[:, 3 * n:3 * n + 3]
        x = x + a_n * (x ** 2 - x)
    return x


@pytest.fixture(scope="module")
def heldout(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four SICE low frames (not used for training below), linked into a folder."""
    d = tmp_path_factory.mktemp("heldout")
    for p in list_images(reference_dir / "sice-pairs" / "low")[-4:]:
        (d / p.name).symlink_to(p)
    return d


def test_network_shape_and_parameter_names() -> None:
    net = ZeroDCENet()
    assert count_parameters(net) == 79_416
    state = net.state_dict()
    assert list(state) == [f"e_conv{k}.{p}" for k in range(1, 8) for p in ("weight", "bias")]
    half, final, a = net(torch.rand(2, 3, 20, 24))
    assert half.shape == final.shape == (2, 3, 20, 24) and a.shape == (2, 24, 20, 24)
    assert a.abs().max() <= 1 and 0 <= final.min() and final.max() <= 1


def test_released_zero_dce_equals_reference_forward(heldout: Path, tmp_path: Path) -> None:
    ckpt = resolve_weights("zero-dce", allow_download=False)
    assert RELEASED["zero-dce"].network == "zero-dce" and ckpt.name == "Epoch99.pth"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    summary = enhance_folder("zero-dce", heldout, tmp_path, device="cpu", max_side=SIDE, progress=False)
    assert len(summary["done"]) == 4 and not summary["failed"]
    assert summary["weights_sha256"] == RELEASED["zero-dce"].sha256
    engine, _ = open_system("zero-dce", device="cpu")
    for p in list_images(heldout):
        x = downscale(load_image(p), SIDE)
        with torch.no_grad():
            want = reference_forward(state, x[None])[0].float()
        got = load_image(tmp_path / f"{p.stem}.png")  # what `bench enhance --weights zero-dce` wrote (8 bit)
        score, exact = psnr(got, want.clamp(0, 1)), psnr(engine(x), want)
        print(f"{p.name}: PSNR(bench PNG, reference) {score:.1f} dB, float {exact:.1f} dB; "
              f"mean {x.mean():.3f} -> {got.mean():.3f}")
        assert score >= 45.0 and exact >= 90.0
        assert got.mean() > x.mean() + 0.05  # the released model brightens these under-exposed frames


def test_zero_dce_tiles_are_exact() -> None:
    torch.manual_seed(0)
    net = ZeroDCENet()
    img = torch.rand(3, 70, 90)
    whole = ZeroDCEEnhancer(net, device="cpu", tile=128)(img)
    tiled = ZeroDCEEnhancer(net, device="cpu", tile=32)(img)
    assert (whole - tiled).abs().max() < 1e-5


def test_losses_on_hand_computed_values() -> None:
    grey = torch.full((1, 3, 32, 32), 0.1)
    assert exposure_loss(torch.full((2, 3, 32, 32), 0.6)).item() == pytest.approx(0.0, abs=1e-12)
    assert exposure_loss(grey).item() == pytest.approx(0.25)
    means = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1).expand(1, 3, 16, 16)
    assert colour_loss(means).item() == pytest.approx(math.sqrt(0.2 ** 4 + 0.4 ** 4 + 0.2 ** 4), rel=1e-5)
    g = grey.clone().requires_grad_(True)
    colour_loss(g).backward()  # a grey image: loss 0 and a finite (zero) gradient, not NaN
    assert torch.equal(g.grad, torch.zeros_like(g))
    x = torch.rand(2, 3, 32, 32)
    assert spatial_consistency_loss(x, x).item() == 0.0
    # constant 0.2 -> 0.4: pooled 8x8 maps; only differences to the zero padding change (by 0.2), and
    # 4 sides x 8 pixels = 32 of them; summed over directions, averaged over 64 pixels
    c = torch.full((1, 3, 32, 32), 0.2)
    assert spatial_consistency_loss(2 * c, c).item() == pytest.approx(32 * 0.2 ** 2 / 64, rel=1e-5)
    # horizontal steps of 1 (2 images x 24 channels x 4 rows x 4 steps), none vertical:
    # 2 * (768 / (4 * 4)) / batch 2 = 48
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(2, 24, 4, 5)
    assert illumination_smoothness_loss(ramp).item() == pytest.approx(48.0)
    assert illumination_smoothness_loss(torch.ones(1, 24, 6, 6)).item() == 0.0


def test_train_zero_dce_brightens_held_out_photos(reference_dir: Path, heldout: Path, tmp_path: Path) -> None:
    train = tmp_path / "train"
    train.mkdir()
    for p in list_images(reference_dir / "sice-pairs" / "low")[:8]:
        (train / p.name).symlink_to(p)
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--method", "zero-dce", "--backlit", str(train), "--iters", "60",
                                      "--crop", "32", "--batch-size", "4", "--seed", "0", "--out", str(run), "-q"])
    assert result.exit_code == 0, result.output
    with open(run / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iter", "phase", "round", "loss", "tv", "spa", "col", "exp"]  # loss columns only
    assert len(rows) == 60 and rows[-1]["round"] == "29"  # 8 images / batch 4: two iterations per epoch
    assert float(rows[-1]["exp"]) < 0.5 * float(rows[0]["exp"])  # the exposure term fell
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["status"] == "done" and summary["iterations"] == {"total": 60, "train": 60}
    assert summary["rounds"] == 30 and summary["schedule_values"]["lr"] == 1e-3
    assert not {"wall_s", "s_per_iter", "peak_rss_mb"} & set(summary)  # deterministic facts only
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["enhance", "--weights", str(run), "--input", str(heldout), "--output", str(out),
                                      "--max-side", str(SIDE), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for p in list_images(heldout):
        before, after = downscale(load_image(p), SIDE).mean().item(), load_image(out / f"{p.stem}.png").mean().item()
        print(f"{p.name}: mean luminance {before:.3f} -> {after:.3f}")
        assert after > 1.5 * before


def _dark_images(folder: Path, n: int = 3) -> Path:
    """``n`` random dark 24 x 24 PNGs (seeded) in ``folder``: tiny Zero-DCE training data."""
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        save_png(torch.rand(3, 24, 24, generator=g) * 0.3, folder / f"{i}.png")
    return folder


def test_zero_dce_resume_is_exact(tmp_path: Path) -> None:
    from methods.train_api import train_method

    data = _dark_images(tmp_path / "data")
    kw = {"iters": 6, "overrides": {"crop": 16, "batch_size": 2, "checkpoint_every": 2}, "progress": False}
    train_method("zero-dce", data, None, tmp_path / "a", **kw)
    stopped = train_method("zero-dce", data, None, tmp_path / "b", stop_after=3, **kw)
    assert stopped["status"] == "stopped"
    train_method("zero-dce", data, None, tmp_path / "b", resume=True, **kw)
    a, b = (torch.load(tmp_path / r / "enhancer.pth", weights_only=True) for r in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / "train_log.csv").read_bytes() == (tmp_path / "b" / "train_log.csv").read_bytes()


def test_zero_dce_settings_are_checked(tmp_path: Path) -> None:
    from methods.train_api import train_method

    with pytest.raises(UnknownNameError, match="did you mean 'grad_clip'"):
        train_method("zero-dce", tmp_path, None, tmp_path / "r", overrides={"grad_clp": 1.0})
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train_method("zero-dce", tmp_path, None, tmp_path / "r", overrides={"lr": 0})


def test_classical_operators_follow_their_definitions() -> None:
    from skimage import color

    img = torch.rand(3, 40, 48) * 0.5
    assert torch.allclose(Gamma()(img), img.double().sqrt().float(), atol=1e-6)
    for op in (HistEq(), Clahe()):
        out = op(img)
        assert out.shape == img.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
        hsv_in = color.rgb2hsv(img.permute(1, 2, 0).double().numpy())
        hsv_out = color.rgb2hsv(out.permute(1, 2, 0).double().numpy())
        keep = hsv_out[..., 2] > 0.05  # hue and saturation kept (float32 rounding aside)
        np.testing.assert_allclose(hsv_out[..., 1][keep], hsv_in[..., 1][keep], atol=1e-4)
        assert torch.equal(op(img), out)  # deterministic
    v = HistEq()(img).max(0).values.flatten().sort().values  # equalised V: close to uniform on [0, 1]
    assert abs(v.mean().item() - 0.5) < 0.02
    assert Clahe().params() == {"operator": "clahe", "channel": "hsv-value", "clip_limit": 0.01, "kernel_size": None,
                                "nbins": 256}


@pytest.mark.parametrize("name", ["gamma", "hist-eq", "clahe"])
def test_classical_systems_enhance_a_folder(name: str, heldout: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["enhance", "--weights", name, "--input", str(heldout), "--output", str(tmp_path),
                                      "--max-side", "96"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["done"]) == 4 and summary["weights_sha256"] is None and summary["operator"]["operator"] == name
    for p in list_images(heldout):
        assert load_image(tmp_path / f"{p.stem}.png").mean() > downscale(load_image(p), 96).mean() + 0.02


def test_names_and_errors(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["list", "methods"])
    assert out.exit_code == 0, out.output
    kinds = {line.split()[0]: line.split()[1] for line in out.output.splitlines()[1:]}
    assert kinds["zero-dce"] == "trained" and kinds["clahe"] == kinds["gamma"] == "training-free"
    assert kinds["rave"] == "clip-guided" and "Guo et al., CVPR 2020" in out.output and "clip limit 0.01" in out.output
    weights = CliRunner().invoke(cli, ["weights", "list"])
    assert "Li-Chongyi/Zero-DCE@e0f4adc:Zero-DCE_code/snapshots/Epoch99.pth" in weights.output
    with pytest.raises(UnknownNameError, match="did you mean 'clahe'"):
        open_system("clahee")
    train = CliRunner().invoke(cli, ["train", "--method", "gamma", "--backlit", str(tmp_path), "--out", str(tmp_path)])
    assert train.exit_code != 0 and "training-free" in train.output
    train = CliRunner().invoke(cli, ["train", "--method", "rave", "--backlit", str(tmp_path), "--out", str(tmp_path)])
    assert train.exit_code != 0 and "--welllit" in train.output


def test_resuming_a_longer_run_with_fewer_iterations_starts_afresh(tmp_path: Path) -> None:
    """A finished 6-iteration run is no prefix of a 4-iteration one: `--resume` retrains (it once kept the 6)."""
    from methods.train_api import train_method

    data = _dark_images(tmp_path / "data")
    kw = {"overrides": {"crop": 16, "batch_size": 2, "checkpoint_every": 2}, "progress": False}
    train_method("zero-dce", data, None, tmp_path / "short", iters=4, **kw)
    train_method("zero-dce", data, None, tmp_path / "b", iters=6, **kw)
    with pytest.warns(UserWarning, match="6 iterations done, 4 asked; starting afresh"):
        summary = train_method("zero-dce", data, None, tmp_path / "b", iters=4, resume=True, **kw)
    assert summary["status"] == "done"
    short, b = (torch.load(tmp_path / r / "enhancer.pth", weights_only=True) for r in ("short", "b"))
    assert all(torch.equal(short[k], b[k]) for k in short)
    assert (tmp_path / "short" / "train_log.csv").read_bytes() == (tmp_path / "b" / "train_log.csv").read_bytes()
