"""The shared enhancement network against the nine released checkpoints."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from backlit_core.image_io import list_images, load_image
from benchmark.weights import RELEASED, resolve_weights
from methods.network import MACS_PER_PIXEL, EnhanceNet, count_parameters, load_enhancer


def _small(img: torch.Tensor, side: int = 256) -> torch.Tensor:
    h, w = img.shape[-2:]
    s = side / max(h, w)
    return F.interpolate(img[None], size=(round(h * s), round(w * s)), mode="area")[0]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a - b) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def test_parameter_count_and_macs() -> None:
    net = EnhanceNet()
    assert count_parameters(net) == 278_790
    assert len(net.state_dict()) == 30
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert sum(m.in_channels * m.out_channels * 9 for m in convs) == MACS_PER_PIXEL


SHARED = [w.name for w in RELEASED.values() if w.network == "enhance-net"]  # the nine; not zero-dce


def test_all_released_checkpoints_load_strictly(reference_dir) -> None:
    for name in SHARED:
        net = load_enhancer(resolve_weights(name, allow_download=False))
        assert count_parameters(net) == 278_790, name


@pytest.fixture(scope="module")
def backlit_photos(reference_dir) -> list[torch.Tensor]:
    return [_small(load_image(p)) for p in list_images(reference_dir / "backlit-samples")]


@pytest.mark.parametrize("name", [n for n in SHARED if n != "clip-lit-init"])
def test_released_models_brighten_real_backlit_photos(name: str, backlit_photos) -> None:
    net = load_enhancer(resolve_weights(name, allow_download=False))
    with torch.no_grad():
        for img in backlit_photos:
            out = net(img[None])[0]
            assert torch.isfinite(out).all()
            assert out.mean() > img.mean() + 0.01, f"{name} did not brighten (in {img.mean():.3f}, out {out.mean():.3f})"


def test_init_checkpoint_is_near_identity(backlit_photos) -> None:
    net = load_enhancer(resolve_weights("clip-lit-init", allow_download=False))
    with torch.no_grad():
        for img in backlit_photos:
            assert psnr(net(img[None])[0], img) > 30.0


# Pinned outputs on one real photo (256 px on the long side): PSNR(output, input) in dB and the output's
# channel means, from the plain modules on a CPU (float32, 1 and 2 threads agree to all digits shown).
PINNED = {"rave-unpaired": (22.532227, (0.5448518, 0.5573747, 0.5429378)),
          "clip-lit": (17.071070, (0.6293831, 0.6465310, 0.6291829))}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_output_on_a_real_photo(name: str, reference_dir: Path) -> None:
    x = _small(load_image(reference_dir / "backlit-samples" / "110_51093502029_o.jpg"))[None]
    assert x.shape == (1, 3, 192, 256)
    with torch.no_grad():
        out = load_enhancer(resolve_weights(name, allow_download=False))(x)
    want_psnr, want_means = PINNED[name]
    assert psnr(out, x) == pytest.approx(want_psnr, abs=1e-4)
    assert out.mean(dim=(0, 2, 3)).tolist() == pytest.approx(want_means, abs=1e-5)


def test_black_input_gives_no_nan() -> None:
    net = EnhanceNet().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()  # L = ReLU(0) = 0 everywhere: the 0 / 0 case of upstream's test script
        out = net(torch.zeros(1, 3, 16, 16))
    assert torch.isfinite(out).all() and out.max() == 0


def test_padding_variants_differ_only_near_borders(reference_dir) -> None:
    ckpt = resolve_weights("rave-unpaired", allow_download=False)
    x = _small(load_image(reference_dir / "backlit-samples" / "110_51093502029_o.jpg"), 128)[None]
    with torch.no_grad():
        a = load_enhancer(ckpt, padding="reflect")(x)
        b = load_enhancer(ckpt, padding="zeros")(x)
    diff = (a - b).abs()
    assert diff[..., 16:-16, 16:-16].mean() < diff.mean()
    assert diff.max() > 0.01
