"""Training-step benchmark: seconds per iteration of every method, where a step's time goes, and its FLOP rate.

``python perf/bench_training.py [--schedule quick] [--iters N] [--device cpu] [--no-flops]``

Runs :func:`methods.train_api.train_method` for each method on the training dataset named in
params.yaml (the ``prepare`` stage must have run: ``dvc repro prepare``), with the encoders, threads
and first seed of params.yaml, into a temporary directory (the DVC outputs under results/train are
not touched). Per method it reports the wall seconds per iteration overall and by phase, and on CPU
where an enhancer step's time goes (``enhancer_step_time_share`` of the run's train_timing.json:
batch preparation, the forward passes of the enhancer, guidance and identity encoders, loss,
backward, optimiser step, other; the trainer times these on CPU only: CUDA work is asynchronous).
FLOP rate: the run is repeated under ``torch.utils.flop_counter.FlopCounterMode`` (the same
iterations: training is deterministic), and its FLOPs over the timed run's training seconds are
compared with the machine's fp32 peak at the same thread count, measured as in
bench_cpu_inference.py (:class:`_common.CpuPeak`, sampled before and after each timed run).
Results: perf/results/training.json.
GPU: ``--device cuda --schedule paper --iters 200`` times the paper settings (batch 8, 512 px).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import ROOT, CpuPeak, perf_environment, write_result

from benchmark.params import load_params
from methods.train_api import train_method


def parse_args(params: dict) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=",".join(params["methods"]), help="comma-separated method names")
    ap.add_argument("--regime", default="unpaired", choices=["unpaired", "paired"])
    ap.add_argument("--schedule", default="quick", choices=["quick", "paper"])
    ap.add_argument("--iters", type=int, default=None, help="iteration budget per method (default: the schedule's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=(params.get("seeds") or [0])[0], help="default: params' first seed")
    ap.add_argument("--threads", type=int, default=params.get("threads") or None,
                    help="CPU intra-op threads (default: params `threads`)")
    ap.add_argument("--no-flops", dest="flops", action="store_false", help="skip the FLOP-counting rerun")
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "data" / params["data"]["train"] / "train")
    return ap.parse_args()


def flop_rate(total_flops: float, train_s: float, peaks: list[float]) -> dict[str, Any]:
    """Achieved GFLOP/s of a run and its fraction of the median measured fp32 peak."""
    gflops = total_flops / train_s / 1e9
    peak = statistics.median(peaks)
    return {"total_gflop": round(total_flops / 1e9, 1), "gflops": round(gflops, 2), "peak_fp32_gflops": round(peak, 1),
            "peak_samples": [round(p, 1) for p in peaks], "fraction_of_peak": round(gflops / peak, 4)}


def main() -> None:
    params = load_params(ROOT / "params.yaml")
    args = parse_args(params)
    if args.threads:
        torch.set_num_threads(args.threads)
    backlit, welllit = args.data / "backlit", args.data / f"welllit-{args.regime}"
    if not backlit.is_dir() or not welllit.is_dir():
        raise SystemExit(f"{args.data}: training data not found; run `dvc repro prepare` first")
    record = {"environment": perf_environment(), "settings": {
        "schedule": args.schedule, "iters": args.iters, "device": args.device, "regime": args.regime, "seed": args.seed,
        "threads": args.threads, "encoders": params["encoders"],
        "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data)},
        "methods": {}}
    peak = CpuPeak((torch.float32,)) if args.flops and args.device == "cpu" else None
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for method in args.methods.split(","):
            kwargs = {"encoder": params["encoders"]["guidance"], "identity_encoder": params["encoders"]["identity"],
                      "schedule": args.schedule, "iters": args.iters, "seed": args.seed, "device": args.device,
                      "threads": args.threads, "fidelity": params.get("fidelity") or None,
                      "overrides": (params.get("train") or {}).get(method) or {}, "progress": False}
            peaks = [peak.sample(torch.float32)["peak"]] if peak else []
            t0 = time.perf_counter()
            summary = train_method(method, backlit, welllit, Path(tmp) / method, **kwargs)
            wall = time.perf_counter() - t0
            peaks += [peak.sample(torch.float32)["peak"]] if peak else []
            rec = {"status": summary.get("status"), "reason": summary.get("reason"), "process_wall_s": round(wall, 2)}
            if summary.get("status") == "done":
                timing = json.loads((Path(tmp) / method / "train_timing.json").read_text())
                iters = summary["iterations"]["total"]
                rec.update({
                    "iterations": summary["iterations"], "train_wall_s": summary["wall_s"],
                    "s_per_iter": summary["wall_s"] / iters if iters else None,
                    "s_per_iter_by_phase": timing["s_per_iter"],
                    "enhancer_step_time_share": timing.get("enhancer_step_time_share"),
                    "enhancer_steps_share_of_wall": timing.get("enhancer_steps_share_of_wall"),
                    "peak_rss_mb": timing.get("peak_rss_mb"), "peak_cuda_mb": timing.get("peak_cuda_mb"),
                })
                if peak:
                    from torch.utils.flop_counter import FlopCounterMode

                    with FlopCounterMode(display=False) as counter:
                        train_method(method, backlit, welllit, Path(tmp) / f"{method}-flops", **kwargs)
                    rec["flops"] = flop_rate(counter.get_total_flops(), summary["wall_s"], peaks)
            record["methods"][method] = rec
            rate = rec.get("flops") or {}
            print(f"{method}: {rec['status']} {rec.get('s_per_iter') or rec.get('reason')}"
                  + (f" s/iter, {rate['gflops']} GFLOP/s = {rate['fraction_of_peak']:.2f} of the fp32 peak" if rate else ""),
                  flush=True)
            write_result("training", record)
    record["after_load_average"] = perf_environment()["load_average"]
    print(f"wrote {write_result('training', record)}")


if __name__ == "__main__":
    main()
