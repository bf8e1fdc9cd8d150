"""GradNorm (Chen et al. 2018) against hand-computed gradient norms and weight updates."""

import math

import pytest
import torch
from torch import nn

from cnnlab.train import GradNorm

X = torch.tensor([1.0, -2.0, 0.5])
Y = (torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 2.0]))
SCALE = (1.0, 3.0)


def _shared_layer():
    return nn.Parameter(torch.tensor([[0.2, -0.1, 0.4], [0.3, 0.0, -0.5]]))


def _losses(w):
    """L_i = s_i/2 ||W x - y_i||^2, so grad_W L_i = s_i (W x - y_i) x^T, of norm s_i ||Wx - y_i|| ||x||."""
    h = w @ X
    return [s / 2 * (h - y).pow(2).sum() for s, y in zip(SCALE, Y)]


def _hand_norms(w):
    h = (w @ X).detach()
    return torch.tensor([s * (h - y).norm() * X.norm() for s, y in zip(SCALE, Y)])


def _hand_update(weights, g, target, norms, lr):
    """One descent step on sum_i |G_i - target_i| over w_i (dG_i/dw_i = ||grad_W L_i||), renormalised."""
    w = weights - lr * torch.sign(g - target) * norms
    return w * len(w) / w.sum()


def test_gradient_norms_ratios_and_update_match_hand_computation():
    w = _shared_layer()
    gn = GradNorm(2, w, alpha=1.5, lr=0.01)
    losses = _losses(w)
    total = gn.step(losses)
    norms = _hand_norms(w)
    assert torch.allclose(gn.grad_norms, norms, rtol=1e-6)  # w_i = 1 at the first step
    assert torch.allclose(gn.loss_ratios, torch.ones(2))  # L~_i = L_i(0)/L_i(0)
    assert torch.allclose(total, losses[0] + losses[1])
    expected = _hand_update(torch.ones(2), norms, norms.mean(), norms, 0.01)
    assert torch.allclose(gn.weights, expected, rtol=1e-6)

    with torch.no_grad():  # second step: the losses move, so r_i != 1
        w.sub_(0.05 * torch.ones_like(w))
    weights_t = gn.weights.clone()
    losses2 = _losses(w)
    total = gn.step(losses2)
    g = weights_t * _hand_norms(w)  # G_W^(i) = ||grad_W (w_i L_i)||
    assert torch.allclose(gn.grad_norms, g, rtol=1e-6)
    inverse_rate = torch.stack([b / a for a, b in zip(losses, losses2)]).detach()
    r = inverse_rate / inverse_rate.mean()
    assert torch.allclose(gn.loss_ratios, r, rtol=1e-6) and not torch.allclose(r, torch.ones(2))
    target = g.mean() * r**1.5
    assert torch.allclose(gn.grad_loss, (g - target).abs().sum(), rtol=1e-6)
    assert torch.allclose(gn.weights, _hand_update(weights_t, g, target, _hand_norms(w), 0.01))
    assert torch.allclose(total, (weights_t * torch.stack(losses2)).sum())


def test_total_loss_trains_the_model_with_the_current_weights():
    w = _shared_layer()
    gn = GradNorm(2, w, lr=0.05)
    gn.step(_losses(w))  # weights move away from (1, 1)
    weights_t = gn.weights.clone()
    total = gn.step(_losses(w))
    assert w.grad is None  # the helper never writes the model's gradients
    total.backward()
    ref = _shared_layer()
    (weights_t[0] * _losses(ref)[0] + weights_t[1] * _losses(ref)[1]).backward()
    assert torch.allclose(w.grad, ref.grad, rtol=1e-6)


def _ten_to_one(w):
    """Equal losses (30 and 30) whose gradients at W differ 10x: 10 W.x and W.x + 27."""
    wx = w @ torch.ones(3)
    return [10 * wx, wx + 9 * wx.detach()]


def test_alpha_zero_moves_weights_toward_equal_gradient_norms():
    w = nn.Parameter(torch.ones(3))
    gn = GradNorm(2, w, alpha=0.0, lr=0.01)
    gn.step(_ten_to_one(w))
    n = math.sqrt(3)
    assert gn.grad_norms.tolist() == pytest.approx([10 * n, n])
    raw = torch.tensor([1 - 0.01 * 10 * n, 1 + 0.01 * n])  # the larger gradient loses weight
    assert gn.weights.tolist() == pytest.approx((raw * 2 / raw.sum()).tolist())
    assert gn.weights[0] < 1 < gn.weights[1]


@pytest.mark.parametrize("num_tasks", [2, 3])
def test_weights_stay_positive_and_sum_to_num_tasks(num_tasks):
    w = nn.Parameter(torch.ones(3))
    gn = GradNorm(num_tasks, [w], alpha=1.0, lr=1.0)  # steps large enough to overshoot zero
    for k in range(5):
        wx = w @ torch.ones(3)
        losses = [10 * wx, wx + 9 * wx.detach(), wx * (1 + k) + 1][:num_tasks]
        gn.step(losses)
        assert (gn.weights > 0).all()
        assert float(gn.weights.sum()) == pytest.approx(num_tasks)
    assert float(gn.weights.min()) < 0.01  # the guard was exercised, not just the renormalisation
    assert int(gn.steps) == 5 and set(gn.state_dict()) == {"weights", "initial_losses", "steps"}


def test_gradnorm_errors():
    w = nn.Parameter(torch.ones(3))
    gn = GradNorm(2, w)
    with pytest.raises(ValueError, match="expected 2 scalar task losses, got shape \\(3,\\)"):
        gn.step([w.sum(), w.sum(), w.sum()])
    with pytest.raises(ValueError, match="must require grad"):
        gn.step([torch.tensor(1.0), torch.tensor(2.0)])
    with pytest.raises(ValueError, match="initial task losses must be > 0.*task 1: 0.0"):
        gn.step([w.sum(), w.sum() * 0])
    with pytest.raises(ValueError, match="num_tasks must be a positive integer, got 0"):
        GradNorm(0, w)
    with pytest.raises(ValueError, match="last shared layer's weights"):
        GradNorm(2, torch.ones(3))
