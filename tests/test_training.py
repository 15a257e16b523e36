"""Training: real learning on SICE pairs, CLIP-LIT end to end, skips, exact resume, NaN stop,
warm-up re-initialisation, settings errors, data order, rave-explain."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from backlit_core.image_io import load_image, save_png
from backlit_core.registry import UnknownNameError
from methods.augment import ZOOM_PROMPT, AugmentParams, augment, sample_params
from methods.base import MethodContext
from methods.data import (
    batch_indices,
    generator,
    image_paths,
    preload,
    reference_embeddings,
)
from methods.encoders import load_encoder
from methods.fidelity import LEDGER
from methods.network import EnhanceNet, load_enhancer
from methods.registry import METHODS
from methods.run_files import TrainingDiverged
from methods.train_api import train_method

pytestmark = pytest.mark.usefixtures("embedding_cache")  # tests/conftest.py: a fresh cache per module

TINY = {"crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 4, "ce_iters": 3, "warmup_iters": 3,
        "enhancer_iters": 4, "prompt_iters": 3, "checkpoint_every": 4}



@pytest.fixture(scope="module")
def sice(reference_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """48 SICE pairs for training (low = backlit, high = well-lit), 16 other low frames held out."""
    root = tmp_path_factory.mktemp("sice")
    names = sorted(p.name for p in (reference_dir / "sice-pairs" / "low").iterdir())
    dirs = {k: root / k for k in ("low", "high", "heldout")}
    for d in dirs.values():
        d.mkdir()
    for n in names[:48]:
        (dirs["low"] / n).symlink_to(reference_dir / "sice-pairs" / "low" / n)
        (dirs["high"] / n).symlink_to(reference_dir / "sice-pairs" / "high" / n)
    for n in names[-16:]:
        (dirs["heldout"] / n).symlink_to(reference_dir / "sice-pairs" / "low" / n)
    return dirs


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """Six dark and six bright smooth images (48 px) for fast mechanics tests."""
    root = tmp_path_factory.mktemp("small")
    g = torch.Generator().manual_seed(0)
    for kind, scale in (("backlit", 0.25), ("welllit", 0.9)):
        (root / kind).mkdir()
        for i in range(6):
            img = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(48, 48), mode="bilinear")[0]
            save_png(img * scale, root / kind / f"{i}.png")
    return {"backlit": root / "backlit", "welllit": root / "welllit"}


def _log(run: Path) -> list[dict[str, str]]:
    with open(run / "train_log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _guidance_loss(method: str, run: Path, data: dict[str, Path], x: torch.Tensor, net) -> tuple[float, float]:
    """The run's final guidance loss of ``x`` itself and of the enhanced ``x``."""
    enc = load_encoder("effnet-lite0")
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    guidance = METHODS.get(method)(MethodContext(enc, image_paths(data["low"]), image_paths(data["high"]), seed=0))
    guidance.load_state_dict(ckpt["guidance"])
    if hasattr(guidance, "freeze_features"):
        guidance.freeze_features(enc)
    with torch.no_grad():
        return (float(guidance.guidance_loss(enc(x).embedding)), float(guidance.guidance_loss(enc(net(x)).embedding)))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rave", "latent-prompt"])
