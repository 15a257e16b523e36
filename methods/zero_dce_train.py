"""Zero-DCE retraining (baselines-spec section 1): its own network and non-reference losses, no CLIP.

A dedicated loop rather than :mod:`methods.guided_training`'s: that one is built around an encoder-guided
:class:`~methods.network.EnhanceNet` (warm-up, guidance rounds, prompt phases, identity loss),
none of which Zero-DCE has. It reuses the same run files and helpers: batches as a pure function of
(seed, iteration) (:func:`methods.data.batch_indices`), atomic checkpoints with RNG states (exact
resume), :class:`methods.trainlog.TrainLog` (loss columns only) and atomic JSON. Only backlit
images are read, so the run is the same in the paired and unpaired regimes.

Upstream: images resized to 256 x 256, Adam (lr 1e-4, weight decay 1e-4), gradient-norm clip 0.1,
batch 8, 200 epochs. ``quick`` keeps the losses and optimiser and shortens the run for a CPU.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from backlit_core.atomic import remove_stale_temporaries, save_torch, write_json
from backlit_core.registry import UnknownNameError, unknown_name_message
from methods.checkpoint import capture_rng, restore_rng, resumable, save_checkpoint
from methods.data import batch_indices, files_digest, image_paths, preload, stable_seed, to_float
from methods.run_files import (
    CHECKPOINT,
    ENHANCER,
    SUMMARY,
    RunFiles,
    RunTiming,
    Session,
    TrainingDiverged,
    restore_timing,
    write_timing,
    write_training_provenance,
)
from methods.zero_dce import ZeroDCENet, flush_denormals_, zero_dce_loss

if TYPE_CHECKING:
    from methods.train_api import TrainOptions

PHASE = "train"
COLUMNS = ["iter", "phase", "round", "loss", "tv", "spa", "col", "exp"]  # round = epoch
ALIASES = {"iters": "total_iters", "size": "crop"}


@dataclass(frozen=True)
class ZeroDCESchedule:
    total_iters: int | None  # None: epochs x ceil(images / batch_size)
    epochs: int
    batch_size: int
    crop: int  # training images are resized to crop x crop (upstream: 256)
    lr: float
    weight_decay: float
    grad_clip: float  # max gradient L2 norm
    checkpoint_every: int


SCHEDULES: dict[str, ZeroDCESchedule] = {
    "paper": ZeroDCESchedule(None, epochs=200, batch_size=8, crop=256, lr=1e-4, weight_decay=1e-4, grad_clip=0.1,
                             checkpoint_every=500),
    # CPU-sized: 96 px like the CLIP-guided quick schedule; 10x the paper's lr, with which the exposure
    # term settled within 60 iterations instead of 200 (8 SICE frames at 32 px); 100 iterations keep the
    # 3-seed embedded pipeline within 20 minutes on 2 cores
    "quick": ZeroDCESchedule(100, epochs=200, batch_size=8, crop=96, lr=1e-3, weight_decay=1e-4, grad_clip=0.1,
                             checkpoint_every=50),
}


def make_schedule(name: str, overrides: dict | None = None) -> ZeroDCESchedule:
    """The named schedule with ``overrides`` applied and checked (unknown keys suggest valid ones)."""
    if name not in SCHEDULES:
        raise UnknownNameError(unknown_name_message("schedule", name, list(SCHEDULES)))
    valid = {f.name for f in fields(ZeroDCESchedule)}
    changes = {}
    for key, value in (overrides or {}).items():
        key = ALIASES.get(key, key)
        if key not in valid:
            raise UnknownNameError(unknown_name_message("Zero-DCE training setting", key, sorted(valid | set(ALIASES))))
        changes[key] = value
    s = replace(SCHEDULES[name], **changes)
    for key, value in asdict(s).items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key == "weight_decay" and not (number and value >= 0):
            raise ValueError(f"Zero-DCE training setting {key} must be a non-negative number, got {value!r}")
        if key in ("lr", "grad_clip") and not (number and value > 0):
            raise ValueError(f"Zero-DCE training setting {key} must be a positive number, got {value!r}")
        if key not in ("lr", "grad_clip", "weight_decay") and value is not None and \
                not (number and isinstance(value, int) and value > 0):
            raise ValueError(f"Zero-DCE training setting {key} must be a positive integer, got {value!r}")
    return s


def train_zero_dce(cls: type, backlit_dir: str | Path, welllit_dir: str | Path, files: RunFiles,
                   opts: TrainOptions) -> dict:
    """Train Zero-DCE (``cls``) on the images in ``backlit_dir`` (well-lit ones are not used); write the run
    files where ``files`` says.

    Same contract as :func:`methods.train_api.train_method` (``opts``: schedule, iters, seed, device,
    overrides, resume, stop_after, progress, threads; encoders and fidelity do not apply). Returns the
    summary written to train_summary.json plus the run's ``wall_s``.
    """
    from backlit_core.device import resolve_device
    from methods.determinism import make_deterministic

    sched = make_schedule(opts.schedule, opts.schedule_overrides())
    paths = image_paths(backlit_dir)
    dev = resolve_device(opts.device)
    base = {"method": "zero-dce", "encoder": None, "identity_encoder": None, "seed": opts.seed,
            "schedule": opts.schedule, "device": str(dev), **make_deterministic(opts.threads, opts.seed)}
    return _Run(sched, paths, files, dev, base).train(opts.resume, opts.stop_after, opts.progress)


class _Run:
    """One Zero-DCE training run: data, network, optimiser, iteration, run files."""

    def __init__(self, sched: ZeroDCESchedule, paths: list[Path], files: RunFiles, dev: torch.device,
                 base: dict) -> None:
        self.sched, self.files, self.out, self.seed, self.dev, self.base = sched, files, files.out, base["seed"], dev, base
        self.total = sched.total_iters or sched.epochs * math.ceil(len(paths) / sched.batch_size)
        self.config = {**base, "device": None, "schedule_values": {k: v for k, v in asdict(sched).items()
                                                                   if k not in ("total_iters", "checkpoint_every")},
                       "backlit": files_digest(paths)}
        self.data = preload(paths, sched.crop)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed(self.seed, "zero-dce"))
            self.net = ZeroDCENet().to(dev)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=sched.lr, weight_decay=sched.weight_decay)
        self.iteration, self.last_loss = 0, 0.0
        self.timing = RunTiming()

    def _start(self, resume: bool) -> None:
        ckpt = resumable(self.out / CHECKPOINT, self.config, self.total) if resume else None
        if ckpt is None:
            self.files.clear()
            return
        self.net.load_state_dict(ckpt["enhancer"])
        self.opt.load_state_dict(ckpt["opt_enhancer"])
        self.iteration, self.last_loss = ckpt["state"]["iteration"], ckpt["state"]["last_loss"]
        restore_rng(ckpt["rng"])
        self.timing = restore_timing(self.files)

    def _step(self) -> dict:
        n = self.data.shape[0]
        idx = batch_indices(n, self.sched.batch_size, self.seed, "zero-dce", self.iteration)
        x = to_float(self.data[idx]).to(self.dev)
        _, y, a = self.net(x)
        loss, terms = zero_dce_loss(x, y, a)
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"non-finite loss ({loss.item()}) at iteration {self.iteration + 1}; stopped. "
                                   f"The last good checkpoint is {self.out / CHECKPOINT} "
                                   f"(every {self.sched.checkpoint_every} iterations)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.sched.grad_clip)
        self.opt.step()
        flush_denormals_(self.net)  # weight decay makes them; they slow CPUs ~30x
        epoch = self.iteration * self.sched.batch_size // n
        return {"iter": self.iteration + 1, "phase": PHASE, "round": epoch, "loss": loss.item(), **terms}

    def train(self, resume: bool, stop_after: int | None, progress: bool) -> dict:
        self.files.make()
        remove_stale_temporaries(self.out)  # left by a killed run
        self._start(resume)
        with Session(self.files, self.timing, self.iteration, self.total, "zero-dce", progress, COLUMNS) as session:
            while self.iteration < self.total:
                if stop_after is not None and session.done_here >= stop_after:
                    return {**self.base, "status": "stopped", "iteration": self.iteration}
                t0 = time.perf_counter()
                row = self._step()
                self.iteration += 1
                self.last_loss = row["loss"]
                session.record(row, time.perf_counter() - t0, f"loss {row['loss']:.4g}")
                if self.iteration % self.sched.checkpoint_every == 0 or self.iteration == self.total:
                    self._save()
        return {**self._finish(), "wall_s": round(self.timing.wall_s, 3)}

    def _save(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, {
            "config": self.config, "state": {"iteration": self.iteration, "last_loss": self.last_loss},
            "enhancer": self.net.state_dict(), "opt_enhancer": self.opt.state_dict(), "rng": capture_rng()})
        write_timing(self.files, self.base, self.dev, self.iteration, self.timing, shares=False)

    def _finish(self) -> dict:
        if not (self.out / CHECKPOINT).is_file():
            self._save()
        save_torch(self.out / ENHANCER, {k: v.detach().cpu() for k, v in self.net.state_dict().items()})
        summary = {
            **self.base, "status": "done", "reason": None, "network": "zero-dce",
            "schedule_values": {**asdict(self.sched), "total_iters": self.total},
            "iterations": {"total": self.iteration, PHASE: self.iteration},
            "rounds": (self.iteration * self.sched.batch_size - 1) // self.data.shape[0] + 1 if self.iteration else 0,
            "final_loss": self.last_loss,
        }
        write_json(self.out / SUMMARY, summary)
        write_training_provenance(self.files, self.base, weights=[self.out / ENHANCER])
        write_timing(self.files, self.base, self.dev, self.iteration, self.timing, shares=False)
        return summary
