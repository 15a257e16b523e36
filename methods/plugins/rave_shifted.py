"""RAVE-shifted (Gaintseva et al., ECCV 2024, spec 4.2 item 7): RAVE with the token-bias direction removed.

Exactly as upstream's train_rave.py: the 15 vocabulary entries (one-token text prompts, built as the
``vocabulary`` fidelity switch says) most and least similar to r give ``u``
(:func:`methods.losses.shift_direction`); ``r <- n(r - <u, r> u)``, then tau is recomputed. It needs
a text tower.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.base import MethodContext
from methods.data import vocabulary_embeddings
from methods.losses import shift_direction
from methods.plugins.rave import Rave


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


METHOD = RaveShifted
