"""GPU readiness check: every GPU path of the project, exercised and recorded in one run of at most 8 minutes.

``python perf/gpu_check.py [--device cuda] [--out DIR] [--budget-s 480]``; on a fresh machine
``perf/gpu_check.sh`` (``make gpu-check``) sets up what is missing and runs it. CI runs
``--device cpu --tiny`` (small sizes, few iterations), so every step below runs there too.

Steps, in order; each starts only while the overall budget lasts and gets at most its cap
(:data:`CAPS`); a step that runs short of time records what it finished and why it stopped:

- ``paths``: the GPU-only settings validated: the fp16 identity encoder's dtype plan and its
  deviation from fp32, the Triton convolution against ``F.conv2d`` (on CPU in Triton's
  interpreter), the CUDA-graph and compiled engines built, ``device: cuda:0`` resolved.
- ``train``: every method of profiles/paper.yaml trained for a few dozen iterations at the paper
  schedules' batch and crop sizes with the tiny OpenAI-format CLIP files of tests/fixtures_clip.py,
  ``clip_precision`` in both settings: s/iteration by phase, peak GPU memory, loss first vs last window.
- ``compare``: the same first iterations on the device and on the CPU (smaller crop, to keep the
  CPU side short): loss trajectories and the trained enhancers' outputs, at :data:`TOLERANCES`.
- ``fullsize``: the guided methods with the paper's CLIP architectures (profiles/paper.yaml
  ``encoders``) holding random weights: the paper profile's real cost per iteration and peak memory
  (the weights' values change neither).
- ``inference``: the engines at 1920x1080 (perf/bench_gpu_inference.py's functions, fewer variants
  and repeats), accuracy against the CPU fp32 reference; in a subprocess with a hard timeout.
- ``dask``: ``bench repro train --scheduler local --workers 1`` in a scratch clone, then ``bench
  verify``; "not available" while ``bench repro --help`` fails.

Learning settings: the ``quick`` schedule's (10x lr, last-conv bias 1, calibrated latent scale) so
that a few dozen iterations move the loss; sizes (batch, crop, rank size) are the paper schedule's.
The per-iteration cost does not depend on the learning settings. ``extrapolation`` turns the
measured s/iteration by phase into the paper profile's wall time per method on this device (paper
schedule iteration counts from methods/schedule.py and methods/zero_dce_train.py) and its peak
memory into 24 GB / 16 GB fits. The record (``<out>/gpu_check.json``) is written after every step
and every training run, so a failed or killed step keeps everything before it.
"""
from __future__ import annotations

import argparse
import copy
import csv
import functools
import gc
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as training sets it, before cuBLAS starts

import torch
import yaml
from _common import RESULTS, ROOT, environment, write_result

from backlit_core.provenance import collect_provenance
from backlit_core.registry import UnknownNameError
from methods.fidelity import VALUES, Fidelity
from methods.registry import METHODS

NAME = "gpu_check"
PAPER = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
PRECISIONS = (PAPER["fidelity"]["clip_precision"],
              *(v for v in VALUES["clip_precision"] if v != PAPER["fidelity"]["clip_precision"]))
BUDGET_S = 480.0  # the default budget: 8 minutes
# Each step's cap in seconds of the default budget (scaled with --budget-s); the last step gets what is left.
CAPS = {"paths": 40, "train": 150, "compare": 90, "fullsize": 70, "inference": 120, "dask": None}
MIN_STEP_S = 10.0  # a step is skipped when less than this is left of the budget
# CPU vs device after the same iterations. TF32 convolutions (PyTorch's cuDNN default) round products to a
# 10-bit mantissa (~1e-3 relative per layer), the fp16 RN101 likewise on the identity features; Adam
# normalises each update, so such rounding moves a step by a small fraction of lr and the runs drift apart
# slowly. ``movement``: RMS(output difference device - CPU) / RMS(what iterations 2..N changed on CPU),
# outputs of the two trained enhancers on the training images; ``loss``: max relative loss difference.
TOLERANCES = {"cpu": {"loss": 0.0, "movement": 0.0, "why": "same device: training is bit-identical on one CPU"},
              "cuda-fp32": {"loss": 0.01, "movement": 0.1,
                            "why": "TF32 convolutions; the device's result must differ from the CPU's by under "
                                   "a tenth of what training changed"},
              "cuda-fp16": {"loss": 0.03, "movement": 0.2,
                            "why": "TF32 convolutions and the fp16 identity encoder (upstream's); under a fifth"}}
# Inference: max |output - CPU fp32 reference| by precision (the measured values in perf/README.md are
# 7e-6 fp32, 3.3e-4 TF32, 0.9-1.2e-3 fp16, 7.6e-3 bf16).
INFERENCE_TOLERANCE = {"tf32": 1e-3, "fp16": 5e-3, "bf16": 2e-2, "fp32": 1e-4}
GPU_VARIANTS = ("reference_fp32_eager", "torch_tf32_graph", "torch_fp16_graph", "triton_fp16_graph",
                "compiled_fp16_graph")
CPU_VARIANTS = ("reference_fp32_eager", "torch_fp32_graph")
CARD_HEADROOM_GIB = 1.0  # CUDA context and library workspaces beside PyTorch's allocator


