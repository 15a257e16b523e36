"""GPU inference benchmark of the enhancer: ms per 1920x1080 frame by engine and precision.

Run on a CUDA machine: ``python perf/bench_gpu_inference.py [--out DIR]``. Every variant is
timed with CUDA events (warm-up runs, then ``--repeats`` timed frames; median and quartiles),
its output checked against the fp32 CPU reference path on a real photo, and set against the
device's measured fp16/bf16 matmul rate and copy bandwidth, measured in the same run. Results
are written after every step to ``<out>/gpu_inference.json``, so a run cut short keeps what it did.
"""
from __future__ import annotations

import argparse
import copy
import functools
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import RESULTS, enhancer_net, environment, sample_photo, summary, timed, write_result

from methods.network import MACS_PER_PIXEL, EnhanceNet, apply_illumination
from methods.tiled_inference import TiledEnhancer, _GraphedForward

CL = torch.channels_last


def cuda_times(fn: Callable[[], Any], warmup: int, repeats: int) -> list[float]:
    """Per-call milliseconds from CUDA events (each call bracketed; the GPU is idle between)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out


def call_times(fn: Callable[[], Any], warmup: int, repeats: int, device: torch.device) -> list[float]:
    """Per-call milliseconds: :func:`cuda_times` on CUDA, wall time elsewhere (CPU calls are synchronous)."""
    if device.type == "cuda":
        return cuda_times(fn, warmup, repeats)
    for _ in range(warmup):
        fn()
    return [timed(fn) * 1e3 for _ in range(repeats)]


def peaks() -> dict[str, float]:
    """Measured matmul rates (TFLOP/s, random data) and device-to-device copy bandwidth (GB/s)."""
    res = {}
    g = torch.Generator(device="cuda").manual_seed(0)
    n = 8192
    for name, dt, tf32 in (("fp16", torch.float16, False), ("bf16", torch.bfloat16, False),
                           ("fp32", torch.float32, False), ("tf32", torch.float32, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", generator=g, dtype=dt)
        b = torch.randn(n, n, device="cuda", generator=g, dtype=dt)
        ms = summary(cuda_times(functools.partial(torch.mm, a, b), 3, 10))["median"]
        res[f"matmul_{name}_tflops"] = 2 * n ** 3 / ms / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    src = torch.randn(2 ** 29, device="cuda", generator=g)  # 2 GiB
    dst = torch.empty_like(src)
    ms = summary(cuda_times(lambda: dst.copy_(src), 3, 10))["median"]
    res["copy_gbps"] = 2 * src.numel() * 4 / ms / 1e6
    return res


def conv_traffic_bytes(net: EnhanceNet, pixels: int, itemsize: int) -> int:
    """Activation bytes if every 3x3 conv reads its input and writes its output once."""
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    return sum((m.in_channels + m.out_channels) * itemsize * pixels for m in convs)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """PSNR in dB for images in [0, 1]; None when identical (JSON has no infinity)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return None if mse == 0 else 10 * math.log10(1.0 / mse)


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--photo", type=Path, default=None, help="image for the accuracy check (default: a reference sample)")
    ap.add_argument("--weights", type=Path, default=None, help="enhancer checkpoint (default: released RAVE unpaired)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no new variant after this many seconds")
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: all)")
    return ap.parse_args()


@dataclass
class Frame:
    """The enhancer, the timed frame (CPU ``img``, GPU ``x``) and the fp32 CPU reference output on it."""
    net: EnhanceNet
    img: torch.Tensor
    x: torch.Tensor
    ref_out: torch.Tensor


def new_record(args: argparse.Namespace, h: int, w: int, flops: float) -> dict[str, Any]:
    """The result record before any measurement."""
    return {"environment": environment(), "frame": {"height": h, "width": w, "megapixels": h * w / 1e6,
            "flops": flops, "macs_per_pixel": MACS_PER_PIXEL}, "method": (
        f"CUDA events around each call; {args.warmup} warm-up calls, {args.repeats} timed; median and quartiles. "
        "Device-resident input (1x3xHxW float32) to illumination map L, unless the variant says end-to-end."),
        "variants": {}, "errors": {}}


def prepare_frame(args: argparse.Namespace, record: dict[str, Any], device: str = "cuda") -> Frame:
    """Load the enhancer and the photo, and run the fp32 CPU reference on it (its seconds into ``record``);
    the timed frame goes to ``device``."""
    h, w = args.height, args.width
    net = enhancer_net(args.weights)
    photo = sample_photo(path=args.photo)
    if photo is None:
        photo = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    img = F.interpolate(photo[None], size=(h, w), mode="area")[0].clamp(0, 1)
    t0 = time.perf_counter()
    ref_out = TiledEnhancer(copy.deepcopy(net), "cpu", tile=4096, reference=True)(img)
    record["cpu_reference_s"] = time.perf_counter() - t0
    return Frame(net, img, img[None].to(device), ref_out)


