"""Zero-DCE (Guo et al., CVPR 2020): a trained, non-CLIP baseline (baselines-spec section 1).

Seven 3x3 convolutions (32 channels, zero padding, skip concatenations) predict 24 channels =
8 curve maps ``A_n`` (3 channels each, tanh); the image is updated 8 times by the quadratic
light-enhancement curve ``x <- x + A_n (x^2 - x)``. 79,416 parameters; parameter names match the
released checkpoint (``e_conv1`` ... ``e_conv7``), which loads with ``strict=True``.

Training (:mod:`methods.zero_dce_train`, registered as :class:`methods.plugins.zero_dce.ZeroDCE`)
needs no reference images: four losses on the input and output only (:func:`zero_dce_loss`).
Inference (:class:`ZeroDCEEnhancer`) runs at full resolution; the net has no global operation, so
large images run in tiles with a halo wider than its receptive field (7 px), which is exact.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

N_CURVES = 8
WIDTH = 32
PARAMETERS = 79_416
MACS_PER_PIXEL = 79_200  # the seven convs: 3*32*9 + 3*32*32*9 + 2*64*32*9 + 64*24*9
HALO = 8  # > receptive-field radius 7: tile cores are exact
EXPOSURE_LEVEL = 0.6  # L_exp target
EXPOSURE_PATCH = 16
SPATIAL_POOL = 4
# Loss = W_TV * L_tv(A) + W_SPA * L_spa + W_COL * L_col + W_EXP * L_exp (upstream training weights)
W_TV, W_SPA, W_COL, W_EXP = 200.0, 1.0, 5.0, 10.0


class ZeroDCENet(nn.Module):
    """The curve-estimation network (upstream ``enhance_net_nopool``)."""

    def __init__(self) -> None:
        super().__init__()

        def conv(cin: int, cout: int) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, 3, 1, 1, bias=True)

        self.e_conv1 = conv(3, WIDTH)
        self.e_conv2 = conv(WIDTH, WIDTH)
        self.e_conv3 = conv(WIDTH, WIDTH)
        self.e_conv4 = conv(WIDTH, WIDTH)
        self.e_conv5 = conv(2 * WIDTH, WIDTH)
        self.e_conv6 = conv(2 * WIDTH, WIDTH)
        self.e_conv7 = conv(2 * WIDTH, 3 * N_CURVES)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Upstream init: conv weights ~ N(0, std); biases keep PyTorch's defaults."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, std)

    def curves(self, x: torch.Tensor) -> torch.Tensor:
        """The concatenated curve maps A (B x 24 x H x W, in [-1, 1])."""
        x1 = F.relu(self.e_conv1(x))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(result after 4 curve updates, final result after 8, A)`` for ``x`` (B x 3 x H x W in [0, 1])."""
        a = self.curves(x)
        half = x
        for n, a_n in enumerate(torch.split(a, 3, dim=1)):
            x = apply_curve(x, a_n)
            if n == N_CURVES // 2 - 1:
                half = x
        return half, x, a


def apply_curve(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """One light-enhancement curve ``x + a (x^2 - x)``; maps [0, 1] into [0, 1] for ``a`` in [-1, 1]."""
    return x + a * (x * x - x)


@torch.no_grad()
def flush_denormals_(net: nn.Module) -> nn.Module:
    """Set parameters below float32's smallest normal (1.2e-38) to 0, in place.

    Weight decay leaves many such weights (19,266 of the released checkpoint's 79,416); the
    function changes by ~1e-38, while CPUs compute with denormals ~30x slower.
    """
    for p in net.parameters():
        p.masked_fill_(p.abs() < torch.finfo(torch.float32).tiny, 0.0)
    return net


def is_zero_dce_state(state: dict) -> bool:
    return "e_conv1.weight" in state


def load_zero_dce(path: str | Path, device: str | torch.device = "cpu") -> ZeroDCENet:
    """Build a :class:`ZeroDCENet` and load a state dict strictly; errors name the file."""
    from backlit_core.torch_files import CheckpointError
    from methods.network import MUST_HOLD, entries, read_state_dict, state_mismatch

    state = read_state_dict(path)
    net = ZeroDCENet()
    problem = state_mismatch(net, state)
    if problem:
        raise CheckpointError(f"{path}: a state dict of {entries(len(state))}, not the {PARAMETERS:,}-parameter "
                              f"Zero-DCE network's ({problem}); {MUST_HOLD}")
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()


# ------------------------------------------------------------------------------------ losses
def exposure_loss(out: torch.Tensor) -> torch.Tensor:
    """L_exp: mean over 16x16 patches of (patch mean of the channel-mean image - 0.6)^2."""
    patches = F.avg_pool2d(out.mean(1, keepdim=True), EXPOSURE_PATCH)
    return ((patches - EXPOSURE_LEVEL) ** 2).mean()


def colour_loss(out: torch.Tensor) -> torch.Tensor:
    """L_col: per image sqrt((m_r-m_g)^4 + (m_r-m_b)^4 + (m_g-m_b)^4), averaged over the batch.

    The square root is taken with a zero gradient where its argument is exactly 0 (a grey
    image), where the plain root's gradient is NaN; elsewhere it is the same function.
    """
    r, g, b = out.mean((2, 3)).unbind(1)
    u = (r - g) ** 4 + (r - b) ** 4 + (g - b) ** 4
    positive = u > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, u, torch.ones_like(u))), torch.zeros_like(u)).mean()


