"""RAVE (Gaintseva et al., ECCV 2024): guidance by a fixed residual vector (methods-spec 4.2).

``r = n(v_w - v_b)`` from the normalised class means of the well-lit and backlit training
embeddings, ``tau = <v_w, r>``; the enhancer minimises ``1920 * mean((<e, r> - tau)^2) + 22.5 *
identity``; upstream extends a round while ``320 * guidance + 22.5 * identity`` is above the
threshold (train_rave.py:252; fidelity switch ``round_extension``). The reference embeddings are computed once from the original files (CLIP's standard
resize + centre crop, as upstream; or the training-time resize) and cached on disk by content
hash. Any encoder works.

``rave-shifted`` (:mod:`methods.plugins.rave_shifted`) is this method with the token-bias direction
removed from ``r``.
"""
from __future__ import annotations

import torch

from methods.base import GuidanceMethod, MethodContext
from methods.data import REF_PREPROCESS, reference_embeddings
from methods.losses import W_GUIDANCE, class_mean, rave_direction, rave_loss, rave_target


class Rave(GuidanceMethod):
    name = "rave"
    source = "Gaintseva et al., ECCV 2024 (Atmyre/RAVE)"
    guidance_weight = 6 * W_GUIDANCE  # train_rave.py:198 `6*cliploss`
    paper_total_iters = 140_000  # 1000 warm-up + ~139K guided if run to completion (spec 4.2)
    method_parameters = (REF_PREPROCESS,)

    def __init__(self, ctx: MethodContext) -> None:
        super().__init__(ctx)
        v_b, v_w = self.reference_means(ctx)
        r = self.adjust_direction(rave_direction(v_b, v_w), ctx)
        dev = ctx.encoder.mean.device
        self.register_buffer("r", r.to(dev))
        self.register_buffer("tau", rave_target(v_w, r).to(dev))
        self.info["tau"] = float(self.tau)

    def reference_means(self, ctx: MethodContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Class means ``v_b, v_w`` of the cached reference embeddings (CPU)."""
        b, key_b = reference_embeddings(ctx.encoder, ctx.backlit_paths, self.settings["ref_preprocess"])
        w, key_w = reference_embeddings(ctx.encoder, ctx.welllit_paths, self.settings["ref_preprocess"])
        self.info["reference_cache_keys"] = {"backlit": key_b, "welllit": key_w}
        return class_mean(b), class_mean(w)

    def adjust_direction(self, r: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        return r

    def guidance_loss(self, emb: torch.Tensor) -> torch.Tensor:
        return rave_loss(emb, self.r, self.tau)


METHOD = Rave
