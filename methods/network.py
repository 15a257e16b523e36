"""The enhancement network shared by CLIP-LIT, latent-prompt and RAVE (methods-spec section 1).

A full-resolution, fully convolutional net that predicts a one-channel illumination map ``L``;
the enhanced image is ``clamp(I / (L + eps), 0, 1)``. 278,790 parameters, ~277.6 K MACs per pixel.
Parameter names match the released checkpoints, so every one loads with ``strict=True``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Padding = Literal["reflect", "zeros"]
EPS = 1e-9
MACS_PER_PIXEL = 277_632  # derived from the layer table; PPM pooled branches excluded


def _conv3x3(cin: int, cout: int, bias: bool, padding: Padding) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1, bias=bias, padding_mode=padding)


class ResidualBlock(nn.Module):
    """Two bias-free 3x3 reflect-padded convs with LeakyReLU(0.2) and an identity skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(channels, channels, False, "reflect")
        self.conv2 = _conv3x3(channels, channels, False, "reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        return F.leaky_relu(y + x, 0.2)


class PyramidPooling(nn.Module):
    """PPM with bins (1, 2, 3, 6), reduction 8, bilinear upsampling (align_corners=True)."""

    def __init__(self, in_dim: int = 32, reduction_dim: int = 8, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.features = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                nn.PReLU(),
            )
            for b in bins
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(in_dim + len(bins) * reduction_dim, in_dim, 3, 1, 1, bias=False),
            nn.PReLU(),
        )

    def pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The small per-bin maps (B x 8 x b x b), before upsampling."""
        return [f(x) for f in self.features]

    def fuse_with(self, x: torch.Tensor, upsampled: list[torch.Tensor]) -> torch.Tensor:
        """Concatenate ``x`` with already-upsampled branch maps and fuse."""
        return self.fuse(torch.cat([x, *upsampled], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        up = [F.interpolate(p, size=size, mode="bilinear", align_corners=True) for p in self.pooled(x)]
        return self.fuse_with(x, up)


class EnhanceNet(nn.Module):
    """Illumination-map predictor (upstream ``UNet_emb_oneBranch_symmetry[_noreflect]``).

    ``padding`` selects the variant of the four plain convs: ``"zeros"`` is what upstream trains,
    ``"reflect"`` what upstream's test scripts run (our inference default).
    """

    def __init__(self, padding: Padding = "reflect") -> None:
        super().__init__()
        if padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' or 'zeros', got {padding!r}")
        self.padding = padding
        self.cond1 = _conv3x3(3, 32, True, padding)
        self.ResidualBlock1 = ResidualBlock(32)
        self.ResidualBlock2 = ResidualBlock(32)
        self.PPM1 = PyramidPooling(32, 8, (1, 2, 3, 6))
        self.condx = _conv3x3(32, 64, True, padding)
        self.ResidualBlock3 = ResidualBlock(64)
        self.ResidualBlock4 = ResidualBlock(64)
        self.condy = _conv3x3(64, 32, True, padding)
        self.ResidualBlock5 = ResidualBlock(32)
        self.ResidualBlock6 = ResidualBlock(32)
        self.cond_add1 = _conv3x3(32, 1, True, padding)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Upstream init: every conv weight ~ N(0, std); biases keep PyTorch defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, std)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Layers before the pyramid pooling (receptive-field radius 5 px)."""
        h = F.leaky_relu(self.cond1(x), 0.2)
        return self.ResidualBlock2(self.ResidualBlock1(h))

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        """Layers after the pyramid pooling, ending in L = ReLU(cond_add1) (radius 11 px)."""
        h = self.condx(h)
        h = self.ResidualBlock4(self.ResidualBlock3(h))
        h = self.condy(h)
        h = self.ResidualBlock6(self.ResidualBlock5(h))
        return F.relu(self.cond_add1(h))

    def illumination(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the one-channel illumination map L >= 0 (B x 1 x H x W)."""
        return self.tail(self.PPM1(self.head(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Enhance ``x`` (B x 3 x H x W in [0, 1]); never NaN, even where L = 0."""
        return apply_illumination(x, self.illumination(x))


def apply_illumination(x: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Retinex division ``clamp(x / (L + eps), 0, 1)`` with the eps of the training code."""
    return torch.clamp(x / (light + EPS), 0.0, 1.0)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


MUST_HOLD = ("an enhancer checkpoint holds the state dict of the 278,790-parameter enhancement network or of the "
             "Zero-DCE baseline (enhancer.pth of bench train, or a released model: bench weights list)")


def entries(n: int) -> str:
    return f"{n} entr{'y' if n == 1 else 'ies'}"


def clean_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """Unwrap common checkpoint containers and strip a DataParallel ``module.`` prefix."""
    for key in ("enhancer", "state_dict", "params"):
        if key in state and isinstance(state[key], dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict (unwrapped, see :func:`clean_state_dict`); errors name the file."""
    from backlit_core.torch_files import CheckpointError, load_tensors

    state = load_tensors(path, MUST_HOLD)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict; {MUST_HOLD}")
    return clean_state_dict(state)


def state_mismatch(net: nn.Module, state: dict) -> str | None:
    """How ``state`` differs from ``net``'s state dict (missing, unexpected, mis-shaped tensors); None if it fits."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)]
    parts = [f"{len(missing)} of its {len(expected)} tensors missing (first: {missing[0]})" if missing else "",
             f"{entries(len(unexpected))} it does not have (first: {unexpected[0]})" if unexpected else "",
             f"{len(shapes)} of another shape (first: {shapes[0]} is {tuple(getattr(state[shapes[0]], 'shape', ()))}, "
             f"the network needs {tuple(expected[shapes[0]].shape)})" if shapes else ""]
    return "; ".join(p for p in parts if p) or None


def load_enhancer(path: str | Path, padding: Padding = "reflect", device: str | torch.device = "cpu") -> EnhanceNet:
    """Build an :class:`EnhanceNet` and load a checkpoint strictly; errors name the file and say what differs."""
    from backlit_core.torch_files import CheckpointError

    state = read_state_dict(path)
    net = EnhanceNet(padding)
    problem = state_mismatch(net, state)
    if problem:
        raise CheckpointError(f"{path}: a state dict of {entries(len(state))}, not the enhancement network's "
                              f"({problem}); {MUST_HOLD}")
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()
