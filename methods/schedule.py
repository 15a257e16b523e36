"""Training schedules: the papers' values (``paper``) and a CPU-sized ``quick`` one.

Phases, in order: CE prompt initialisation (prompt methods only), reconstruction warm-up, then
rounds of enhancer training and (prompt methods) prompt refinement, until ``total_iters`` (the
iteration budget, all phases counted) is spent. Rounds are extended while their loss at the end is
above a threshold (90 enhancer, 60 prompt).

``quick`` (about 2 minutes per method on a 2-core CPU with effnet-lite0): 96 px crops, batch 4,
a 20-iteration warm-up and two rounds of 50 enhancer iterations (120 iterations; 170 with 40 CE
iterations and one 10-iteration prompt round for the prompt methods), sized so that the
embedded pipeline with three seeds fits 20 minutes on 2 cores. Its phases are ~10-80x shorter than the paper's, so the
enhancer lr is 10x (2e-4) and the guidance lr 100x the paper's; rounds are not extended (the
thresholds are calibrated for CLIP's loss scale). Its enhancer starts with the last conv's bias at 1
(L ~ 1, the identity the warm-up aims for): upstream's default bias often gives L = 0 or tiny L, a
white output with no gradient, which re-initialisations escape only by luck.

The schedule is the same for every method; a method's own settings are its ``parameters``
(:mod:`methods.method_parameters`). Overrides are validated; ``prompt_lr`` is accepted as an alias
of ``guidance_lr`` and ``iters`` of ``total_iters``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace

from backlit_core.registry import UnknownNameError, unknown_name_message

ALIASES = {"prompt_lr": "guidance_lr", "iters": "total_iters"}


@dataclass(frozen=True)
class Schedule:
    total_iters: int | None  # the iteration budget; None: from ``rounds``, else the method's paper total
    ce_iters: int  # prompt initialisation by cross-entropy
    warmup_iters: int  # reconstruction warm-up
    enhancer_iters: int  # enhancer iterations per round
    prompt_iters: int  # prompt-refinement iterations per round
    batch_size: int  # enhancer batch
    prompt_batch_size: int  # CE / ranking batch
    crop: int  # enhancer training images are resized to crop x crop (upstream: 512)
    rank_size: int  # CE / ranking images and intermediate results (upstream: 256)
    checkpoint_every: int
    rounds: int | None = None  # budget = CE + warm-up + rounds x enhancer + (rounds - 1) x prompt
    lr: float = 2e-5  # enhancer Adam lr
    guidance_lr: float | None = None  # None: the method's ``guidance_lr`` x guidance_lr_scale
    guidance_lr_scale: float = 1.0  # multiplies the method's default guidance lr (short schedules)
    weight_decay: float = 1e-3  # Adam L2 (not AdamW), both optimisers
    train_threshold: float | None = 90.0  # None: rounds are never extended
    train_extension: int = 60
    prompt_threshold: float | None = 60.0
    prompt_extension: int = 100
    reinit_after: int = 100  # re-initialisation is checked this many iterations after each (re-)init
    psnr_window: int = 30
    psnr_min: float = 8.0  # dB; below it (running mean) the enhancer is re-initialised
    reinit_extension: int = 100
    max_reinits: int = 5  # only under the fidelity switch reinit_cap: capped (upstream: no cap)
    output_bias_init: float | None = None  # None: PyTorch's default bias of the last conv (upstream)
    snapshot_every: int = 20  # best-snapshot check interval (upstream's display_iter)
    snapshot_window: int = 30  # running-loss buffer of the best-snapshot check


SCHEDULES: dict[str, Schedule] = {
    "paper": Schedule(total_iters=None, ce_iters=8000, warmup_iters=1000, enhancer_iters=2100, prompt_iters=1000,
                      batch_size=8, prompt_batch_size=16, crop=512, rank_size=256, checkpoint_every=500),
    "quick": Schedule(total_iters=None, rounds=2, ce_iters=40, warmup_iters=20, enhancer_iters=50, prompt_iters=10,
                      batch_size=4, prompt_batch_size=8, crop=96, rank_size=96, checkpoint_every=25,
                      lr=2e-4, guidance_lr_scale=100.0, train_threshold=None, prompt_threshold=None,
                      reinit_after=10, psnr_window=5, reinit_extension=20, output_bias_init=1.0),
}

_POSITIVE_INT = {"enhancer_iters", "prompt_iters", "batch_size", "prompt_batch_size",
                 "crop", "rank_size", "checkpoint_every", "total_iters", "train_extension", "prompt_extension",
                 "psnr_window", "reinit_extension", "rounds", "snapshot_every", "snapshot_window"}


def make_schedule(name: str, overrides: dict | None = None, also_valid: Iterable[str] = ()) -> Schedule:
    """The named schedule with ``overrides`` applied and checked; ``also_valid``: the method's own
    settings, named beside the schedule's in an unknown-setting error."""
    if name not in SCHEDULES:
        raise UnknownNameError(unknown_name_message("schedule", name, list(SCHEDULES)))
    valid = {f.name for f in fields(Schedule)}
    changes = {}
    for key, value in (overrides or {}).items():
        key = ALIASES.get(key, key)
        if key not in valid:
            names = sorted(valid | set(ALIASES) | set(also_valid))
            raise UnknownNameError(unknown_name_message("training setting", key, names))
        changes[key] = value
    sched = replace(SCHEDULES[name], **changes)
    validate(sched)
    return sched


def validate(s: Schedule) -> None:
    for key, value in asdict(s).items():
        if value is None:
            continue
        if key in _POSITIVE_INT and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"training setting {key} must be a positive integer, got {value!r}")
        if key in ("ce_iters", "warmup_iters", "max_reinits", "reinit_after") and (not isinstance(value, int) or value < 0):
            raise ValueError(f"training setting {key} must be a non-negative integer, got {value!r}")
        if key in ("lr", "guidance_lr", "guidance_lr_scale") and not float(value) > 0:
            raise ValueError(f"training setting {key} must be positive, got {value!r}")
    if s.weight_decay < 0:
        raise ValueError(f"training setting weight_decay must not be negative, got {s.weight_decay!r}")


def total_iterations(s: Schedule, prompt_method: bool, paper_total: int) -> int:
    """The iteration budget: explicit, from ``rounds``, or the method's paper total."""
    if s.total_iters is not None:
        return s.total_iters
    if s.rounds is None:
        return paper_total
    extra = s.ce_iters + (s.rounds - 1) * s.prompt_iters if prompt_method else 0
    return s.warmup_iters + s.rounds * s.enhancer_iters + extra
