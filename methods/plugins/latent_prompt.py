"""CLIP-LIT-Latent (Gaintseva et al., ECCV 2024): the guidance pair learned directly in the
embedding space (methods-spec 4.1).

G (2 x D, D = the encoder's embedding size) starts as N(0, 1); s_k(I) = scale <e, n(G_k)>. No
text tower, so any encoder works. Otherwise identical to CLIP-LIT, with guidance lr 5e-4.

The scale is upstream's 100 unless the setting ``latent_logit_scale`` says otherwise (the ``quick``
schedule's default: ``calibrated``); with
``calibrated`` it is :func:`methods.losses.calibrated_logit_scale` of the class means of the training
embeddings (RAVE's cached reference embeddings), so that no pair can saturate the softmax on this
encoder (see docs/methods.md, "Why latent-prompt saturated").

Schedule (fidelity switch ``latent_schedule``): upstream's script (RAVE train.py) cannot run as
committed, so by default this trains with CLIP-LIT's loop (``clip-lit-style``); ``literal`` reads
RAVE train.py line by line: its CE does not advance the iteration counter (the loop's "uncounted CE").
"""
from __future__ import annotations

import torch
from torch import nn

from methods.base import MethodContext, PromptMethod
from methods.data import REF_PREPROCESS, generator, reference_embeddings
from methods.encoder_base import Encoder
from methods.losses import LOGIT_SCALE, calibrated_logit_scale
from methods.method_parameters import Parameter

CALIBRATED = "calibrated"
LATENT_LOGIT_SCALE = Parameter(
    "latent_logit_scale", LOGIT_SCALE, float, "similarity scale of the latent pair (upstream: 100), or "
    "calibrated to the encoder's class means", choices=(CALIBRATED,), positive=True, by_schedule={"quick": CALIBRATED})


class LatentPrompt(PromptMethod):
    name = "latent-prompt"
    source = "CLIP-LIT-Latent, Gaintseva et al., ECCV 2024 (Atmyre/RAVE)"
    guidance_lr = 5e-4
    paper_total_iters = 109_400  # same schedule as CLIP-LIT
    method_parameters = (REF_PREPROCESS, LATENT_LOGIT_SCALE)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        init = torch.randn(2, ctx.encoder.embed_dim, generator=generator(ctx.seed, "latent-init"))
        self.latent = nn.Parameter(init.to(ctx.encoder.mean.device))
        scale, mode = self.settings["latent_logit_scale"], self.settings["ref_preprocess"]
        if scale == CALIBRATED:
            b, _ = reference_embeddings(ctx.encoder, ctx.backlit_paths, mode)
            w, _ = reference_embeddings(ctx.encoder, ctx.welllit_paths, mode)
            self.logit_scale = calibrated_logit_scale(b, w)
        else:
            self.logit_scale = float(scale)
        self.info["logit_scale"] = self.logit_scale
        self.ce_counted = ctx.fidelity.latent_schedule == "clip-lit-style"

    def prompt_features(self, encoder: Encoder) -> torch.Tensor:
        return self.latent


METHOD = LatentPrompt
