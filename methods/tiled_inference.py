"""Exact, memory-bounded, fast inference with the shared enhancement network.

Two engines compute the same function:

- the reference path (``reference=True``): the plain eager :class:`EnhanceNet` modules;
- the fast path (default): :class:`FusedEnhanceNet`, channels-last, every 3x3 conv with its
  activation or residual add fused, reflect padding done as a zero-padded conv plus an exact
  recomputation of the one-pixel image border, and the pyramid-pooling branches folded into the
  fuse conv as a rank-36 matrix product instead of upsample + concat. On CPU each conv is one
  oneDNN primitive with a post-op; on CUDA it runs on cuDNN under a CUDA graph (or, opt-in, one
  Triton kernel per conv, ``methods/triton_conv.py``).

Images that fit in one tile run in a single pass. Larger ones run in two tiled passes that
reproduce the full-image result: pass 1 computes the head features of every tile (halo wider than
their receptive field) and accumulates the pyramid-pooling statistics (a global operation);
pass 2 runs the tail of every tile with its pooled branches taken from pass 1. The fast path keeps
the head features from pass 1 (32 channels, when under ``HEAD_CACHE_BYTES``) so pass 2 needs a
smaller halo and no recomputation. Either way the output equals the full-image forward up to float
rounding, with working memory set by the tile size.
"""
from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backlit_core.device import resolve_device
from methods.network import EnhanceNet, ResidualBlock, apply_illumination

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
Backend = Literal["auto", "onednn", "triton", "torch"]

HEAD_RADIUS = 5  # cond1 + 2 residual blocks
TAIL_RADIUS = 12  # PPM fuse conv + tail
TOTAL_RADIUS = HEAD_RADIUS + TAIL_RADIUS
HALO = 20  # > TOTAL_RADIUS: tile cores are exact when the head is recomputed
TAIL_HALO = 16  # > TAIL_RADIUS: tile cores are exact when the head comes from the pass-1 cache
# Default tile by device type. CPU: 384 px tiles ran 1.25x faster than 1024 px ones on a 1 MP image
# (1 and 2 threads; 256-512 px measured too; perf/README.md); GPU: large tiles keep kernels busy.
DEFAULT_TILE = {"cpu": 384, "cuda": 2048}
HEAD_CACHE_BYTES = 2 << 30  # keep pass-1 head features up to this size; else recompute them
CUDA_GRAPH_CACHE = 4  # captured CUDA graphs kept (one per input shape)

_CL = torch.channels_last


def resolve_precision(precision: Precision | None, dtype: torch.dtype) -> torch.dtype:
    """The compute dtype: ``precision`` by name when given, else ``dtype``."""
    if precision is None:
        return dtype
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


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


def _grow(t: Tile, halo: int, height: int, width: int) -> Tile:
    return Tile(max(t.y0 - halo, 0), min(t.y1 + halo, height), max(t.x0 - halo, 0), min(t.x1 + halo, width))


def _crop(x: torch.Tensor, t: Tile, within: Tile | None = None) -> torch.Tensor:
    """``x[..., t]``, with ``t`` in image coordinates and ``x`` covering ``within`` (default: all)."""
    oy, ox = (within.y0, within.x0) if within else (0, 0)
    return x[:, :, t.y0 - oy:t.y1 - oy, t.x0 - ox:t.x1 - ox]


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


def _interp_weights_padded(bins: int, length: int, start: int, stop: int, like: torch.Tensor) -> torch.Tensor:
    """Like :func:`_interp_weights` for positions ``start-1 .. stop``, zero outside the image."""
    w = torch.zeros(stop - start + 2, bins, dtype=like.dtype, device=like.device)
    lo, hi = max(start - 1, 0), min(stop + 1, length)
    w[lo - (start - 1):hi - (start - 1)] = _interp_weights(bins, length, lo, hi, like)
    return w


# ------------------------------------------------------------------------------------ fast path
@dataclass(frozen=True)
class _Conv:
    """A prepared 3x3 conv: weights in the backend's layout and dtype, padding kind, fused activation.

    For a conv with a residual the activation applies after the add.
    """

    weight: torch.Tensor  # channels-last (C_out x C_in x 3 x 3), or the Triton packing (9 x C_in' x C_out')
    bias: torch.Tensor | None  # compute dtype; float32 for Triton
    out_channels: int
    reflect: bool
    act: Literal["none", "leaky_relu", "relu"] = "none"
    slope: float = 0.2