@dataclass(frozen=True)
class Sizes:
    """What the check trains and times; :func:`paper_sizes` or :func:`tiny_sizes`."""

    crop: int
    batch: int
    prompt_batch: int
    rank_size: int
    zero_dce_crop: int
    zero_dce_batch: int
    phases: dict[str, int]  # ce_iters, warmup_iters, enhancer_iters, prompt_iters of a train run
    compare_crop: int
    compare_phases: dict[str, int]
    fullsize_phases: dict[str, int]
    fullsize_archs: tuple[str, str]  # guidance, identity
    fullsize_methods: tuple[str, ...]
    frame: tuple[int, int]  # inference height, width
    warmup: int
    repeats: int
    photo_crops: int  # training crops per photo of the synthetic generator (3 training photos)
    long_side: int
    precisions: tuple[str, ...] = PRECISIONS  # clip_precision settings trained on the device


def _phases(ce: int, warmup: int, enhancer: int, prompt: int) -> dict[str, int]:
    return {"ce_iters": ce, "warmup_iters": warmup, "enhancer_iters": enhancer, "prompt_iters": prompt}


def _clip_arch(name: str) -> str:
    return name.split(":")[1]


def paper_sizes() -> Sizes:
    """The paper schedules' batch and crop sizes, a few dozen iterations, 1080p inference."""
    from methods.schedule import make_schedule
    from methods.zero_dce_train import make_schedule as zero_dce_schedule

    p, z = make_schedule("paper"), zero_dce_schedule("paper")
    guided = tuple(m for m in PAPER["methods"] if METHODS.get(m).kind == "clip-guided")
    return Sizes(crop=p.crop, batch=p.batch_size, prompt_batch=p.prompt_batch_size, rank_size=p.rank_size,
                 zero_dce_crop=z.crop, zero_dce_batch=z.batch_size, phases=_phases(8, 8, 24, 8),
                 compare_crop=128, compare_phases=_phases(2, 2, 6, 2), fullsize_phases=_phases(4, 4, 8, 4),
                 fullsize_archs=(_clip_arch(PAPER["encoders"]["guidance"]), _clip_arch(PAPER["encoders"]["identity"])),
                 fullsize_methods=guided, frame=(1080, 1920), warmup=3, repeats=10, photo_crops=2, long_side=384)


def tiny_sizes() -> Sizes:
    """Seconds-sized runs of every step for a CPU (CI); the tiny CLIP architectures stand in for the full ones."""
    from tests.fixtures_clip import ARCHS

    return Sizes(crop=32, batch=8, prompt_batch=8, rank_size=32, zero_dce_crop=32, zero_dce_batch=8,
                 phases=_phases(2, 2, 20, 2), compare_crop=32, compare_phases=_phases(1, 1, 3, 1),
                 fullsize_phases=_phases(1, 1, 3, 1), fullsize_archs=(ARCHS["vit"], ARCHS["rn"]),
                 fullsize_methods=("rave",), frame=(48, 64), warmup=1, repeats=2, photo_crops=2, long_side=64)


# ------------------------------------------------------------------------------------------ bookkeeping
class Budget:
    """Seconds left until a deadline."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.end = seconds, time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()

    def allows(self, estimate_s: float) -> bool:
        return self.left() > estimate_s


def is_guided(method: str) -> bool:
    return METHODS.get(method).kind == "clip-guided"


def source_digest() -> str:
    """sha256 of the project's Python sources (identifies the code where no git checkout travelled)."""
    h = hashlib.sha256()
    for path in sorted(p for d in ("backlit_core", "methods", "benchmark", "perf") for p in (ROOT / d).rglob("*.py")):
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def gpu_environment(device: torch.device) -> dict[str, Any]:
    """Device name, driver, memory, CUDA/cuDNN/Triton versions (None where absent)."""
    from importlib import metadata

    info: dict[str, Any] = {"device": str(device), "cuda_available": torch.cuda.is_available(),
                            "torch_cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    try:
        info["triton"] = metadata.version("triton")
    except metadata.PackageNotFoundError:
        info["triton"] = None
    if device.type != "cuda":
        return info
    props = torch.cuda.get_device_properties(device)
    info.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30, multiprocessors=props.multi_processor_count,
                compute_capability=f"{props.major}.{props.minor}", gpu_count=torch.cuda.device_count())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True)
        info["driver"] = smi.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        info["driver"] = None
        info["driver_error"] = f"nvidia-smi: {type(exc).__name__}"
    return info


# ------------------------------------------------------------------------------------------ training
@dataclass
class Setup:
    """Training data, CLIP files and settings shared by the training steps."""

    device: torch.device
    sizes: Sizes
    tmp: Path
    backlit: Path
    welllit: Path
    methods: tuple[str, ...]
    encoders: dict[str, tuple[str, str]] = field(default_factory=dict)  # kind -> (guidance, identity) names

    @classmethod
    def make(cls, device: torch.device, sizes: Sizes, tmp: Path, methods: tuple[str, ...]) -> Setup:
        from benchmark.data.synthetic import GeneratorParams, generate
        from tests.fixtures_clip import build_openai_jit_clip, encoder_name

        data = tmp / "data"
        generate(data, GeneratorParams(long_side=sizes.long_side, train_crops=sizes.photo_crops,
                                       unpaired_crops=sizes.photo_crops, test_crops=1))
        vit = build_openai_jit_clip(tmp / "clip" / "ViT-B-32.pt", "vit")
        rn = build_openai_jit_clip(tmp / "clip" / "RN101.pt", "rn")
        setup = cls(device, sizes, tmp, data / "train" / "backlit", data / "train" / "welllit-unpaired", methods)
        setup.encoders["fixture"] = (encoder_name(vit, "vit"), encoder_name(rn, "rn"))
        return setup


