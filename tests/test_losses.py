"""Each loss against values computed by hand on small tensors."""
from __future__ import annotations

import math

import pytest
import torch

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
    assert L.psnr_y(black, grey).item() == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-4)  # 6.0206 dB
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    assert L.psnr_y(black, red).item() == pytest.approx(10 * math.log10(1 / 0.299 ** 2), abs=1e-4)  # 10.4866 dB


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
    b, w, new = torch.tensor([0.9]), torch.tensor([0.2]), torch.tensor([0.55])
    # one set: R.9(b,w) = .2, R.9(b,new) = .55, R.2(new,w) = max(0, .2 - .55 + .2) = 0
    assert L.ranking_loss(b, w, new).item() == pytest.approx(0.2 + 0.55)
    # two sets, backlit > old > new > well-lit: R.9(b,w) = .2, R.9(b,old) = .6,
    # R.1(old,new) = .55 - .6 + .1 = .05, R.1(new,w) = 0
    assert L.ranking_loss(b, w, new, torch.tensor([0.6])).item() == pytest.approx(0.2 + 0.6 + 0.05)
    # an older result *less* backlit than the newest is penalised: R.1(old,new) = .55 - .3 + .1 = .35
    assert L.ranking_loss(b, w, new, torch.tensor([0.3])).item() == pytest.approx(0.2 + 0.3 + 0.35)


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


def test_shift_direction() -> None:
    r = torch.tensor([1.0, 0.0, 0.0])
    tokens = torch.tensor([[0.8, 0.6, 0.0], [0.6, 0.0, 0.8], [-0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])  # scores .8 .6 -.8 0
    shifted, top, bottom = L.shift_direction(r, tokens, k=2)
    assert sorted(top.tolist()) == [0, 1] and sorted(bottom.tolist()) == [2, 3]
    remove = torch.tensor([0.64 + 0.36, 0.48, 0.48]) / 1.4  # (.8 a + .6 b) / 1.4
    remove = remove / remove.norm()
    add = torch.tensor([-0.8, 0.6, 0.0])  # (-.8 c + 0 d) / -.8 = c
    u = remove + add
    u = u / u.norm()
    expected = r - (u @ r) * u
    assert shifted.tolist() == pytest.approx((expected / expected.norm()).tolist(), abs=1e-6)
    assert float(shifted @ u) == pytest.approx(0.0, abs=1e-6)