def run_variant(fr: Frame, record: dict[str, Any], args: argparse.Namespace, save: Callable[[], Any], name: str,
                make: Callable[[], Callable[[torch.Tensor], torch.Tensor]], itemsize: int, **info: Any) -> None:
    """Build, time and check one variant into ``record`` (its traceback into ``errors`` if it fails); save.

    On a CPU frame (``fr.x``) the times are wall times and the GPU fields (peak fraction, memory) are None."""
    h, w, x = args.height, args.width, fr.x
    flops = record["frame"]["flops"]
    cuda = x.device.type == "cuda"
    peak = record.get("peaks")
    try:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t_build = time.perf_counter()
        fn = make()
        light = fn(x)  # first call: compilation / graph capture
        if cuda:
            torch.cuda.synchronize()
        first_s = time.perf_counter() - t_build
        out = apply_illumination(x, light.float())[0].cpu()
        ms = summary(call_times(lambda: fn(x), args.warmup, args.repeats, x.device))
        med = ms["median"]
        record["variants"][name] = {
            **info, "ms_per_frame": ms, "ms_per_megapixel": med / (h * w / 1e6), "tflops": flops / med / 1e9,
            "fraction_of_fp16_matmul_peak": flops / med / 1e9 / peak["matmul_fp16_tflops"] if peak else None,
            "conv_traffic_floor_ms": conv_traffic_bytes(fr.net, h * w, itemsize) / (peak["copy_gbps"] * 1e6)
            if peak else None, "first_call_s": first_s,
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30 if cuda else None,
            "max_abs_diff_vs_cpu_fp32_reference": (out - fr.ref_out).abs().max().item(),
            "psnr_vs_cpu_fp32_reference_db": psnr(out, fr.ref_out),
        }
        print(f"{name}: {med:.3f} ms/frame, max|diff| {record['variants'][name]['max_abs_diff_vs_cpu_fp32_reference']:.2e}", flush=True)
    except Exception:  # noqa: BLE001 - recorded, the other variants still run
        record["errors"][name] = traceback.format_exc(limit=4)
        print(f"{name}: FAILED\n{record['errors'][name]}", flush=True)
    save()


def engine(net: EnhanceNet, precision: str, reference: bool = False, graphs: bool = True, compile: bool = False,
           tile: int = 4096, backend: str = "auto", device: torch.device | str = "cuda",
           ) -> Callable[[], Callable[[torch.Tensor], torch.Tensor]]:
    """A builder of a :class:`TiledEnhancer`'s illumination function on ``device``."""
    return lambda: TiledEnhancer(copy.deepcopy(net), device, tile=tile, precision=precision, reference=reference,
                                 backend=backend, cuda_graphs=graphs, compile=compile).illumination


def tf32(on: bool, make: Callable) -> Callable:
    """``make`` with cuDNN TF32 switched ``on`` first."""
    def build():
        torch.backends.cudnn.allow_tf32 = on
        return make()
    return build


def compiled_reference(net: EnhanceNet, x: torch.Tensor, dtype: torch.dtype, mode: str) -> Callable:
    """A builder of the plain modules under torch.compile(``mode``) in ``dtype`` channels-last, CUDA-graphed."""
    def build():
        m = copy.deepcopy(net).cuda().to(dtype).to(memory_format=CL)
        fn = torch.compile(m.illumination, mode=mode, dynamic=False)
        with torch.inference_mode():
            fn(x.to(dtype).contiguous(memory_format=CL))
        graphed = _GraphedForward(fn)
        return lambda t: graphed(t.to(dtype).contiguous(memory_format=CL))
    return build