def overrides(method: str, sizes: Sizes, crop: int, phases: dict[str, int]) -> dict[str, Any]:
    """Schedule overrides of a check run (on the ``quick`` schedule's learning settings). Methods without
    prompt phases run warm-up + enhancer iterations; Zero-DCE as many iterations, at its own crop and batch."""
    prompt = is_guided(method) and METHODS.get(method).prompt_phases
    total = sum(phases.values()) if prompt else phases["warmup_iters"] + phases["enhancer_iters"]
    if not is_guided(method):
        return {"total_iters": total, "crop": min(crop, sizes.zero_dce_crop), "batch_size": sizes.zero_dce_batch,
                "checkpoint_every": total}
    return {**phases, "total_iters": total, "batch_size": sizes.batch, "prompt_batch_size": sizes.prompt_batch,
            "crop": crop, "rank_size": min(sizes.rank_size, crop), "checkpoint_every": total}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run_measures(out: Path) -> dict[str, Any]:
    """Iterations, s/iteration by phase (median, each phase's first iteration left out when it has 3 or
    more), losses and the first vs last window of the main phase, from a run's log files."""
    log, steps = read_csv(out / "train_log.csv"), read_csv(out / "train_steps.csv")
    times: dict[str, list[float]] = {}
    for row in steps:
        times.setdefault(row["phase"], []).append(float(row["step_s"]))
    losses = [float(r["loss"]) for r in log]
    phases = [r["phase"] for r in log]
    main = "enhance" if "enhance" in phases else phases[-1]
    main_losses = [loss for loss, ph in zip(losses, phases) if ph == main]
    w = max(1, len(main_losses) // 3)
    first, last = statistics.fmean(main_losses[:w]), statistics.fmean(main_losses[-w:])
    return {"iterations": {"total": len(log), **Counter(phases)}, "train_s": sum(float(r["step_s"]) for r in steps),
            "s_per_iter": {ph: statistics.median(t[1:] if len(t) >= 3 else t) for ph, t in times.items()},
            "loss": {"phase": main, "window": w, "first": first, "last": last, "fell": last < first},
            "losses": losses}


def train_run(setup: Setup, method: str, device: torch.device | str, out: Path, *, crop: int,
              phases: dict[str, int], encoders: str = "fixture", clip_precision: str = PRECISIONS[0],
              checkpoint_every: int | None = None, **options: Any) -> dict[str, Any]:
    """Train ``method`` into ``out``; its status, measures and peak memory (``options``: TrainOptions;
    ``checkpoint_every`` default: at the end)."""
    from methods.train_api import train_method

    dev = torch.device(device)
    guidance, identity = setup.encoders[encoders]
    if dev.type == "cuda":  # this run's peaks: the last run's cached blocks released first
        gc.collect()
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    sched = overrides(method, setup.sizes, crop, phases)
    if checkpoint_every:
        sched["checkpoint_every"] = checkpoint_every
    t0 = time.perf_counter()
    summary = train_method(method, setup.backlit, setup.welllit, out, encoder=guidance, identity_encoder=identity,
                           schedule="quick", overrides=sched, seed=0,
                           device=str(dev), progress=False,
                           fidelity={**PAPER["fidelity"], "clip_precision": clip_precision,
                                     "clip_lit_start": "scratch"},  # every phase timed, CE and warm-up too
                           **options)
    rec: dict[str, Any] = {"method": method, "device": str(dev), "crop": crop, "status": summary["status"],
                           "reason": summary.get("reason"), "process_wall_s": time.perf_counter() - t0}
    if is_guided(method):
        rec.update(clip_precision=clip_precision, encoders=encoders,
                   identity_precision=Fidelity(clip_precision=clip_precision).identity_precision(identity, dev.type))
    if summary["status"] not in ("done", "stopped"):
        return rec
    rec.update(run_measures(out))
    rec["s_per_iter_overall"] = rec["train_s"] / rec["iterations"]["total"]
    timing = json.loads((out / "train_timing.json").read_text())
    rec["peak_rss_gib"] = timing["peak_rss_mb"] / 1024
    if dev.type == "cuda":
        rec["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30
        rec["peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved(dev) / 2**30
    return rec


def run_all(runs: list[tuple[str, Callable[[], dict]]], budget: Budget, progress: Callable[[dict], None]) -> dict:
    """Call each named run while the budget allows one more as long as the longest so far; record the rest
    as skipped. A run's error is recorded and the next one runs."""
    results: dict[str, Any] = {}
    longest = 0.0
    for key, run in runs:
        if not budget.allows(longest):
            results[key] = {"status": "skipped", "reason": f"time budget: {budget.left():.0f} s left, "
                                                           f"the longest run took {longest:.0f} s"}
            continue
        t0 = time.perf_counter()
        try:
            results[key] = run()
        except Exception:  # noqa: BLE001 - recorded; the other runs still run
            results[key] = {"status": "failed", "error": traceback.format_exc(limit=6)}
        longest = max(longest, time.perf_counter() - t0)
        progress(results)
    return results


def train_step(setup: Setup, budget: Budget, progress: Callable[[dict], None]) -> dict:
    """Every method at the paper's batch and crop sizes, each clip_precision setting (on CUDA; on CPU they
    compute the same, so only the paper's runs)."""
    s = setup.sizes
    precisions = s.precisions if setup.device.type == "cuda" else s.precisions[:1]
    runs = []
    for method in setup.methods:
        crop = s.crop if is_guided(method) else s.zero_dce_crop
        for p in precisions if is_guided(method) else precisions[:1]:
            key = f"{method}/{p}" if is_guided(method) else method
            runs.append((key, lambda m=method, p=p, c=crop, k=key: train_run(
                setup, m, setup.device, setup.tmp / "train" / k, crop=c, phases=s.phases, clip_precision=p)))
    out = {"runs": run_all(runs, budget, lambda r: progress({"runs": r}))}
    if len(precisions) < len(s.precisions):
        out["not_run"] = {p: f"on {setup.device.type} clip_precision {p} computes as {precisions[0]} "
                             "(the fp16 identity encoder is used on CUDA only)" for p in s.precisions[1:]}
    return out


# ------------------------------------------------------------------------------------------ CPU vs device
def enhancer_outputs(method: str, state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The trained network's enhanced images (CPU, fp32) for a checkpoint's ``enhancer`` state."""
    from methods.network import EnhanceNet
    from methods.zero_dce import ZeroDCENet

    net = EnhanceNet(padding="zeros") if is_guided(method) else ZeroDCENet()
    net.load_state_dict(state)
    with torch.no_grad():
        out = net.eval()(images)
    return out[1] if isinstance(out, tuple) else out


def rms(t: torch.Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt())


def judge(method: str, tol_key: str, cpu: dict, dev: dict, w1: dict, wk_cpu: dict, wk_dev: dict,
          images: torch.Tensor) -> dict[str, Any]:
    """Loss trajectories and enhancer outputs of the device run against the CPU run, at :data:`TOLERANCES`."""
    from bench_gpu_inference import psnr

    lc, ld = cpu["losses"], dev["losses"]
    rel = [abs(a - b) / max(abs(a), 1e-8) for a, b in zip(lc, ld)]
    o1, oc, od = (enhancer_outputs(method, w, images) for w in (w1, wk_cpu, wk_dev))
    diff, moved = rms(od - oc), rms(oc - o1)
    ratio = diff / moved if moved > 0 else (0.0 if diff == 0 else None)  # None: differs, nothing to scale by
    tol = TOLERANCES[tol_key]
    return {"iterations": len(lc), "crop": cpu["crop"], "losses_cpu": lc, "losses_device": ld,
            "loss_max_rel_diff": max(rel), "loss_final_rel_diff": rel[-1],
            "output_psnr_db": psnr(od, oc), "output_max_abs_diff": float((od - oc).abs().max()),
            "output_rms_diff": diff, "output_rms_movement": moved, "movement_ratio": ratio,
            "tolerance": tol_key, "within_tolerance": max(rel) <= tol["loss"] and ratio is not None and ratio <= tol["movement"],
            "s_per_iter_overall": {"cpu": cpu["s_per_iter_overall"], "device": dev["s_per_iter_overall"]}}


def compare_method(setup: Setup, method: str, precisions: tuple[str, ...]) -> dict[str, Any]:
    """The first iterations on the CPU (stopped after iteration 1 for the movement baseline, then resumed)
    and on the device in each precision, judged."""
    from methods.checkpoint import load_checkpoint
    from methods.data import preload, to_float

    s = setup.sizes
    crop = s.compare_crop if is_guided(method) else min(s.compare_crop, s.zero_dce_crop)
    args = {"crop": crop, "phases": s.compare_phases}
    cpu_dir = setup.tmp / "compare" / method / "cpu"
    first = train_run(setup, method, "cpu", cpu_dir, stop_after=1, checkpoint_every=1, **args)
    if first["status"] != "stopped":
        return {"status": first["status"], "reason": first.get("reason")}
    w1 = load_checkpoint(cpu_dir / "checkpoint.pt")["enhancer"]
    cpu = train_run(setup, method, "cpu", cpu_dir, resume=True, **args)
    wk_cpu = load_checkpoint(cpu_dir / "checkpoint.pt")["enhancer"]
    images = to_float(preload(sorted(setup.backlit.iterdir()), crop))
    out = {}
    for p in precisions if is_guided(method) else precisions[:1]:
        dev_dir = setup.tmp / "compare" / method / p
        dev = train_run(setup, method, setup.device, dev_dir, clip_precision=p, **args)
        half = is_guided(method) and dev.get("identity_precision") == "fp16"
        tol_key = "cpu" if setup.device.type == "cpu" else ("cuda-fp16" if half else "cuda-fp32")
        wk_dev = load_checkpoint(dev_dir / "checkpoint.pt")["enhancer"]
        out[p if is_guided(method) else "-"] = judge(method, tol_key, cpu, dev, w1, wk_cpu, wk_dev, images)
    return {"status": "done", "by_precision": out}


def compare_step(setup: Setup, budget: Budget, progress: Callable[[dict], None]) -> dict:
    precisions = setup.sizes.precisions if setup.device.type == "cuda" else setup.sizes.precisions[:1]
    runs = [(m, lambda m=m: compare_method(setup, m, precisions)) for m in setup.methods]
    return {"tolerances": TOLERANCES, "methods": run_all(runs, budget, lambda r: progress({"methods": r}))}


# ------------------------------------------------------------------------------------------ full-size encoders
def random_clip_file(arch: str, path: Path) -> Path:
    """A state dict of open_clip ``arch`` with seeded random weights (timing and memory only)."""
    import open_clip

    from methods.clip_encoder import register_tiny_configs

    register_tiny_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(arch, pretrained=None, precision="fp32")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def fullsize_step(setup: Setup, budget: Budget, progress: Callable[[dict], None]) -> dict:
    """The guided methods at the paper's sizes with full-size random-weight encoders: paper precision first,
    then the other setting while time lasts."""
    s = setup.sizes
    g_arch, i_arch = s.fullsize_archs
    t0 = time.perf_counter()
    g = random_clip_file(g_arch, setup.tmp / "fullsize-clip" / "guidance.pt")
    i = random_clip_file(i_arch, setup.tmp / "fullsize-clip" / "identity.pt")
    setup.encoders["fullsize"] = (f"clip:{g_arch}:{g}", f"clip:{i_arch}:{i}")
    out: dict[str, Any] = {"archs": {"guidance": g_arch, "identity": i_arch}, "weights": "random (seed 0)",
                           "files_s": time.perf_counter() - t0}
    precisions = s.precisions if setup.device.type == "cuda" else s.precisions[:1]
    runs = [(f"{m}/{p}", lambda m=m, p=p: train_run(
        setup, m, setup.device, setup.tmp / "fullsize" / m / p, crop=s.crop, phases=s.fullsize_phases,
        encoders="fullsize", clip_precision=p)) for p in precisions for m in s.fullsize_methods if m in setup.methods]
    out["runs"] = run_all(runs, budget, lambda r: progress({**out, "runs": r}))
    return out


# ------------------------------------------------------------------------------------------ GPU-only paths
def paths_step(setup: Setup, budget: Budget, progress: Callable[[dict], None]) -> dict:
    """Validate the GPU-only settings on this device (on CPU: built, planned, or run in Triton's interpreter)."""
    from backlit_core.device import resolve_device
    from methods.encoders import load_encoder
    from methods.network import EnhanceNet
    from methods.tiled_inference import TiledEnhancer, _GraphedForward

    dev = setup.device
    out: dict[str, Any] = {"triton": triton_check(dev)}
    identity = setup.encoders["fixture"][1]
    fid = Fidelity.from_dict(PAPER["fidelity"])
    enc16, enc32 = load_encoder(identity, dev, "fp16"), load_encoder(identity, dev, "fp32")
    dtypes = Counter(f"{type(m).__name__}:{str(p.dtype).removeprefix('torch.')}"
                     for m in enc16.model.visual.modules() for p in m.parameters(recurse=False))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(dev)
    with torch.no_grad():
        f16, f32 = enc16(x, features=True), enc32(x, features=True)
    out["identity_fp16"] = {
        "precision_by_device": {d: fid.identity_precision(identity, d) for d in ("cuda", "cpu")},
        "compute_dtype": str(enc16.compute_dtype), "parameter_dtypes": dict(sorted(dtypes.items())),
        "feature_rel_diff_vs_fp32": [float((a - b).abs().max() / b.abs().max()) for a, b in zip(f16.features, f32.features)],
        "embedding_max_abs_diff_vs_fp32": float((f16.embedding - f32.embedding).abs().max())}
    torch.manual_seed(0)
    net = EnhanceNet().eval()
    graphed = TiledEnhancer(copy.deepcopy(net), dev, cuda_graphs=True)
    compiled = TiledEnhancer(copy.deepcopy(net), dev, compile=True)
    out["engines"] = {"cuda_graph_used": isinstance(graphed._single_pass, _GraphedForward),
                      "cuda_graph_expected": dev.type == "cuda", "compiled_built": callable(compiled._single_pass),
                      "compiled_run": "in the inference step (compiled_fp16_graph)" if dev.type == "cuda"
                      else "not run on cpu (torch.compile needs CUDA for the measured engine)"}
    try:
        out["device_cuda_0"] = str(resolve_device("cuda:0"))
    except RuntimeError as exc:
        out["device_cuda_0"] = f"unavailable: {exc}"
    return out


def triton_check(dev: torch.device) -> dict[str, Any]:
    """The Triton convolution against ``F.conv2d`` (reflect padding, bias, leaky ReLU), fp32 and fp16; off
    CUDA in Triton's interpreter, in a child process started with ``TRITON_INTERPRET=1``."""
    if dev.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "triton.json"
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--step", "triton", "--device",
                                   str(dev), "--step-out", str(out)], env=dict(os.environ, TRITON_INTERPRET="1"),
                                  capture_output=True, text=True, timeout=300, check=False)
            if not out.is_file():
                return {"imported": None, "reason": f"interpreter run exited {done.returncode}: {done.stderr[-1500:]}"}
            return json.loads(out.read_text())
    import torch.nn.functional as F

    try:
        import methods.triton_conv as tc
    except Exception as exc:  # noqa: BLE001 - recorded: Triton missing or broken here
        return {"imported": False, "reason": f"{type(exc).__name__}: {exc}".splitlines()[0]}
    g = torch.Generator().manual_seed(0)
    xc, wc = torch.randn(1, 32, 12, 40, generator=g), torch.randn(32, 32, 3, 3, generator=g) * 0.1
    bc = torch.randn(32, generator=g)
    ref = F.leaky_relu(F.conv2d(F.pad(xc, (1, 1, 1, 1), mode="reflect"), wc, bc), 0.2)  # CPU fp32: no TF32
    x, w, b = xc.contiguous(memory_format=torch.channels_last).to(dev), wc.to(dev), bc.to(dev)
    diffs = {}
    for name, dt in (("fp32", torch.float32), ("fp16", torch.float16)):
        y = tc.conv3x3(x.to(dt), tc.pack_weight(w, dt), 32, b, reflect=True, act="leaky_relu", slope=0.2)
        diffs[name] = float((y.float().cpu() - ref).abs().max())
    return {"imported": True, "kernel": "CUDA" if dev.type == "cuda" else "Triton interpreter (CPU)",
            "max_abs_diff_vs_conv2d": diffs,
            "within_tolerance": diffs["fp32"] < 1e-4 and diffs["fp16"] < 1e-2}


# ------------------------------------------------------------------------------------------ inference
def inference_step(device: torch.device, sizes: Sizes, limit_s: float, out_file: Path) -> None:
    """The engines at ``sizes.frame`` (subprocess body): bench_gpu_inference's steps, written to ``out_file``."""
    import bench_gpu_inference as bgi

    from methods.network import MACS_PER_PIXEL

    t0 = time.perf_counter()
    h, w = sizes.frame
    wanted = GPU_VARIANTS if device.type == "cuda" else CPU_VARIANTS
    args = argparse.Namespace(height=h, width=w, warmup=sizes.warmup, repeats=sizes.repeats, photo=None, weights=None,
                              budget_s=max(limit_s - 45, 0), variants=",".join(wanted))
    record = bgi.new_record(args, h, w, 2 * MACS_PER_PIXEL * h * w)
    record["not_run"] = {name: f"needs CUDA (device {device.type})" for name in GPU_VARIANTS if name not in wanted}
    save = functools.partial(write_result, out_file.stem, record, out_file.parent)
    torch.backends.cudnn.allow_tf32 = False
    if device.type == "cuda":
        record["peaks"] = bgi.peaks()
        save()
    fr = bgi.prepare_frame(args, record, str(device))
    bgi.run_catalogue(fr, record, args, save, t0)
    for name, v in record["variants"].items():
        tol = next(t for key, t in INFERENCE_TOLERANCE.items() if key in name)
        v["tolerance_max_abs_diff"] = tol
        v["within_tolerance"] = v["max_abs_diff_vs_cpu_fp32_reference"] <= tol
    record["wall_s"] = time.perf_counter() - t0
    save()


def run_inference_subprocess(device: torch.device, tiny: bool, budget: Budget, tmp: Path) -> dict[str, Any]:
    """:func:`inference_step` in a child process, killed at the budget; whatever it wrote is kept."""
    out_file = tmp / "inference.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", "inference", "--device", str(device),
           "--step-out", str(out_file), "--limit-s", f"{budget.left():.0f}", *(["--tiny"] if tiny else [])]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=max(budget.left(), 1))
        status = {"returncode": done.returncode, "output_tail": (done.stdout + done.stderr)[-3000:]}
    except subprocess.TimeoutExpired as exc:
        tail = ((exc.stdout or b"") + (exc.stderr or b"")).decode(errors="replace")[-3000:]
        status = {"returncode": None, "timed_out": f"killed at the step's limit ({budget.seconds:.0f} s)", "output_tail": tail}
    result = json.loads(out_file.read_text()) if out_file.is_file() else {}
    if status["returncode"] != 0:
        result["process"] = status
        if not result.get("variants"):
            raise RuntimeError(f"inference step wrote no result: {status}")
    return result


# ------------------------------------------------------------------------------------------ Dask hook
def command(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``cmd``; its exit code, seconds and output tail (``returncode`` None when it timed out)."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=max(timeout, 1))
        rc, text = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = None, ((exc.stdout or b"") + (exc.stderr or b"")).decode(errors="replace")
    return {"command": " ".join(cmd[2:] if cmd[1:2] == ["-m"] else cmd), "returncode": rc,
            "wall_s": time.perf_counter() - t0, "output_tail": text[-2000:]}


def dask_step(project: Path, bench: list[str], budget: Budget, workdir: Path) -> dict[str, Any]:
    """``bench repro train --scheduler local --workers 1`` (one GPU worker on a one-GPU machine) in a scratch
    clone of ``project``, then ``bench verify --format json`` there; "not available" while either is missing."""
    from benchmark.verify import scratch_clone

    env = dict(os.environ, PYTHONPATH=str(project), DVC_NO_ANALYTICS="1", HF_HUB_OFFLINE="1")
    probe = command([*bench, "repro", "--help"], project, env, min(60.0, budget.left()))
    if probe["returncode"] != 0:
        lines = [ln for ln in probe["output_tail"].splitlines() if ln.strip()] or [""]
        why = next((ln for ln in lines if ln.startswith("Error")), lines[-1])
        return {"available": False, "reason": f"not available: `bench repro --help` exited {probe['returncode']}: {why}"}
    clone = scratch_clone(project, workdir / "clone")
    env["PYTHONPATH"] = str(clone)
    out: dict[str, Any] = {"available": True, "repro": command([*bench, "repro", "train", "--scheduler", "local",
                                                               "--workers", "1"], clone, env, budget.left())}
    if out["repro"]["returncode"] != 0:
        out["verify"] = {"available": None, "reason": "not run: bench repro did not finish"}
        return out
    help_text = command([*bench, "verify", "--help"], clone, env, 60.0)["output_tail"]
    if "--format" not in help_text:
        out["verify"] = {"available": False, "reason": "not available: bench verify has no --format (envelope levels)"}
        return out
    out["verify"] = command([*bench, "verify", "--format", "json"], clone, env, budget.left())
    return out


# ------------------------------------------------------------------------------------------ extrapolation
def paper_iterations(method: str, train_images: int | None) -> dict[str, int] | None:
    """Iterations per phase of one paper-schedule run. Guided: the iteration budget split into CE, warm-up
    and rounds, without round extensions or re-initialisations (they move iterations between phases; the
    budget fixes the total). Zero-DCE: epochs x ceil(images / batch); None when the image count is unknown."""
    from methods.schedule import make_schedule, total_iterations
    from methods.zero_dce_train import make_schedule as zero_dce_schedule

    cls = METHODS.get(method)
    if not is_guided(method):
        z = zero_dce_schedule("paper")
        return None if train_images is None else {"train": z.epochs * math.ceil(train_images / z.batch_size)}
    s, prompt = make_schedule("paper"), cls.prompt_phases
    counts = {"ce_init": s.ce_iters if prompt else 0, "warmup": s.warmup_iters, "enhance": 0, "prompt": 0}
    left = total_iterations(s, prompt, cls.paper_total_iters) - counts["ce_init"] - counts["warmup"]
    while left > 0:
        for phase, n in (("enhance", s.enhancer_iters), ("prompt", s.prompt_iters if prompt else 0)):
            take = min(n, left)
            counts[phase] += take
            left -= take
    return {k: v for k, v in counts.items() if v}


def _ok_run(step: dict | None, key: str) -> dict | None:
    run = ((step or {}).get("result") or {}).get("runs", {}).get(key)
    return run if run and run.get("status") == "done" else None


def extrapolate(steps: dict[str, Any], methods_checked: tuple[str, ...], train_images: int | None,
                card_gib: float | None) -> dict[str, Any]:
    """The paper profile's training wall time per method on this device and its peak memory, from the
    measured s/iteration by phase (full-size encoders where measured, else the tiny CLIP fixtures)."""
    runs_per_method = len(PAPER["seeds"]) * len(PAPER["regimes"])
    precision = PAPER["fidelity"]["clip_precision"]
    methods: dict[str, Any] = {}
    for method in methods_checked:
        key = f"{method}/{precision}" if is_guided(method) else method
        full = _ok_run(steps.get("fullsize"), key) if is_guided(method) else None
        run = full or _ok_run(steps.get("train"), key)
        if run is None:
            methods[method] = {"reason": "no finished run of this method at the paper's sizes"}
            continue
        plan = paper_iterations(method, train_images)
        entry: dict[str, Any] = {"source": "full-size encoders (random weights)" if full else
                                 "tiny CLIP fixtures" if is_guided(method) else "paper sizes (no encoders)",
                                 "s_per_iter": run["s_per_iter"], "paper_iterations": plan}
        if plan is None:
            per_1000 = paper_iterations(method, 1000)
            entry.update(wall_s_per_run_per_1000_images=sum(n * run["s_per_iter"][ph] for ph, n in per_1000.items()),
                         reason="training image count unknown: pass --train-images (the paper train split's size)")
        elif missing := [ph for ph in plan if ph not in run["s_per_iter"]]:
            entry["reason"] = f"phases not measured: {', '.join(missing)}"
        else:
            wall = sum(n * run["s_per_iter"][ph] for ph, n in plan.items())
            entry.update(wall_s_per_run=wall, runs=runs_per_method, wall_h_all_runs=wall * runs_per_method / 3600)
        if "peak_gpu_reserved_gib" in run:
            need = run["peak_gpu_reserved_gib"] + CARD_HEADROOM_GIB
            entry.update(peak_gpu_memory_gib=run["peak_gpu_memory_gib"], peak_gpu_reserved_gib=run["peak_gpu_reserved_gib"],
                         needs_gib=need, fits_24gb=need <= 24, fits_16gb=need <= 16)
        methods[method] = entry
    walls = [m["wall_h_all_runs"] for m in methods.values() if "wall_h_all_runs" in m]
    return {"methods": methods, "runs_per_method": runs_per_method, "card_memory_gib": card_gib,
            "train_images": train_images,
            "all_methods_h_one_device": sum(walls) if len(walls) == len(methods) else None,
            "method": "sum over phases of paper iterations x median s/iteration of that phase (first iteration of "
                      "each phase left out); per-run setup and checkpoint saves not included; memory: the run's peak "
                      f"reserved by PyTorch + {CARD_HEADROOM_GIB} GiB for the CUDA context, against 24 and 16 GiB"}


# ------------------------------------------------------------------------------------------ the check
class Check:
    """The record, its budget and the steps' order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.device = torch.device(args.device)
        self.sizes = tiny_sizes() if args.tiny else paper_sizes()
        self.methods = tuple(args.methods.split(",")) if args.methods else tuple(PAPER["methods"])
        self.budget = Budget(args.budget_s)
        self.record: dict[str, Any] = {
            "check": NAME, "finished": False, "environment": environment(),
            "device": gpu_environment(self.device), "source_sha256": source_digest(),
            "settings": {"device": str(self.device), "tiny": args.tiny, "budget_s": args.budget_s,
                         "caps_s": {k: v and v * args.budget_s / BUDGET_S for k, v in CAPS.items()},
                         "sizes": asdict(self.sizes), "schedule": "quick learning settings at the sizes above",
                         "methods": list(self.methods), "clip_precision": list(self.sizes.precisions)},
            "steps": {}}
        prov = collect_provenance()
        self.record["provenance"] = {k: prov[k] for k in ("git_commit", "git_dirty", "packages", "lock_matches")}

    def save(self) -> Path:
        try:
            self.record["extrapolation"] = extrapolate(self.record["steps"], self.methods, self.args.train_images,
                                                       self.record["device"].get("gpu_memory_gib"))
            if self.args.tiny:
                self.record["extrapolation"]["note"] = "--tiny: sizes far below the paper's; the figures test the code"
        except Exception:  # noqa: BLE001 - the record is still written
            self.record["extrapolation"] = {"error": traceback.format_exc(limit=4)}
        self.record["wall_s"] = self.budget.seconds - self.budget.left()
        return write_result(NAME, self.record, self.args.out)

    def step(self, name: str, fn: Callable[[Budget, Callable[[dict], None]], dict]) -> None:
        """Run one step within min(its cap, the budget left); its result, error or skip reason into the record."""
        left, cap = self.budget.left(), CAPS[name]
        entry: dict[str, Any] = {"budget_s": left if cap is None else min(cap * self.budget.seconds / BUDGET_S, left)}
        self.record["steps"][name] = entry
        if left < MIN_STEP_S:
            entry.update(status="skipped", reason=f"time budget: {left:.0f} s of {self.budget.seconds:.0f} s left")
            self.save()
            return
        entry["status"] = "running"
        self.save()
        print(f"{name}: running (up to {entry['budget_s']:.0f} s)", flush=True)

        def progress(partial: dict) -> None:
            entry["result"] = partial
            self.save()

        t0 = time.perf_counter()
        try:
            entry["result"] = fn(Budget(entry["budget_s"]), progress)
            entry["status"] = "ok"
        except Exception:  # noqa: BLE001 - recorded; the next steps still run
            entry.update(status="failed", error=traceback.format_exc(limit=8))
        entry["wall_s"] = time.perf_counter() - t0
        print(f"{name}: {entry['status']} in {entry['wall_s']:.0f} s", flush=True)
        self.save()

    def run(self) -> Path:
        wanted = self.args.steps.split(",") if self.args.steps else list(CAPS)
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            os.environ["BACKLIT_BENCH_CACHE"] = str(Path(tmp) / "cache")  # fresh embedding caches
            t0 = time.perf_counter()
            try:
                setup = Setup.make(self.device, self.sizes, Path(tmp), self.methods)
            except Exception:  # noqa: BLE001 - the steps that need no training data still run
                setup = None
                self.record["setup_error"] = traceback.format_exc(limit=8)
            self.record["setup_s"] = time.perf_counter() - t0
            steps: dict[str, Callable[[Budget, Callable[[dict], None]], dict]] = {
                "paths": lambda b, p: paths_step(setup, b, p),
                "train": lambda b, p: train_step(setup, b, p),
                "compare": lambda b, p: compare_step(setup, b, p),
                "fullsize": lambda b, p: fullsize_step(setup, b, p),
                "inference": lambda b, p: run_inference_subprocess(self.device, self.args.tiny, b, Path(tmp)),
                "dask": lambda b, p: dask_step(ROOT, [sys.executable, "-m", "benchmark"], b, Path(tmp) / "dask"),
            }
            for name in (n for n in CAPS if n in wanted):
                if setup is None and name in ("paths", "train", "compare", "fullsize"):
                    self.record["steps"][name] = {"status": "skipped", "reason": "set-up failed (see setup_error)"}
                    continue
                self.step(name, steps[name])
        self.record["finished"] = True
        return self.save()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda | cuda:N | cpu")
    ap.add_argument("--tiny", action="store_true", help="small sizes and few iterations (CI on a CPU)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of gpu_check.json (default perf/results)")
    ap.add_argument("--budget-s", type=float, default=BUDGET_S,
                    help="overall time budget (default 8 minutes; the steps' caps scale with it)")
    ap.add_argument("--steps", default="", help=f"comma-separated subset of {','.join(CAPS)} (default: all)")
    ap.add_argument("--methods", default="", help="comma-separated methods (default: profiles/paper.yaml's)")
    ap.add_argument("--train-images", type=int, default=None,
                    help="training images of the paper profile's train split (Zero-DCE's paper iterations)")
    ap.add_argument("--step", choices=["inference", "triton"], help=argparse.SUPPRESS)  # child processes
    ap.add_argument("--step-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit-s", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if unknown := set(filter(None, args.steps.split(","))) - set(CAPS):
        ap.error(f"unknown steps {', '.join(sorted(unknown))}; choose from {', '.join(CAPS)}")
    for method in filter(None, args.methods.split(",")):
        try:
            trained = METHODS.get(method).training_loop is not None
        except UnknownNameError as exc:
            ap.error(str(exc))
        if not trained:
            ap.error(f"{method} is training-free: nothing to check")
    return args


def main() -> None:
    args = parse_args()
    if args.step == "inference":
        inference_step(torch.device(args.device), tiny_sizes() if args.tiny else paper_sizes(), args.limit_s,
                       args.step_out)
        return
    if args.step == "triton":
        write_result(args.step_out.stem, triton_check(torch.device(args.device)), args.step_out.parent)
        return
    print(f"wrote {Check(args).run()}")


if __name__ == "__main__":
    main()