@dataclass(frozen=True)
class Edges:
    """Which sides of a tile lie on the image border (there reflect padding must be exact)."""

    top: bool = True
    bottom: bool = True
    left: bool = True
    right: bool = True


def choose_backend(device: torch.device, dtype: torch.dtype) -> Backend:
    """oneDNN on CPU (fp32, or bf16 where supported), else plain torch (cuDNN on CUDA).

    Triton is opt-in: on an H100 it was the fastest fp32-exact engine but no faster than cuDNN in
    fp16/bf16, and it compiles for minutes on first use (perf/README.md).
    """
    onednn_dtype = dtype == torch.float32 or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return "onednn" if device.type == "cpu" and torch.backends.mkldnn.is_available() and onednn_dtype else "torch"


class FusedEnhanceNet:
    """A fused, channels-last re-expression of an :class:`EnhanceNet` (same function, same weights).

    Backends: ``onednn`` (CPU) runs conv + activation (or + residual add) as one primitive, with
    zero padding; where the original pads by reflection, the border row/column is recomputed from
    a reflect-padded 3-pixel strip, which is exact. ``torch`` (cuDNN / ATen convs + the same
    border fix) is the portable one; in fp32 on CUDA it follows PyTorch's TF32 settings.
    ``triton`` (CUDA) runs one fused kernel per conv, reflecting in its loads; fp32 uses 3xTF32
    products (fp32-accurate).
    """

    def __init__(self, net: EnhanceNet, device: torch.device, dtype: torch.dtype, backend: Backend = "auto") -> None:
        self.device, self.dtype = device, dtype
        self.backend = choose_backend(device, dtype) if backend == "auto" else backend
        outer_reflect = net.padding == "reflect"

        def prep(conv: nn.Conv2d, reflect: bool, act: str = "none", slope: float = 0.2,
                 weight: torch.Tensor | None = None) -> _Conv:
            w = (conv.weight if weight is None else weight).detach().to(device)
            if self.backend == "triton":
                from methods.triton_conv import pack_weight

                b = None if conv.bias is None else conv.bias.detach().to(device, torch.float32)
                return _Conv(pack_weight(w, dtype), b, w.shape[0], reflect, act, slope)
            b = None if conv.bias is None else conv.bias.detach().to(device, dtype)
            return _Conv(w.to(dtype).contiguous(memory_format=_CL), b, w.shape[0], reflect, act, slope)

        def block(rb: ResidualBlock) -> tuple[_Conv, _Conv]:
            return prep(rb.conv1, True, "leaky_relu"), prep(rb.conv2, True, "leaky_relu")  # conv2: after the add

        self.cond1 = prep(net.cond1, outer_reflect, "leaky_relu")
        self.head_blocks = [block(net.ResidualBlock1), block(net.ResidualBlock2)]
        ppm = net.PPM1
        self.branches = [(f[0].output_size, f[1], f[2]) for f in ppm.features]
        fuse_w = ppm.fuse[0].weight.detach()
        width = net.cond1.out_channels
        slope = float(ppm.fuse[1].weight.detach().reshape(-1)[0])  # PReLU, one shared slope
        self.fuse = prep(ppm.fuse[0], False, "leaky_relu", slope, weight=fuse_w[:, :width])
        self.fuse_branch_w = fuse_w[:, width:].float().to(device)  # C_out x (bins*8) x 3 x 3
        self.condx = prep(net.condx, outer_reflect)
        self.mid_blocks = [block(net.ResidualBlock3), block(net.ResidualBlock4)]
        self.condy = prep(net.condy, outer_reflect)
        self.tail_blocks = [block(net.ResidualBlock5), block(net.ResidualBlock6)]
        self.cond_add1 = prep(net.cond_add1, outer_reflect, "relu")

    # -- convs
    def _raw(self, x: torch.Tensor, c: _Conv, pad: int, residual: torch.Tensor | None = None,
             act: bool = True) -> torch.Tensor:
        """Zero-padded conv + bias, then (when given) ``+ residual``, else the activation if ``act``."""
        attr = c.act if act and residual is None else "none"
        if self.backend == "onednn":
            ops = torch.ops.mkldnn._convolution_pointwise
            if residual is not None:
                return ops.binary(x, residual, c.weight, c.bias, [pad, pad], [1, 1], [1, 1], 1, "add", None, None, [], None)
            return ops(x, c.weight, c.bias, [pad, pad], [1, 1], [1, 1], 1, attr, [c.slope] if attr == "leaky_relu" else [], "")
        y = F.conv2d(x, c.weight, c.bias, padding=pad).contiguous(memory_format=_CL)
        return y.add_(residual) if residual is not None else _activate_(y, attr, c.slope)

    def conv(self, x: torch.Tensor, c: _Conv, edges: Edges, residual: torch.Tensor | None = None) -> torch.Tensor:
        """One 3x3 conv and its activation; ``residual`` is added before the activation."""
        if self.backend == "triton":
            from methods.triton_conv import conv3x3

            return conv3x3(x, c.weight, c.out_channels, c.bias, reflect=c.reflect, act=c.act, slope=c.slope,
                           residual=residual)
        y = self._raw(x, c, 1, residual)
        if c.reflect:
            self._fix_border(x, y, c, edges, residual)
        return y if residual is None else _activate_(y, c.act, c.slope)

    def _fix_border(self, x: torch.Tensor, y: torch.Tensor, c: _Conv, edges: Edges,
                    residual: torch.Tensor | None) -> None:
        """Overwrite the image-border pixels of ``y`` with their reflect-padded values (few, batched ops)."""
        h, w = x.shape[-2:]
        border = _border_plan(h, w, edges, x.device)
        if border is None:
            return
        x_flat = _pixels(x)
        values = []
        for gather in border.strips:  # (n, 3, len) pixel indices of reflect-padded 3-wide strips
            n, a, b = gather.shape
            strip = x_flat.index_select(0, gather.reshape(-1)).view(n, a, b, -1).permute(0, 3, 1, 2)
            out = self._raw(strip.contiguous(memory_format=_CL), c, 0, act=False)
            values.append(_pixels(out))
        vals = torch.cat(values).index_select(0, border.keep)
        if residual is not None:
            vals = vals + _pixels(residual).index_select(0, border.dst)
        else:
            vals = _activate_(vals, c.act, c.slope)
        _pixels(y).index_copy_(0, border.dst, vals.to(y.dtype))

    def _block(self, x: torch.Tensor, convs: tuple[_Conv, _Conv], edges: Edges) -> torch.Tensor:
        return self.conv(self.conv(x, convs[0], edges), convs[1], edges, residual=x)

    # -- network pieces
    def head(self, x: torch.Tensor, edges: Edges) -> torch.Tensor:
        """cond1 + residual blocks 1-2 on a (1 x 3 x h x w) image tile; channels-last features."""
        if self.backend != "triton":  # the Triton kernel reads any layout and dtype
            x = x.to(self.dtype).contiguous(memory_format=_CL)
        h = self.conv(x, self.cond1, edges)
        for convs in self.head_blocks:
            h = self._block(h, convs, edges)
        return h

    def pool_sums(self, feat: torch.Tensor, core: Tile, height: int, width: int) -> list[torch.Tensor]:
        """Per-bin float64 sums (C x b x b) of ``feat`` (covering ``core`` exactly) over the adaptive-pool bins.

        Rows are summed by one matrix product in the compute dtype (fp32 accumulation; its rounding
        errors are unbiased and average out over the columns), columns in float32.
        """
        f = feat[0].permute(1, 2, 0)  # h x w x C (a view for channels-last input)
        h, w, c = f.shape
        ry = torch.cat([_bin_membership(height, b, core.y0, core.y1, f) for b, _, _ in self.branches])
        cols = torch.matmul(ry, f.reshape(h, w * c)).float().view(-1, w, c)  # (sum of bins) x w x C
        sums, start = [], 0
        for b, _, _ in self.branches:
            rx = _bin_membership(width, b, core.x0, core.x1, cols)
            sums.append(torch.einsum("jx,ixc->cij", rx, cols[start:start + b]).double())
            start += b
        return sums

    def branch_maps(self, sums: list[torch.Tensor], height: int, width: int) -> list[torch.Tensor]:
        """The small pooled branch maps (1 x 8 x b x b, float32): mean, 1x1 conv, PReLU."""
        maps = []
        for (b, conv1x1, prelu), s in zip(self.branches, sums):
            rows = _bin_membership(height, b, 0, height, s).sum(1)  # on the device: CUDA-graph safe
            mean = (s / torch.outer(rows, _bin_membership(width, b, 0, width, s).sum(1)))[None]
            mean = mean.to(conv1x1.weight.dtype)
            maps.append(prelu(conv1x1(mean)).float())
        return maps

    def branch_term(self, maps: list[torch.Tensor], t: Tile, height: int, width: int) -> torch.Tensor:
        """The fuse conv applied to the upsampled branches over tile ``t``, as a channels-last tensor.

        The branches are bilinear upsamplings of tiny maps, so their zero-padded 3x3 conv is
        ``A @ G`` with ``A`` (rows x 3*sum(b)) the shifted row-interpolation weights and ``G``
        (3*sum(b) x cols*C) the column-interpolated, channel-mixed maps: exact, ~8x cheaper.
        """
        wmat = self.fuse_branch_w
        cout = wmat.shape[0]
        a_parts, g_parts = [], []
        offset = 0
        for (b, _, _), p in zip(self.branches, maps):
            nch = p.shape[1]
            wk = wmat[:, offset:offset + nch]  # C_out x 8 x 3 x 3
            offset += nch
            wy = _interp_weights_padded(b, height, t.y0, t.y1, p)  # (rows+2) x b
            wx = _interp_weights_padded(b, width, t.x0, t.x1, p)  # (cols+2) x b
            v = torch.einsum("ocuv,cij->uvijo", wk, p[0])  # dy x dx x b x b x C_out
            g = sum(torch.einsum("xj,uijo->uixo", wx[dx:dx + t.x1 - t.x0], v[:, dx]) for dx in range(3))
            rows = t.y1 - t.y0
            a_parts.append(torch.stack([wy[dy:dy + rows] for dy in range(3)], dim=1))  # rows x dy x b
            g_parts.append(g)  # dy x b x cols x C_out
        a = torch.cat(a_parts, dim=2).flatten(1)  # rows x (3*sum b)
        g = torch.cat(g_parts, dim=1).flatten(0, 1).flatten(1)  # (3*sum b) x (cols*C_out)
        term = torch.matmul(a.to(self.dtype), g.to(self.dtype))
        return term.view(1, t.y1 - t.y0, t.x1 - t.x0, cout).permute(0, 3, 1, 2)

    def tail(self, feat: torch.Tensor, term: torch.Tensor, edges: Edges) -> torch.Tensor:
        """PPM fuse conv (+ branch term, PReLU), then condx ... cond_add1: the map L (1 x 1 x h x w)."""
        h = self.conv(self.conv(feat, self.fuse, edges, residual=term), self.condx, edges)
        for convs in self.mid_blocks:
            h = self._block(h, convs, edges)
        h = self.conv(h, self.condy, edges)
        for convs in self.tail_blocks:
            h = self._block(h, convs, edges)
        return self.conv(h, self.cond_add1, edges)

    def illumination(self, x: torch.Tensor) -> torch.Tensor:
        """Single-pass forward of a whole (1 x 3 x H x W) image: the map L in the compute dtype."""
        height, width = x.shape[-2:]
        whole, edges = Tile(0, height, 0, width), Edges()
        feat = self.head(x, edges)
        maps = self.branch_maps(self.pool_sums(feat, whole, height, width), height, width)
        return self.tail(feat, self.branch_term(maps, whole, height, width), edges)