def catalogue(net: EnhanceNet, x: torch.Tensor) -> list[tuple[str, Callable, int, str]]:
    """The variants on ``x``'s device: name, builder, activation bytes per element, description."""
    eng = functools.partial(engine, net, device=x.device)
    return [
        ("reference_fp32_eager", eng("fp32", reference=True), 4, "plain eager modules, NCHW, no TF32"),
        ("reference_fp32_tf32_eager", tf32(True, eng("fp32", reference=True)), 4, "plain eager modules, TF32 convs"),
        ("reference_fp16_eager", eng("fp16", reference=True), 2, "plain eager modules in fp16, NCHW"),
        ("torch_fp32_graph", eng("fp32", backend="torch"), 4, "fused, cuDNN convs + border fix, CUDA graph, no TF32"),
        ("torch_tf32_graph", tf32(True, eng("fp32", backend="torch")), 4, "fused, cuDNN TF32 convs, CUDA graph"),
        ("torch_fp16_eager", eng("fp16", backend="torch", graphs=False), 2, "fused, cuDNN convs + border fix"),
        ("torch_fp16_graph", eng("fp16", backend="torch"), 2, "fused, cuDNN convs + border fix, CUDA graph"),
        ("torch_bf16_graph", eng("bf16", backend="torch"), 2, "fused, cuDNN convs + border fix, CUDA graph"),
        ("triton_fp32_graph", eng("fp32", backend="triton"), 4, "fused Triton convs, 3xTF32 products (fp32-accurate), CUDA graph"),
        ("triton_fp16_eager", eng("fp16", backend="triton", graphs=False), 2, "fused Triton convs, no graph"),
        ("triton_fp16_graph", eng("fp16", backend="triton"), 2, "fused Triton convs, CUDA graph"),
        ("triton_bf16_graph", eng("bf16", backend="triton"), 2, "fused Triton convs, CUDA graph"),
        ("compiled_fp16_graph", eng("fp16", compile=True), 2,
         "TiledEnhancer(compile=True): torch.compile(default) of the plain modules, fp16 channels-last, CUDA graph"),
        ("compiled_bf16_graph", eng("bf16", compile=True), 2,
         "TiledEnhancer(compile=True): torch.compile(default) of the plain modules, bf16 channels-last, CUDA graph"),
        ("compiled_fp16_autotune_graph", compiled_reference(net, x, torch.float16, "max-autotune-no-cudagraphs"), 2,
         "torch.compile(max-autotune-no-cudagraphs) of the plain modules, fp16 channels-last, CUDA graph"),
    ]


def run_catalogue(fr: Frame, record: dict[str, Any], args: argparse.Namespace, save: Callable[[], Any],
                  t_start: float) -> None:
    """Run the wanted variants (cuDNN benchmark mode) until the time budget is spent."""
    variants = catalogue(fr.net, fr.x)
    wanted = set(args.variants.split(",")) if args.variants else None
    torch.backends.cudnn.benchmark = True
    record["cudnn_benchmark"] = True
    with torch.inference_mode():
        for name, make, itemsize, info in variants:
            if wanted is not None and name not in wanted:
                continue
            if time.perf_counter() - t_start > args.budget_s:
                record["errors"][name] = "skipped: time budget"
                continue
            run_variant(fr, record, args, save, name, make, itemsize, engine=info)
            torch.backends.cudnn.allow_tf32 = False


def end_to_end(net: EnhanceNet, img: torch.Tensor) -> dict[str, dict]:
    """Wall ms of CPU float32 image in to CPU float32 enhanced image out (transfers included)."""
    e2e = {}
    for name, kwargs in (("fp16_tile4096", {"precision": "fp16", "tile": 4096}),
                         ("fp32_tile1024_two_pass_defaults", {"precision": "fp32", "tile": 1024})):
        eng = TiledEnhancer(copy.deepcopy(net), "cuda", **kwargs)
        for _ in range(3):
            eng(img)
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            eng(img)
            times.append((time.perf_counter() - t0) * 1e3)
        e2e[name] = summary(times)
    return e2e


def scaling(net: EnhanceNet, t_start: float, budget_s: float) -> list[dict[str, Any]]:
    """The fp16 graphed engine's time and memory at growing frame sizes, while the budget (+60 s) lasts."""
    out = []
    eng = TiledEnhancer(copy.deepcopy(net), "cuda", tile=4096, precision="fp16")
    for mp in (0.25, 1.0, 4.0, 12.0):
        if time.perf_counter() - t_start > budget_s + 60:
            break
        side_h = round(math.sqrt(mp * 1e6 * 3 / 4))
        side_w = round(side_h * 4 / 3)
        frame = torch.rand(1, 3, side_h, side_w, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        ms = summary(cuda_times(functools.partial(eng.illumination, frame), 3, 10))
        out.append({"height": side_h, "width": side_w, "megapixels": side_h * side_w / 1e6, "ms": ms,
                    "ms_per_megapixel": ms["median"] / (side_h * side_w / 1e6),
                    "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30})
        del frame
        eng._single_pass.graphs.clear()
    return out


def main() -> None:
    """Run every measurement, saving ``<out>/gpu_inference.json`` after each step."""
    args = parse_args()
    t_start = time.perf_counter()
    h, w = args.height, args.width
    flops = 2 * MACS_PER_PIXEL * h * w
    torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 unless a variant says tf32
    record = new_record(args, h, w, flops)
    save = functools.partial(write_result, "gpu_inference", record, args.out)

    record["peaks"] = peaks()
    save()
    fr = prepare_frame(args, record)
    run_catalogue(fr, record, args, save, t_start)
    with torch.inference_mode():
        record["end_to_end_ms"] = end_to_end(fr.net, fr.img)
        save()
        record["scaling_fp16_graph"] = scaling(fr.net, t_start, args.budget_s)
    record["wall_s"] = time.perf_counter() - t_start
    save()


if __name__ == "__main__":
    main()
