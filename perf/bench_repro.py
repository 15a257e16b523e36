"""Serial ``dvc repro`` against ``bench repro --workers N``: wall time of the same targets, from nothing.

``python perf/bench_repro.py [--rounds 2] [--workers 2] [--full | --sleep K] [TARGETS...]``

Each run starts from a fresh clone of the committed project (HEAD) in a scratch folder, with its own DVC
cache; the two commands alternate (A B, B A, ...) so that a change in the machine's load hits both. Without
``--full`` the params are reduced as in tests/test_repro.py (one seed, RAVE and Zero-DCE, a few
iterations), so that the figure is about the engine rather than training. Every run must leave the same
dvc.lock hashes (timing and provenance files aside). ``--sleep K`` times a toy DVC project instead: K
independent stages that sleep 10 s and one that joins them (the engine's own cost, without competition for
the CPU). Results: perf/results/repro.json (``repro_sleep.json`` for ``--sleep``).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, environment, summary, write_result

from benchmark.verify import lock_hashes, scratch_clone

REDUCED_TRAIN = {"rave": {"iters": 6, "ce_iters": 2, "warmup_iters": 2, "enhancer_iters": 2, "crop": 32,
                          "batch_size": 2, "checkpoint_every": 3},
                 "zero-dce": {"iters": 6, "crop": 32, "batch_size": 2, "checkpoint_every": 3}}
VARIABLE = ("results/timing/", "results/provenance/", "results/report", "results/metrics.json", "results/figures",
            "results/tables", "results/provenance.json", "results/scores.csv")


def _reduce(clone: Path) -> None:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params.update(seeds=[0], methods=list(REDUCED_TRAIN), released=["zero-dce"],
                  train={m: {**(params["train"].get(m) or {}), **v} for m, v in REDUCED_TRAIN.items()},
                  evaluate={"metrics": ["psnr", "ssim"], "bootstrap": 20}, timing={"sizes_mp": [0.01], "repeats": 1})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _sleep_project(folder: Path, stages: int) -> Path:
    """A DVC project of ``stages`` independent 10 s stages and one that joins their outputs."""
    folder.mkdir()
    (folder / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    sleeps = {f"sleep{k}": {"cmd": f"sleep 10 && echo {k} > out{k}.txt", "outs": [f"out{k}.txt"]} for k in range(stages)}
    join = {"cmd": "cat " + " ".join(f"out{k}.txt" for k in range(stages)) + " > all.txt",
            "deps": [f"out{k}.txt" for k in range(stages)], "outs": ["all.txt"]}
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": {**sleeps, "join": join}}, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=folder, check=True, capture_output=True)
    return folder


def _run(cmd: list[str], folder: Path, full: bool, sleep: int) -> tuple[float, dict[str, str]]:
    import os

    if sleep:
        clone = _sleep_project(folder / "toy", sleep)
    else:
        clone = scratch_clone(ROOT, folder / "clone")
    if not full and not sleep:
        _reduce(clone)
    env = dict(os.environ, DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT if sleep else clone))
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {clone}:\n{done.stdout[-3000:]}")
    hashes = {k: v for k, v in lock_hashes((clone / "dvc.lock").read_text()).items()
              if not any(part in k for part in VARIABLE)}
    return seconds, hashes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="the committed params, not the reduced ones")
    ap.add_argument("--sleep", type=int, default=0, metavar="K", help="a toy project of K sleeping stages")
    ap.add_argument("targets", nargs="*")
    args = ap.parse_args()
    commands = {"serial": ["dvc", "repro", *args.targets],
                "parallel": ["bench", "repro", *args.targets, "--workers", str(args.workers), "--scheduler", "local"]}
    env_before = environment()
    times: dict[str, list[float]] = {"serial": [], "parallel": []}
    locks: list[dict[str, str]] = []
    for r in range(args.rounds):
        for name in (("serial", "parallel") if r % 2 == 0 else ("parallel", "serial")):
            with tempfile.TemporaryDirectory(prefix="bench-repro-") as tmp:
                seconds, hashes = _run(commands[name], Path(tmp), args.full, args.sleep)
            times[name].append(seconds)
            locks.append(hashes)
            print(f"round {r + 1} {name}: {seconds:.1f} s", flush=True)
    ratios = [s / p for s, p in zip(times["serial"], times["parallel"])]
    record = {
        "environment": env_before, "after_load_average": environment()["load_average"],
        "commands": {k: " ".join(v) for k, v in commands.items()}, "reduced_params": not args.full,
        "sleep_stages": args.sleep,
        "serial_s": summary(times["serial"]), "parallel_s": summary(times["parallel"]),
        "speedup_per_round": [round(x, 3) for x in ratios], "speedup_median": round(statistics.median(ratios), 3),
        "same_lock_hashes": all(h == locks[0] for h in locks), "lock_entries_compared": len(locks[0]),
    }
    print(f"speed-up (serial / parallel) per round: {record['speedup_per_round']}; "
          f"same dvc.lock hashes: {record['same_lock_hashes']}")
    print(f"wrote {write_result('repro_sleep' if args.sleep else 'repro', record)}")


if __name__ == "__main__":
    main()