def _activate_(y: torch.Tensor, act: str, slope: float) -> torch.Tensor:
    if act == "leaky_relu":
        return F.leaky_relu_(y, slope)
    if act == "relu":
        return F.relu_(y)
    return y


def _pixels(t: torch.Tensor) -> torch.Tensor:
    """A channels-last (N x C x H x W) tensor as an (N*H*W) x C view of its pixels."""
    return t.permute(0, 2, 3, 1).view(-1, t.shape[1])


@dataclass(frozen=True)
class _BorderPlan:
    strips: list[torch.Tensor]  # per strip batch, (n x 3 x len) or (n x len x 3) flat pixel indices
    keep: torch.Tensor  # which strip outputs are written (corners once)
    dst: torch.Tensor  # where they go (flat pixel indices)


_BORDER_PLANS: dict[tuple, _BorderPlan | None] = {}
_BORDER_PLANS_MAX = 256


def _border_plan(h: int, w: int, edges: Edges, device: torch.device) -> _BorderPlan | None:
    """Gather/scatter indices for the reflect-padded border strips of an h x w map (cached)."""
    key = (h, w, edges, str(device))
    if key not in _BORDER_PLANS:
        if len(_BORDER_PLANS) >= _BORDER_PLANS_MAX:
            _BORDER_PLANS.clear()
        _BORDER_PLANS[key] = _make_border_plan(h, w, edges, device)
    return _BORDER_PLANS[key]


