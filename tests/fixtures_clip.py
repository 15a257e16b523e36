"""Stand-ins for OpenAI's released CLIP files, built at test time (no download, a few MB).

:func:`build_openai_jit_clip` writes a tiny CLIP in OpenAI's release format: the model scripted
with TorchScript, every tensor in fp16, saved as ``.pt`` (a zip holding ``constants.pkl`` and
``code/``), with OpenAI's state-dict layout (``visual.conv1.weight``, ``transformer.resblocks.*``,
``text_projection``... plus the extra ``input_resolution`` entry). Its architectures are the
``tiny-openai-vit`` (ViT-B/32 layout) and ``tiny-openai-rn`` (ModifiedResNet, RN101 layout) of
:data:`methods.clip_encoder.TINY_ARCHS`, so it loads as ``clip:tiny-openai-vit:<path>``.

Importable without pytest, e.g. by a pipeline fixture run that needs "real" CLIP files:
``from tests.fixtures_clip import build_openai_jit_clip`` (repository root on ``sys.path``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

ARCHS = {"vit": "tiny-openai-vit", "rn": "tiny-openai-rn"}


def tiny_openai_model(kind: str = "vit", seed: int = 0) -> torch.nn.Module:
    """The fp32 open_clip CLIP of ``tiny-openai-<kind>`` with seeded random weights."""
    import open_clip

    from methods.clip_encoder import _quiet_random_init, register_tiny_configs

    if kind not in ARCHS:
        raise ValueError(f"kind must be one of {', '.join(ARCHS)}, got {kind!r}")
    register_tiny_configs()
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        torch.manual_seed(seed)
        model = open_clip.create_model(ARCHS[kind], pretrained=None, precision="fp32")
        for p in model.parameters():  # open_clip initialises some tensors to zero; make every one matter
            p.data.add_(torch.randn_like(p) * 0.02)
    return model.eval()


def build_openai_jit_clip(path: str | Path, kind: str = "vit", seed: int = 0) -> Path:
    """Write the tiny ``kind`` (``vit`` | ``rn``) CLIP as an OpenAI-style fp16 TorchScript archive."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = tiny_openai_model(kind, seed)
    size = model.visual.image_size
    model.register_buffer("input_resolution", torch.tensor(size if isinstance(size, int) else size[0]))
    model = model.half()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated; OpenAI's files are TorchScript
        torch.jit.script(model).save(str(path))
    return path


def encoder_name(path: str | Path, kind: str = "vit") -> str:
    """The ``--encoder`` name that loads ``path`` written by :func:`build_openai_jit_clip`."""
    return f"clip:{ARCHS[kind]}:{path}"
