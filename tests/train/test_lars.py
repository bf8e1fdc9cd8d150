"""LARS (You et al. 2017): hand computation, timm's Lars, exclusions, momentum correction, errors."""

from __future__ import annotations

import pytest
import torch
from timm.optim import Lars
from torch import nn

from cnnlab.train import LARS, momentum_correction


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    ).double()


def _set_grads(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)


def _split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    weights = [p for p in model.parameters() if p.ndim > 1]
    bn_and_bias = [p for p in model.parameters() if p.ndim <= 1]
    return weights, bn_and_bias


def _run(model: nn.Module, opt: torch.optim.Optimizer, lrs: list[float], fix=None) -> None:
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            if group["lr"] != lr and fix is not None:
                fix(opt, group["lr"], lr)
            group["lr"] = lr
        _set_grads(model, seed=100 + step)
        opt.step()


def test_one_step_matches_hand_computation() -> None:
    w = nn.Parameter(torch.tensor([[3.0, 4.0]], dtype=torch.float64))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    w.grad = torch.tensor([[0.6, 0.8]], dtype=torch.float64)  # ||g|| = 1
    b.grad = torch.tensor([0.5], dtype=torch.float64)
    opt = LARS([w, b], lr=2.0, momentum=0.9, weight_decay=0.1, trust_coefficient=0.01)
    opt.step()
    lam = 0.01 * 5.0 / (1.0 + 0.1 * 5.0)  # eta ||w|| / (||g|| + beta ||w||) = 1/30
    v = 2.0 * lam * (torch.tensor([[0.6, 0.8]]) + 0.1 * torch.tensor([[3.0, 4.0]]))
    assert torch.allclose(w, torch.tensor([[3.0, 4.0]], dtype=torch.float64) - v, atol=1e-15)
    assert torch.allclose(w, torch.tensor([[3.0 - 0.06, 4.0 - 0.08]], dtype=torch.float64))
    assert b.item() == pytest.approx(1.0 - 2.0 * 0.5, abs=1e-15)  # bias: plain SGD, no decay


def test_matches_timm_lars_over_several_steps() -> None:
    """timm keeps lr outside its buffer (buf <- m buf + lambda(g + beta w); w -= lr buf), so at
    a constant lr our v equals lr * timm's buf; exclusions map to a timm group with weight
    decay 0 and always_adapt=False (plain SGD momentum). eps=0, trust_clip=False to match."""
    ours_model, timm_model = _tiny_net(), _tiny_net()
    ours = LARS(ours_model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    weights, skipped = _split(timm_model)
    common = dict(lr=0.5, momentum=0.9, trust_coeff=0.001, eps=0.0, trust_clip=False)
    theirs = Lars(
        [
            {"params": weights, "weight_decay": 5e-4, "always_adapt": True},
            {"params": skipped, "weight_decay": 0.0, "always_adapt": False},
        ],
        foreach=False,
        **common,
    )
    _run(ours_model, ours, [0.5] * 6)
    _run(timm_model, theirs, [0.5] * 6)
    for a, b in zip(ours_model.parameters(), timm_model.parameters(), strict=True):
        assert (a - b).abs().max().item() < 1e-6
    moved = [
        (a - b).abs().max().item()
        for a, b in zip(ours_model.parameters(), _tiny_net().parameters(), strict=True)
    ]
    assert min(moved) > 1e-4  # every parameter actually trained


def test_lr_change_matches_timm_only_with_momentum_correction() -> None:
    """Goyal Remark 2: eq. 9 (lr in the buffer) + correction equals eq. 10 (timm's form)."""
    lrs = [0.1, 0.1, 0.1, 3.2, 3.2, 0.32]
    results = {}
    for name, fix in (("plain", None), ("corrected", momentum_correction)):
        model = _tiny_net()
        _run(model, LARS(model.parameters(), lr=0.1, weight_decay=1e-4), lrs, fix)
        results[name] = model
    timm_model = _tiny_net()
    weights, skipped = _split(timm_model)
    theirs = Lars(
        [{"params": weights, "weight_decay": 1e-4, "always_adapt": True},
         {"params": skipped, "weight_decay": 0.0}],
        lr=0.1, momentum=0.9, eps=0.0, foreach=False,
    )  # fmt: skip
    _run(timm_model, theirs, lrs)
    pairs = zip(results["corrected"].parameters(), timm_model.parameters(), strict=True)
    assert max((a - b).abs().max().item() for a, b in pairs) < 1e-6
    pairs = zip(results["plain"].parameters(), timm_model.parameters(), strict=True)
    assert max((a - b).abs().max().item() for a, b in pairs) > 1e-3


def test_excluded_params_get_sgd_momentum_updates() -> None:
    """BN/bias by default, and a whole group with lars_exclude=True, follow torch.optim.SGD."""
    ours_model, sgd_model = _tiny_net(), _tiny_net()
    weights, skipped = _split(ours_model)
    ours = LARS(
        [{"params": weights, "lars_exclude": True}, {"params": skipped}],
        lr=0.3, momentum=0.9, weight_decay=1e-2,
    )  # fmt: skip
    sgd = torch.optim.SGD(sgd_model.parameters(), lr=0.3, momentum=0.9)
    _run(ours_model, ours, [0.3] * 4)
    _run(sgd_model, sgd, [0.3] * 4)
    for a, b in zip(ours_model.parameters(), sgd_model.parameters(), strict=True):
        assert (a - b).abs().max().item() < 1e-12


def test_exclude_bn_and_bias_false_adapts_vectors() -> None:
    b = nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))
    b.grad = torch.tensor([0.0, 2.0], dtype=torch.float64)
    LARS([b], lr=1.0, momentum=0.0, trust_coefficient=0.1, exclude_bn_and_bias=False).step()
    lam = 0.1 * 5.0 / 2.0
    assert torch.allclose(b, torch.tensor([3.0, 4.0 - lam * 2.0], dtype=torch.float64))


def test_trust_ratio_is_one_when_a_norm_is_zero() -> None:
    w = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    LARS([w], lr=0.5, momentum=0.0, weight_decay=0.1).step()
    assert torch.equal(w, torch.full((2, 2), -0.5, dtype=torch.float64))


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"lr": -0.1}, "lr=-0.1"),
        ({"lr": 0.1, "momentum": -0.5}, "momentum=-0.5"),
        ({"lr": 0.1, "trust_coefficient": 0.0}, "trust_coefficient=0.0"),
        ({"lr": 0.1, "weight_decay": -1e-4}, "weight_decay=-0.0001"),
    ],
)
def test_bad_values_raise(kwargs: dict, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        LARS([nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_bad_group_value_raises() -> None:
    with pytest.raises(ValueError, match="trust_coefficient=-1"):
        LARS([{"params": [nn.Parameter(torch.ones(2, 2))], "trust_coefficient": -1}], lr=0.1)
