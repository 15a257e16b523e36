"""The fidelity switches: defaults are the upstream code's, values are validated, the ledger is complete."""
from __future__ import annotations

import re
from dataclasses import fields

import pytest
import torch
import yaml

from backlit_core.registry import UnknownNameError
from methods.fidelity import LEDGER, RECONSTRUCTIONS, Fidelity


def test_defaults_are_upstream_and_ledger_covers_every_switch() -> None:
    fid = Fidelity()
    assert [f.name for f in fields(Fidelity)] == [e.name for e in LEDGER]
    for entry in LEDGER:
        assert getattr(fid, entry.name) == entry.upstream != entry.alternative
        assert entry.paper and entry.description and entry.measured_effect is None
    assert fid.asdict() == {"ranking_order": "new-then-old", "snapshot": "best-running-loss",
                            "vocabulary": "decoded-text", "ssim_channel": "y", "clip_precision": "identity-fp16",
                            "warmup_monitor": "pyiqa-y", "resize_filter": "lanczos", "round_extension": "guidance-320",
                            "clip_lit_start": "released-init", "reinit_cap": "uncapped",
                            "latent_schedule": "clip-lit-style"}
    alternative = Fidelity.from_dict({e.name: e.alternative for e in LEDGER})
    assert Fidelity.from_dict(alternative.asdict()) == alternative and Fidelity.coerce(alternative) is alternative
    assert Fidelity.coerce(None) == fid == Fidelity.from_dict({})


def test_invalid_switches_list_the_valid_values() -> None:
    with pytest.raises(ValueError, match="fidelity setting snapshot must be one of best-running-loss, last; got 'best'"):
        Fidelity.from_dict({"snapshot": "best"})
    with pytest.raises(UnknownNameError, match="unknown fidelity setting 'ranking'; did you mean 'ranking_order'"):
        Fidelity.from_dict({"ranking": "old-then-new"})


def test_identity_precision_and_ssim_metric() -> None:
    fid = Fidelity()
    assert fid.identity_precision("clip:RN101:openai", "cuda") == "fp16"
    assert fid.identity_precision("clip:RN101:openai", "cpu") == "fp32"  # upstream never ran on CPU
    assert fid.identity_precision("effnet-lite0", "cuda") == "fp32"
    assert Fidelity(clip_precision="fp32").identity_precision("clip:RN101:openai", "cuda") == "fp32"
    assert fid.ssim_metric == "ssim" and Fidelity(ssim_channel="rgb").ssim_metric == "ssim@rgb"


def test_docs_table_lists_every_switch(project_root) -> None:
    text = (project_root / "docs" / "fidelity.md").read_text()
    ledger = text[text.index("| switch | upstream code"):].split("\n\n")[0]  # the first table
    rows = [line for line in ledger.splitlines() if line.startswith("| `")]
    cells = [[c.strip().strip("`") for c in row.strip("|").split("|")][:3] for row in rows]
    assert cells == [[e.name, e.upstream, e.alternative] for e in LEDGER]


def test_ledger_shows_measured_effects_with_their_run() -> None:
    from benchmark.report.build import fidelity_table

    measured = {"environment": {"git_commit": "abc1234", "time": "2026-12-05T01:00:00", "cpu": "Some CPU", "cores": 2},
                "switches": {"snapshot": {"effect": "last, seed 0: latent-prompt: PSNR +0.10 dB"}}}
    table = fidelity_table({"fidelity": {"snapshot": "last"}}, measured)
    rows = {row[0]: row for row in table.rows}
    assert rows["snapshot"][1] == "last (differs from upstream)"
    assert rows["snapshot"][-1] == "last, seed 0: latent-prompt: PSNR +0.10 dB"
    assert rows["vocabulary"][-1] == "not measured"
    assert any("commit abc1234" in note for note in table.notes)
    assert not any("Measured effects" in note for note in fidelity_table(None).notes)


