"""CLIP-LIT-Latent (Gaintseva et al., ECCV 2024): the guidance pair learned directly in the
embedding space (methods-spec 4.1).

G (2 x D, D = the encoder's embedding size) starts as N(0, 1); s_k(I) = 100 <e, n(G_k)>. No
text tower, so any encoder works. Otherwise identical to CLIP-LIT, with guidance lr 5e-4.
"""
from __future__ import annotations

import torch
from torch import nn

from methods.base import MethodContext, PromptMethod
from methods.data import generator
from methods.encoders import Encoder


class LatentPrompt(PromptMethod):
    name = "latent-prompt"
    source = "CLIP-LIT-Latent, Gaintseva et al., ECCV 2024 (Atmyre/RAVE)"
    guidance_lr = 5e-4
    paper_total_iters = 109_400  # same schedule as CLIP-LIT

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        init = torch.randn(2, ctx.encoder.embed_dim, generator=generator(ctx.seed, "latent-init"))
        self.latent = nn.Parameter(init.to(ctx.encoder.mean.device))

    def prompt_features(self, encoder: Encoder) -> torch.Tensor:
        return self.latent
