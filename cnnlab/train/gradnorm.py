"""GradNorm (Chen, Badrinarayanan, Lee, Rabinovich; ICML 2018): learned multi-task loss weights.

Each step, for task losses L_i(t) and task weights w_i(t) (Algorithm 1 of the paper):

- ``G_W^(i) = ||grad_W (w_i L_i)||_2`` at W, the weights of the last shared layer, and
  ``G_bar = mean_i G_W^(i)``;
- ``L~_i = L_i(t) / L_i(0)`` (inverse training rate) and ``r_i = L~_i / mean_j L~_j``;
- ``L_grad = sum_i |G_W^(i) - G_bar * r_i^alpha|``, the target ``G_bar * r_i^alpha`` held
  constant; its gradient updates only the w_i;
- the w_i are renormalised so that ``sum_i w_i = T`` (the number of tasks);
- the network trains on ``L = sum_i w_i L_i``.

Since ``w_i > 0`` and ``L_i`` does not depend on ``w_i``, ``G_W^(i) = w_i ||grad_W L_i||``: one
first-order gradient per task, no second-order graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from cnnlab.errors import BadValue


class GradNorm(nn.Module):
    """GradNorm (Chen et al. 2018, Alg. 1): w_i pull ||grad_W w_i L_i|| to mean(G_W) r_i^alpha."""

    def __init__(
        self,
        num_tasks: int,
        shared_params: torch.Tensor | Iterable[torch.Tensor],
        alpha: float = 1.5,
        lr: float = 0.025,
        *,
        min_weight: float = 1e-3,
    ) -> None:
        # alpha: the paper's single asymmetry hyper-parameter, tuned per data set (1.5 here is
        # not a verified paper figure); lr (plain gradient descent on the w_i) and min_weight
        # (keeps w_i > 0 when a step would overshoot; the paper only renormalises) are ours.
        super().__init__()
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 1:
            raise BadValue(f"GradNorm: num_tasks must be a positive integer, got {num_tasks!r}")
        if not lr > 0 or not 0 < min_weight < 1:
            raise BadValue(f"GradNorm: need lr > 0 and 0 < min_weight < 1; got {lr}, {min_weight}")
        shared = [shared_params] if isinstance(shared_params, torch.Tensor) else list(shared_params)
        if not shared or not all(p.requires_grad for p in shared):
            raise BadValue(
                "GradNorm: shared_params must be the last shared layer's weights (tensors that "
                "require grad), e.g. model.backbone[-1].weight"
            )
        self.num_tasks, self.alpha, self.lr, self.min_weight = num_tasks, alpha, lr, min_weight
        self._shared = tuple(shared)  # not registered: they belong to the model
        self.register_buffer("weights", torch.ones(num_tasks))
        self.register_buffer("initial_losses", torch.zeros(num_tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.grad_norms = self.loss_ratios = self.grad_loss = None  # last step, for logging

    def step(self, losses: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Update the task weights from this step's losses; return sum_i w_i(t) L_i for backward."""
        losses = self._stack(losses)
        if int(self.steps) == 0:
            self._record_initial(losses)
        w_t = self.weights.clone()
        total = (w_t * losses).sum()
        norms = self.task_grad_norms(losses)
        w = w_t.clone().requires_grad_(True)
        g = w * norms  # G_W^(i) = ||grad_W (w_i L_i)|| = w_i ||grad_W L_i||
        inverse_rate = losses.detach() / self.initial_losses
        ratios = inverse_rate / inverse_rate.mean()
        target = (g.mean() * ratios**self.alpha).detach()
        grad_loss = (g - target).abs().sum()
        (dw,) = torch.autograd.grad(grad_loss, w)
        self._update(w_t - self.lr * dw)
        self.grad_norms, self.loss_ratios = g.detach(), ratios
        self.grad_loss = grad_loss.detach()
        self.steps += 1
        return total

    def task_grad_norms(self, losses: torch.Tensor) -> torch.Tensor:
        """||grad_W L_i||_2 over all shared tensors W, one per task (graph kept for backward)."""
        norms = []
        for i in range(self.num_tasks):
            grads = torch.autograd.grad(
                losses[i], self._shared, retain_graph=True, allow_unused=True
            )
            sq = sum(g.pow(2).sum() for g in grads if g is not None)
            norms.append(torch.as_tensor(sq, dtype=losses.dtype, device=losses.device).sqrt())
        return torch.stack(norms).detach()

    @torch.no_grad()
    def _update(self, w: torch.Tensor) -> None:
        w = w.clamp_min(self.min_weight)
        self.weights.copy_(w * self.num_tasks / w.sum())  # renormalise: sum_i w_i = T

    def _stack(self, losses) -> torch.Tensor:
        losses = torch.stack(list(losses)) if not isinstance(losses, torch.Tensor) else losses
        if losses.shape != (self.num_tasks,):
            raise BadValue(
                f"GradNorm.step: expected {self.num_tasks} scalar task losses, got shape "
                f"{tuple(losses.shape)}"
            )
        if not losses.requires_grad:
            raise BadValue(
                "GradNorm.step: the task losses must require grad (call it before backward)"
            )
        return losses.to(self.weights.dtype)

    @torch.no_grad()
    def _record_initial(self, losses: torch.Tensor) -> None:
        """L_i(0): the denominators of the inverse training rates L~_i = L_i(t) / L_i(0)."""
        bad = [(i, float(v)) for i, v in enumerate(losses) if not v > 0]
        if bad:
            raise BadValue(
                f"GradNorm: initial task losses must be > 0 (they divide later losses); got "
                f"{', '.join(f'task {i}: {v}' for i, v in bad)}"
            )
        self.initial_losses.copy_(losses.detach())
