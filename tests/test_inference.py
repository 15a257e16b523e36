"""The fast inference engines against the plain eager reference (methods/tiled_inference.py)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from backlit_core.image_io import list_images, load_image
from benchmark.enhance import downscale
from benchmark.weights import resolve_weights
from methods import tiled_inference
from methods.network import EnhanceNet, load_enhancer
from methods.tiled_inference import TiledEnhancer

TOL = 1e-3


def _net(padding: str = "reflect", seed: int = 0) -> EnhanceNet:
    """Random weights scaled so that L stays positive and the layers are far from trivial."""
    torch.manual_seed(seed)
    net = EnhanceNet(padding).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.05)
        net.cond_add1.bias.fill_(0.6)
    return net


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small images are latency-bound: one thread keeps these tests quick on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def released(reference_dir: Path) -> EnhanceNet:
    return load_enhancer(resolve_weights("rave-unpaired", allow_download=False))


@pytest.fixture(scope="module")
def photos(reference_dir: Path) -> list[torch.Tensor]:
    """The real backlit samples, downscaled to 384 px on the longer side to keep the test short."""
    return [downscale(load_image(p), 384) for p in list_images(reference_dir / "backlit-samples")]


def test_fast_path_matches_reference_on_real_photos(released: EnhanceNet, photos: list[torch.Tensor]) -> None:
    reference = TiledEnhancer(released, "cpu", reference=True)
    fast = TiledEnhancer(released, "cpu")
    fast_tiled = TiledEnhancer(released, "cpu", tile=160)  # two-pass: every photo is larger than the tile
    for img in photos:
        ref = reference(img)
        assert (fast(img) - ref).abs().max() < TOL
        assert (fast_tiled(img) - ref).abs().max() < TOL


def test_bf16_is_within_45_db_of_fp32(released: EnhanceNet, photos: list[torch.Tensor]) -> None:
    fp32, bf16 = TiledEnhancer(released, "cpu"), TiledEnhancer(released, "cpu", precision="bf16")
    for img in photos[:2]:
        assert _psnr(bf16(img), fp32(img)) > 45.0


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_tiled_equals_full_image(padding: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net(padding)
    img = torch.rand(3, 150, 231, generator=torch.Generator().manual_seed(1))
    full = TiledEnhancer(net, "cpu", reference=True)(img)
    assert full.dtype == torch.float32 and full.shape == img.shape and full.device.type == "cpu"
    assert (TiledEnhancer(net, "cpu", tile=64, reference=True)(img) - full).abs().max() < TOL
    assert (TiledEnhancer(net, "cpu")(img) - full).abs().max() < TOL
    for tile in (64, 100):  # tiles of unequal sizes, edges inside and on the border
        assert (TiledEnhancer(net, "cpu", tile=tile)(img) - full).abs().max() < TOL
    monkeypatch.setattr(tiled_inference, "HEAD_CACHE_BYTES", 0)  # pass 2 recomputes the head
    assert (TiledEnhancer(net, "cpu", tile=64)(img) - full).abs().max() < TOL


def test_portable_backend_matches_reference() -> None:
    """The ``torch`` backend (what CUDA runs) on CPU, single pass and tiled."""
    net = _net()
    img = torch.rand(3, 97, 130, generator=torch.Generator().manual_seed(2))
    full = TiledEnhancer(net, "cpu", reference=True)(img)
    for tile in (1024, 48):
        assert (TiledEnhancer(net, "cpu", tile=tile, backend="torch")(img) - full).abs().max() < TOL


def test_triton_backend_in_interpreter(tmp_path: Path) -> None:
    """The Triton kernels, run by Triton's CPU interpreter on a tiny image (it must be set before import)."""
    pytest.importorskip("triton")
    script = textwrap.dedent("""
        import torch
        from methods.tiled_inference import TiledEnhancer
        from methods.network import EnhanceNet
        torch.manual_seed(0)
        net = EnhanceNet().eval()
        with torch.no_grad():
            for p in net.parameters():
                p.normal_(0.0, 0.05)
            net.cond_add1.bias.fill_(0.6)
        img = torch.rand(3, 9, 14)
        ref = TiledEnhancer(net, "cpu", reference=True)(img)
        out = TiledEnhancer(net, "cpu", backend="triton")(img)
        print((out - ref).abs().max().item())
    """)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.strip().splitlines()[-1]) < TOL


def test_options_are_validated() -> None:
    net = _net()
    with pytest.raises(ValueError, match="precision"):
        TiledEnhancer(net, "cpu", precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tile"):
        TiledEnhancer(net, "cpu", tile=16)
    with pytest.raises(ValueError, match="3 x H x W"):
        TiledEnhancer(net, "cpu")(torch.rand(1, 3, 8, 8))


def test_threads_option_is_scoped_to_the_call() -> None:
    before = torch.get_num_threads()
    out = TiledEnhancer(_net(), "cpu", threads=2)(torch.rand(3, 20, 30))
    assert torch.get_num_threads() == before and torch.isfinite(out).all()