def _make_border_plan(h: int, w: int, edges: Edges, device: torch.device) -> _BorderPlan | None:
    cols = torch.tensor([1, *range(w), w - 2])  # reflect-padded positions
    rows = torch.tensor([1, *range(h), h - 2])
    horizontal = [r for r, need in (([1, 0, 1], edges.top), ([h - 2, h - 1, h - 2], edges.bottom)) if need]
    vertical = [c for c, need in (([1, 0, 1], edges.left), ([w - 2, w - 1, w - 2], edges.right)) if need]
    strips, keep, dst, n_out = [], [], [], 0
    if horizontal:  # n x 3 x (w+2) strips -> n x w outputs
        strips.append(torch.tensor(horizontal)[:, :, None] * w + cols[None, None, :])
        for _, r0, _ in horizontal:
            keep.append(torch.arange(w) + n_out)
            dst.append(r0 * w + torch.arange(w))
            n_out += w
    if vertical:  # n x (h+2) x 3 strips -> n x h outputs; the corners came from the rows
        strips.append(rows[None, :, None] * w + torch.tensor(vertical)[:, None, :])
        span = torch.arange(1 if edges.top else 0, h - 1 if edges.bottom else h)
        for _, c0, _ in vertical:
            keep.append(span + n_out)
            dst.append(span * w + c0)
            n_out += h
    if not strips:
        return None
    return _BorderPlan([s.to(device) for s in strips], torch.cat(keep).to(device), torch.cat(dst).to(device))


