"""Schedules: Goyal's scaling rule and warmup, decays, momentum correction, Smith's noise scale."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.train import (
    LARS,
    batch_size_schedule,
    lr_at,
    lr_lambda,
    momentum_correction,
    noise_scale,
    scaled_lr,
)

# Goyal et al. 2017 at kn = 8k: 1.28M images / 8192 per iteration, 5 warmup epochs of 90.
ITERS_PER_EPOCH = 157
GOYAL = dict(
    base_lr=3.2,
    total_steps=90 * ITERS_PER_EPOCH,
    warmup_steps=5 * ITERS_PER_EPOCH,
    warmup_start=0.1,
    schedule="step",
    milestones=[30 * ITERS_PER_EPOCH, 60 * ITERS_PER_EPOCH, 80 * ITERS_PER_EPOCH],
)


def test_linear_scaling_rule_goyal() -> None:
    assert scaled_lr(0.1, 8192) == pytest.approx(3.2, abs=1e-12)
    assert scaled_lr(0.1, 256) == 0.1
    assert scaled_lr(0.1, 1024, reference_batch=64) == pytest.approx(1.6)


def test_gradual_warmup_is_linear_per_iteration() -> None:
    w = GOYAL["warmup_steps"]
    assert lr_at(0, **GOYAL) == pytest.approx(0.1)
    assert lr_at(w, **GOYAL) == pytest.approx(3.2)  # reaches k * eta after 5 epochs
    for step in (1, 7, w // 2, w - 1):
        assert lr_at(step, **GOYAL) == pytest.approx(0.1 + (3.2 - 0.1) * step / w)
    deltas = [lr_at(s + 1, **GOYAL) - lr_at(s, **GOYAL) for s in range(w)]
    assert max(deltas) - min(deltas) < 1e-12  # a constant amount each iteration


def test_constant_warmup_holds_then_jumps() -> None:
    w = GOYAL["warmup_steps"]
    assert {lr_at(s, **{**GOYAL, "warmup": "constant"}) for s in range(0, w, 50)} == {0.1}
    assert lr_at(w, **{**GOYAL, "warmup": "constant"}) == 3.2


def test_step_decay_divides_by_10_at_30_60_80() -> None:
    e = ITERS_PER_EPOCH
    expected = {29: 3.2, 30: 0.32, 59: 0.32, 60: 0.032, 79: 0.032, 80: 0.0032, 89: 0.0032}
    for epoch, lr in expected.items():
        assert lr_at(epoch * e, **GOYAL) == pytest.approx(lr, rel=1e-12)
    assert lr_at(10**6, **GOYAL) == pytest.approx(0.0032)  # floor: final value held


def test_cosine_endpoints_and_midpoint() -> None:
    kw = dict(base_lr=0.4, total_steps=110, warmup_steps=10, schedule="cosine", min_lr=0.01)
    assert lr_at(10, **kw) == pytest.approx(0.4)
    assert lr_at(60, **kw) == pytest.approx((0.4 + 0.01) / 2)
    assert lr_at(35, **kw) == pytest.approx(0.01 + 0.39 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(110, **kw) == pytest.approx(0.01)
    assert lr_at(500, **kw) == pytest.approx(0.01)


def test_linear_to_zero_shufflenet_recipe() -> None:
    kw = dict(base_lr=0.5, total_steps=300000, warmup=None, schedule="linear")
    assert lr_at(0, **kw) == 0.5
    assert lr_at(75000, **kw) == pytest.approx(0.375)
    assert lr_at(300000, **kw) == 0.0
    assert lr_at(299999, **kw) == pytest.approx(0.5 / 300000)


def test_poly_power_2_closed_form() -> None:
    kw = dict(base_lr=2.0, total_steps=1000, warmup_steps=100, schedule="poly", power=2.0)
    for step in (100, 250, 550, 999, 1000):
        assert lr_at(step, **kw) == pytest.approx(2.0 * (1 - (step - 100) / 900) ** 2, abs=1e-15)


def test_lambda_lr_factory_drives_torch_scheduler() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=3.2, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(**GOYAL))
    for step in range(2 * GOYAL["warmup_steps"]):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_at(step, **GOYAL), rel=1e-12)
        opt.step()
        sched.step()


def test_momentum_correction_scales_lars_buffers() -> None:
    w = nn.Parameter(torch.ones(3, 3, dtype=torch.float64))
    w.grad = torch.full((3, 3), 0.5, dtype=torch.float64)
    opt = LARS([w], lr=0.1, momentum=0.9)
    opt.step()
    before = opt.state[w]["momentum_buffer"].clone()
    momentum_correction(opt, 0.1, 3.2)
    assert torch.allclose(opt.state[w]["momentum_buffer"], before * 32.0, rtol=1e-15)


def test_momentum_correction_refuses_torch_sgd() -> None:
    """torch.optim.SGD keeps lr outside its buffer (Goyal eq. 10): correcting it would double."""
    opt = torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="SGD keeps the lr outside"):
        momentum_correction(opt, 0.1, 3.2)


def test_eq9_with_correction_equals_torch_sgd_eq10() -> None:
    """Goyal Remark 2: v <- m v + lr g with v rescaled at lr changes equals torch SGD."""
    lrs = [0.1, 0.1, 1.6, 1.6, 0.16]
    models = [nn.Linear(4, 3).double() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    eq9 = LARS(models[0].parameters(), lr=0.1, momentum=0.9, exclude_bn_and_bias=False)
    eq9.param_groups[0]["lars_exclude"] = True  # plain SGD momentum in eq. 9 form
    eq10 = torch.optim.SGD(models[1].parameters(), lr=0.1, momentum=0.9)
    for step, lr in enumerate(lrs):
        momentum_correction(eq9, eq9.param_groups[0]["lr"], lr)
        eq9.param_groups[0]["lr"] = eq10.param_groups[0]["lr"] = lr
        for model in models:
            gen = torch.Generator().manual_seed(step)
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        eq9.step()
        eq10.step()
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert (a - b).abs().max().item() < 1e-12


def test_noise_scale_formula() -> None:
    assert noise_scale(0.1, 50000, 128) == pytest.approx(0.1 * 50000 / 128)
    assert noise_scale(0.1, 50000, 128, momentum=0.9) == pytest.approx(0.1 * 50000 / 12.8)


def test_batch_size_schedule_phases_and_constant_noise() -> None:
    phases = batch_size_schedule(
        base_lr=0.1, base_batch=128, milestones=[60, 120, 160], factor=5, max_batch=5000
    )
    assert [(p.start_epoch, p.batch) for p in phases] == [
        (0, 128),
        (60, 640),
        (120, 3200),
        (160, 5000),
    ]
    assert [p.lr for p in phases[:3]] == [0.1, 0.1, 0.1]
    assert phases[3].lr == pytest.approx(0.1 / (5 * 3200 / 5000))
    # Each phase has the noise scale the LR-decay schedule would have had (Smith et al.)
    decayed = [0.1 / 5**i for i in range(4)]
    for phase, lr in zip(phases, decayed, strict=True):
        expected = noise_scale(lr, 50000, 128, momentum=0.9)
        assert phase.noise_scale(50000, momentum=0.9) == pytest.approx(expected, rel=1e-12)


def test_batch_size_schedule_decays_lr_at_the_ceiling() -> None:
    phases = batch_size_schedule(
        base_lr=0.4, base_batch=256, milestones=[30, 60], factor=10, max_batch=2560
    )
    assert [(p.batch, p.lr) for p in phases] == [
        (256, 0.4),
        (2560, 0.4),
        (2560, pytest.approx(0.04)),
    ]


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: scaled_lr(0.1, 0), "global_batch=0"),
        (lambda: lr_at(0, **{**GOYAL, "schedule": "exp"}), "schedule='exp'"),
        (lambda: lr_at(0, **{**GOYAL, "warmup": "slow"}), "warmup='slow'"),
        (lambda: lr_at(-1, **GOYAL), "step=-1"),
        (lambda: noise_scale(0.1, 100, 10, momentum=1.0), "momentum=1.0"),
        (
            lambda: batch_size_schedule(
                base_lr=0.1, base_batch=64, milestones=[3], factor=1, max_batch=64
            ),
            "factor=1",
        ),
        (
            lambda: momentum_correction(LARS([nn.Parameter(torch.ones(2))], lr=0.1), 0.0, 0.1),
            "lr_old=0.0",
        ),
    ],
)
def test_bad_values_raise(call, text: str) -> None:
    with pytest.raises(ValueError, match=text):
        call()