def test_learns_on_sice_with_effnet(method: str, sice: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / method
    summary = train_method(method, sice["low"], sice["high"], run, encoder="effnet-lite0", schedule="quick",
                           overrides={"crop": 64, "rank_size": 64, "warmup_iters": 10, "enhancer_iters": 140, "rounds": 1},
                           progress=False, fidelity={"snapshot": "last"})  # the trained one, not an early snapshot
    assert summary["status"] == "done" and summary["is_random"] is False
    assert summary["iterations"]["enhance"] == 140 and summary["warmup_psnr"] > 30
    net = load_enhancer(run / "enhancer.pth", padding="reflect")
    held = preload(image_paths(sice["heldout"]), 128).float() / 255
    with torch.no_grad():
        out = net(held)
    before, after = _guidance_loss(method, run, sice, held, net)
    print(f"{method}: held-out mean {held.mean():.4f} -> {out.mean():.4f}; guidance loss {before:.4f} -> {after:.4f}")
    assert after < before  # the trained enhancer lowers the guidance loss on unseen inputs
    assert out.mean() > 1.03 * held.mean()  # and brightens them


def test_clip_lit_end_to_end_with_tiny_clip(small: dict[str, Path], tmp_path: Path) -> None:
    from benchmark.cli import cli

    run = tmp_path / "clip-lit"
    args = ["train", "--method", "clip-lit", "--backlit", str(small["backlit"]), "--welllit", str(small["welllit"]),
            "--encoder", "tiny-clip-random", "--identity-encoder", "effnet-lite0", "--iters", "24", "--out", str(run),
            "--crop", "32", "--batch-size", "2", "-q", "--guidance-lr", "1e-3", "--fidelity", "ranking_order=old-then-new",
            "--fidelity", "clip_lit_start=scratch"]
    for key, value in TINY.items():
        if key not in ("crop", "batch_size"):
            args += ["--set", f"{key}={value}"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    for name in ("checkpoint.pt", "enhancer.pth", "train_log.csv", "train_summary.json", "provenance.json"):
        assert (run / name).is_file(), name
    phases = [(r["phase"], r["round"]) for r in _log(run)]
    expected = ([("ce_init", "0")] * 3 + [("warmup", "0")] * 3 + [("enhance", "0")] * 4 + [("prompt", "0")] * 3
                + [("enhance", "1")] * 4 + [("prompt", "1")] * 3 + [("enhance", "2")] * 4)
    assert phases == expected
    rows = _log(run)
    assert all(float(r["rank"]) >= 0 for r in rows if r["phase"] == "prompt")
    assert all(r["guidance"] and r["identity"] for r in rows if r["phase"] == "enhance")
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["status"] == "done" and summary["is_random"] is True and summary["encoder_sha256"] is None
    assert summary["iterations"] == {"total": 24, "ce_init": 3, "warmup": 3, "enhance": 12, "prompt": 6}
    assert not {"wall_s", "s_per_iter", "peak_rss_mb"} & set(summary)  # machine-dependent: kept apart
    timing = json.loads((run / "train_timing.json").read_text())
    assert set(timing["s_per_iter"]) == {"ce_init", "warmup", "enhance", "prompt"} and timing["wall_s"] > 0
    assert summary["schedule_values"]["guidance_lr"] == 1e-3
    assert summary["fidelity"]["ranking_order"] == "old-then-new" and summary["fidelity"]["snapshot"] == "best-running-loss"
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["guidance"]["prompts"].shape == (2, 18, 64)  # SOT + 16 X + EOT, tiny width 64
    assert not torch.equal(ckpt["guidance"]["prompts"][0], ckpt["guidance"]["prompts"][1])  # CE separated them
    assert set(ckpt["results"]) == {"new", "old"} and ckpt["results"]["new"].dtype == torch.uint8
    load_enhancer(run / "enhancer.pth")  # what `bench enhance --weights` loads


def test_clip_lit_refused_with_image_only_encoder(small: dict[str, Path], tmp_path: Path) -> None:
    from benchmark.cli import cli

    summary = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path / "a", encoder="effnet-lite0")
    assert summary["status"] == "skipped"
    assert summary["reason"] == ("clip-lit needs a text encoder; effnet-lite0 is image-only "
                                 "(use a clip:<arch>:<weights> encoder)")
    assert json.loads((tmp_path / "a" / "train_summary.json").read_text())["status"] == "skipped"
    assert not (tmp_path / "a" / "enhancer.pth").exists()
    args = ["train", "-m", "clip-lit", "--backlit", str(small["backlit"]), "--welllit", str(small["welllit"]),
            "--out", str(tmp_path / "b")]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 3 and "skipped: clip-lit needs a text encoder" in refused.output
    assert CliRunner().invoke(cli, [*args, "--allow-skip"]).exit_code == 0


@pytest.mark.parametrize("method, encoder", [("clip-lit", "tiny-clip-random"), ("rave", "effnet-lite0")])
def test_killed_and_resumed_run_is_bit_identical(method: str, encoder: str, small: dict[str, Path], tmp_path: Path) -> None:
    kw = {"encoder": encoder, "identity_encoder": "effnet-lite0", "iters": 20, "progress": False, "seed": 3,
          "overrides": {**TINY, "snapshot_every": 3, "snapshot_window": 4},  # best snapshots within the kill window
          "fidelity": {"clip_lit_start": "scratch"}}
    train_method(method, small["backlit"], small["welllit"], tmp_path / "straight", **kw)
    stopped = train_method(method, small["backlit"], small["welllit"], tmp_path / "resumed", stop_after=11, **kw)
    assert stopped["status"] == "stopped" and len(_log(tmp_path / "resumed")) == 11  # killed after 11, checkpoint at 8
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["state"]["iteration"] == 8
    train_method(method, small["backlit"], small["welllit"], tmp_path / "resumed", resume=True, **kw)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["snapshot"] is not None and a["state"]["snapshot_iter"] > 11
    for part in ("enhancer", "guidance", "snapshot"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert a["state"]["iteration"] == b["state"]["iteration"] == 20
    rows_a, rows_b = _log(tmp_path / "straight"), _log(tmp_path / "resumed")
    terms = ("iter", "phase", "round", "loss", "guidance", "identity", "ce", "rank", "psnr")
    assert [[r[t] for t in terms] for r in rows_a] == [[r[t] for t in terms] for r in rows_b]  # rows 9-11 rewritten
    # and byte for byte (the rewrite once used other line endings, so DVC saw a resumed log as changed)
    assert (tmp_path / "straight" / "train_log.csv").read_bytes() == (tmp_path / "resumed" / "train_log.csv").read_bytes()
    enh_a = torch.load(tmp_path / "straight" / "enhancer.pth", weights_only=True)
    enh_b = torch.load(tmp_path / "resumed" / "enhancer.pth", weights_only=True)
    assert all(torch.equal(enh_a[k], enh_b[k]) for k in enh_a)


def test_resume_with_other_settings_starts_afresh(small: dict[str, Path], tmp_path: Path) -> None:
    kw = {"encoder": "effnet-lite0", "iters": 4, "overrides": TINY, "progress": False}
    train_method("rave", small["backlit"], small["welllit"], tmp_path, seed=0, **kw)
    with pytest.warns(UserWarning, match="settings differ .*seed.*starting afresh"):
        summary = train_method("rave", small["backlit"], small["welllit"], tmp_path, seed=1, resume=True, **kw)
    assert summary["seed"] == 1 and len(_log(tmp_path)) == 4
    more = train_method("rave", small["backlit"], small["welllit"], tmp_path, seed=1, resume=True,
                        **{**kw, "iters": 6})  # a larger budget continues the finished run
    assert more["iterations"]["total"] == 6 and [r["iter"] for r in _log(tmp_path)] == [str(i) for i in range(1, 7)]


def test_reentering_a_finished_run_keeps_its_timings(small: dict[str, Path], tmp_path: Path) -> None:
    """DVC reruns a finished training stage whose code changed elsewhere: the run is restored, not redone,
    and its timings stay those of the run that made the weights."""
    kw = {"encoder": "effnet-lite0", "iters": 4, "overrides": TINY, "progress": False, "seed": 0}
    train_method("rave", small["backlit"], small["welllit"], tmp_path, **kw)
    timing, steps = json.loads((tmp_path / "train_timing.json").read_text()), (tmp_path / "train_steps.csv").read_bytes()
    weights = (tmp_path / "enhancer.pth").read_bytes()
    again = train_method("rave", small["backlit"], small["welllit"], tmp_path, resume=True, **kw)
    after = json.loads((tmp_path / "train_timing.json").read_text())
    assert again["iterations"]["total"] == 4 and (tmp_path / "enhancer.pth").read_bytes() == weights
    assert after["totals"] == timing["totals"] and after["s_per_iter"] == timing["s_per_iter"] and timing["wall_s"] > 0
    assert (tmp_path / "train_steps.csv").read_bytes() == steps


def _running_means(rows: list[dict[str, str]], every: int, window: int) -> dict[int, tuple[str, float]]:
    """Upstream's check, recomputed from the log: iteration -> (round, mean of -loss over a zero-filled buffer)."""
    out, buf, rnd = {}, [], None
    for r in rows:
        if r["phase"] != "enhance":
            continue
        if r["round"] != rnd:
            buf, rnd = [], r["round"]
        buf = (buf + [-float(r["loss"])])[-window:]
        if int(r["iter"]) % every == 0:
            out[int(r["iter"])] = (rnd, sum(buf) / window)
    return out


def test_best_snapshot_is_exported(small: dict[str, Path], tmp_path: Path) -> None:
    over = {**TINY, "enhancer_iters": 8, "snapshot_every": 2, "snapshot_window": 3}
    kw = {"encoder": "effnet-lite0", "iters": 3 + 2 * 8, "overrides": over, "progress": False}
    best = train_method("rave", small["backlit"], small["welllit"], tmp_path / "best", **kw)
    last = train_method("rave", small["backlit"], small["welllit"], tmp_path / "last", fidelity={"snapshot": "last"}, **kw)
    assert best["fidelity"]["snapshot"] == "best-running-loss" and last["fidelity"]["snapshot"] == "last"
    rows = _log(tmp_path / "best")
    assert [r["loss"] for r in rows] == [r["loss"] for r in _log(tmp_path / "last")]  # RAVE trains the live enhancer
    means = _running_means(rows, 2, 3)
    final_round = {i: m for i, (rnd, m) in means.items() if rnd == "1"}
    assert sorted(final_round) == [12, 14, 16, 18]  # round 1 is iterations 12-19
    snap = best["exported"]["iteration"]
    assert best["exported"]["snapshot"] == "best-running-loss" and snap in final_round
    assert final_round[snap] == pytest.approx(max(final_round.values()), rel=1e-5)  # the log has 6 digits
    ckpt = torch.load(tmp_path / "best" / "checkpoint.pt", weights_only=True)
    assert ckpt["state"]["snapshot_iter"] == snap and ckpt["state"]["best_score"] is None  # iteration 19 began round 2
    exported = torch.load(tmp_path / "best" / "enhancer.pth", weights_only=True)
    assert all(torch.equal(exported[k], ckpt["snapshot"][k]) for k in exported)
    assert not all(torch.equal(exported[k], ckpt["enhancer"][k]) for k in exported)  # not the live one (iteration 19)
    assert last["exported"] == {"snapshot": "last", "iteration": 19}
    live = torch.load(tmp_path / "last" / "enhancer.pth", weights_only=True)
    assert all(torch.equal(live[k], ckpt["enhancer"][k]) for k in live)


def test_fidelity_switches_reach_the_run(small: dict[str, Path], tmp_path: Path) -> None:
    alternative = {e.name: e.alternative for e in LEDGER}
    kw = {"encoder": "tiny-clip-random", "identity_encoder": "effnet-lite0", "iters": 14, "overrides": TINY,
          "progress": False}
    summary = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path, fidelity=alternative, **kw)
    assert summary["fidelity"] == alternative
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["config"]["fidelity"] == alternative
    luma_psnr = [float(r["psnr"]) for r in _log(tmp_path) if r["phase"] == "warmup"]
    with pytest.warns(UserWarning, match="settings differ .*fidelity.*starting afresh"):
        train_method("clip-lit", small["backlit"], small["welllit"], tmp_path, resume=True,
                     fidelity={**alternative, "warmup_monitor": "pyiqa-y"}, **kw)
    y_psnr = [float(r["psnr"]) for r in _log(tmp_path) if r["phase"] == "warmup"]
    # same first step: studio-range Y scales the luma differences by 219/255 (PSNR's eps is 1e-8)
    mse_luma = 10 ** (-luma_psnr[0] / 10) - 1e-8
    assert y_psnr[0] == pytest.approx(-10 * math.log10(mse_luma * (219 / 255) ** 2 + 1e-8), abs=0.01)
    assert y_psnr[0] > luma_psnr[0] + 0.5
    with pytest.raises(ValueError, match="fidelity setting resize_filter must be one of lanczos, bilinear"):
        train_method("rave", small["backlit"], small["welllit"], tmp_path, fidelity={"resize_filter": "bicubic"})


def test_lanczos_resize_is_pils(small: dict[str, Path]) -> None:
    from PIL import Image

    from methods.data import resize_square, to_uint8

    path = image_paths(small["welllit"])[0]
    with Image.open(path) as img:
        pil = torch.from_numpy(np.asarray(img.convert("RGB").resize((20, 20), Image.LANCZOS)).copy()).permute(2, 0, 1)
    assert torch.equal(preload([path], 20, "lanczos")[0], pil)
    bilinear = preload([path], 20, "bilinear")[0]
    assert torch.equal(bilinear, to_uint8(resize_square(load_image(path), 20)))
    assert not torch.equal(bilinear, pil)


def test_nan_loss_stops_and_keeps_last_checkpoint(small: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    from methods import guided_training as trainer

    calls = {"n": 0}
    real = trainer.identity_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs) * (float("nan") if calls["n"] == 6 else 1.0)

    monkeypatch.setattr(trainer, "identity_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="non-finite loss .* at iteration 6 .*last good checkpoint"):
        train_method("rave", small["backlit"], small["welllit"], tmp_path, encoder="effnet-lite0", iters=10,
                     overrides=TINY, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state"]["iteration"] == 4
    assert not (tmp_path / "enhancer.pth").exists()


def test_warmup_reinitialisation_rule_and_cap(small: dict[str, Path], tmp_path: Path) -> None:
    """Fidelity switch ``reinit_cap``: upstream re-initialises as long as the rule fires; ``capped`` stops
    after max_reinits and ends the warm-up with a warning."""
    over = {**TINY, "warmup_iters": 4, "reinit_after": 2, "psnr_window": 2, "psnr_min": 200.0, "reinit_extension": 3,
            "max_reinits": 2}
    kw = {"encoder": "effnet-lite0", "iters": 14, "overrides": over, "progress": False}
    with pytest.warns(UserWarning, match=r"warm-up ended with PSNR\(out, in\) .* after 2 re-initialisations"):
        summary = train_method("rave", small["backlit"], small["welllit"], tmp_path / "capped", **kw,
                               fidelity={"reinit_cap": "capped"})
    # PSNR never reaches 200 dB: re-initialised at warm-up iterations 3 and 6, each adding 3 iterations
    assert summary["reinits"] == 2 and summary["iterations"]["warmup"] == 4 + 2 * 3
    uncapped = train_method("rave", small["backlit"], small["welllit"], tmp_path / "uncapped", **kw)
    # every third warm-up iteration re-initialises and adds 3 more: the warm-up never ends within 14
    assert uncapped["fidelity"]["reinit_cap"] == "uncapped"
    assert uncapped["reinits"] == 4 and uncapped["iterations"] == {"total": 14, "warmup": 14}


def test_round_extension_reads_upstreams_loss(small: dict[str, Path], tmp_path: Path) -> None:
    """Fidelity switch ``round_extension``, on the same losses: with a threshold between RAVE's
    320 x guidance + 22.5 x identity and its training loss (1920 x guidance + ...) at the end of round 0,
    upstream's reading does not extend the round and the training-loss reading does."""
    from methods.losses import W_GUIDANCE, W_IDENTITY

    kw = {"encoder": "effnet-lite0", "iters": 10, "progress": False}
    train_method("rave", small["backlit"], small["welllit"], tmp_path / "probe", overrides=TINY, **kw)
    end = [r for r in _log(tmp_path / "probe") if r["phase"] == "enhance"][TINY["enhancer_iters"] - 1]
    upstream = W_GUIDANCE * float(end["guidance"]) + W_IDENTITY * float(end["identity"])
    trained = float(end["loss"])
    assert trained == pytest.approx(6 * W_GUIDANCE * float(end["guidance"]) + W_IDENTITY * float(end["identity"]),
                                    rel=1e-4) and trained > upstream + 1
    over = {**TINY, "train_threshold": (upstream + trained) / 2, "train_extension": 2}
    runs = {sw: train_method("rave", small["backlit"], small["welllit"], tmp_path / sw, overrides=over, **kw,
                             fidelity={"round_extension": sw}) for sw in ("guidance-320", "training-loss")}
    assert runs["guidance-320"]["extensions"]["enhance"] == 0 and runs["guidance-320"]["rounds"] == 2
    assert runs["training-loss"]["extensions"]["enhance"] >= 1
    rows = {sw: _log(tmp_path / sw) for sw in runs}
    assert rows["guidance-320"][:7] == rows["training-loss"][:7] == _log(tmp_path / "probe")[:7]  # same losses
    assert rows["training-loss"][7]["round"] == "0" and rows["guidance-320"][7]["round"] == "1"


def _released_init_files(folder: Path, width: int) -> dict[str, Path]:
    """Stand-ins shaped like upstream's init_enhancement_model.pth (DataParallel keys) and init_prompt_pair.pth."""
    folder.mkdir()
    files = {"init_enhancer": folder / "init_enhancement_model.pth", "init_prompts": folder / "init_prompt_pair.pth"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        net = EnhanceNet("zeros")
        torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, files["init_enhancer"])
        torch.save({"module.embedding_prompt": torch.randn(2, 77, width)}, files["init_prompts"])
    return files


def test_clip_lit_start(small: dict[str, Path], tmp_path: Path) -> None:
    """Fidelity switch ``clip_lit_start``: upstream's default starts from the released init files (no CE,
    no warm-up) and is skipped with the reason when they are missing; ``scratch`` runs CE and warm-up.
    train_summary.json's ``start`` says which."""
    from backlit_core.hashing import sha256_of

    kw = {"encoder": "tiny-clip-random", "identity_encoder": "effnet-lite0", "iters": 1, "overrides": TINY,
          "progress": False}
    missing = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path / "missing", **kw)
    assert missing["status"] == "skipped" and "init_enhancement_model.pth" in missing["reason"]
    assert "clip_lit_start: scratch" in missing["reason"] and "\n" not in missing["reason"]
    assert json.loads((tmp_path / "missing" / "train_summary.json").read_text())["status"] == "skipped"
    files = _released_init_files(tmp_path / "init", 64)
    no_prompts = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path / "no-prompts", **{
        **kw, "overrides": {**TINY, "init_enhancer": str(files["init_enhancer"])}})
    assert no_prompts["status"] == "skipped" and "init_prompt_pair.pth" in no_prompts["reason"]

    def registry(name: str) -> Path:  # the caller's weights registry (benchmark.weights.resolve_weights)
        if name != "clip-lit-init":
            raise KeyError(name)
        return files["init_enhancer"]

    released = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path / "released", **{
        **kw, "overrides": {**TINY, "init_prompts": str(files["init_prompts"])}, "find_weights": registry})
    assert released["status"] == "done" and released["iterations"] == {"total": 1, "enhance": 1}
    assert released["start"] == {"from": "released-init",
                                 "enhancer": {"file": "init_enhancement_model.pth",
                                              "sha256": sha256_of(files["init_enhancer"])},
                                 "prompts": {"file": "init_prompt_pair.pth", "sha256": sha256_of(files["init_prompts"])}}
    ckpt = torch.load(tmp_path / "released" / "checkpoint.pt", weights_only=True)
    pair = torch.load(files["init_prompts"], weights_only=True)["module.embedding_prompt"]
    assert torch.equal(ckpt["guidance"]["prompts"], pair[:, :18])  # frozen in the enhancer step
    init = torch.load(files["init_enhancer"], weights_only=True)
    moved = max((ckpt["enhancer"][k] - init[f"module.{k}"]).abs().max().item() for k in ckpt["enhancer"])
    assert 0 < moved < 1e-3  # one Adam step (lr 2e-5) from the released init, not a fresh network

    scratch = train_method("clip-lit", small["backlit"], small["welllit"], tmp_path / "scratch", **{
        **kw, "iters": 7, "fidelity": {"clip_lit_start": "scratch"}})
    assert scratch["start"] == {"from": "scratch"}
    assert scratch["iterations"] == {"total": 7, "ce_init": 3, "warmup": 3, "enhance": 1}


