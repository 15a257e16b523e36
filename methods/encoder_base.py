"""The frozen encoders' base class and common types (:mod:`methods.encoders` names and loads them)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

N_LEVELS = 5  # feature levels an encoder returns for the identity loss


class EncoderUnavailable(RuntimeError):
    """An encoder's weights cannot be loaded; the message says which file to place where."""


@dataclass
class EncoderOutput:
    embedding: torch.Tensor  # B x D, L2-normalised
    features: list[torch.Tensor] | None  # N_LEVELS tensors (B x ...) or None


class Encoder(nn.Module):
    """Base class: preprocessing, freezing and the common attributes."""

    has_text = False

    def __init__(self, name: str, embed_dim: int, input_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 weights_sha256: str | None, is_random: bool = False) -> None:
        super().__init__()
        self.name = name
        self.embed_dim = embed_dim
        self.input_size = input_size
        self.weights_sha256 = weights_sha256
        self.is_random = is_random
        self.compute_dtype = torch.float32  # dtype the encoder's first layer takes
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def fingerprint(self) -> str:
        """Identifies name, weights and (when not fp32) precision, for cache keys."""
        precision = "" if self.compute_dtype == torch.float32 else f"@{str(self.compute_dtype).removeprefix('torch.')}"
        return f"{self.name}@{self.weights_sha256 or 'random'}{precision}"

    def freeze(self) -> Encoder:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Encoder:  # frozen: always eval (BatchNorm statistics)
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (full frame) to the input size and normalise."""
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor, features: bool = False) -> EncoderOutput:
        emb, feats = self.encode(self.preprocess(x).to(self.compute_dtype), features)
        return EncoderOutput(F.normalize(emb.float(), dim=-1), None if feats is None else [f.float() for f in feats])

    def encode(self, x: torch.Tensor, features: bool) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Unnormalised embedding (and feature levels) of preprocessed input; subclasses implement."""
        raise NotImplementedError
