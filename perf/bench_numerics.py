"""Cost of portable CPU numerics: training s/iter per method, enhancement ms/MP and scoring s/image,
``native`` against ``portable`` (params.yaml ``numerics``; backlit_core/numerics.py).

``python perf/bench_numerics.py [--rounds 3]`` after ``bench run-stage prepare --dataset synthetic-backlit``
-> perf/results/numerics.json

The numerics are chosen when torch loads, so every sample is a fresh process. Rounds interleave
the two modes (native first in even rounds, portable first in odd ones), so a change of load on a
shared machine hits both alike; the figures are the per-round ratios portable / native and their
median. One sample: each trained method of params.yaml for a few iterations of every phase (the
quick schedule's crops, batches and encoders; the median step time per phase), the fast CPU
enhancer on a 512 x 512 image (median of 5 after a warm-up) and the metrics of params.yaml on one
test pair (median of 3 after a warm-up), all at params.yaml's thread count. The projected training
time of the embedded run is the quick schedule's iterations per phase times these step times, for
every seed.

What one machine can and cannot show: on an AVX2-only CPU (an AMD EPYC here) ``portable`` runs
the same ATen and oneDNN kernels as ``native`` and differs only in MKL's code path, so its cost
here is MKL's ``COMPATIBLE`` branch; on an AVX-512 Xeon it also gives up AVX-512 in ATen and
oneDNN, a cost that can only be measured there (run this script on that machine). Bit-identity
across CPU kinds is checked with ``perf/trace_numerics.py check`` and settled by
``bench verify --strict`` on a machine of another kind (README, "Across machines").
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODES = ("native", "portable")
SHORT_PHASES = {"ce_iters": 3, "warmup_iters": 3, "enhancer_iters": 4, "prompt_iters": 3, "rounds": 2}
ZERO_DCE_ITERS = 8
QUICK_ITERS = {  # iterations per phase of one quick-schedule run (methods/schedule.py, methods/zero_dce_train.py)
    "latent-prompt": {"ce_init": 40, "warmup": 20, "enhance": 100, "prompt": 10},
    "rave": {"warmup": 20, "enhance": 100},
    "zero-dce": {"train": 100},
}
ENHANCE_SIDE = 512


def _median_step_s(steps_csv: Path) -> dict[str, float]:
    """Median seconds per step of each phase (the run's first step, which warms up, left out)."""
    by_phase: dict[str, list[float]] = {}
    with steps_csv.open() as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i:
                by_phase.setdefault(row["phase"], []).append(float(row["step_s"]))
    return {phase: statistics.median(v) for phase, v in by_phase.items()}


def sample() -> dict:
    """One process's figures (numerics already applied)."""
    import torch

    from benchmark.metrics import Pair, load_metrics
    from benchmark.params import load_params
    from methods.network import EnhanceNet
    from methods.tiled_inference import TiledEnhancer
    from methods.train_api import train_method

    params = load_params(ROOT / "params.yaml")
    threads = params.get("threads") or torch.get_num_threads()
    data = ROOT / "datasets" / "data" / params["data"]["train"]
    if not (data / "train" / "backlit").is_dir():
        sys.exit(f"{data}: not prepared; run `bench run-stage prepare --dataset {params['data']['train']}` first")
    out: dict = {"settings": None, "load_before": os.getloadavg(), "train_s_per_iter": {}}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BACKLIT_BENCH_CACHE"] = str(Path(tmp) / "cache")
        for method in params["methods"]:
            short = {"iters": ZERO_DCE_ITERS} if method == "zero-dce" else SHORT_PHASES
            summary = train_method(method, data / "train" / "backlit", data / "train" / "welllit-unpaired",
                                   Path(tmp) / method, encoder=params["encoders"]["guidance"],
                                   identity_encoder=params["encoders"]["identity"], schedule=params["schedule"],
                                   seed=0, device="cpu", threads=threads, progress=False,
                                   fidelity=params.get("fidelity"), timing_dir=Path(tmp) / f"{method}-timing",
                                   overrides={**((params.get("train") or {}).get(method) or {}), **short})
            if summary.get("status") == "done":
                out["train_s_per_iter"][method] = _median_step_s(Path(tmp) / f"{method}-timing" / "train_steps.csv")
                out["settings"] = summary["numerics"]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    engine = TiledEnhancer(EnhanceNet(padding="reflect"), device="cpu")
    image = torch.rand(3, ENHANCE_SIDE, ENHANCE_SIDE)
    engine(image)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        engine(image)
        runs.append(time.perf_counter() - t0)
    out["enhance_ms_per_mp"] = statistics.median(runs) * 1e3 / (ENHANCE_SIDE ** 2 / 1e6)
    test = sorted((data / "test" / "input").glob("*.png"))[0]
    metrics, _ = load_metrics(params["evaluate"]["metrics"])
    pair = Pair(test, data / "test" / "gt" / test.name)
    [m.score(pair) for m in metrics]
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        [m.score(pair) for m in metrics]
        runs.append(time.perf_counter() - t0)
    out["score_s_per_image"] = statistics.median(runs)
    out["metrics"] = [m.name for m in metrics]
    out["load_after"] = os.getloadavg()
    return out


def projected_training_s(s_per_iter: dict[str, dict[str, float]], seeds: int) -> dict[str, float]:
    """Seconds of the embedded run's training per method (all seeds) at these step times."""
    return {m: seeds * sum(n * s_per_iter[m].get(phase, 0.0) for phase, n in QUICK_ITERS[m].items())
            for m in s_per_iter if m in QUICK_ITERS}


def _ratios(rounds: list[dict]) -> dict:
    """Per-round portable / native ratios of every figure, and their median, min and max."""
    series: dict[str, list[float]] = {}
    for r in rounds:
        a, b = r["native"], r["portable"]
        for method, phases in a["train_s_per_iter"].items():
            for phase, v in phases.items():
                series.setdefault(f"train {method} {phase}", []).append(b["train_s_per_iter"][method][phase] / v)
        for key in ("enhance_ms_per_mp", "score_s_per_image", "projected_training_s"):
            series.setdefault(key, []).append(b[key] / a[key])
    return {k: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": [round(x, 4) for x in v]}
            for k, v in series.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sample", choices=MODES, help=argparse.SUPPRESS)  # internal: one sample in this process
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sample:
        from backlit_core import numerics

        numerics.apply(args.sample)
        Path(args.out).write_text(json.dumps(sample()))
        return
    sys.path.insert(0, str(ROOT / "perf"))
    from _common import environment, write_result

    from benchmark.params import load_params

    seeds = len(load_params(ROOT / "params.yaml")["seeds"])
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            row = {}
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                out = Path(tmp) / f"{mode}.json"
                subprocess.run([sys.executable, __file__, "--sample", mode, "--out", str(out)], check=True, cwd=ROOT)
                rec = json.loads(out.read_text())
                rec["projected_training_s"] = sum(projected_training_s(rec["train_s_per_iter"], seeds).values())
                row[mode] = rec
                print(f"round {r} {mode}: training {rec['projected_training_s']:.0f} s projected, enhance "
                      f"{rec['enhance_ms_per_mp']:.0f} ms/MP, scoring {rec['score_s_per_image']:.2f} s/image "
                      f"(load {rec['load_before'][0]:.1f})", flush=True)
            rounds.append(row)
    ratios = _ratios(rounds)
    record = {"environment": environment(), "rounds": rounds, "ratios_portable_over_native": ratios,
              "seeds": seeds, "quick_iterations": QUICK_ITERS,
              "settings": {mode: rounds[0][mode]["settings"] for mode in MODES}}
    for key, v in ratios.items():
        print(f"{key:32s} portable / native {v['median']:.3f} (rounds {v['rounds']})")
    print(write_result("numerics", record))


if __name__ == "__main__":
    main()
