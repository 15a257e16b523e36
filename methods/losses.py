"""Losses of CLIP-LIT, latent-prompt and RAVE (methods-spec sections 2.3, 3.2-3.5, 4.2).

Embeddings passed in are L2-normalised (B x D); guidance pairs ``text`` are 2 x D with row 0 the
negative (backlit) and row 1 the positive (well-lit) prompt, normalised here.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LOGIT_SCALE = 100.0  # fixed temperature of CLIP-LIT's similarity (not CLIP's learned scale)
CALIBRATED_P = 0.95  # ``calibrated_logit_scale``: class-average P(negative) of the best possible pair
ALPHA_GUIDED = (1.0, 1.0, 1.0, 1.0, 0.5)  # identity level weights while CLIP-guided
ALPHA_WARMUP = (1.0, 1.0, 1.0, 1.0, 1.0)  # identity level weights in the reconstruction warm-up
W_GUIDANCE = 16 * 20.0  # upstream's guidance weight (``cliploss = 16*20*L_clip``); a method may scale it further
W_WARMUP = 25.0  # identity weight in the warm-up
W_IDENTITY = 0.9 * 25.0  # identity weight while guided (upstream: 0.9 x the warm-up weight)
W_RANK = 200.0  # ranking-loss weight in prompt refinement
MARGIN_ALONE = 1.0  # backlit vs well-lit when no results exist (RAVE train.py:324, its literal schedule)
MARGIN_FAR = 0.9  # backlit vs well-lit, backlit vs result
MARGIN_NEAR_ONE = 0.2  # result vs well-lit when one set of results exists
MARGIN_NEAR_TWO = 0.1  # between results and to well-lit when two sets exist
LUMA = (0.299, 0.587, 0.114)  # full-range BT.601 luma
YCBCR_Y = (65.481 / 255, 128.553 / 255, 24.966 / 255)  # pyiqa rgb2ycbcr Y (its offset 16/255 cancels)
RANKING_ORDERS = ("new-then-old", "old-then-new")


def identity_loss(out_feats: Sequence[torch.Tensor], in_feats: Sequence[torch.Tensor],
                  alphas: Sequence[float] = ALPHA_GUIDED) -> torch.Tensor:
    """sum over batch and levels of ``alpha_l * MSE(F_l(out_b), F_l(in_b))`` (MSE per image)."""
    if not len(out_feats) == len(in_feats) == len(alphas):
        raise ValueError(f"need one alpha per level: {len(out_feats)} levels, {len(alphas)} alphas")
    total = out_feats[0].new_zeros(())
    for a, fo, fi in zip(alphas, out_feats, in_feats):
        total = total + a * (fo - fi).pow(2).flatten(1).mean(1).sum()
    return total


def psnr_y(x: torch.Tensor, y: torch.Tensor, monitor: str = "pyiqa-y", eps: float = 1e-8) -> torch.Tensor:
    """Per-image PSNR (dB) on a luma channel of RGB batches in [0, 1], data range 1.

    ``monitor``: ``pyiqa-y`` is upstream's warm-up monitor (pyiqa ``psnr`` with ``test_y_channel``
    and ``color_space='ycbcr'``): Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255, BT.601 studio
    range: differences shrink by 219/255, so it reads 20 log10(255/219) = 1.32 dB higher than
    ``luma``, full-range BT.601 luma 0.299 R + 0.587 G + 0.114 B.
    """
    weights = YCBCR_Y if monitor == "pyiqa-y" else LUMA if monitor == "luma" else None
    if weights is None:
        raise ValueError(f"warm-up monitor must be 'pyiqa-y' or 'luma', got {monitor!r}")
    w = x.new_tensor(weights).view(1, 3, 1, 1)
    mse = ((x - y) * w).sum(1).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / (mse + eps))


def prompt_logits(emb: torch.Tensor, text: torch.Tensor, scale: float = LOGIT_SCALE) -> torch.Tensor:
    """``scale * <e, T_k>`` (upstream: 100) for the two prompts: B x 2."""
    return scale * emb @ F.normalize(text, dim=-1).t()


def prompt_ce_loss(emb: torch.Tensor, text: torch.Tensor, labels: torch.Tensor,
                   scale: float = LOGIT_SCALE) -> torch.Tensor:
    """Prompt initialisation: cross-entropy with label 0 = backlit, 1 = well-lit."""
    return F.cross_entropy(prompt_logits(emb, text, scale), labels)


def negative_probability(emb: torch.Tensor, text: torch.Tensor, scale: float = LOGIT_SCALE) -> torch.Tensor:
    """P(I) = softmax over the two prompts, probability of the negative (backlit) one: B."""
    return prompt_logits(emb, text, scale).softmax(dim=-1)[:, 0]


def prompt_guidance_loss(emb: torch.Tensor, text: torch.Tensor, scale: float = LOGIT_SCALE) -> torch.Tensor:
    """Enhancer guidance of CLIP-LIT / latent-prompt: mean probability of the negative prompt."""
    return negative_probability(emb, text, scale).mean()


def calibrated_logit_scale(backlit: torch.Tensor, welllit: torch.Tensor, p: float = CALIBRATED_P) -> float:
    """The similarity scale at which no guidance pair can saturate on these embeddings (N x D, normalised).

    For any pair, ``mean_b(s_0 - s_1) - mean_w(s_0 - s_1) = scale * <m_b - m_w, n(G_0) - n(G_1)>
    <= 2 * scale * |m_b - m_w|`` (m: the class means of the embeddings, not renormalised). With
    ``scale = logit(p) / |m_b - m_w|`` the class-average logit gaps can therefore be at most
    +-logit(p) apart from each other's mirror: P(negative) 0.95 vs 0.05 for p = 0.95, exactly the
    ranking margin 0.9 between backlit and well-lit.
    """
    return math.log(p / (1 - p)) / float((backlit.mean(0) - welllit.mean(0)).norm())


def margin_rank(p_a: torch.Tensor, p_b: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean(max(0, P(b) - P(a) + m))``: a should be more backlit-like than b by ``margin``."""
    return torch.clamp(p_b - p_a + margin, min=0).mean()


