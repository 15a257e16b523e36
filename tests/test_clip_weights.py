"""Real CLIP weights load however a user has them: OpenAI's TorchScript archives (fp16), open_clip
state dicts (.bin / safetensors, any file name), pretrained tags and hf-hub ids from the local caches;
missing files are named with the folder to put them in. Then RAVE, RAVE-shifted and CLIP-LIT train
with an OpenAI-format file (tiny stand-ins from fixtures_clip.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fixtures_clip import build_openai_jit_clip, encoder_name

from backlit_core.hashing import sha256_of
from backlit_core.image_io import save_png
from methods.clip_encoder import build_open_clip, needs_quickgelu, read_state_dict, resolve_checkpoint, weights_format
from methods.encoder_base import EncoderUnavailable
from methods.encoders import load_encoder
from methods.train_api import train_method

pytestmark = pytest.mark.usefixtures("embedding_cache")  # tests/conftest.py: a fresh cache per module



@pytest.fixture(scope="module")
def jit_files(tmp_path_factory) -> dict[str, Path]:
    """OpenAI-style fp16 TorchScript archives: ViT-B/32 layout and ModifiedResNet (RN101) layout."""
    root = tmp_path_factory.mktemp("openai")
    return {kind: build_openai_jit_clip(root / f"{kind}.pt", kind) for kind in ("vit", "rn")}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("small")
    g = torch.Generator().manual_seed(0)
    for kind, scale in (("backlit", 0.25), ("welllit", 0.9)):
        (root / kind).mkdir()
        for i in range(4):
            img = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(40, 40), mode="bilinear")[0]
            save_png(img * scale, root / kind / f"{i}.png")
    return {"backlit": root / "backlit", "welllit": root / "welllit"}


def _jit_reference(path: Path) -> torch.jit.ScriptModule:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").float()


@pytest.mark.parametrize("kind", ["vit", "rn"])
def test_openai_archive_loads_and_computes_what_it_holds(kind: str, jit_files: dict[str, Path]) -> None:
    path = jit_files[kind]
    with pytest.raises(RuntimeError, match="weights_only"):  # the reported failure: torch.load refuses archives
        torch.load(path, map_location="cpu", weights_only=True)
    assert weights_format(path) == "torchscript"
    state, fmt = read_state_dict(path)
    assert fmt == "torchscript" and state["token_embedding.weight"].dtype == torch.float16
    enc = load_encoder(encoder_name(path, kind))
    assert enc.weights_sha256 == sha256_of(path) and enc.compute_dtype == torch.float32 and not enc.is_random
    ref = _jit_reference(path)
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    tokens = enc.tokenize(["a photo", "X X X X"])
    with torch.no_grad():
        out = enc(x, features=True)
        assert torch.allclose(out.embedding, F.normalize(ref.encode_image(enc.preprocess(x)), dim=-1), atol=1e-5)
        assert torch.allclose(enc.encode_tokens(tokens), F.normalize(ref.encode_text(tokens), dim=-1), atol=1e-5)
    assert len(out.features) == 5


def test_state_dicts_and_safetensors_are_recognised_by_content(jit_files: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    state, _ = read_state_dict(jit_files["vit"])
    files = {"open_clip.bin": "torch", "wrapped.pt": "torch", "legacy.pth": "torch", "named-like-torch.pt": "safetensors"}
    torch.save(state, tmp_path / "open_clip.bin")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "wrapped.pt")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "named-like-torch.pt")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = load_encoder(encoder_name(jit_files["vit"]))(x).embedding
        for name, fmt in files.items():
            assert weights_format(tmp_path / name) == fmt, name
            assert torch.equal(load_encoder(encoder_name(tmp_path / name))(x).embedding, expected), name
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(EncoderUnavailable, match=r"notes\.txt: not a CLIP weights file"):
        load_encoder(encoder_name(tmp_path / "notes.txt"))
    with pytest.raises(EncoderUnavailable, match=r"vit\.pt: these weights do not fit open_clip architecture tiny-openai-rn"):
        load_encoder(encoder_name(jit_files["vit"], "rn"))


def test_a_torchscript_archive_counts_as_openai_weights() -> None:
    assert needs_quickgelu("ViT-B-32", "/somewhere/my-copy.pt", "torchscript")
    assert not needs_quickgelu("ViT-B-32", "/somewhere/my-finetune.pt", "torch")
    assert not needs_quickgelu("ViT-B-32-quickgelu", "/somewhere/my-copy.pt", "torchscript")


def _fake_hf_repo(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """A Hugging Face cache entry as huggingface_hub lays it out (refs/main -> snapshots/<commit>)."""
    commit = "0" * 40
    folder = cache / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        (snap / name).write_bytes(data)


def test_openai_tag_hf_hub_id_and_tag_from_local_caches(jit_files: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants
    import open_clip

    from methods.clip_encoder import TINY_ARCHS

    clip_dir, hf_cache = tmp_path / "clip", tmp_path / "hf"
    clip_dir.mkdir()
    hf_cache.mkdir()
    monkeypatch.setenv("BACKLIT_BENCH_CLIP_DIR", str(clip_dir))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_cache))
    # offline, nothing cached: the message names OpenAI's file, the folder for it and the HF cache folder
    with pytest.raises(EncoderUnavailable) as err:
        resolve_checkpoint("ViT-B-32-quickgelu", "openai")
    msg = str(err.value)
    assert "place ViT-B-32.pt (from https://" in msg and f"in {clip_dir}" in msg
    assert str(hf_cache / "models--timm--vit_base_patch32_clip_224.openai") in msg
    # OpenAI's file placed in the CLIP folder is found by the tag (here a stand-in that does not fit ViT-B-32)
    shutil.copy(jit_files["vit"], clip_dir / "ViT-B-32.pt")
    assert resolve_checkpoint("ViT-B-32-quickgelu", "openai") == clip_dir / "ViT-B-32.pt"
    with pytest.raises(EncoderUnavailable, match=rf"{clip_dir / 'ViT-B-32.pt'}: these weights do not fit .*ViT-B-32"):
        build_open_clip("ViT-B-32-quickgelu", "openai")
    # an open_clip repository in the HF cache, by hf-hub id and through a pretrained tag pointing at it
    state, _ = read_state_dict(jit_files["vit"])
    weights = tmp_path / "w.bin"
    torch.save(state, weights)
    config = {"model_cfg": TINY_ARCHS["tiny-openai-vit"], "preprocess_cfg": {}}
    _fake_hf_repo(hf_cache, "test-org/tiny-openai-vit", {"open_clip_config.json": json.dumps(config).encode(),
                                                        "open_clip_pytorch_model.bin": weights.read_bytes()})
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "tiny-openai-vit",
                        {"cached": open_clip.pretrained._pcfg(hf_hub="test-org/tiny-openai-vit/")})
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = load_encoder(encoder_name(jit_files["vit"]))(x).embedding
        for name in ("clip:hf-hub:test-org/tiny-openai-vit", "clip:tiny-openai-vit:cached"):
            enc = build_open_clip(*name.split(":", 2)[1:])
            assert torch.allclose(enc(x).embedding, expected, atol=1e-6), name
    with pytest.raises(EncoderUnavailable, match=rf"put the repo into {hf_cache / 'models--test-org--missing'}"):
        build_open_clip("hf-hub", "test-org/missing")


def test_fp16_identity_encoder_mechanics(jit_files: dict[str, Path]) -> None:
    """What ``clip_precision: identity-fp16`` gives on CUDA, run here on CPU: OpenAI's fp16 layout
    (convolutions and linear layers fp16, norms fp32), fp32 outputs, gradients to the image."""
    enc = build_open_clip("tiny-openai-rn", str(jit_files["rn"]), precision="fp16").freeze()
    ref = load_encoder(encoder_name(jit_files["rn"], "rn"))
    assert enc.compute_dtype == torch.float16 and enc.model.visual.bn1.weight.dtype == torch.float32
    assert enc.fingerprint.endswith("@float16") and ref.fingerprint != enc.fingerprint
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4), requires_grad=True)
    try:
        out = enc(x, features=True)
    except RuntimeError as exc:  # pragma: no cover - CPUs without fp16 kernels
        pytest.skip(f"no fp16 kernels on this CPU: {exc}")
    assert out.embedding.dtype == torch.float32 and all(f.dtype == torch.float32 for f in out.features)
    with torch.no_grad():
        assert F.cosine_similarity(out.embedding, ref(x).embedding).min() > 0.999
    out.features[2].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


TINY = {"crop": 32, "rank_size": 32, "batch_size": 2, "prompt_batch_size": 4, "ce_iters": 1, "warmup_iters": 1,
        "enhancer_iters": 1, "prompt_iters": 1, "checkpoint_every": 10}


@pytest.mark.parametrize("method, iters", [("rave", 2), ("rave-shifted", 2), ("clip-lit", 4)])
def test_openai_format_files_train(method: str, iters: int, jit_files: dict[str, Path], small: dict[str, Path],
                                   tmp_path: Path) -> None:
    """bar 09: an OpenAI-format ViT-B/32-layout file trains RAVE (and the text-tower methods),
    with an OpenAI-format ModifiedResNet as the identity encoder, as in the papers."""
    guidance, identity = encoder_name(jit_files["vit"], "vit"), encoder_name(jit_files["rn"], "rn")
    summary = train_method(method, small["backlit"], small["welllit"], tmp_path, encoder=guidance,
                           identity_encoder=identity, iters=iters, overrides=TINY, progress=False,
                           fidelity={"clip_lit_start": "scratch"})
    assert summary["status"] == "done" and summary["iterations"]["total"] == iters
    assert summary["encoder_sha256"] == sha256_of(jit_files["vit"]) and summary["is_random"] is False
    assert summary["identity_encoder_sha256"] == sha256_of(jit_files["rn"])
    assert (tmp_path / "enhancer.pth").is_file()
    if method == "rave-shifted":
        assert summary["guidance_vocabulary"] == "decoded-text" and len(summary["guidance_tokens_top"]) == 15
        assert summary["guidance_vocabulary_size"] < 49408  # de-duplicated decoded texts
    if method == "clip-lit":
        assert summary["iterations"] == {"total": 4, "ce_init": 1, "warmup": 1, "enhance": 1, "prompt": 1}
