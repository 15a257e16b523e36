"""The one training loop for CLIP-LIT, latent-prompt, RAVE and RAVE-shifted.

Phases (methods-spec 3.2-3.5, 4.2): ``ce_init`` (prompt methods: cross-entropy fit of the guidance
pair), ``warmup`` (25 x identity with all level weights 1; the enhancer is re-initialised with a
new seed and the warm-up extended when the running PSNR(out, in) stays under 8 dB), then rounds of
``enhance`` (guidance_weight x guidance + 22.5 x identity, guidance frozen) and, for prompt
methods, ``prompt`` (200 x ranking loss over backlit, well-lit and the intermediate results of
the last two rounds, enhancer frozen). Rounds are extended while their last loss is above the
threshold; the run ends when the iteration budget is spent.

Best-snapshot bookkeeping (spec 3.4, fidelity switch ``snapshot``): every ``snapshot_every``
iterations of an enhancer round, when the running mean of -loss over a ``snapshot_window`` buffer
(zero-filled at the start of each round, as upstream's) beats the round's best so far, the enhancer
is copied. Under ``best-running-loss`` (upstream) the latest such snapshot is exported as
enhancer.pth and gives CLIP-LIT's intermediate results; under ``last`` the live enhancer does.

Exact resume: every batch and augmentation is a pure function of (seed, iteration), and the
checkpoint holds everything else (weights, optimisers, RNG states, phase state, intermediate
results), so a killed run resumed from its checkpoint ends bit-identical on CPU.

:func:`train_method` is the API; a method that cannot run in the setting (e.g. CLIP-LIT with an
image-only encoder, or encoder weights that are unavailable offline) is *returned* as a summary
with ``status: "skipped"`` and a one-line ``reason`` (also written to train_summary.json).
"""
from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import torch