def _edges(t: Tile, height: int, width: int) -> Edges:
    return Edges(t.y0 == 0, t.y1 == height, t.x0 == 0, t.x1 == width)


@contextlib.contextmanager
def _intra_op_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op CPU threads (None: unchanged), then restore."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None:
            torch.set_num_threads(before)


def _compiled_forward(net: EnhanceNet, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """:func:`torch.compile` of a channels-last copy of the plain modules in ``dtype``."""
    module = copy.deepcopy(net).to(dtype).to(memory_format=_CL)
    compiled = torch.compile(module.illumination, dynamic=False)
    return lambda x: compiled(x.to(dtype).contiguous(memory_format=_CL))


class _GraphedForward:
    """CUDA-graph replay of a fixed-shape forward (one captured graph per input shape)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        if key not in self.graphs:
            if len(self.graphs) >= CUDA_GRAPH_CACHE:
                self.graphs.pop(next(iter(self.graphs)))
            static_in = x.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(2):  # warm-up: cuDNN autotuning and workspace allocation happen here
                    self.fn(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.fn(static_in)
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()


# ------------------------------------------------------------------------------------ the engine
class TiledEnhancer:
    """Runs an :class:`EnhanceNet` on one image of any size, exactly, in bounded memory.

    ``precision`` names the compute dtype and overrides ``dtype``: ``"fp32"`` matches the
    reference to ~1e-6 (on CUDA ~3e-4 while PyTorch's default ``cudnn.allow_tf32`` is on);
    ``"bf16"``/``"fp16"`` trade ~1e-2/~1e-3 for speed (see perf/README.md). ``reference=True`` runs the plain eager modules (the baseline the
    fast path is checked against). ``backend`` forces a :class:`FusedEnhanceNet` backend.
    ``tile`` (the largest side run in one pass) defaults to :data:`DEFAULT_TILE` of the device.
    ``cuda_graphs`` replays single-pass CUDA forwards from captured graphs. ``compile`` runs
    single-pass images through :func:`torch.compile` of the plain modules in channels-last
    (the fastest GPU path measured; tens of seconds to compile per image size). ``threads``
    sets the CPU intra-op threads during a call (default: torch's setting); on a CPU shared with
    other jobs, one thread per free core avoids stalls at every parallel region.
    """

    def __init__(self, net: EnhanceNet, device: str | torch.device = "auto", tile: int | None = None,
                 dtype: torch.dtype = torch.float32, *, precision: Precision | None = None,
                 reference: bool = False, backend: Backend = "auto", cuda_graphs: bool = True,
                 compile: bool = False, threads: int | None = None) -> None:
        self.device = resolve_device(device)
        tile = tile or DEFAULT_TILE.get(self.device.type, 1024)
        if tile < 2 * HALO:
            raise ValueError(f"tile must be at least {2 * HALO} pixels, got {tile}")
        self.dtype = resolve_precision(precision, dtype)
        self.net = (net.to(self.device, self.dtype) if reference else net.to(self.device)).eval()
        self.tile = tile
        self.threads = threads
        self.fused = None if reference else FusedEnhanceNet(self.net, self.device, self.dtype, backend)
        forward = self.fused.illumination if self.fused else self.net.illumination
        if compile:
            forward = _compiled_forward(self.net, self.dtype)
        if cuda_graphs and self.device.type == "cuda" and not reference:
            forward = _GraphedForward(forward)
        self._single_pass = forward

    @torch.inference_mode()
    def illumination(self, x: torch.Tensor) -> torch.Tensor:
        """The map L (1 x 1 x H x W, compute dtype, on the device) of a (1 x 3 x H x W) device tensor."""
        _, _, h, w = x.shape
        if h <= self.tile and w <= self.tile:
            return self._single_pass(x if self.fused else x.to(self.dtype))
        if self.fused is None:
            return self._reference_tiled(x.to(self.dtype))
        return self._fused_tiled(x)

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Enhance a 3 x H x W tensor in [0, 1]; returns a float32 CPU tensor of the same shape."""
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected a 3 x H x W image, got shape {tuple(image.shape)}")
        if min(image.shape[-2:]) < 2:
            raise ValueError(f"image of {image.shape[-1]}x{image.shape[-2]} pixels is too small: the network's "
                             "reflect padding needs at least 2x2")
        with _intra_op_threads(self.threads):
            x = image.to(self.device, torch.float32)[None]
            light = self.illumination(x)
            return apply_illumination(x, light.float())[0].cpu()

    # -- fast two-pass tiling
    def _fused_tiled(self, x: torch.Tensor) -> torch.Tensor:
        net = self.fused
        _, _, h, w = x.shape
        channels = net.cond1.out_channels
        cache_bytes = channels * h * w * torch.finfo(self.dtype).bits // 8
        cache = (torch.empty((1, channels, h, w), device=x.device, dtype=self.dtype, memory_format=_CL)
                 if cache_bytes <= HEAD_CACHE_BYTES else None)
        sums: list[torch.Tensor] | None = None
        for t in iter_tiles(h, w, self.tile):
            outer = _grow(t, HEAD_RADIUS, h, w)
            core = _crop(net.head(_crop(x, outer), _edges(outer, h, w)), t, outer)
            part = net.pool_sums(core, t, h, w)
            sums = part if sums is None else [s + p for s, p in zip(sums, part)]
            if cache is not None:
                _crop(cache, t).copy_(core)
        maps = net.branch_maps(sums, h, w)
        light = torch.empty((1, 1, h, w), device=x.device, dtype=self.dtype)
        for t in iter_tiles(h, w, self.tile):
            if cache is not None:
                outer = _grow(t, TAIL_HALO, h, w)
                feat = _crop(cache, outer).contiguous(memory_format=_CL)
            else:
                outer = _grow(t, HALO, h, w)
                feat = net.head(_crop(x, outer), _edges(outer, h, w))
            tile_light = net.tail(feat, net.branch_term(maps, outer, h, w), _edges(outer, h, w))
            _crop(light, t).copy_(_crop(tile_light, t, outer))
        return light

    # -- reference two-pass tiling (plain eager modules)
    def _reference_pooled(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Pass 1: exact adaptive-average-pool maps of the head features, then 1x1 conv + PReLU."""
        _, _, h, w = x.shape
        ppm = self.net.PPM1
        bins = [f[0].output_size for f in ppm.features]
        sums: list[torch.Tensor | None] = [None] * len(bins)
        for t in iter_tiles(h, w, self.tile):
            outer = _grow(t, HEAD_RADIUS, h, w)
            core = _crop(self.net.head(_crop(x, outer)), t, outer)[0].double()
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

    def _reference_tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        pooled = self._reference_pooled(x)
        light = torch.empty((1, 1, h, w), device=x.device, dtype=x.dtype)
        for t in iter_tiles(h, w, self.tile):
            outer = _grow(t, HALO, h, w)
            up = []
            for p in pooled:
                b = p.shape[-1]
                wy = _interp_weights(b, h, outer.y0, outer.y1, p)
                wx = _interp_weights(b, w, outer.x0, outer.x1, p)
                up.append(torch.einsum("yi,bcij,xj->bcyx", wy, p, wx))
            feat = self.net.PPM1.fuse_with(self.net.head(_crop(x, outer)), up)
            _crop(light, t).copy_(_crop(self.net.tail(feat), t, outer))
        return light