def ranking_loss(p_backlit: torch.Tensor, p_welllit: torch.Tensor, p_new: torch.Tensor | None = None,
                 p_old: torch.Tensor | None = None, order: str = "new-then-old") -> torch.Tensor:
    """Prompt refinement ranking (before the x200 weight).

    No results: backlit > well-lit (1.0). One set of results: backlit > new (0.9), backlit > well-lit (0.9), new > well-lit (0.2).
    Two sets, ``order`` ``new-then-old`` (upstream's slot order): backlit > well-lit (0.9),
    backlit > new (0.9), new > old (0.1), old > well-lit (0.1); ``old-then-new`` (the paper's
    intent, results move toward well-lit over rounds) swaps new and old.
    """
    if order not in RANKING_ORDERS:
        raise ValueError(f"ranking order must be one of {', '.join(RANKING_ORDERS)}, got {order!r}")
    if p_new is None:
        return margin_rank(p_backlit, p_welllit, MARGIN_ALONE)
    loss = margin_rank(p_backlit, p_welllit, MARGIN_FAR)
    if p_old is None:
        return loss + margin_rank(p_backlit, p_new, MARGIN_FAR) + margin_rank(p_new, p_welllit, MARGIN_NEAR_ONE)
    first, second = (p_new, p_old) if order == "new-then-old" else (p_old, p_new)
    return (loss + margin_rank(p_backlit, first, MARGIN_FAR) + margin_rank(first, second, MARGIN_NEAR_TWO)
            + margin_rank(second, p_welllit, MARGIN_NEAR_TWO))


def class_mean(emb: torch.Tensor) -> torch.Tensor:
    """Normalised mean of N x D embeddings (``v_b`` or ``v_w``)."""
    return F.normalize(emb.mean(0), dim=0)


def rave_direction(v_backlit: torch.Tensor, v_welllit: torch.Tensor) -> torch.Tensor:
    """Residual vector ``r = n(v_w - v_b)``."""
    return F.normalize(v_welllit - v_backlit, dim=0)


def rave_target(v_welllit: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Target projection ``tau = <v_w, r>``."""
    return v_welllit @ r


def rave_loss(emb: torch.Tensor, r: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """``mean_b (<e_b, r> - tau)^2``."""
    return (emb @ r - tau).pow(2).mean()


def shift_direction(r: torch.Tensor, tokens: torch.Tensor, k: int = 15) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RAVE-shifted: remove the token-bias direction from ``r``, as upstream's train_rave.py does.

    ``tokens`` (V x D) are one-token text features, *not* normalised (upstream weights the raw
    ``encode_text`` outputs). Scores ``s = <n(t), r>``; the ``k`` highest give
    ``a = n(mean(s_i t_i))``, the ``k`` lowest ``b = n(mean(s_i t_i))`` (their negative scores flip
    those tokens: b points away from the tokens most unlike r), ``u = n(a + b)`` and
    ``r' = n(r - <u, r> u)``. Returns ``r'`` and the indices of the top and bottom tokens.
    """
    scores = F.normalize(tokens, dim=-1) @ r
    top = scores.topk(k).indices
    bottom = (-scores).topk(k).indices
    a = F.normalize((scores[top, None] * tokens[top]).mean(0), dim=0)
    b = F.normalize((scores[bottom, None] * tokens[bottom]).mean(0), dim=0)
    u = F.normalize(a + b, dim=0)
    return F.normalize(r - (u @ r) * u, dim=0), top, bottom