_NEIGHBOURS = torch.tensor([  # centre minus left, right, up, down neighbour
    [[0, 0, 0], [-1, 1, 0], [0, 0, 0]],
    [[0, 0, 0], [0, 1, -1], [0, 0, 0]],
    [[0, -1, 0], [0, 1, 0], [0, 0, 0]],
    [[0, 0, 0], [0, 1, 0], [0, -1, 0]],
], dtype=torch.float32)[:, None]


def spatial_consistency_loss(out: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
    """L_spa: on 4x4-average-pooled channel means, the squared change of each of the four
    neighbour differences (zero padding), summed over directions, averaged."""
    kernel = _NEIGHBOURS.to(out.device, out.dtype)

    def diffs(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.avg_pool2d(x.mean(1, keepdim=True), SPATIAL_POOL), kernel, padding=1)

    return ((diffs(inp) - diffs(out)) ** 2).sum(1).mean()


def illumination_smoothness_loss(a: torch.Tensor) -> torch.Tensor:
    """L_tv(A): 2 (sum dy^2 / ((H-1) W) + sum dx^2 / (H (W-1))) / batch, over all curve channels."""
    b, _, h, w = a.shape
    dy = ((a[:, :, 1:] - a[:, :, :-1]) ** 2).sum() / ((h - 1) * w)
    dx = ((a[:, :, :, 1:] - a[:, :, :, :-1]) ** 2).sum() / (h * (w - 1))
    return 2 * (dy + dx) / b


def zero_dce_loss(inp: torch.Tensor, out: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted training loss and its unweighted terms (``tv``, ``spa``, ``col``, ``exp``)."""
    terms = {"tv": illumination_smoothness_loss(a), "spa": spatial_consistency_loss(out, inp),
             "col": colour_loss(out), "exp": exposure_loss(out)}
    loss = W_TV * terms["tv"] + W_SPA * terms["spa"] + W_COL * terms["col"] + W_EXP * terms["exp"]
    return loss, {k: v.item() for k, v in terms.items()}


# --------------------------------------------------------------------------------- inference
class ZeroDCEEnhancer:
    """Full-resolution Zero-DCE on one image (the common enhancer interface, see methods/enhancer_api.py).

    Images up to ``tile`` pixels a side run in one pass; larger ones in tiles with an 8-px halo
    (exact: the net is local). ``precision`` sets the conv dtype; the curves run in float32.
    The output is the final (8-update) result, clamped to [0, 1] against float rounding only.
    Runs a copy of ``net`` with denormal weights set to 0 (:func:`flush_denormals_`).
    """

    parameters: ClassVar[int] = PARAMETERS
    macs_per_pixel: ClassVar[int] = MACS_PER_PIXEL

    def __init__(self, net: ZeroDCENet, device: str | torch.device = "auto", tile: int | None = None,
                 precision: str = "fp32") -> None:
        from backlit_core.device import resolve_device
        from methods.tiled_inference import DEFAULT_TILE, resolve_precision

        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, torch.float32)
        self.tile = tile or DEFAULT_TILE.get(self.device.type, 1024)
        if self.tile < 2 * HALO:
            raise ValueError(f"tile must be at least {2 * HALO} pixels, got {self.tile}")
        self.net = flush_denormals_(copy.deepcopy(net)).to(self.device, self.dtype).eval()

    def _enhance(self, x: torch.Tensor) -> torch.Tensor:
        a = self.net.curves(x.to(self.dtype)).float()
        for a_n in torch.split(a, 3, dim=1):
            x = apply_curve(x, a_n)
        return x

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance a 3 x H x W tensor in [0, 1]; returns a float32 CPU tensor of the same shape."""
        from methods.tiled_inference import _crop, _grow, iter_tiles

        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        x = image.to(self.device, torch.float32)[None]
        _, _, h, w = x.shape
        if h <= self.tile and w <= self.tile:
            return self._enhance(x).clamp(0, 1)[0].cpu()
        out = torch.empty_like(x)
        for t in iter_tiles(h, w, self.tile):
            outer = _grow(t, HALO, h, w)
            _crop(out, t).copy_(_crop(self._enhance(_crop(x, outer)), t, outer))
        return out.clamp(0, 1)[0].cpu()
