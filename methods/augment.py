"""Batched augmentation of square images (methods-spec 3.2 and 3.4), on tensors.

Per sample: horizontal flip (p 0.5), vertical flip (p 0.5), transpose (p 0.5), zoom per axis
(p 0.3; 0.5-1.5 for the prompt stages, 0.7-1.3 for the enhancer), rotation U(-90, 90) degrees
(p 0.3), reflected borders. Zoom and rotation share one bilinear resampling. Parameters are drawn
from a given generator, so a batch's augmentation is a pure function of its seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ZOOM_PROMPT = (0.5, 1.5)
ZOOM_ENHANCER = (0.7, 1.3)


@dataclass
class AugmentParams:
    hflip: torch.Tensor  # B bool
    vflip: torch.Tensor  # B bool
    transpose: torch.Tensor  # B bool
    zoom: torch.Tensor  # B x 2 (x, y); 1 = unchanged
    angle: torch.Tensor  # B radians; 0 = unchanged


def sample_params(n: int, gen: torch.Generator, zoom_range: tuple[float, float], p_flip: float = 0.5,
                  p_zoom: float = 0.3, p_rotate: float = 0.3, max_degrees: float = 90.0) -> AugmentParams:
    u = torch.rand(n, 5, generator=gen)
    lo, hi = zoom_range
    zoom = lo + (hi - lo) * torch.rand(n, 2, generator=gen)
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(max_degrees)
    return AugmentParams(
        hflip=u[:, 0] < p_flip,
        vflip=u[:, 1] < p_flip,
        transpose=u[:, 2] < p_flip,
        zoom=torch.where((u[:, 3] < p_zoom)[:, None], zoom, torch.ones_like(zoom)),
        angle=torch.where(u[:, 4] < p_rotate, angle, torch.zeros_like(angle)),
    )


def augment(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    """Apply ``p`` to a B x C x S x S batch (``p`` may be for B / k samples, repeated k times)."""
    reps = x.shape[0] // p.hflip.shape[0]
    dev = x.device

    def per_sample(t: torch.Tensor) -> torch.Tensor:
        return t.repeat(reps, *([1] * (t.dim() - 1))).to(dev)

    hflip, vflip, transpose = per_sample(p.hflip), per_sample(p.vflip), per_sample(p.transpose)
    x = torch.where(hflip.view(-1, 1, 1, 1), x.flip(-1), x)
    x = torch.where(vflip.view(-1, 1, 1, 1), x.flip(-2), x)
    x = torch.where(transpose.view(-1, 1, 1, 1), x.transpose(-1, -2), x)
    zoom, angle = per_sample(p.zoom), per_sample(p.angle)
    warp = (zoom != 1).any(1) | (angle != 0)
    if warp.any():
        x = x.clone()
        x[warp] = _zoom_rotate(x[warp], zoom[warp], angle[warp])
    return x


def _zoom_rotate(x: torch.Tensor, zoom: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Magnify by ``zoom`` (per axis) and rotate by ``angle`` about the centre; reflect borders."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    # output -> input coordinates: R(-angle) then divide by the zoom
    theta = torch.stack([
        torch.stack([cos / zoom[:, 0], sin / zoom[:, 0], torch.zeros_like(cos)], 1),
        torch.stack([-sin / zoom[:, 1], cos / zoom[:, 1], torch.zeros_like(cos)], 1),
    ], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
