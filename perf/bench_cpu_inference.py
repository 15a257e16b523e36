"""CPU inference benchmark of the enhancer: ms per megapixel and fraction of the measured peak.

``python perf/bench_cpu_inference.py [--size 1024x1024] [--rounds 7]``

Each round times, for every intra-op thread count in ``--threads``, back to back: the
machine's fp32 and bf16 matrix-multiply rate (:class:`_common.CpuPeak`) and one forward of every
engine, so that every ratio compares figures taken under the same load and thread count (this
CPU is shared with other jobs). Warm-up: one call of everything before the first round.
Reported: median, quartiles, min/max over rounds; the fraction of peak is the median over
rounds of (engine rate / peak rate of the same round and threads). Accuracy: each engine's
output on a real backlit photo against the reference fp32 path.
"""
from __future__ import annotations

import argparse
import functools
import math
import statistics
import time
from typing import Any

import torch
from _common import CpuPeak, enhancer_net, environment, sample_photo, summary, timed, write_result

from methods.network import MACS_PER_PIXEL
from methods.tiled_inference import TiledEnhancer

ENGINES = {  # name: (TiledEnhancer keywords, dtype of the peak it is measured against)
    "reference_fp32_eager": ({"reference": True}, torch.float32),
    "fast_fp32": ({}, torch.float32),
    "fast_bf16": ({"precision": "bf16"}, torch.bfloat16),
}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """PSNR in dB for images in [0, 1]; None when identical (JSON has no infinity)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return None if mse == 0 else 10 * math.log10(1.0 / mse)


def parse_args() -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="1024x1024", help="HxW of the timed image")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="1,2", help="comma-separated intra-op thread counts to time")
    ap.add_argument("--tile", type=int, default=None,
                    help="tile of the fast engines (default: TiledEnhancer's CPU default); the eager baseline "
                         "always runs the whole image in one pass")
    ap.add_argument("--accuracy-side", type=int, default=1024, help="longer side of the photo used for the accuracy check")
    return ap.parse_args()


def accuracy_check(engines: dict[str, TiledEnhancer], side: int) -> dict[str, Any]:
    """Each engine's output on a real photo against the reference fp32 path (empty without a photo)."""
    accuracy: dict[str, Any] = {}
    photo = sample_photo(side)
    if photo is not None:
        ref = engines["reference_fp32_eager"](photo)
        for name, eng in engines.items():
            out = eng(photo)
            accuracy[name] = {"max_abs_diff": (out - ref).abs().max().item(), "psnr_db": psnr(out, ref)}
        accuracy["photo_shape"] = list(photo.shape)
    return accuracy


def time_rounds(engines: dict[str, TiledEnhancer], image: torch.Tensor, peak: CpuPeak, thread_counts: list[int],
                rounds: int) -> tuple[dict[tuple, list], dict[tuple, list], float]:
    """Warm up, then per round and thread count sample the peaks and time every engine: (peaks, seconds, wall s)."""
    for eng in engines.values():  # warm-up
        eng(image)
    peaks = {(n, dt): [] for n in thread_counts for dt in (torch.float32, torch.bfloat16)}
    seconds = {(n, name): [] for n in thread_counts for name in engines}
    t0 = time.perf_counter()
    for _ in range(rounds):
        for n in thread_counts:
            torch.set_num_threads(n)
            for dt in (torch.float32, torch.bfloat16):
                peaks[n, dt].append(peak.sample(dt))
            for name, eng in engines.items():
                seconds[n, name].append(timed(functools.partial(eng, image)))
    return peaks, seconds, time.perf_counter() - t0


def engine_results(peaks: dict[tuple, list], seconds: dict[tuple, list], thread_counts: list[int], flops: float,
                   mp: float) -> dict[str, dict]:
    """Per thread count and engine: ms/MP, GFLOP/s, fraction of peak and speed-up over eager (printed too)."""
    results: dict[str, dict] = {}
    for n in thread_counts:
        results[f"threads_{n}"] = per_threads = {}
        for name, (_, dt) in ENGINES.items():
            rates = [flops / s / 1e9 for s in seconds[n, name]]
            fractions = [r / p["peak"] for r, p in zip(rates, peaks[n, dt])]
            per_threads[name] = rec = {
                "ms_per_megapixel": summary([s * 1e3 / mp for s in seconds[n, name]]),
                "gflops": summary(rates),
                "peak_dtype": str(dt).removeprefix("torch."),
                "fraction_of_peak": summary(fractions),
                "speedup_vs_reference_fp32_eager": statistics.median(
                    r / s for r, s in zip(seconds[n, "reference_fp32_eager"], seconds[n, name])),
            }
            print(f"threads={n} {name:22s} {rec['ms_per_megapixel']['median']:8.0f} ms/MP  {rec['gflops']['median']:6.0f} "
                  f"GFLOP/s  {rec['fraction_of_peak']['median']:.2f} of {rec['peak_dtype']} peak  "
                  f"x{rec['speedup_vs_reference_fp32_eager']:.2f} vs eager", flush=True)
    return results


def main() -> None:
    """Time the engines and write ``perf/results/cpu_inference.json``."""
    args = parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    mp = h * w / 1e6
    flops = 2 * MACS_PER_PIXEL * h * w
    net = enhancer_net()
    engines = {name: TiledEnhancer(net, "cpu", tile=max(h, w) if kw.get("reference") else args.tile, **kw)
               for name, (kw, _) in ENGINES.items()}
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(0))
    peak = CpuPeak()
    env_before = environment()
    accuracy = accuracy_check(engines, args.accuracy_side)
    thread_counts = [int(t) for t in args.threads.split(",")]
    peaks, seconds, wall = time_rounds(engines, image, peak, thread_counts, args.rounds)
    results = engine_results(peaks, seconds, thread_counts, flops, mp)
    record = {
        "environment": {"before": env_before, "after_load_average": environment()["load_average"]},
        "method": (f"{args.rounds} rounds after one warm-up call each; a round = fp32 and bf16 GEMM peak samples, "
                   "then one call of every engine (3xHxW float32 CPU tensor in, enhanced float32 CPU tensor out). "
                   "Fraction of peak = median over rounds of engine GFLOP/s over the same round's peak."),
        "image": {"height": h, "width": w, "megapixels": mp, "tile": engines["fast_fp32"].tile, "flops": flops,
                  "macs_per_pixel": MACS_PER_PIXEL},
        "peak_gflops": {f"threads_{n}_{str(dt).removeprefix('torch.')}": {k: summary([p[k] for p in v]) for k in v[0]}
                        for (n, dt), v in peaks.items()},
        "engines": results, "accuracy_vs_reference_fp32": accuracy, "wall_s": wall,
    }
    print(f"wrote {write_result('cpu_inference', record)}")


if __name__ == "__main__":
    main()
