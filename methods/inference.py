"""Exact, memory-bounded inference with the shared enhancement network.

Images that fit in one tile run in a single forward pass. Larger ones run in two tiled passes
that reproduce the full-image result: pass 1 accumulates the pyramid-pooling statistics (a global
operation) from tiles of the head features; pass 2 runs every tile with a halo wider than the
network's receptive field, taking the pooled branches from pass 1. The output equals the
full-image forward up to float rounding, with memory set by the tile size, not the image size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from methods.network import EnhanceNet, apply_illumination

HEAD_RADIUS = 5  # cond1 + 2 residual blocks
TOTAL_RADIUS = 17  # head + PPM fuse conv + tail
HALO = 20  # > TOTAL_RADIUS: tile cores are exact


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; errors clearly when CUDA is asked for but absent."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return dev


@dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int


def iter_tiles(height: int, width: int, tile: int) -> Iterator[Tile]:
    """Non-overlapping core tiles covering the image, in row-major order."""
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield Tile(y0, min(y0 + tile, height), x0, min(x0 + tile, width))


def _bin_membership(length: int, bins: int, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
    """(bins x (stop-start)) 0/1 matrix: row i marks positions inside adaptive-pool bin i."""
    pos = torch.arange(start, stop, device=like.device)
    rows = []
    for i in range(bins):
        lo, hi = (i * length) // bins, math.ceil((i + 1) * length / bins)
        rows.append((pos >= lo) & (pos < hi))
    return torch.stack(rows).to(like.dtype)


def _bin_sizes(length: int, bins: int) -> torch.Tensor:
    return torch.tensor([math.ceil((i + 1) * length / bins) - (i * length) // bins for i in range(bins)], dtype=torch.float64)


def _interp_weights(bins: int, length: int, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
    """((stop-start) x bins) weights of align_corners=True linear upsampling from ``bins`` to ``length``."""
    eye = torch.eye(bins, dtype=torch.float32, device=like.device)[None]
    w = F.interpolate(eye, size=length, mode="linear", align_corners=True)[0]  # bins x length
    return w[:, start:stop].t().to(like.dtype)


class TiledEnhancer:
    """Runs an :class:`EnhanceNet` on one image of any size, exactly, in bounded memory."""

    def __init__(self, net: EnhanceNet, device: str | torch.device = "auto", tile: int = 1024,
                 dtype: torch.dtype = torch.float32) -> None:
        if tile < 2 * HALO:
            raise ValueError(f"tile must be at least {2 * HALO} pixels, got {tile}")
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.tile = tile
        self.dtype = dtype

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance a 3 x H x W tensor in [0, 1]; returns a float32 CPU tensor of the same shape."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        x = image.to(self.device, self.dtype)[None]
        _, _, h, w = x.shape
        if h <= self.tile and w <= self.tile:
            light = self.net.illumination(x)
        else:
            light = self._tiled_illumination(x)
        return apply_illumination(x.float(), light.float())[0].cpu()

    def _padded(self, x: torch.Tensor, t: Tile, halo: int) -> tuple[torch.Tensor, Tile]:
        _, _, h, w = x.shape
        outer = Tile(max(t.y0 - halo, 0), min(t.y1 + halo, h), max(t.x0 - halo, 0), min(t.x1 + halo, w))
        return x[:, :, outer.y0:outer.y1, outer.x0:outer.x1], outer

    def _pooled_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pass 1: exact adaptive-average-pool maps of the head features, then 1x1 conv + PReLU."""
        _, _, h, w = x.shape
        ppm = self.net.PPM1
        bins = [f[0].output_size for f in ppm.features]
        sums = [None] * len(bins)
        for t in iter_tiles(h, w, self.tile):
            patch, outer = self._padded(x, t, HEAD_RADIUS)
            feat = self.net.head(patch)
            core = feat[0, :, t.y0 - outer.y0:t.y1 - outer.y0, t.x0 - outer.x0:t.x1 - outer.x0].double()
            for k, b in enumerate(bins):
                ry = _bin_membership(h, b, t.y0, t.y1, core)
                rx = _bin_membership(w, b, t.x0, t.x1, core)
                part = torch.einsum("iy,cyx,jx->cij", ry, core, rx)
                sums[k] = part if sums[k] is None else sums[k] + part
        pooled = []
        for k, b in enumerate(bins):
            area = torch.outer(_bin_sizes(h, b), _bin_sizes(w, b)).to(sums[k].device)
            mean = (sums[k] / area)[None].to(x.dtype)
            branch = ppm.features[k]
            pooled.append(branch[2](branch[1](mean)))
        return pooled

    def _tiled_illumination(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        pooled = self._pooled_branches(x)
        light = torch.empty((1, 1, h, w), device=x.device, dtype=x.dtype)
        for t in iter_tiles(h, w, self.tile):
            patch, outer = self._padded(x, t, HALO)
            up = []
            for p in pooled:
                b = p.shape[-1]
                wy = _interp_weights(b, h, outer.y0, outer.y1, p)
                wx = _interp_weights(b, w, outer.x0, outer.x1, p)
                up.append(torch.einsum("yi,bcij,xj->bcyx", wy, p, wx))
            feat = self.net.PPM1.fuse_with(self.net.head(patch), up)
            tile_light = self.net.tail(feat)
            light[:, :, t.y0:t.y1, t.x0:t.x1] = tile_light[:, :, t.y0 - outer.y0:t.y1 - outer.y0, t.x0 - outer.x0:t.x1 - outer.x0]
        return light
