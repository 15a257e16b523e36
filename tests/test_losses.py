"""Each loss against values computed by hand on small tensors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from methods import losses as L


def test_identity_loss_level_weights_and_batch_sum() -> None:
    # outputs all zero; per image and level the MSE is the mean square of the input features
    ins = [torch.tensor(v, dtype=torch.float32) for v in (
        [[1.0, 1.0], [2.0, 2.0]],  # MSE 1, 4 -> 5
        [[0.0, 2.0], [0.0, 0.0]],  # 2, 0 -> 2
        [[3.0, 3.0], [0.0, 0.0]],  # 9, 0 -> 9
        [[1.0, 0.0], [0.0, 1.0]],  # 0.5, 0.5 -> 1
        [[2.0, 2.0], [2.0, 2.0]],  # 4, 4 -> 8
    )]
    outs = [torch.zeros_like(t) for t in ins]
    assert L.identity_loss(outs, ins, L.ALPHA_WARMUP).item() == pytest.approx(5 + 2 + 9 + 1 + 8)
    assert L.identity_loss(outs, ins, L.ALPHA_GUIDED).item() == pytest.approx(5 + 2 + 9 + 1 + 0.5 * 8)
    # a sum over the batch, not a mean: doubling the batch doubles the loss
    doubled = [torch.cat([t, t]) for t in ins]
    assert L.identity_loss([torch.zeros_like(t) for t in doubled], doubled).item() == pytest.approx(2 * 21)
    with pytest.raises(ValueError, match="one alpha per level"):
        L.identity_loss(outs[:4], ins[:4], L.ALPHA_GUIDED)


def test_psnr_y() -> None:
    black = torch.zeros(1, 3, 2, 2)
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert L.psnr_y(black, grey, "luma").item() == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-4)  # 6.0206 dB
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert L.psnr_y(black, red, "luma").item() == pytest.approx(10 * math.log10(1 / 0.299 ** 2), abs=1e-4)  # 10.4866 dB
    # studio-range Y: a full-scale grey step is 219/255 of the range -> 1.32 dB above full-range luma
    assert L.psnr_y(black, grey).item() == pytest.approx(10 * math.log10(1 / (0.5 * 219 / 255) ** 2), abs=1e-4)
    with pytest.raises(ValueError, match="'pyiqa-y' or 'luma'"):
        L.psnr_y(black, grey, "y")


def test_psnr_y_is_upstreams_pyiqa_monitor() -> None:
    """Upstream: pyiqa.create_metric('psnr', test_y_channel=True, color_space='ycbcr')."""
    from pyiqa.archs.psnr_arch import psnr

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 3, 16, 16, generator=g), torch.rand(3, 3, 16, 16, generator=g)
    ref = psnr(x, y, test_y_channel=True, color_space="ycbcr")
    assert torch.allclose(L.psnr_y(x, y), ref, atol=1e-4)
    gap = L.psnr_y(x, y) - L.psnr_y(x, y, "luma")
    assert torch.allclose(gap, torch.full((3,), 20 * math.log10(255 / 219)), atol=1e-4)  # 1.3226 dB


def test_prompt_cross_entropy() -> None:
    text = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # normalised inside: the two axes
    emb = torch.tensor([[0.6, 0.8], [0.6, 0.8]])  # logits 60 (negative), 80 (positive)
    labels = torch.tensor([0, 1])
    expected = ((20 + math.log1p(math.exp(-20))) + math.log1p(math.exp(-20))) / 2
    assert L.prompt_ce_loss(emb, text, labels).item() == pytest.approx(expected, rel=1e-5)


def test_negative_probability_and_guidance_loss() -> None:
    # <e, T0> - <e, T1> = 0.01 -> P(negative) = 1 / (1 + e^-1)
    theta = math.pi / 4 - math.asin(0.01 / math.sqrt(2))
    emb = torch.tensor([[math.cos(theta), math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    text = torch.eye(2)
    p = L.negative_probability(emb, text)
    assert p[0].item() == pytest.approx(1 / (1 + math.exp(-1)), abs=1e-4)  # 0.7311
    assert p[1].item() == pytest.approx(1 / (1 + math.exp(1)), abs=1e-4)  # 0.2689
    assert L.prompt_guidance_loss(emb, text).item() == pytest.approx(0.5, abs=1e-4)


def test_margin_rank() -> None:
    # max(0, 0.1 - 0.8 + 0.2) = 0 and max(0, 0.5 - 0.3 + 0.2) = 0.4 -> mean 0.2
    assert L.margin_rank(torch.tensor([0.8, 0.3]), torch.tensor([0.1, 0.5]), 0.2).item() == pytest.approx(0.2)


def test_ranking_loss_one_and_two_result_sets() -> None:
    b, w, new, old = torch.tensor([0.9]), torch.tensor([0.2]), torch.tensor([0.55]), torch.tensor([0.6])
    # one set: R.9(b,w) = .2, R.9(b,new) = .55, R.2(new,w) = max(0, .2 - .55 + .2) = 0 (either order)
    for order in L.RANKING_ORDERS:
        assert L.ranking_loss(b, w, new, order=order).item() == pytest.approx(0.2 + 0.55)
    # two sets, upstream (new-then-old): R.9(b,w) = .2, R.9(b,new) = .55, R.1(new,old) = .6 - .55 + .1 = .15,
    # R.1(old,w) = 0: the newest result must stay more backlit-like than the older one
    assert L.ranking_loss(b, w, new, old).item() == pytest.approx(0.2 + 0.55 + 0.15)
    # old-then-new (backlit > old > new > well-lit): R.9(b,old) = .6, R.1(old,new) = .55 - .6 + .1 = .05, R.1(new,w) = 0
    assert L.ranking_loss(b, w, new, old, "old-then-new").item() == pytest.approx(0.2 + 0.6 + 0.05)
    # an older result *less* backlit than the newest is penalised there: R.1(old,new) = .55 - .3 + .1 = .35
    assert L.ranking_loss(b, w, new, torch.tensor([0.3]), "old-then-new").item() == pytest.approx(0.2 + 0.3 + 0.35)
    with pytest.raises(ValueError, match="ranking order must be one of new-then-old, old-then-new"):
        L.ranking_loss(b, w, new, old, "paper")


def test_rave_direction_target_and_loss() -> None:
    backlit = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0]])  # mean (0.9, 0.3, 0) -> v_b = (3, 1, 0)/sqrt(10)
    welllit = torch.tensor([[0.0, 1.0, 0.0]])  # v_w = (0, 1, 0)
    v_b, v_w = L.class_mean(backlit), L.class_mean(welllit)
    s10 = math.sqrt(10)
    assert v_b.tolist() == pytest.approx([3 / s10, 1 / s10, 0.0])
    r = L.rave_direction(v_b, v_w)
    norm = math.sqrt(2 - 2 / s10)  # |v_w - v_b|
    assert r.tolist() == pytest.approx([-3 / s10 / norm, (1 - 1 / s10) / norm, 0.0], abs=1e-6)
    tau = L.rave_target(v_w, r)
    assert tau.item() == pytest.approx(math.sqrt((1 - 1 / s10) / 2), abs=1e-6)  # sqrt((1 - cos)/2) = 0.58471
    emb = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # projections tau and -3/sqrt(10)/norm
    expected = (0.0 + (-3 / s10 / norm - tau.item()) ** 2) / 2  # 0.97434
    assert L.rave_loss(emb, r, tau).item() == pytest.approx(expected, abs=1e-6)


def _upstream_shift(r: np.ndarray, vocab: dict[str, np.ndarray], k: int) -> np.ndarray:
    """Atmyre/RAVE train_rave.py's shifted residual, transcribed (numpy, dict of raw text features;
    its ``scores[:15]`` is the ``token_scores[:15]`` it means)."""
    token_scores = {key: np.dot(e / np.linalg.norm(e), r / np.linalg.norm(r)) for key, e in vocab.items()}
    token_scores = sorted(token_scores.items(), key=lambda x: x[1])
    embs_neg_add = np.mean([vocab[x] * y for x, y in token_scores[-k:][::-1]], axis=0)
    embs_neg_add = embs_neg_add / np.linalg.norm(embs_neg_add)
    embs_pos_add = np.mean([vocab[x] * y for x, y in token_scores[:k]], axis=0)
    embs_pos_add = embs_pos_add / np.linalg.norm(embs_pos_add)
    remove_emb = embs_neg_add + embs_pos_add
    remove_emb = remove_emb / np.linalg.norm(remove_emb)
    r = r - remove_emb * np.dot(remove_emb, r)
    return r / np.linalg.norm(r)


def _old_shift(r: torch.Tensor, tokens: torch.Tensor, k: int) -> torch.Tensor:
    """This project's former version: sum(s t) / sum(s), which flips the bottom part's sign."""
    tokens = torch.nn.functional.normalize(tokens, dim=-1)
    scores = tokens @ r
    parts = []
    for idx in (scores.topk(k).indices, (-scores).topk(k).indices):
        parts.append(torch.nn.functional.normalize((scores[idx, None] * tokens[idx]).sum(0) / scores[idx].sum(), dim=0))
    u = torch.nn.functional.normalize(parts[0] + parts[1], dim=0)
    return torch.nn.functional.normalize(r - (u @ r) * u, dim=0)


def test_shift_direction_by_hand() -> None:
    r = torch.tensor([1.0, 0.0, 0.0])
    # scores .6, 0, 0, -.6; the top token has raw norm 2 (scores use unit vectors, the means raw ones)
    tokens = torch.tensor([[1.2, 1.6, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-0.6, 0.0, 0.8]])
    shifted, top, bottom = L.shift_direction(r, tokens, k=1)
    assert top.tolist() == [0] and bottom.tolist() == [3]
    # a = n(.6 * (1.2, 1.6, 0)) = (.6, .8, 0); b = n(-.6 * (-.6, 0, .8)) = (.6, 0, -.8)
    # u = n(1.2, .8, -.8); r - <u, r> u = (1.28, -.96, .96) / 2.72 -> n = (4, -3, 3) / sqrt(34)
    assert shifted.tolist() == pytest.approx([4 / math.sqrt(34), -3 / math.sqrt(34), 3 / math.sqrt(34)], abs=1e-6)
    # the former sum(s t) / sum(s) turned b into +(-.6, 0, .8): u = n(0, 1, 1) is orthogonal to r, no shift at all
    assert _old_shift(r, tokens, 1).tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    # k = 2: a = n(mean(.6 (1.2, 1.6, 0), 0)) is unchanged; b = n(mean(-.6 t3, 0 t1)) too
    assert L.shift_direction(r, tokens, k=2)[0].tolist() == pytest.approx(shifted.tolist(), abs=1e-6)


def test_shift_direction_matches_upstream_on_random_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    cosines_new, cosines_old = [], []
    for _ in range(5):
        tokens = torch.randn(2000, 64, generator=g) * torch.rand(2000, 1, generator=g).add(0.5)  # raw norms vary
        r = torch.nn.functional.normalize(torch.randn(64, generator=g), dim=0)
        vocab = {f"t{i}": t.numpy().astype(np.float32) for i, t in enumerate(tokens)}
        upstream = torch.from_numpy(_upstream_shift(r.numpy(), vocab, 15)).float()
        cosines_new.append(float(L.shift_direction(r, tokens, 15)[0] @ upstream))
        cosines_old.append(float(_old_shift(r, tokens, 15) @ upstream))
    print(f"cos to upstream: new {min(cosines_new):.6f}, old {max(cosines_old):.4f}")
    assert min(cosines_new) >= 0.9999
    assert max(cosines_old) < 0.99  # the old direction was a different one


def test_identity_loss_is_zero_for_unchanged_features() -> None:
    feats = [torch.full((2, 3), 1.5), torch.full((2, 4), -2.0)]
    assert L.identity_loss(feats, [f.clone() for f in feats], (1.0, 1.0)).item() == 0.0


def test_psnr_y_of_identical_images_is_bounded_by_eps() -> None:
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    assert L.psnr_y(x, x.clone()).tolist() == pytest.approx([80.0, 80.0])  # 10 log10(1 / 1e-8)


def test_prompt_scores_use_the_given_scale_and_each_prompts_own_norm() -> None:
    text = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # rows of other lengths: each is normalised on its own
    emb = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
    assert L.prompt_logits(emb, text, 2.0).flatten().tolist() == pytest.approx([2.0, 1.6, 1.2, 0.0, 1.6, 2.0])
    p = L.negative_probability(emb, text, 2.0)  # softmax over the two prompts of each image
    assert p.tolist() == pytest.approx([1 / (1 + math.exp(-0.4)), 1 / (1 + math.exp(-1.2)), 1 / (1 + math.exp(0.4))])
    assert L.prompt_guidance_loss(emb, text, 2.0).item() == pytest.approx(p.mean().item())
    labels = torch.tensor([1, 0, 1])
    expected = -(math.log(1 - p[0].item()) + math.log(p[1].item()) + math.log(1 - p[2].item())) / 3
    assert L.prompt_ce_loss(emb, text, labels, 2.0).item() == pytest.approx(expected, rel=1e-6)


def test_ranking_without_results_asks_a_margin_of_one() -> None:
    # max(0, 0.2 - 0.5 + 1.0) = 0.7: backlit more backlit-like than well-lit by the whole probability range
    assert L.ranking_loss(torch.tensor([0.5]), torch.tensor([0.2])).item() == pytest.approx(0.7)


def test_every_ranking_term_adds() -> None:
    b, w, new, old = torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([0.5]), torch.tensor([0.5])
    # all equal: each term is its margin. One set: .9 + .9 + .2; two sets: .9 + .9 + .1 + .1
    assert L.ranking_loss(b, w, new).item() == pytest.approx(2.0)
    assert L.ranking_loss(b, w, new, old).item() == pytest.approx(2.0)


def test_calibrated_scale_makes_the_class_means_a_logit_of_p_apart() -> None:
    backlit = torch.tensor([[1.0, 0.0], [0.6, 0.8]])  # mean (0.8, 0.4)
    welllit = torch.tensor([[0.0, 1.0], [0.8, 0.6]])  # mean (0.4, 0.8): |difference| = 0.4 * sqrt 2
    expected = math.log(0.95 / 0.05) / (0.4 * math.sqrt(2))
    assert L.calibrated_logit_scale(backlit, welllit) == pytest.approx(expected)
    assert L.calibrated_logit_scale(backlit, welllit, p=0.75) == pytest.approx(math.log(3) / (0.4 * math.sqrt(2)))


def test_shift_direction_takes_fifteen_tokens_by_default() -> None:
    gen = torch.Generator().manual_seed(1)
    r = F.normalize(torch.randn(8, generator=gen), dim=0)
    _, top, bottom = L.shift_direction(r, torch.randn(40, 8, generator=gen))
    assert len(top) == len(bottom) == 15 and not set(top.tolist()) & set(bottom.tolist())
