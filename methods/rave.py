"""RAVE (Gaintseva et al., ECCV 2024): guidance by a fixed residual vector (methods-spec 4.2).

``r = n(v_w - v_b)`` from the normalised class means of the well-lit and backlit training
embeddings, ``tau = <v_w, r>``; the enhancer minimises ``1920 * mean((<e, r> - tau)^2) + 22.5 *
identity``. The reference embeddings are computed once from the original files (CLIP's standard
resize + centre crop, as upstream; or the training-time resize) and cached on disk by content
hash. Any encoder works.

``rave-shifted`` removes the token-bias direction (spec 4.2 item 7) exactly as upstream's
train_rave.py: the 15 vocabulary entries (one-token text prompts, built as the ``vocabulary``
fidelity switch says) most and least similar to r give ``u`` (:func:`methods.losses.shift_direction`);
``r <- n(r - <u, r> u)``, then tau is recomputed. It needs a text tower.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.base import GuidanceMethod, MethodContext
from methods.data import reference_embeddings, vocabulary_embeddings
from methods.losses import (
    class_mean,
    rave_direction,
    rave_loss,
    rave_target,
    shift_direction,
)


class Rave(GuidanceMethod):
    name = "rave"
    source = "Gaintseva et al., ECCV 2024 (Atmyre/RAVE)"
    guidance_weight = 6 * 320.0
    paper_total_iters = 140_000  # 1000 warm-up + ~139K guided if run to completion (spec 4.2)

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
        b, key_b = reference_embeddings(ctx.encoder, ctx.backlit_paths, ctx.ref_preprocess)
        w, key_w = reference_embeddings(ctx.encoder, ctx.welllit_paths, ctx.ref_preprocess)
        self.info["reference_cache_keys"] = {"backlit": key_b, "welllit": key_w}
        return class_mean(b), class_mean(w)

    def adjust_direction(self, r: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        return r

    def guidance_loss(self, emb: torch.Tensor) -> torch.Tensor:
        return rave_loss(emb, self.r, self.tau)


class RaveShifted(Rave):
    name = "rave-shifted"
    needs_text = True

    def adjust_direction(self, r: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        labels, tokens, key = vocabulary_embeddings(ctx.encoder, ctx.vocabulary)
        shifted, top, bottom = shift_direction(r, tokens, ctx.shift_tokens)
        self.info.update(vocabulary_cache_key=key, vocabulary=ctx.vocabulary, vocabulary_size=len(labels),
                         shift_tokens=ctx.shift_tokens, cos_shifted_original=float(shifted @ r),
                         tokens_top=[labels[i] for i in top], tokens_bottom=[labels[i] for i in bottom])
        return shifted


def nearest_tokens(encoder, direction: torch.Tensor, k: int, vocabulary: str = "decoded-text") -> list[tuple[str, float]]:
    """The ``k`` vocabulary entries (one-token prompts) with the highest cosine to ``direction``."""
    labels, tokens, _ = vocabulary_embeddings(encoder, vocabulary)
    scores = F.normalize(tokens, dim=-1) @ direction.cpu()
    top = scores.topk(k)
    return [(labels[i], float(s)) for s, i in zip(top.values, top.indices)]
