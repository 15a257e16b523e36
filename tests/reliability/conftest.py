"""Fixtures of the reliability suite (helpers live in ``rel_helpers.py``)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from backlit_core.image_io import save_png
from methods.network import EnhanceNet


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Embedding cache, weights cache, torch hub and data root in temporary folders."""
    base = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKLIT_BENCH_CACHE", str(base / "cache"))
        mp.setenv("BACKLIT_BENCH_WEIGHTS", str(base / "weights"))
        mp.setenv("BACKLIT_BENCH_DATA", str(base / "data"))
        mp.setenv("TORCH_HOME", str(base / "torch-home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A brightening enhancer (L around 0.6) saved as a state dict."""
    torch.manual_seed(0)
    net = EnhanceNet()
    with torch.no_grad():
        net.cond_add1.bias.fill_(0.6)
    path = tmp_path_factory.mktemp("weights") / "enhancer.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four dark and four bright 32 px images for tiny training runs."""
    root = tmp_path_factory.mktemp("train")
    g = torch.Generator().manual_seed(0)
    for kind, scale in (("backlit", 0.25), ("welllit", 0.9)):
        for i in range(4):
            img = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(32, 32), mode="bilinear")[0]
            save_png(img * scale, root / kind / f"{i}.png")
    return {"backlit": root / "backlit", "welllit": root / "welllit"}
