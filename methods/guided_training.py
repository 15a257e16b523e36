"""The one training loop of the CLIP-guided methods (:class:`methods.base.GuidanceMethod`).

Phases (methods-spec 3.2-3.5, 4.2): ``ce_init`` (prompt methods: cross-entropy fit of the guidance
pair), ``warmup`` (25 x identity with all level weights 1; the enhancer is re-initialised with a
new seed and the warm-up extended when the running PSNR(out, in) stays under 8 dB), then rounds of
``enhance`` (guidance_weight x guidance + 22.5 x identity, guidance frozen) and, for prompt
methods, ``prompt`` (200 x ranking loss over backlit, well-lit and the intermediate results of
the last two rounds, enhancer frozen). Rounds are extended while their last loss is above the
threshold (an enhancer round's loss read as the fidelity switch ``round_extension`` says: upstream's
320 x guidance + 22.5 x identity, or the loss it trains on); the run ends when the iteration budget
is spent. Re-initialisations are unlimited (upstream) or capped at ``max_reinits`` (``reinit_cap``).

Best-snapshot bookkeeping (spec 3.4, fidelity switch ``snapshot``): every ``snapshot_every``
iterations of an enhancer round, when the running mean of -loss over a ``snapshot_window`` buffer
(zero-filled at the start of each round, as upstream's) beats the round's best so far, the enhancer
is copied. Under ``best-running-loss`` (upstream) the latest such snapshot is exported as
enhancer.pth and gives the prompt methods' intermediate results; under ``last`` the live enhancer does.

Exact resume: every batch and augmentation is a pure function of (seed, iteration), and the
checkpoint holds everything else (weights, optimisers, RNG states, phase state, intermediate
results), so a killed run resumed from its checkpoint ends bit-identical on CPU.

:func:`train_guided` is the loop :class:`methods.base.GuidanceMethod` names (the API is
:func:`methods.train_api.train_method`); a method that cannot run in the setting (e.g. one that needs
a text tower given an image-only encoder, or encoder weights that are unavailable offline) is
*returned* as a summary with ``status: "skipped"`` and a one-line ``reason`` (also written to
train_summary.json).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from backlit_core.atomic import remove_stale_temporaries, save_torch, write_json
from methods import augment as aug
from methods.checkpoint import capture_rng, restore_rng, resumable, save_checkpoint
from methods.data import (
    batch_indices,
    files_digest,
    generator,
    image_paths,
    preload,
    stable_seed,
    to_float,
    to_uint8,
)
from methods.encoder_base import Encoder, EncoderUnavailable
from methods.encoders import load_encoder
from methods.fidelity import Fidelity
from methods.guidance_context import MethodContext, MethodUnavailable
from methods.losses import (
    ALPHA_GUIDED,
    ALPHA_WARMUP,
    W_GUIDANCE,
    W_IDENTITY,
    W_RANK,
    W_WARMUP,
    identity_loss,
    negative_probability,
    prompt_ce_loss,
    psnr_y,
    ranking_loss,
)
from methods.method_parameters import split_settings
from methods.network import EnhanceNet
from methods.run_files import (
    CHECKPOINT,
    ENHANCER,
    LOG,
    SUMMARY,
    RunFiles,
    RunTiming,
    Session,
    TrainingDiverged,
    restore_timing,
    write_skipped,
    write_timing,
    write_training_provenance,
)
from methods.schedule import Schedule, make_schedule, total_iterations
from methods.trainlog import phase_counts

if TYPE_CHECKING:
    from methods.train_api import TrainOptions

@dataclass
class LoopState:
    iteration: int = 0
    phase: str = "warmup"
    phase_iter: int = 0
    phase_len: int = 0
    round: int = 0
    reinits: int = 0
    extensions: dict[str, int] = field(default_factory=lambda: {"enhance": 0, "prompt": 0})
    psnr: list[float] = field(default_factory=list)  # warm-up running window
    init_iter: int = 0  # warm-up iterations since the enhancer's last (re-)initialisation
    last_loss: float = 0.0
    last_check: float = 0.0  # the enhancer step's loss as the round-extension rule reads it (``round_extension``)
    round_scores: list[float] = field(default_factory=list)  # -loss of this enhancer round (last window)
    best_score: float | None = None  # best running mean of -loss in this round
    snapshot_iter: int = 0  # iteration of the latest best snapshot (0: none)
    slot: int = 0  # uncounted CE: the result slot the enhancer round writes (upstream's pr_semi_path)
    recorded: bool = False  # uncounted CE: this round took a snapshot past the monitor (its results count)


def train_guided(cls: type[torch.nn.Module], backlit_dir: str | Path, welllit_dir: str | Path, files: RunFiles,
                 opts: TrainOptions) -> dict:
    """Train the CLIP-guided method ``cls``, a :class:`methods.base.GuidanceMethod` (see
    :func:`methods.train_api.train_method`)."""
    from backlit_core.device import resolve_device
    from methods.determinism import make_deterministic

    fidelity = Fidelity.coerce(opts.fidelity)
    settings, overrides = split_settings(cls, opts.schedule, opts.schedule_overrides())
    sched = make_schedule(opts.schedule, overrides, also_valid=settings)
    backlit, welllit = image_paths(backlit_dir), image_paths(welllit_dir)
    dev = resolve_device(opts.device)
    identity_name = opts.identity_encoder or opts.encoder
    base = {"method": cls.name, "encoder": opts.encoder, "identity_encoder": identity_name, "seed": opts.seed,
            "schedule": opts.schedule, "device": str(dev), **make_deterministic(opts.threads, opts.seed),
            "fidelity": fidelity.asdict()}
    try:
        guidance_encoder = load_encoder(opts.encoder, dev)
        identity_encoder = load_encoder(identity_name, dev, fidelity.identity_precision(identity_name, dev.type))
        ctx = MethodContext(guidance_encoder, backlit, welllit, opts.seed, settings, fidelity, opts.find_weights)
        guidance = cls(ctx).to(dev)
    except (MethodUnavailable, EncoderUnavailable) as exc:
        return write_skipped(files, base, str(exc))
    if guidance.initial_enhancer is not None:  # a trained start: upstream then runs no CE and no warm-up
        sched = replace(sched, ce_iters=0, warmup_iters=0)
    run = Run(guidance, guidance_encoder, identity_encoder, sched, backlit, welllit, files, dev, base, fidelity)
    return run.train(resume=opts.resume, stop_after=opts.stop_after, progress=opts.progress)


def _above(loss: float, threshold: float | None) -> bool:
    return threshold is not None and loss > threshold


class Run:
    """One training run: data, models, optimisers, loop state, run files."""

    def __init__(self, guidance: torch.nn.Module, guidance_encoder: Encoder, identity_encoder: Encoder,
                 sched: Schedule, backlit: list[Path], welllit: list[Path], files: RunFiles, dev: torch.device,
                 base: dict, fidelity: Fidelity) -> None:
        self.guidance, self.sched, self.fidelity = guidance, sched, fidelity
        self.guidance_encoder, self.identity_encoder = guidance_encoder, identity_encoder
        self.files, self.out, self.seed, self.dev, self.base = files, files.out, base["seed"], dev, base
        self.has_prompts = guidance.prompt_phases
        self.total = total_iterations(sched, self.has_prompts, guidance.paper_total_iters)
        self.config = {**base, "device": None, "encoder_fp": guidance_encoder.fingerprint,
                       "identity_fp": identity_encoder.fingerprint,
                       "schedule_values": {k: v for k, v in asdict(sched).items()
                                           if k not in ("total_iters", "checkpoint_every")},
                       "method_settings": guidance.recorded_settings(), "start": guidance.start,
                       "backlit": files_digest(backlit), "welllit": files_digest(welllit)}
        rf = fidelity.resize_filter
        self.backlit_train = preload(backlit, sched.crop, rf)
        self.backlit_rank = self.backlit_train if sched.rank_size == sched.crop else preload(backlit, sched.rank_size, rf)
        self.welllit_rank = preload(welllit, sched.rank_size, rf) if self.has_prompts else None
        self.results: dict[str, torch.Tensor | None] = {"new": None, "old": None}
        self.slots: list[torch.Tensor | None] = [None, None]  # uncounted CE: upstream's two result slots
        # CE not counted (an upstream train.py read literally; docs/fidelity.md): the counter starts after CE, so
        # the warm-up monitor (re-initialisation, PSNR in the snapshot buffer) stays on for ce_iters + warmup_iters
        # counted iterations and results are recorded, and their slot toggled, only past it (_literal_results).
        self.uncounted_ce = not guidance.ce_counted
        self.snapshot: dict[str, torch.Tensor] | None = None  # the latest best enhancer (CPU)
        self.state = LoopState()
        self.timing = RunTiming()
        self.enhancer = self._new_enhancer()
        if guidance.initial_enhancer is not None:
            self.enhancer.load_state_dict(guidance.initial_enhancer)
        self.enhancer_opt = self._enhancer_optimizer()
        self.guidance_lr = sched.guidance_lr or (guidance.guidance_lr or 0.0) * sched.guidance_lr_scale
        self.guidance_opt = (torch.optim.Adam(guidance.parameters(), lr=self.guidance_lr,
                                              weight_decay=sched.weight_decay) if self.has_prompts else None)
        self.cpu_timing = dev.type == "cpu"

    # --- setup ------------------------------------------------------------------------------
    def _new_enhancer(self) -> EnhanceNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed(self.seed, "enhancer", self.state.reinits))
            net = EnhanceNet(padding="zeros")
        if self.sched.output_bias_init is not None:
            torch.nn.init.constant_(net.cond_add1.bias, self.sched.output_bias_init)
        return net.to(self.dev)

    def _enhancer_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.enhancer.parameters(), lr=self.sched.lr, weight_decay=self.sched.weight_decay)

    def _restore(self, ckpt: dict) -> None:
        self.state = LoopState(**ckpt["state"])
        self.enhancer = self._new_enhancer()
        self.enhancer.load_state_dict(ckpt["enhancer"])
        self.enhancer_opt = self._enhancer_optimizer()
        self.enhancer_opt.load_state_dict(ckpt["opt_enhancer"])
        self.guidance.load_state_dict(ckpt["guidance"])
        if self.guidance_opt is not None:
            self.guidance_opt.load_state_dict(ckpt["opt_guidance"])
        self.results = {k: ckpt["results"].get(k) for k in ("new", "old")}
        self.slots = [ckpt["results"].get(f"slot{i}") for i in (0, 1)]
        self.snapshot = ckpt.get("snapshot")
        restore_rng(ckpt["rng"])
        if self.state.phase == "enhance" and self.has_prompts:
            self.guidance.freeze_features(self.guidance_encoder)

    def _start(self, resume: bool) -> None:
        ckpt = resumable(self.out / CHECKPOINT, self.config, self.total) if resume else None
        if ckpt is not None:
            self._restore(ckpt)
            self.timing = restore_timing(self.files)
            return
        self.files.clear()
        self._enter("ce_init" if self.has_prompts else "warmup")

    # --- phases -----------------------------------------------------------------------------
    def _enter(self, phase: str) -> None:
        st = self.state
        st.phase, st.phase_iter = phase, 0
        st.phase_len = {"ce_init": self.sched.ce_iters, "warmup": self.sched.warmup_iters,
                        "enhance": self.sched.enhancer_iters, "prompt": self.sched.prompt_iters}[phase]
        if phase == "enhance":
            st.round_scores, st.best_score = [], None  # upstream resets its buffer and best each round
            st.recorded = False
            if self._monitoring(st.iteration):  # upstream train.py:197: the zeroed buffer is also the monitor's
                st.psnr = [0.0] * self.sched.psnr_window
            if self.has_prompts:
                self.guidance.freeze_features(self.guidance_encoder)
        if st.phase_len == 0:
            self._next_phase()

    def _next_phase(self) -> None:
        st = self.state
        if st.phase == "ce_init":
            self._enter("warmup")
        elif st.phase == "warmup":
            if st.psnr and sum(st.psnr) / len(st.psnr) < self.sched.psnr_min:
                warnings.warn(f"warm-up ended with PSNR(out, in) {sum(st.psnr) / len(st.psnr):.1f} dB < "
                              f"{self.sched.psnr_min} dB after {st.reinits} re-initialisations: the enhancer is stuck "
                              "(try another --seed or --set output_bias_init=1)", stacklevel=2)
            self._enter("enhance")
        elif st.phase == "enhance":
            if st.phase_iter and _above(st.last_check, self.sched.train_threshold):
                self._extend("enhance", self.sched.train_extension)
            elif self.has_prompts:
                self.results = (self._literal_results() if self.uncounted_ce else
                                {"new": self._intermediate_results(), "old": self.results["new"]})
                self._enter("prompt")
            else:
                st.round += 1
                self._enter("enhance")
        elif st.phase_iter and _above(st.last_loss, self.sched.prompt_threshold):
            self._extend("prompt", self.sched.prompt_extension)
        else:
            st.round += 1
            self._enter("enhance")

    def _extend(self, phase: str, n: int) -> None:
        self.state.phase_len += n
        self.state.extensions[phase] += 1

    def _exported(self) -> EnhanceNet:
        """The enhancer that counts: the latest best snapshot (``best-running-loss``, when one was
        taken), else the live one."""
        if self.fidelity.snapshot == "last" or self.snapshot is None:
            return self.enhancer
        net = EnhanceNet(padding="zeros").to(self.dev)
        net.load_state_dict(self.snapshot)
        return net

    @torch.no_grad()
    def _intermediate_results(self) -> torch.Tensor:
        """The exported enhancer's outputs on all training backlit images at rank size (uint8, like PNGs)."""
        net = self._exported()
        return torch.cat([to_uint8(net(to_float(chunk).to(self.dev))).cpu() for chunk in self.backlit_rank.split(8)])

    def _literal_results(self) -> dict[str, torch.Tensor | None]:
        """Uncounted CE (upstream train.py:316-351): the round's results fill the current slot if it took a
        snapshot past the monitor; the slot toggles once the counter has reached ``ce_iters``; the ranking
        then sees no results while slot 0 is empty, one set while slot 1 is, else new = the other slot."""
        st = self.state
        if st.recorded:
            self.slots[st.slot] = self._intermediate_results()
        if st.iteration - self.sched.ce_iters >= self.sched.ce_iters:
            st.slot = 1 - st.slot
        if self.slots[0] is None:
            return {"new": None, "old": None}
        if self.slots[1] is None:
            return {"new": self.slots[0], "old": None}
        return {"new": self.slots[1 - st.slot], "old": self.slots[st.slot]}

    def _warmup_counted(self) -> int:
        """Uncounted CE: upstream's reconstruction count, lengthened by each re-initialisation (train.py:286)."""
        return self.sched.warmup_iters + self.state.reinits * self.sched.reinit_extension

    def _past_monitor(self, step: int) -> int:
        """Uncounted CE: how far 0-based ``step``'s counter is past the monitor's end, ce_iters + the warm-up
        (train.py:253 monitors while it is negative, :272 records results while it is positive)."""
        return step - self.sched.ce_iters - (self.sched.ce_iters + self._warmup_counted())

    def _monitoring(self, step: int) -> bool:
        return self.uncounted_ce and self._past_monitor(step) < 0

    def _reconstructing(self) -> bool:
        """Uncounted CE: the next enhancer step still trains on the warm-up loss (counter below the warm-up, :239)."""
        return self.uncounted_ce and self.state.iteration - self.sched.ce_iters < self._warmup_counted()

    def _track_snapshot(self, score: float) -> None:
        """Upstream's best-model bookkeeping over the enhancer round (see the module docstring); ``score``
        is -loss (PSNR while an uncounted-CE monitor is on)."""
        st, s = self.state, self.sched
        st.round_scores = (st.round_scores + [score])[-s.snapshot_window:]
        if st.iteration % s.snapshot_every:
            return
        running = sum(st.round_scores) / s.snapshot_window
        if st.best_score is None or running > st.best_score:
            st.best_score, st.snapshot_iter = running, st.iteration
            self.snapshot = {k: v.detach().cpu().clone() for k, v in self.enhancer.state_dict().items()}
            if self.uncounted_ce and self._past_monitor(st.iteration - 1) > 0:
                st.recorded = True

    def _check_reinit(self, psnr: float) -> None:
        st, s = self.state, self.sched
        st.psnr = (st.psnr + [psnr])[-s.psnr_window:]
        st.init_iter += 1
        if (st.init_iter > s.reinit_after and len(st.psnr) == s.psnr_window and sum(st.psnr) / len(st.psnr) < s.psnr_min
                and (self.fidelity.reinit_cap == "uncapped" or st.reinits < s.max_reinits)):
            st.reinits += 1
            st.psnr, st.init_iter = [], 0
            if st.phase == "warmup":
                st.phase_len += s.reinit_extension
            self.enhancer = self._new_enhancer()
            self.enhancer_opt = self._enhancer_optimizer()

    # --- steps ------------------------------------------------------------------------------
    def _backlit_batch(self) -> torch.Tensor:
        it, n = self.state.iteration, self.backlit_train.shape[0]
        idx = batch_indices(n, self.sched.batch_size, self.seed, "enhancer", it)
        params = aug.sample_params(len(idx), generator(self.seed, "enhancer-aug", it), aug.ZOOM_ENHANCER)
        return aug.augment(to_float(self.backlit_train[idx]).to(self.dev), params)

    def _clock(self, key: str, t0: float) -> float:
        t1 = time.perf_counter()
        if self.cpu_timing:
            self.timing.shares[key] += t1 - t0
        return t1

    def _enhancer_step(self, guided: bool) -> dict:
        t0 = time.perf_counter()
        x = self._backlit_batch()
        t = self._clock("batch", t0)
        y = self.enhancer(x)
        t = self._clock("enhancer", t)
        row: dict = {}
        if guided:
            shared = self.guidance_encoder is self.identity_encoder
            o = self.guidance_encoder(y, features=shared)
            t = self._clock("guidance_encoder", t)
            f_out = o.features if shared else self.identity_encoder(y, features=True).features
            guide = self.guidance.guidance_loss(o.embedding)
            row["guidance"] = guide.item()
        else:
            f_out = self.identity_encoder(y, features=True).features
        with torch.no_grad():
            f_in = self.identity_encoder(x, features=True).features
        t = self._clock("identity_encoder", t)
        ident = identity_loss(f_out, f_in, ALPHA_GUIDED if guided else ALPHA_WARMUP)
        row["identity"] = ident.item()
        loss = self.guidance.guidance_weight * guide + W_IDENTITY * ident if guided else W_WARMUP * ident
        self._clock("loss", t)
        self._update(self.enhancer_opt, loss, clocked=True)
        if not guided or self._monitoring(self.state.iteration):
            row["psnr"] = psnr_y(y.detach(), x, self.fidelity.warmup_monitor).mean().item()
        if guided:
            upstream = self.fidelity.round_extension == "guidance-320"
            self.state.last_check = W_GUIDANCE * row["guidance"] + W_IDENTITY * row["identity"] if upstream else loss.item()
        self._clock("step", t0)
        return {"loss": loss.item(), **row}

    def _ce_step(self) -> dict:
        it, s = self.state.iteration, self.sched
        nb, nw = self.backlit_rank.shape[0], self.welllit_rank.shape[0]
        m = max(nb, nw)
        q = batch_indices(2 * m, s.prompt_batch_size, self.seed, "ce", it)
        labels = (q >= m).long()
        imgs = torch.stack([self.welllit_rank[(i - m) % nw] if i >= m else self.backlit_rank[i % nb] for i in q.tolist()])
        params = aug.sample_params(len(q), generator(self.seed, "ce-aug", it), aug.ZOOM_PROMPT)
        with torch.no_grad():
            emb = self.guidance_encoder(aug.augment(to_float(imgs).to(self.dev), params)).embedding
        loss = prompt_ce_loss(emb, self.guidance.prompt_features(self.guidance_encoder), labels.to(self.dev), self.guidance.logit_scale)
        self._update(self.guidance_opt, loss)
        return {"loss": loss.item(), "ce": loss.item()}

    def _prompt_step(self) -> dict:
        it, s = self.state.iteration, self.sched
        nb, nw = self.backlit_rank.shape[0], self.welllit_rank.shape[0]
        m = max(nb, nw)
        bi = batch_indices(m, s.prompt_batch_size, self.seed, "rank-backlit", it) % nb
        wi = batch_indices(m, s.prompt_batch_size, self.seed, "rank-welllit", it) % nw
        members = [self.backlit_rank[bi], self.welllit_rank[wi]]
        members += [self.results[k][bi] for k in ("new", "old") if self.results[k] is not None]
        params = aug.sample_params(len(bi), generator(self.seed, "rank-aug", it), aug.ZOOM_PROMPT)
        with torch.no_grad():
            emb = self.guidance_encoder(aug.augment(to_float(torch.cat(members)).to(self.dev), params)).embedding
        p = negative_probability(emb, self.guidance.prompt_features(self.guidance_encoder), self.guidance.logit_scale).split(len(bi))
        rank = ranking_loss(*p, order=self.fidelity.ranking_order)
        loss = W_RANK * rank
        self._update(self.guidance_opt, loss)
        return {"loss": loss.item(), "rank": rank.item()}

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor, clocked: bool = False) -> None:
        """One optimiser step on ``loss``; ``clocked``: an enhancer step's backward and optimiser times count."""
        if not torch.isfinite(loss):
            st = self.state
            raise TrainingDiverged(f"non-finite loss ({loss.item()}) at iteration {st.iteration + 1} "
                                   f"({st.phase}, round {st.round}); stopped. The last good checkpoint is "
                                   f"{self.out / CHECKPOINT} (every {self.sched.checkpoint_every} iterations)")
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clocked:
            t = self._clock("backward", t)
        opt.step()
        if clocked:
            self._clock("optimizer", t)

    def _step(self) -> dict:
        phase = self.state.phase
        if phase == "ce_init":
            return self._ce_step()
        if phase == "prompt":
            return self._prompt_step()
        return self._enhancer_step(guided=phase == "enhance" and not self._reconstructing())

    # --- loop -------------------------------------------------------------------------------
    def train(self, resume: bool, stop_after: int | None, progress: bool) -> dict:
        self.files.make()
        remove_stale_temporaries(self.out)  # left by a killed run
        self._start(resume)
        st = self.state
        with Session(self.files, self.timing, st.iteration, self.total, self.base["method"], progress) as session:
            while st.iteration < self.total:
                if stop_after is not None and session.done_here >= stop_after:
                    return {**self.base, "status": "stopped", "iteration": st.iteration}
                t0 = time.perf_counter()
                phase, rnd = st.phase, st.round
                row = self._iterate()
                session.record({"iter": st.iteration, "phase": phase, "round": rnd, **row},
                               time.perf_counter() - t0, f"{phase} r{rnd} loss {row['loss']:.4g}")
                if st.iteration % self.sched.checkpoint_every == 0 or st.iteration == self.total:
                    self._save()
        return self._finish()

    def _iterate(self) -> dict:
        """One iteration: the phase's step, then the loop state (warm-up re-init, snapshots, next phase)."""
        st = self.state
        phase = st.phase
        row = self._step()
        st.iteration += 1
        st.phase_iter += 1
        st.last_loss = row["loss"]
        monitoring = "psnr" in row and phase == "enhance"  # uncounted CE: the warm-up monitor is still on
        if phase == "warmup" or monitoring:
            self._check_reinit(row["psnr"])
        if phase == "enhance" and (self.fidelity.snapshot == "best-running-loss" or self.uncounted_ce):
            # uncounted CE records results at best snapshots, whichever enhancer is exported
            self._track_snapshot(row["psnr"] if monitoring else -row["loss"])
        if st.phase_iter >= st.phase_len:
            self._next_phase()
        return row

    def _save(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, {
            "config": self.config, "state": asdict(self.state), "enhancer": self.enhancer.state_dict(),
            "opt_enhancer": self.enhancer_opt.state_dict(), "guidance": self.guidance.state_dict(),
            "opt_guidance": self.guidance_opt.state_dict() if self.guidance_opt else None,
            "results": {k: v for k, v in {**self.results, "slot0": self.slots[0], "slot1": self.slots[1]}.items()
                        if v is not None}, "rng": capture_rng(),
            "snapshot": self.snapshot,
            "reference_cache_keys": self.guidance.info.get("reference_cache_keys"),
        })
        self._write_timing()

    def _write_timing(self) -> None:
        write_timing(self.files, self.base, self.dev, self.state.iteration, self.timing, shares=self.cpu_timing)

    def _finish(self) -> dict:
        st = self.state
        if not (self.out / CHECKPOINT).is_file():
            self._save()
        exported = self._exported()
        save_torch(self.out / ENHANCER, {k: v.detach().cpu() for k, v in exported.state_dict().items()})
        counts, rounds = phase_counts(self.out / LOG)
        summary = {
            **self.base, "status": "done", "reason": None,
            "guidance_method": self.guidance.name, "is_random": self.guidance_encoder.is_random or self.identity_encoder.is_random,
            "encoder_sha256": self.guidance_encoder.weights_sha256, "identity_encoder_sha256": self.identity_encoder.weights_sha256,
            "schedule_values": {**asdict(self.sched), "total_iters": self.total, "guidance_lr": self.guidance_lr if self.has_prompts else None},
            "method_settings": self.guidance.recorded_settings(), "start": self.guidance.start,
            "iterations": {"total": st.iteration, **counts},
            "rounds": rounds, "reinits": st.reinits, "extensions": st.extensions,
            "warmup_psnr": round(sum(st.psnr) / len(st.psnr), 2) if st.psnr else None,
            "final_loss": st.last_loss, "enhancer_padding": "zeros",
            "exported": {"snapshot": "last" if exported is self.enhancer else "best-running-loss",
                         "iteration": st.iteration if exported is self.enhancer else st.snapshot_iter},
            **{f"guidance_{k}": v for k, v in self.guidance.info.items()},
        }
        write_json(self.out / SUMMARY, summary)
        write_training_provenance(self.files, self.base, weights=[self.out / ENHANCER])
        self._write_timing()
        return {**summary, "wall_s": round(self.timing.wall_s, 3)}
