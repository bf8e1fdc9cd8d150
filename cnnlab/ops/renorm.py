"""Batch renormalization (Ioffe 2017) and the analytic cost shared by the batch-norm family.

Training: ``x_hat = (x - mu_B) / sigma_B * r + d`` with ``r = stop_grad(clip(sigma_B / sigma,
1/r_max, r_max))`` and ``d = stop_grad(clip((mu_B - mu) / sigma, -d_max, d_max))``, then
``y = gamma * x_hat + beta``; inference uses the moving ``mu``, ``sigma`` exactly like BN.

The moving statistics are PyTorch's ``running_mean`` and ``running_var`` (a moving average of the
*variance*, updated with the unbiased batch variance, as ``nn.BatchNorm2d`` does; the paper
averages ``sigma``), and ``sigma = sqrt(running_var + eps)``, the denominator inference divides by.
The step count that drives the ``r_max``/``d_max`` schedule is BN's own ``num_batches_tracked``, so
a state dict loads into ``nn.BatchNorm2d`` and back unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx


def batch_norm_cx(cx: Cx, num_features: int, *, affine: bool = True, folded: bool = False) -> Cx:
    """Inference cost of a BN-type layer: 2c parameters (with affine); folded into the preceding
    conv it costs no memory access, else it reads the input and its 2c scale/shift, writes the
    output (cnnlab.ops.cost.norm_cx)."""
    check_num_features(cx, num_features)
    mem = 0 if folded else 2 * cx.numel + 2 * cx.c
    return cx.add(params=2 * cx.c if affine else 0, memory_access=mem)


def check_num_features(cx: Cx, num_features: int) -> None:
    """Refuse a norm layer whose channel count differs from its input's."""
    if num_features != cx.c:
        raise BadValue(
            f"norm layer with num_features={num_features} cannot take an input of {cx.c} channels; "
            f"set num_features={cx.c}"
        )


def relaxed_limit(step, start: int, end: int, first: float, last: float):
    """Linear ramp from ``first`` (up to ``start``) to ``last`` (from ``end``): the batch renorm
    schedule of Ioffe 2017. ``step`` may be an int or a tensor (no host sync on GPU)."""
    if end == start:
        frac = (step >= start) * 1.0
    elif isinstance(step, torch.Tensor):
        frac = ((step.double() - start) / (end - start)).clamp(0.0, 1.0)
    else:
        frac = min(max((step - start) / (end - start), 0.0), 1.0)
    return first + (last - first) * frac


class BatchRenorm2d(nn.BatchNorm2d):
    """Batch renorm (Ioffe 2017): BN whose batch stats are pulled to the moving ones by r, d."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.01,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 5000,
        r_max_steps: int = 40000,
        d_max_steps: int = 25000,
        device=None,
        dtype=None,
    ) -> None:
        # Defaults (Ioffe 2017, as two independent implementations read it): plain BN for 5k
        # steps, then linear to r_max=3 at 40k and d_max=5 at 25k; moving-average rate 0.01.
        _check_schedule(r_max, d_max, warmup_steps, r_max_steps, d_max_steps)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.r_max, self.d_max = float(r_max), float(d_max)
        self.warmup_steps = int(warmup_steps)
        self.r_max_steps, self.d_max_steps = int(r_max_steps), int(d_max_steps)

    def limits(self, step) -> tuple:
        """(r_max, d_max) in force at training step ``step`` (0-based)."""
        r = relaxed_limit(step, self.warmup_steps, self.r_max_steps, 1.0, self.r_max)
        d = relaxed_limit(step, self.warmup_steps, self.d_max_steps, 0.0, self.d_max)
        return r, d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.track_running_stats):
            return super().forward(x)  # inference (moving stats) or no moving stats: plain BN
        self._check_input_dim(x)
        r, d = self._renorm_factors(x)
        # gamma * (x_hat * r + d) + beta == (gamma * r) * x_hat + (beta + gamma * d): one BN
        # kernel with r, d constant; its backward is BN's (through mu_B, sigma_B) scaled by r.
        weight = r if self.weight is None else self.weight * r
        bias = d if self.bias is None else self.bias + self.weight * d
        self.num_batches_tracked.add_(1)
        factor = self.momentum
        if factor is None:  # cumulative moving average, as nn.BatchNorm2d
            factor = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x, self.running_mean, self.running_var, weight, bias, True, factor, self.eps
        )

    @torch.no_grad()
    def _renorm_factors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """r and d of Ioffe 2017 Alg. 1 from the batch and the moving statistics (before update)."""
        r_max, d_max = self.limits(self.num_batches_tracked)
        # Two-pass batch moments in the statistics' dtype: as exact as var_mean and, on CPU,
        # several times faster than var_mean over (N, H, W).
        stat = self.running_var.dtype
        mu_b = x.mean((0, 2, 3), dtype=stat)
        var_b = (x - mu_b[:, None, None]).square().mean((0, 2, 3))
        sigma_b = (var_b + self.eps).sqrt()
        sigma = (self.running_var + self.eps).sqrt()
        r = torch.minimum(torch.maximum(sigma_b / sigma, 1.0 / r_max), r_max)
        d = torch.minimum(torch.maximum((mu_b - self.running_mean) / sigma, -d_max), d_max)
        return r.to(stat), d.to(stat)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, r_max={self.r_max}, d_max={self.d_max}, "
            f"warmup_steps={self.warmup_steps}, r_max_steps={self.r_max_steps}, "
            f"d_max_steps={self.d_max_steps}"
        )

    @staticmethod
    def complexity(
        cx: Cx,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.01,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup_steps: int = 5000,
        r_max_steps: int = 40000,
        d_max_steps: int = 25000,
        device=None,
        dtype=None,
        folded: bool = False,
    ) -> Cx:
        """Inference is BN: ``folded=True`` when it directly follows a conv."""
        return batch_norm_cx(cx, num_features, affine=affine, folded=folded)


def _check_schedule(r_max, d_max, warmup_steps, r_max_steps, d_max_steps) -> None:
    if r_max < 1.0 or d_max < 0.0:
        raise BadValue(
            f"BatchRenorm2d: need r_max >= 1 and d_max >= 0 (1 and 0 are plain BN); "
            f"got r_max={r_max}, d_max={d_max}"
        )
    if warmup_steps < 0 or r_max_steps < warmup_steps or d_max_steps < warmup_steps:
        raise BadValue(
            f"BatchRenorm2d: need 0 <= warmup_steps <= r_max_steps and d_max_steps; got "
            f"warmup_steps={warmup_steps}, r_max_steps={r_max_steps}, d_max_steps={d_max_steps}"
        )
