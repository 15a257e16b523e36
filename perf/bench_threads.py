"""Numerics across machines, by proxy: the embedded training with another thread count.

``python perf/bench_threads.py [--threads 1] [--seed 0]`` after ``dvc repro`` (it reads results/).

Training is bit-exact for one machine kind and thread count (`bench verify`). Another CPU (other
SIMD widths, other BLAS kernels) or a GPU sums in another order; so does another thread count on
this CPU, which is what can be measured here: latent-prompt and RAVE are retrained with
``--threads`` instead of params.yaml's ``threads`` and scored as the pipeline does; the difference
to the committed run is set beside the spread between seeds. Results: perf/results/threads.json.
"""
from __future__ import annotations

import argparse
import hashlib
import tempfile
from pathlib import Path

from _common import ROOT, perf_environment, write_result
from bench_fidelity import COMMITTED, SCORED, TRAINED, committed_means, rerun

from benchmark.params import load_params
from benchmark.results import ENHANCER
from benchmark.system import System


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    params = load_params(ROOT / "params.yaml")
    test = params["data"]["test"][0]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in TRAINED:
            run = Path(tmp) / method
            alt = rerun(method, params, args.seed, run, threads=args.threads)
            base = committed_means(COMMITTED, f"{method}-unpaired", test)
            committed = COMMITTED.train_dir(System.trained(method, "unpaired", args.seed)) / ENHANCER
            rows[method] = {"same_weights": hashlib.sha256((run / ENHANCER).read_bytes()).digest()
                            == hashlib.sha256(committed.read_bytes()).digest(),
                            **{m: {"committed": float(base.loc[str(args.seed), m]), "other_threads": alt[m],
                                   "difference": alt[m] - float(base.loc[str(args.seed), m]),
                                   "seed_sd": float(base[m].std())} for m in SCORED}}
            r = rows[method]
            print(f"{method}: same weights {r['same_weights']}; PSNR {r['psnr']['difference']:+.3f} dB "
                  f"(seed sd {r['psnr']['seed_sd']:.3f}), SSIM {r['ssim']['difference']:+.4f} "
                  f"(seed sd {r['ssim']['seed_sd']:.4f})")
    print(write_result("threads", {"environment": perf_environment(), "threads": args.threads,
                                   "committed_threads": params.get("threads"), "seed": args.seed, "methods": rows}))


if __name__ == "__main__":
    main()