def test_latent_schedule_literal_reading(small: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """Fidelity switch ``latent_schedule``: read literally, RAVE train.py does not count CE, so the warm-up
    monitor runs on into the first enhancer round (PSNR logged there), no result is recorded until the
    counter passes ce + warm-up, and the first prompt rounds rank backlit > well-lit only (2 scores);
    the default ranks one, then two result sets (3, then 4 scores)."""
    from methods import guided_training
    from methods import losses as L

    calls: list[int] = []

    def counting(*p: torch.Tensor, order: str = "new-then-old") -> torch.Tensor:
        calls.append(len(p))
        return L.ranking_loss(*p, order=order)

    monkeypatch.setattr(guided_training, "ranking_loss", counting)
    kw = {"iters": 30, "progress": False, "overrides": {**TINY, "snapshot_every": 2, "snapshot_window": 3}}
    scores, psnr_rows = {}, {}
    for reading in ("clip-lit-style", "literal"):
        calls.clear()
        summary = train_method("latent-prompt", small["backlit"], small["welllit"], tmp_path / reading, **kw,
                               fidelity={"latent_schedule": reading})
        assert summary["status"] == "done" and summary["fidelity"]["latent_schedule"] == reading
        scores[reading] = list(calls)
        psnr_rows[reading] = [int(r["iter"]) for r in _log(tmp_path / reading) if r["phase"] == "enhance" and r["psnr"]]
    # phases: CE 1-3, warm-up 4-6, then rounds of 4 enhancer + 3 prompt iterations
    assert scores["clip-lit-style"] == [3] * 3 + [4] * 6
    assert scores["literal"] == [2] * 6 + [4] * 3  # slot 0 stays empty until the third enhancer round
    assert psnr_rows["clip-lit-style"] == [] and psnr_rows["literal"] == [7, 8, 9]  # counter 3..5 < ce + warm-up


def test_invalid_names_and_numbers(small: dict[str, Path], tmp_path: Path) -> None:
    args = (small["backlit"], small["welllit"], tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean 'rave'"):
        train_method("rav", *args)
    with pytest.raises(UnknownNameError, match="unknown encoder 'effnet-lite'"):
        train_method("rave", *args, encoder="effnet-lite")
    with pytest.raises(UnknownNameError, match="unknown training setting 'batchsize'.*did you mean 'batch_size'"):
        train_method("rave", *args, overrides={"batchsize": 2})
    with pytest.raises(UnknownNameError, match="unknown schedule"):
        train_method("rave", *args, schedule="fast")
    with pytest.raises(ValueError, match="total_iters must be a positive integer, got -5"):
        train_method("rave", *args, iters=-5)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        train_method("rave", *args, overrides={"batch_size": 0})
    with pytest.raises(ValueError, match="lr must be positive"):
        train_method("rave", *args, overrides={"lr": 0})


def test_batch_order_and_augmentation_are_pure() -> None:
    first = [batch_indices(10, 4, 7, "s", i) for i in range(5)]
    assert all(torch.equal(a, batch_indices(10, 4, 7, "s", i)) for i, a in enumerate(first))
    stream = torch.cat(first)
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:20].tolist()) == list(range(10))
    x = torch.rand(3, 3, 16, 16)
    p1 = sample_params(3, generator(1, "aug", 5), ZOOM_PROMPT)
    p2 = sample_params(3, generator(1, "aug", 5), ZOOM_PROMPT)
    assert torch.equal(augment(x, p1), augment(x, p2))
    off = torch.zeros(3, dtype=torch.bool)
    none = AugmentParams(off, off, off, torch.ones(3, 2), torch.zeros(3))
    assert torch.equal(augment(x, none), x)
    hflip = AugmentParams(torch.tensor([True, False, False]), off, off, torch.ones(3, 2), torch.zeros(3))
    y = augment(x, hflip)
    assert torch.equal(y[0], x[0].flip(-1)) and torch.equal(y[1:], x[1:])
    tuple_batch = torch.cat([x, x])  # one parameter set shared by both members of each tuple
    z = augment(tuple_batch, p1)
    assert torch.equal(z[:3], z[3:])