def test_docs_list_every_reconstruction_with_upstream_lines(project_root) -> None:
    text = (project_root / "docs" / "fidelity.md").read_text()
    table = text[text.index("| reconstruction | upstream code"):].split("\n\n")[0]
    names = [row.strip("|").split("|")[0].strip().strip("`") for row in table.splitlines() if row.startswith("| `")]
    assert names == [r.name for r in RECONSTRUCTIONS]
    for r in (*RECONSTRUCTIONS, *LEDGER[7:]):
        text_of = r.upstream if hasattr(r, "here") else r.description
        assert re.search(r"\.(py|yaml):\d+", text_of), f"{r.name}: no upstream file:line"


def test_profiles_use_the_upstream_default_of_every_switch(project_root) -> None:
    for profile in ("paper", "embedded"):
        values = yaml.safe_load((project_root / "profiles" / f"{profile}.yaml").read_text())["fidelity"]
        assert values == Fidelity().asdict(), profile


def test_reference_resize_torch_float_vs_pil_uint8(project_root) -> None:
    """Reconstruction ``reference_resize``: RAVE's reference embeddings through CLIP's preprocess geometry as
    torchvision applies it to the 8-bit PIL image (bicubic, longer side truncated, crop offsets rounded) vs
    ours (torch antialiased bicubic on floats): the embeddings of the embedded training images and RAVE's
    direction agree closely, not exactly (docs/fidelity.md gives the figures)."""
    from PIL import Image
    from torchvision import transforms

    from backlit_core.image_io import load_image
    from methods.data import center_crop_preprocess, image_paths
    from methods.encoders import load_encoder
    from methods.losses import class_mean, rave_direction

    train = project_root / "datasets" / "data" / "synthetic-backlit" / "train"
    if not (train / "backlit").is_dir():
        pytest.skip("the embedded dataset is not prepared (bench run-stage prepare --dataset synthetic-backlit)")
    enc = load_encoder("effnet-lite0")
    pil = transforms.Compose([transforms.Resize(enc.input_size, interpolation=transforms.InterpolationMode.BICUBIC),
                              transforms.CenterCrop(enc.input_size), transforms.ToTensor()])
    emb = {}
    for how in ("pil", "torch"):
        for folder in ("backlit", "welllit-unpaired"):
            paths = image_paths(train / folder)
            x = [pil(Image.open(p).convert("RGB")) if how == "pil" else center_crop_preprocess(load_image(p), enc.input_size)
                 for p in paths]
            with torch.no_grad():
                emb[how, folder] = enc(torch.stack(x)).embedding
    cos = torch.cat([(emb["pil", f] * emb["torch", f]).sum(1) for f in ("backlit", "welllit-unpaired")])
    r = {h: rave_direction(class_mean(emb[h, "backlit"]), class_mean(emb[h, "welllit-unpaired"])) for h in ("pil", "torch")}
    assert 0.97 < float(cos.min()) < 0.9999 and float(cos.median()) > 0.985
    assert 0.98 < float(r["pil"] @ r["torch"]) < 0.9999


def test_inference_epsilon(reference_dir) -> None:
    """Reconstruction ``inference_epsilon``: upstream's test scripts divide by L without 1e-9. With the
    released CLIP-LIT enhancer on a reference photo both agree exactly; they part only where L = 0."""
    from backlit_core.image_io import load_image
    from methods.network import apply_illumination, load_enhancer

    net = load_enhancer(reference_dir / "checkpoints" / "clip-lit" / "enhancement_model.pth")
    x = load_image(min((reference_dir / "backlit-samples").glob("*.jpg")))[None]
    x = torch.nn.functional.interpolate(x, scale_factor=384 / max(x.shape[-2:]), mode="area")
    with torch.no_grad():
        light = net.illumination(x)
    assert float(light.min()) > 0.01
    assert torch.equal(apply_illumination(x, light), torch.clamp(x / light, 0, 1))
    zero = torch.zeros(1, 3, 1, 2)
    black = torch.tensor([0.0, 0.5]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    assert torch.isnan(torch.clamp(black / zero[:, :1], 0, 1)[0, 0, 0, 0])  # upstream: NaN for a black pixel
    assert apply_illumination(black, zero[:, :1]).flatten().tolist()[:2] == [0.0, 1.0]  # here: 0 (and 1 as upstream)
