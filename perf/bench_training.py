"""Training-step benchmark: seconds per iteration of every method, and where a step's time goes.

``python perf/bench_training.py [--schedule quick] [--iters N] [--device cpu]``

Runs :func:`methods.train_api.train_method` for each method on the training dataset named in
params.yaml (the ``prepare`` stage must have run: ``dvc repro prepare``), with the encoders of
params.yaml, into a temporary directory (the DVC outputs under results/train are not touched).
Per method it reports the wall seconds per iteration overall and by phase (from the run's
train_log.csv via train_summary.json), and on CPU the share of enhancer steps spent in the
enhancer, the guidance encoder and the identity encoder (the trainer times these on CPU only:
CUDA work is asynchronous). Results: perf/results/training.json.
GPU: ``--device cuda --schedule paper --iters 200`` times the paper settings (batch 8, 512 px).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import ROOT, environment, write_result

from benchmark.params import load_params
from methods.train_api import train_method


def main() -> None:
    params = load_params(ROOT / "params.yaml")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=",".join(params["methods"]), help="comma-separated method names")
    ap.add_argument("--regime", default="unpaired", choices=["unpaired", "paired"])
    ap.add_argument("--schedule", default="quick", choices=["quick", "paper"])
    ap.add_argument("--iters", type=int, default=None, help="iteration budget per method (default: the schedule's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "data" / params["data"]["train"] / "train")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backlit, welllit = args.data / "backlit", args.data / f"welllit-{args.regime}"
    if not backlit.is_dir() or not welllit.is_dir():
        raise SystemExit(f"{args.data}: training data not found; run `dvc repro prepare` first")
    record = {"environment": environment(), "settings": {
        "schedule": args.schedule, "iters": args.iters, "device": args.device, "regime": args.regime,
        "encoders": params["encoders"], "data": str(args.data.relative_to(ROOT) if args.data.is_relative_to(ROOT) else args.data)},
        "methods": {}}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for method in args.methods.split(","):
            t0 = time.perf_counter()
            summary = train_method(method, backlit, welllit, Path(tmp) / method, encoder=params["encoders"]["guidance"],
                                   identity_encoder=params["encoders"]["identity"], schedule=args.schedule,
                                   iters=args.iters, seed=params["seed"], device=args.device,
                                   overrides=(params.get("train") or {}).get(method) or {}, progress=False)
            wall = time.perf_counter() - t0
            rec = {"status": summary.get("status"), "reason": summary.get("reason"), "process_wall_s": round(wall, 2)}
            if summary.get("status") == "done":
                iters = summary["iterations"]["total"]
                rec.update({
                    "iterations": summary["iterations"], "train_wall_s": summary["wall_s"],
                    "s_per_iter": summary["wall_s"] / iters if iters else None,
                    "s_per_iter_by_phase": summary["s_per_iter"],
                    "enhancer_step_time_share": summary.get("enhancer_step_time_share"),
                    "peak_rss_mb": summary.get("peak_rss_mb"), "peak_cuda_mb": summary.get("peak_cuda_mb"),
                })
            record["methods"][method] = rec
            print(f"{method}: {rec['status']} {rec.get('s_per_iter') or rec.get('reason')}", flush=True)
            write_result("training", record)
    record["after_load_average"] = environment()["load_average"]
    print(f"wrote {write_result('training', record)}")


if __name__ == "__main__":
    main()
