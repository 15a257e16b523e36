"""RAVE-shifted (Gaintseva et al., ECCV 2024, spec 4.2 item 7): RAVE with the token-bias direction removed.

Exactly as upstream's train_rave.py: the ``shift_tokens`` (15) vocabulary entries (one-token text prompts, built as the
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
from methods.method_parameters import Parameter
from methods.plugins.rave import Rave

SHIFT_TOKENS = Parameter("shift_tokens", 15, int, "vocabulary entries taken at each end of the ranking by "
                         "cosine to r (upstream: 15, hard-coded)", positive=True)


class RaveShifted(Rave):
    name = "rave-shifted"
    needs_text = True
    method_parameters = (*Rave.method_parameters, SHIFT_TOKENS)

    def adjust_direction(self, r: torch.Tensor, ctx: MethodContext) -> torch.Tensor:
        vocabulary, n = ctx.fidelity.vocabulary, self.settings["shift_tokens"]
        labels, tokens, key = vocabulary_embeddings(ctx.encoder, vocabulary)
        shifted, top, bottom = shift_direction(r, tokens, n)
        self.info.update(vocabulary_cache_key=key, vocabulary=vocabulary, vocabulary_size=len(labels),
                         shift_tokens=n, cos_shifted_original=float(shifted @ r),
                         tokens_top=[labels[i] for i in top], tokens_bottom=[labels[i] for i in bottom])
        return shifted


def nearest_tokens(encoder, direction: torch.Tensor, k: int, vocabulary: str = "decoded-text") -> list[tuple[str, float]]:
    """The ``k`` vocabulary entries (one-token prompts) with the highest cosine to ``direction``."""
    labels, tokens, _ = vocabulary_embeddings(encoder, vocabulary)
    scores = F.normalize(tokens, dim=-1) @ direction.cpu()
    top = scores.topk(k)
    return [(labels[i], float(s)) for s, i in zip(top.values, top.indices)]


METHOD = RaveShifted
