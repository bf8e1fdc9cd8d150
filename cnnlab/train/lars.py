"""LARS: layer-wise adaptive rate scaling (You, Gitman, Ginsburg 2017), as in X. Zhang's survey.

For each layer l with weights w and gradient g, at global learning rate gamma_t:

- local rate ``lambda = eta * ||w|| / (||g|| + beta * ||w|| + eps)`` (eta: trust coefficient,
  beta: weight decay; eps = 0 in the paper), and ``lambda = 1`` when ||w|| or ||g|| is 0 (as in
  the TensorFlow reference ``LARSOptimizer``);
- ``v <- m * v + gamma_t * lambda * (g + beta * w)``;
- ``w <- w - v``.

The learning rate sits inside the momentum buffer (Goyal et al. 2017, eq. 9), so when gamma_t
changes, ``cnnlab.train.schedules.momentum_correction`` rescales v (Goyal, Remark 2).

Excluded parameters (ndim <= 1, i.e. BN gamma/beta and biases, when ``exclude_bn_and_bias``;
every parameter of a group with ``lars_exclude=True``) get neither the local rate nor weight
decay: plain SGD momentum, ``v <- m * v + gamma_t * g``, as the TensorFlow reference's
``skip_list=['batch_normalization', 'bias']`` recommends for classification models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from cnnlab.errors import BadValue


def _check(name: str, value: float, ok: bool, need: str) -> None:
    if not ok:
        raise BadValue(f"LARS: {name}={value!r} is invalid; {name} must be {need}")


def _check_group(group: dict[str, Any]) -> None:
    _check("lr", group["lr"], group["lr"] >= 0.0, ">= 0")
    _check("momentum", group["momentum"], group["momentum"] >= 0.0, ">= 0")
    _check("weight_decay", group["weight_decay"], group["weight_decay"] >= 0.0, ">= 0")
    _check(
        "trust_coefficient",
        group["trust_coefficient"],
        group["trust_coefficient"] > 0.0,
        "> 0 (the paper uses 0.001)",
    )
    _check("eps", group["eps"], group["eps"] >= 0.0, ">= 0")


def trust_ratio(
    w: torch.Tensor, g: torch.Tensor, trust_coefficient: float, weight_decay: float, eps: float
) -> torch.Tensor:
    """LARS local rate (You et al. 2017): eta*||w|| / (||g|| + beta*||w|| + eps); 1 if a norm is 0."""
    w_norm, g_norm = torch.linalg.vector_norm(w), torch.linalg.vector_norm(g)
    ratio = trust_coefficient * w_norm / (g_norm + weight_decay * w_norm + eps)
    one = torch.ones_like(ratio)
    return torch.where((w_norm > 0) & (g_norm > 0), ratio, one)


class LARS(Optimizer):
    """LARS (You et al. 2017): v <- m v + lr*lambda*(g + beta w), w <- w - v; BN and bias skipped."""

    # The buffer holds lr * update (Goyal eq. 9): read by schedules.momentum_correction.
    lr_in_momentum_buffer = True

    def __init__(
        self,
        params: Any,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
        eps: float = 0.0,
        exclude_bn_and_bias: bool = True,
    ) -> None:
        # momentum 0.9 and trust coefficient 0.001: the TensorFlow reference's defaults, its
        # docstring calls 0.001 "LARS coefficient as used in the paper". eps = 0: the paper's
        # formula has none; the reference adds one only against a zero denominator.
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            exclude_bn_and_bias=exclude_bn_and_bias,
            lars_exclude=False,
        )
        _check_group(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (torch.optim contract), refusing bad per-group values."""
        super().add_param_group(param_group)
        _check_group(self.param_groups[-1])

    @staticmethod
    def _excluded(group: dict[str, Any], p: torch.Tensor) -> bool:
        return group["lars_exclude"] or (group["exclude_bn_and_bias"] and p.ndim <= 1)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One LARS step over every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(group, p)
        return loss

    def _update(self, group: dict[str, Any], p: torch.Tensor) -> None:
        g, beta = p.grad, group["weight_decay"]
        if self._excluded(group, p):
            scaled = g * group["lr"]  # plain SGD momentum: no local rate, no weight decay
        else:
            ratio = trust_ratio(p, g, group["trust_coefficient"], beta, group["eps"])
            scaled = (g + beta * p) * (ratio * group["lr"])
        m = group["momentum"]
        if m != 0.0:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            v = state["momentum_buffer"]
            v.mul_(m).add_(scaled)
        else:
            v = scaled
        p.sub_(v)