from backlit_core.atomic import remove_stale_temporaries, save_torch, write_json, write_text
from methods import augment as aug
from methods.base import GuidanceMethod, MethodContext, MethodUnavailable, PromptMethod
from methods.checkpoint import (
    capture_rng,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
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
from methods.losses import (
    ALPHA_GUIDED,
    ALPHA_WARMUP,
    identity_loss,
    negative_probability,
    prompt_ce_loss,
    psnr_y,
    ranking_loss,
)
from methods.network import EnhanceNet
from methods.registry import METHODS
from methods.schedule import Schedule, make_schedule, total_iterations
from methods.trainlog import STEP_COLUMNS, TrainLog, phase_counts, seconds_per_iter

W_WARMUP = 25.0
W_IDENTITY = 0.9 * 25.0
W_RANK = 200.0
CHECKPOINT, ENHANCER, LOG, SUMMARY, PROVENANCE = ("checkpoint.pt", "enhancer.pth", "train_log.csv",
                                                  "train_summary.json", "provenance.json")
TIMING, STEPS = "train_timing.json", "train_steps.csv"  # machine-dependent: kept apart from the model files


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


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
    round_scores: list[float] = field(default_factory=list)  # -loss of this enhancer round (last window)
    best_score: float | None = None  # best running mean of -loss in this round
    snapshot_iter: int = 0  # iteration of the latest best snapshot (0: none)


@dataclass
class RunTiming:
    """Wall time, peak memory and forward-time shares: machine-dependent, so never in the model files."""

    wall_s: float = 0.0
    peak_rss: int = 0
    shares: dict[str, float] = field(default_factory=lambda: {"enhancer": 0.0, "guidance_encoder": 0.0,
                                                              "identity_encoder": 0.0, "step": 0.0})


def train_method(method: str, backlit_dir: str | Path, welllit_dir: str | Path, out_dir: str | Path,
                 encoder: str = "effnet-lite0", identity_encoder: str | None = None, schedule: str = "quick",
                 iters: int | None = None, seed: int = 0, device: str = "auto", overrides: dict | None = None,
                 resume: bool = False, stop_after: int | None = None, progress: bool = True,
                 timing_dir: str | Path | None = None, provenance_file: str | Path | None = None,
                 threads: int | None = None, fidelity: dict | Fidelity | None = None) -> dict:
    """Train ``method`` and write the run files into ``out_dir``; return the summary dict.

    The model files (enhancer, checkpoint, loss log, summary) depend only on the inputs, settings and
    seed, never on the machine's speed; timings (``train_timing.json``, ``train_steps.csv``) go to
    ``timing_dir`` and provenance to ``provenance_file`` (both default to ``out_dir``). ``threads``
    fixes torch's thread count (results are bit-identical for the same thread count and CPU kind).

    ``identity_encoder`` defaults to ``encoder``. ``iters`` is the total iteration budget (all
    phases). ``resume`` continues from ``out_dir/checkpoint.pt`` when its settings match (else
    starts afresh with a warning). ``stop_after`` is a testing hook: stop as if killed after that
    many iterations of this session (no final checkpoint; returns ``status: "stopped"``).
    ``fidelity``: the switches of :mod:`methods.fidelity` (default: the upstream code's choices).
    Raises UnknownNameError (unknown method, encoder, schedule, setting or fidelity switch),
    ValueError (invalid numbers or values), FileNotFoundError (no images), TrainingDiverged (NaN/inf loss).
    """
    from backlit_core.device import resolve_device
    from methods.determinism import make_deterministic

    cls = METHODS.get(method)
    files = RunFiles(Path(out_dir), Path(timing_dir or out_dir), Path(provenance_file or Path(out_dir) / PROVENANCE))
    if cls.kind != "clip-guided":  # a baseline with its own network and loop (or training-free: an error)
        return cls.train(backlit_dir, files, schedule=schedule, iters=iters, seed=seed, device=device,
                         overrides=overrides, resume=resume, stop_after=stop_after, progress=progress,
                         threads=threads)
    fid = Fidelity.coerce(fidelity)
    overrides = dict(overrides or {})
    if iters is not None:
        overrides["total_iters"] = iters
    sched = make_schedule(schedule, overrides)
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if stop_after is not None and stop_after <= 0:
        raise ValueError(f"stop_after must be positive, got {stop_after!r}")
    backlit, welllit = image_paths(backlit_dir), image_paths(welllit_dir)
    dev = resolve_device(device)
    identity_encoder = identity_encoder or encoder
    base = {"method": method, "encoder": encoder, "identity_encoder": identity_encoder, "seed": seed,
            "schedule": schedule, "device": str(dev), **make_deterministic(threads, seed), "fidelity": fid.asdict()}
    try:
        genc = load_encoder(encoder, dev)
        ienc = load_encoder(identity_encoder, dev, fid.identity_precision(identity_encoder, dev.type))
        ctx = MethodContext(genc, backlit, welllit, seed, sched.ref_preprocess, sched.shift_tokens, fid.vocabulary,
                            sched.latent_logit_scale)
        guidance = cls(ctx).to(dev)
    except (MethodUnavailable, EncoderUnavailable) as exc:
        return _write_skipped(files, base, str(exc))
    run = Run(guidance, genc, ienc, sched, backlit, welllit, files, seed, dev, base, fid)
    return run.train(resume=resume, stop_after=stop_after, progress=progress)


def _above(loss: float, threshold: float | None) -> bool:
    return threshold is not None and loss > threshold


@dataclass(frozen=True)
class RunFiles:
    """Where a run writes: model files in ``out``, timings in ``timing``, provenance in ``provenance``."""

    out: Path
    timing: Path
    provenance: Path

    def make(self) -> None:
        for folder in (self.out, self.timing, self.provenance.parent):
            folder.mkdir(parents=True, exist_ok=True)


def write_timing(files: RunFiles, base: dict, dev: torch.device, iterations: int, timing: RunTiming,
                 shares: bool) -> None:
    """``train_timing.json``: wall time, s/iter by phase, memory, forward-time shares (this machine)."""
    from backlit_core.provenance import device_info

    parts = timing.shares if shares and timing.shares["step"] > 0 else None
    write_json(files.timing / TIMING, {
        "method": base["method"], "seed": base["seed"], "device": str(dev), "machine": device_info(),
        "iterations": iterations, "wall_s": round(timing.wall_s, 3),
        "s_per_iter": {p: round(v, 5) for p, v in seconds_per_iter(files.timing / STEPS).items()},
        "peak_rss_mb": round(timing.peak_rss / 2**20, 1),
        "peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if dev.type == "cuda" else None,
        "enhancer_step_time_share": None if parts is None else {
            k: round(parts[k] / parts["step"], 4) for k in ("enhancer", "guidance_encoder", "identity_encoder")},
        "totals": asdict(timing),
    })


def restore_timing(files: RunFiles) -> RunTiming:
    """The wall-time and memory totals of a killed session, to continue from (best effort)."""
    path = files.timing / TIMING
    saved = json.loads(path.read_text()).get("totals") if path.is_file() else None
    return RunTiming(**saved) if saved else RunTiming()


def _write_skipped(files: RunFiles, base: dict, reason: str) -> dict:
    from backlit_core.provenance import collect_provenance

    files.make()
    for stale in (files.out / CHECKPOINT, files.out / ENHANCER, files.out / LOG):
        stale.unlink(missing_ok=True)
    summary = {**base, "status": "skipped", "reason": reason.splitlines()[0]}
    write_json(files.out / SUMMARY, summary)
    write_text(files.timing / STEPS, ",".join(STEP_COLUMNS) + "\n")  # no steps: the stage's outputs still exist
    write_json(files.timing / TIMING, {"method": base["method"], "seed": base["seed"], "status": "skipped",
                                       "iterations": 0, "wall_s": 0.0})
    write_json(files.provenance, collect_provenance(seed=base["seed"], training=base))
    return summary


class Run:
    """One training run: data, models, optimisers, loop state, run files."""

    def __init__(self, guidance: GuidanceMethod, genc: Encoder, ienc: Encoder, sched: Schedule,
                 backlit: list[Path], welllit: list[Path], files: RunFiles, seed: int, dev: torch.device,
                 base: dict, fidelity: Fidelity) -> None:
        self.g, self.genc, self.ienc, self.s, self.fid = guidance, genc, ienc, sched, fidelity
        self.files, self.out, self.seed, self.dev, self.base = files, files.out, seed, dev, base
        self.prompt = isinstance(guidance, PromptMethod)
        self.total = total_iterations(sched, self.prompt, guidance.paper_total_iters)
        self.config = {**base, "device": None, "encoder_fp": genc.fingerprint, "identity_fp": ienc.fingerprint,
                       "schedule_values": {k: v for k, v in asdict(sched).items()
                                           if k not in ("total_iters", "checkpoint_every")},
                       "backlit": files_digest(backlit), "welllit": files_digest(welllit)}
        rf = fidelity.resize_filter
        self.b_train = preload(backlit, sched.crop, rf)
        self.b_rank = self.b_train if sched.rank_size == sched.crop else preload(backlit, sched.rank_size, rf)
        self.w_rank = preload(welllit, sched.rank_size, rf) if self.prompt else None
        self.results: dict[str, torch.Tensor | None] = {"new": None, "old": None}
        self.snapshot: dict[str, torch.Tensor] | None = None  # the latest best enhancer (CPU)
        self.state = LoopState()
        self.timing = RunTiming()
        self.enhancer = self._new_enhancer()
        self.opt_e = self._enhancer_optimizer()
        self.g_lr = sched.guidance_lr or (guidance.guidance_lr or 0.0) * sched.guidance_lr_scale
        self.opt_g = (torch.optim.Adam(guidance.parameters(), lr=self.g_lr, weight_decay=sched.weight_decay)
                      if self.prompt else None)
        self.cpu_timing = dev.type == "cpu"
        self.proc = psutil.Process()

    # --- setup ------------------------------------------------------------------------------
    def _new_enhancer(self) -> EnhanceNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stable_seed(self.seed, "enhancer", self.state.reinits))
            net = EnhanceNet(padding="zeros")
        if self.s.output_bias_init is not None:
            torch.nn.init.constant_(net.cond_add1.bias, self.s.output_bias_init)
        return net.to(self.dev)

    def _enhancer_optimizer(self) -> torch.optim.Adam:
        return torch.optim.Adam(self.enhancer.parameters(), lr=self.s.lr, weight_decay=self.s.weight_decay)

    def _restore(self, ckpt: dict) -> None:
        self.state = LoopState(**ckpt["state"])
        self.enhancer = self._new_enhancer()
        self.enhancer.load_state_dict(ckpt["enhancer"])
        self.opt_e = self._enhancer_optimizer()
        self.opt_e.load_state_dict(ckpt["opt_enhancer"])
        self.g.load_state_dict(ckpt["guidance"])
        if self.opt_g is not None:
            self.opt_g.load_state_dict(ckpt["opt_guidance"])
        self.results = {k: ckpt["results"].get(k) for k in ("new", "old")}
        self.snapshot = ckpt.get("snapshot")
        restore_rng(ckpt["rng"])
        if self.state.phase == "enhance" and self.prompt:
            self.g.freeze_features(self.genc)

    def _start(self, resume: bool) -> None:
        ckpt_path = self.out / CHECKPOINT
        if resume and ckpt_path.is_file():
            ckpt = load_checkpoint(ckpt_path)
            done = ckpt["state"]["iteration"]
            if ckpt.get("config") == self.config and done > self.total:  # a shorter run is not a prefix of this one
                warnings.warn(f"{ckpt_path}: {done} iterations done, {self.total} asked; starting afresh", stacklevel=3)
            elif ckpt.get("config") == self.config:
                self._restore(ckpt)
                self.timing = restore_timing(self.files)
                return
            else:
                changed = sorted(k for k in self.config if ckpt.get("config", {}).get(k) != self.config[k])
                warnings.warn(f"{ckpt_path}: settings differ ({', '.join(changed)}); starting afresh", stacklevel=3)
        for stale in (self.out / CHECKPOINT, self.out / ENHANCER, self.out / LOG, self.out / SUMMARY,
                      self.files.timing / TIMING, self.files.timing / STEPS):
            stale.unlink(missing_ok=True)
        self._enter("ce_init" if self.prompt else "warmup")

    # --- phases -----------------------------------------------------------------------------
    def _enter(self, phase: str) -> None:
        st = self.state
        st.phase, st.phase_iter = phase, 0
        st.phase_len = {"ce_init": self.s.ce_iters, "warmup": self.s.warmup_iters,
                        "enhance": self.s.enhancer_iters, "prompt": self.s.prompt_iters}[phase]
        if phase == "enhance":
            st.round_scores, st.best_score = [], None  # upstream resets its buffer and best each round
            if self.prompt:
                self.g.freeze_features(self.genc)
        if st.phase_len == 0:
            self._next_phase()

    def _next_phase(self) -> None:
        st = self.state
        if st.phase == "ce_init":
            self._enter("warmup")
        elif st.phase == "warmup":
            if st.psnr and sum(st.psnr) / len(st.psnr) < self.s.psnr_min:
                warnings.warn(f"warm-up ended with PSNR(out, in) {sum(st.psnr) / len(st.psnr):.1f} dB < "
                              f"{self.s.psnr_min} dB after {st.reinits} re-initialisations: the enhancer is stuck "
                              "(try another --seed or --set output_bias_init=1)", stacklevel=2)
            self._enter("enhance")
        elif st.phase == "enhance":
            if st.phase_iter and _above(st.last_loss, self.s.train_threshold):
                self._extend("enhance", self.s.train_extension)
            elif self.prompt:
                self.results = {"new": self._intermediate_results(), "old": self.results["new"]}
                self._enter("prompt")
            else:
                st.round += 1
                self._enter("enhance")
        elif st.phase_iter and _above(st.last_loss, self.s.prompt_threshold):
            self._extend("prompt", self.s.prompt_extension)
        else:
            st.round += 1
            self._enter("enhance")

    def _extend(self, phase: str, n: int) -> None:
        self.state.phase_len += n
        self.state.extensions[phase] += 1

    def _exported(self) -> EnhanceNet:
        """The enhancer that counts: the latest best snapshot (``best-running-loss``, when one was
        taken), else the live one."""
        if self.fid.snapshot == "last" or self.snapshot is None:
            return self.enhancer
        net = EnhanceNet(padding="zeros").to(self.dev)
        net.load_state_dict(self.snapshot)
        return net

    @torch.no_grad()
    def _intermediate_results(self) -> torch.Tensor:
        """The exported enhancer's outputs on all training backlit images at rank size (uint8, like PNGs)."""
        net = self._exported()
        return torch.cat([to_uint8(net(to_float(chunk).to(self.dev))).cpu() for chunk in self.b_rank.split(8)])

    def _track_snapshot(self, loss: float) -> None:
        """Upstream's best-model bookkeeping over the enhancer round (see the module docstring)."""
        st, s = self.state, self.s
        st.round_scores = (st.round_scores + [-loss])[-s.snapshot_window:]
        if st.iteration % s.snapshot_every:
            return
        running = sum(st.round_scores) / s.snapshot_window
        if st.best_score is None or running > st.best_score:
            st.best_score, st.snapshot_iter = running, st.iteration
            self.snapshot = {k: v.detach().cpu().clone() for k, v in self.enhancer.state_dict().items()}

    def _check_reinit(self, psnr: float) -> None:
        st, s = self.state, self.s
        st.psnr = (st.psnr + [psnr])[-s.psnr_window:]
        st.init_iter += 1
        if (st.init_iter > s.reinit_after and len(st.psnr) == s.psnr_window and sum(st.psnr) / len(st.psnr) < s.psnr_min
                and st.reinits < s.max_reinits):
            st.reinits += 1
            st.psnr, st.init_iter = [], 0
            st.phase_len += s.reinit_extension
            self.enhancer = self._new_enhancer()
            self.opt_e = self._enhancer_optimizer()

    # --- steps ------------------------------------------------------------------------------
    def _backlit_batch(self) -> torch.Tensor:
        it, n = self.state.iteration, self.b_train.shape[0]
        idx = batch_indices(n, self.s.batch_size, self.seed, "enhancer", it)
        params = aug.sample_params(len(idx), generator(self.seed, "enhancer-aug", it), aug.ZOOM_ENHANCER)
        return aug.augment(to_float(self.b_train[idx]).to(self.dev), params)

    def _clock(self, key: str, t0: float) -> float:
        t1 = time.perf_counter()
        if self.cpu_timing:
            self.timing.shares[key] += t1 - t0
        return t1

    def _enhancer_step(self, guided: bool) -> dict:
        t0 = time.perf_counter()
        x = self._backlit_batch()
        t = time.perf_counter()
        y = self.enhancer(x)
        t = self._clock("enhancer", t)
        row: dict = {}
        if guided:
            shared = self.genc is self.ienc
            o = self.genc(y, features=shared)
            t = self._clock("guidance_encoder", t)
            f_out = o.features if shared else self.ienc(y, features=True).features
            guide = self.g.guidance_loss(o.embedding)
            row["guidance"] = guide.item()
        else:
            f_out = self.ienc(y, features=True).features
        with torch.no_grad():
            f_in = self.ienc(x, features=True).features
        self._clock("identity_encoder", t)
        ident = identity_loss(f_out, f_in, ALPHA_GUIDED if guided else ALPHA_WARMUP)
        row["identity"] = ident.item()
        loss = self.g.guidance_weight * guide + W_IDENTITY * ident if guided else W_WARMUP * ident
        self._update(self.opt_e, loss)
        if not guided:
            row["psnr"] = psnr_y(y.detach(), x, self.fid.warmup_monitor).mean().item()
        self._clock("step", t0)
        return {"loss": loss.item(), **row}

    def _ce_step(self) -> dict:
        it, s = self.state.iteration, self.s
        nb, nw = self.b_rank.shape[0], self.w_rank.shape[0]
        m = max(nb, nw)
        q = batch_indices(2 * m, s.prompt_batch_size, self.seed, "ce", it)
        labels = (q >= m).long()
        imgs = torch.stack([self.w_rank[(i - m) % nw] if i >= m else self.b_rank[i % nb] for i in q.tolist()])
        params = aug.sample_params(len(q), generator(self.seed, "ce-aug", it), aug.ZOOM_PROMPT)
        with torch.no_grad():
            emb = self.genc(aug.augment(to_float(imgs).to(self.dev), params)).embedding
        loss = prompt_ce_loss(emb, self.g.prompt_features(self.genc), labels.to(self.dev), self.g.logit_scale)
        self._update(self.opt_g, loss)
        return {"loss": loss.item(), "ce": loss.item()}

    def _prompt_step(self) -> dict:
        it, s = self.state.iteration, self.s
        nb, nw = self.b_rank.shape[0], self.w_rank.shape[0]
        m = max(nb, nw)
        bi = batch_indices(m, s.prompt_batch_size, self.seed, "rank-backlit", it) % nb
        wi = batch_indices(m, s.prompt_batch_size, self.seed, "rank-welllit", it) % nw
        members = [self.b_rank[bi], self.w_rank[wi], self.results["new"][bi]]
        if self.results["old"] is not None:
            members.append(self.results["old"][bi])
        params = aug.sample_params(len(bi), generator(self.seed, "rank-aug", it), aug.ZOOM_PROMPT)
        with torch.no_grad():
            emb = self.genc(aug.augment(to_float(torch.cat(members)).to(self.dev), params)).embedding
        p = negative_probability(emb, self.g.prompt_features(self.genc), self.g.logit_scale).split(len(bi))
        rank = ranking_loss(p[0], p[1], p[2], p[3] if len(p) == 4 else None, self.fid.ranking_order)
        loss = W_RANK * rank
        self._update(self.opt_g, loss)
        return {"loss": loss.item(), "rank": rank.item()}

    def _update(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            st = self.state
            raise TrainingDiverged(f"non-finite loss ({loss.item()}) at iteration {st.iteration + 1} "
                                   f"({st.phase}, round {st.round}); stopped. The last good checkpoint is "
                                   f"{self.out / CHECKPOINT} (every {self.s.checkpoint_every} iterations)")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def _step(self) -> dict:
        phase = self.state.phase
        if phase == "ce_init":
            return self._ce_step()
        if phase == "prompt":
            return self._prompt_step()
        return self._enhancer_step(guided=phase == "enhance")

    # --- loop -------------------------------------------------------------------------------
    def train(self, resume: bool, stop_after: int | None, progress: bool) -> dict:
        from tqdm import tqdm

        self.files.make()
        remove_stale_temporaries(self.out)  # left by a killed run
        self._start(resume)
        st, tm = self.state, self.timing
        log = TrainLog(self.out / LOG, keep_until=st.iteration)
        steps = TrainLog(self.files.timing / STEPS, keep_until=st.iteration, columns=STEP_COLUMNS)
        bar = tqdm(total=self.total, initial=st.iteration, desc=self.base["method"], file=sys.stderr,
                   disable=not progress, mininterval=1.0, dynamic_ncols=True)
        done_here = 0
        try:
            while st.iteration < self.total:
                if stop_after is not None and done_here >= stop_after:
                    return {**self.base, "status": "stopped", "iteration": st.iteration}
                t0 = time.perf_counter()
                phase, rnd = st.phase, st.round
                row = self._step()
                st.iteration += 1
                st.phase_iter += 1
                st.last_loss = row["loss"]
                if phase == "warmup":
                    self._check_reinit(row["psnr"])
                elif phase == "enhance" and self.fid.snapshot == "best-running-loss":
                    self._track_snapshot(row["loss"])
                if st.phase_iter >= st.phase_len:
                    self._next_phase()
                step_s = time.perf_counter() - t0
                tm.wall_s += step_s
                tm.peak_rss = max(tm.peak_rss, self.proc.memory_info().rss)
                log.append({"iter": st.iteration, "phase": phase, "round": rnd, **row})
                steps.append({"iter": st.iteration, "phase": phase, "step_s": step_s, "wall_s": tm.wall_s})
                bar.update(1)
                bar.set_postfix_str(f"{phase} r{rnd} loss {row['loss']:.4g}", refresh=False)
                done_here += 1
                if st.iteration % self.s.checkpoint_every == 0 or st.iteration == self.total:
                    self._save()
        finally:
            bar.close()
            log.close()
            steps.close()
        return self._finish()

    def _save(self) -> None:
        save_checkpoint(self.out / CHECKPOINT, {
            "config": self.config, "state": asdict(self.state), "enhancer": self.enhancer.state_dict(),
            "opt_enhancer": self.opt_e.state_dict(), "guidance": self.g.state_dict(),
            "opt_guidance": self.opt_g.state_dict() if self.opt_g else None,
            "results": {k: v for k, v in self.results.items() if v is not None}, "rng": capture_rng(),
            "snapshot": self.snapshot,
            "reference_cache_keys": self.g.info.get("reference_cache_keys"),
        })
        self._write_timing()

    def _write_timing(self) -> None:
        write_timing(self.files, self.base, self.dev, self.state.iteration, self.timing, shares=self.cpu_timing)

    def _finish(self) -> dict:
        from backlit_core.provenance import collect_provenance

        st = self.state
        if not (self.out / CHECKPOINT).is_file():
            self._save()
        exported = self._exported()
        save_torch(self.out / ENHANCER, {k: v.detach().cpu() for k, v in exported.state_dict().items()})
        counts, rounds = phase_counts(self.out / LOG)
        summary = {
            **self.base, "status": "done", "reason": None,
            "guidance_method": self.g.name, "is_random": self.genc.is_random or self.ienc.is_random,
            "encoder_sha256": self.genc.weights_sha256, "identity_encoder_sha256": self.ienc.weights_sha256,
            "schedule_values": {**asdict(self.s), "total_iters": self.total, "guidance_lr": self.g_lr if self.prompt else None},
            "iterations": {"total": st.iteration, **counts},
            "rounds": rounds, "reinits": st.reinits, "extensions": st.extensions,
            "warmup_psnr": round(sum(st.psnr) / len(st.psnr), 2) if st.psnr else None,
            "final_loss": st.last_loss, "enhancer_padding": "zeros",
            "exported": {"snapshot": "last" if exported is self.enhancer else "best-running-loss",
                         "iteration": st.iteration if exported is self.enhancer else st.snapshot_iter},
            **{f"guidance_{k}": v for k, v in self.g.info.items()},
        }
        write_json(self.out / SUMMARY, summary)
        write_json(self.files.provenance, collect_provenance(seed=self.seed, weights=[self.out / ENHANCER],
                                                             training=self.base))
        self._write_timing()
        return {**summary, "wall_s": round(self.timing.wall_s, 3)}
