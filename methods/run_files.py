"""What every training loop shares: the run's files, its machine-dependent timings and the per-step
bookkeeping of a session (loss log, step times, peak memory, progress bar).

The model files (checkpoint, enhancer, loss log, summary) depend only on inputs, settings and seed;
wall times and memory go to ``train_timing.json`` and ``train_steps.csv`` in a folder of their own.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import torch

from backlit_core.atomic import write_json, write_text
from methods.trainlog import COLUMNS, STEP_COLUMNS, TrainLog, seconds_per_iter

CHECKPOINT, ENHANCER, LOG, SUMMARY, PROVENANCE = ("checkpoint.pt", "enhancer.pth", "train_log.csv",
                                                  "train_summary.json", "provenance.json")
TIMING, STEPS = "train_timing.json", "train_steps.csv"  # machine-dependent: kept apart from the model files


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes: model files in ``out``, timings in ``timing``, provenance in ``provenance``."""

    out: Path
    timing: Path
    provenance: Path

    @classmethod
    def at(cls, out_dir: str | Path, timing_dir: str | Path | None = None,
           provenance_file: str | Path | None = None) -> RunFiles:
        """Timings and provenance default to ``out_dir``."""
        return cls(Path(out_dir), Path(timing_dir or out_dir), Path(provenance_file or Path(out_dir) / PROVENANCE))

    def make(self) -> None:
        for folder in (self.out, self.timing, self.provenance.parent):
            folder.mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """Remove an earlier run's files (a run that starts afresh)."""
        for stale in (self.out / CHECKPOINT, self.out / ENHANCER, self.out / LOG, self.out / SUMMARY,
                      self.timing / TIMING, self.timing / STEPS):
            stale.unlink(missing_ok=True)


# The parts of an enhancer step the CLIP-guided loop times on CPU (CUDA work is asynchronous), in step order:
# batch preparation (indices, augmentation), the forward passes of the enhancer, the guidance encoder and the
# identity encoder, the loss terms, the backward pass (through the frozen encoders into the enhancer) and the
# optimiser step; ``step`` is the whole step, and what the parts leave of it is reported as ``other``.
STEP_PARTS = ("batch", "enhancer", "guidance_encoder", "identity_encoder", "loss", "backward", "optimizer")


def _no_step_time() -> dict[str, float]:
    return dict.fromkeys((*STEP_PARTS, "step"), 0.0)


@dataclass
class RunTiming:
    """Wall time, peak memory and the seconds of each part of the enhancer steps (:data:`STEP_PARTS`):
    machine-dependent, so never in the model files."""

    wall_s: float = 0.0
    peak_rss: int = 0
    shares: dict[str, float] = field(default_factory=_no_step_time)


def step_time_shares(seconds: dict[str, float]) -> dict[str, float] | None:
    """Each part's share of the enhancer steps' time, ``other`` (the rest) and ``accounted`` (the parts' sum);
    None before any step was timed."""
    step = seconds.get("step", 0.0)
    if step <= 0:
        return None
    parts = {k: seconds.get(k, 0.0) / step for k in STEP_PARTS}
    accounted = sum(parts.values())
    return {k: round(v, 4) for k, v in {**parts, "other": 1.0 - accounted, "accounted": accounted}.items()}


def write_timing(files: RunFiles, base: dict, dev: torch.device, iterations: int, timing: RunTiming,
                 shares: bool) -> None:
    """``train_timing.json``: wall time, s/iter by phase, memory and, when ``shares``, where the enhancer
    steps' time goes (:func:`step_time_shares`; this machine)."""
    from backlit_core.provenance import device_info

    parts = step_time_shares(timing.shares) if shares else None
    write_json(files.timing / TIMING, {
        "method": base["method"], "seed": base["seed"], "device": str(dev), "machine": device_info(),
        "iterations": iterations, "wall_s": round(timing.wall_s, 3),
        "s_per_iter": {p: round(v, 5) for p, v in seconds_per_iter(files.timing / STEPS).items()},
        "peak_rss_mb": round(timing.peak_rss / 2**20, 1),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None,
        "enhancer_step_time_share": parts,
        "enhancer_steps_share_of_wall": round(timing.shares["step"] / timing.wall_s, 4) if parts and timing.wall_s else None,
        "totals": asdict(timing),
    })


def restore_timing(files: RunFiles) -> RunTiming:
    """The wall-time and memory totals of a killed session, to continue from (best effort)."""
    path = files.timing / TIMING
    saved = json.loads(path.read_text()).get("totals") if path.is_file() else None
    if not saved:
        return RunTiming()
    return RunTiming(saved.get("wall_s", 0.0), saved.get("peak_rss", 0), {**_no_step_time(), **(saved.get("shares") or {})})


def write_skipped(files: RunFiles, base: dict, reason: str) -> dict:
    """Record a run that cannot happen here: its summary says why; every stage output still exists."""
    files.make()
    for stale in (files.out / CHECKPOINT, files.out / ENHANCER, files.out / LOG):
        stale.unlink(missing_ok=True)
    summary = {**base, "status": "skipped", "reason": reason.splitlines()[0]}
    write_json(files.out / SUMMARY, summary)
    write_text(files.timing / STEPS, ",".join(STEP_COLUMNS) + "\n")
    write_json(files.timing / TIMING, {"method": base["method"], "seed": base["seed"], "status": "skipped",
                                       "iterations": 0, "wall_s": 0.0})
    write_training_provenance(files, base, weights=[])
    return summary


def write_training_provenance(files: RunFiles, base: dict, weights: list[Path]) -> None:
    """The run's provenance record (``role: training``; ``seed`` is its training seed)."""
    from backlit_core.provenance import write_provenance

    write_provenance(files.provenance, role="training", seed=base["seed"], weights=weights, training=base)


class Session:
    """One training session's bookkeeping: appends the loss log and step times from ``iteration`` on
    (truncating what a killed session wrote after its checkpoint), tracks wall time and peak memory,
    and shows a progress bar with ETA. Use as a context manager."""

    def __init__(self, files: RunFiles, timing: RunTiming, iteration: int, total: int, desc: str, progress: bool,
                 columns: list[str] = COLUMNS) -> None:
        from tqdm import tqdm

        self.timing = timing
        self.log = TrainLog(files.out / LOG, keep_until=iteration, columns=columns)
        self.steps = TrainLog(files.timing / STEPS, keep_until=iteration, columns=STEP_COLUMNS)
        self.bar = tqdm(total=total, initial=iteration, desc=desc, file=sys.stderr, disable=not progress,
                        mininterval=1.0, dynamic_ncols=True)
        self.process = psutil.Process()
        self.done_here = 0  # iterations of this session

    def record(self, row: dict, step_s: float, postfix: str) -> None:
        """Log one finished iteration (``row`` holds ``iter``, ``phase`` and the loss terms)."""
        self.timing.wall_s += step_s
        self.timing.peak_rss = max(self.timing.peak_rss, self.process.memory_info().rss)
        self.log.append(row)
        self.steps.append({"iter": row["iter"], "phase": row["phase"], "step_s": step_s,
                           "wall_s": self.timing.wall_s})
        self.bar.update(1)
        self.bar.set_postfix_str(postfix, refresh=False)
        self.done_here += 1

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        self.log.close()
        self.steps.close()