def test_reference_embeddings_are_cached_by_content(small: dict[str, Path], tmp_path: Path) -> None:
    enc = load_encoder("tiny-clip-random")
    paths = image_paths(small["welllit"])
    emb, key = reference_embeddings(enc, paths)
    cached = Path(os.environ["BACKLIT_BENCH_CACHE"]) / "embeddings" / f"{key}.pt"
    assert cached.is_file() and emb.shape == (6, enc.embed_dim)
    again, key2 = reference_embeddings(enc, paths)
    assert key2 == key and torch.equal(again, emb)
    copy = tmp_path / "w"
    copy.mkdir()
    for p in paths:
        (copy / p.name).write_bytes(p.read_bytes())
    save_png(torch.zeros(3, 48, 48), copy / "0.png")  # one file's content changes -> new key
    assert reference_embeddings(enc, image_paths(copy))[1] != key


def test_rave_explain_lists_tokens(small: dict[str, Path]) -> None:
    from benchmark.cli import cli

    base = ["rave-explain", "--backlit", str(small["backlit"]), "--welllit", str(small["welllit"]), "--top", "5"]
    result = CliRunner().invoke(cli, [*base, "--encoder", "tiny-clip-random"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("NOTE: tiny-clip-random has random weights")
    plus, minus = lines.index("nearest to +r:"), lines.index("nearest to -r:")
    assert minus - plus - 1 == 5 and len(lines) - minus - 1 == 5
    refused = CliRunner().invoke(cli, [*base, "--encoder", "effnet-lite0"])
    assert refused.exit_code == 1 and "rave-shifted needs a text encoder" in refused.output
