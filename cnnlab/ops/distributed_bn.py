"""Cross-process batch norm: statistics over the global batch of a torch.distributed group.

PyTorch's ``nn.SyncBatchNorm`` refuses CPU tensors and the gloo backend; this layer works on any
backend (gloo on CPU, nccl on GPU) and is exactly batch norm (Ioffe & Szegedy 2015, Alg. 1-2)
over the concatenation of every process's batch, forward and backward.

Forward: each process computes its per-channel (count, mean, M2) with batch norm's kernel;
one ``all_gather`` of these 2C + 1 values (float64) and Chan et al.'s pairwise combination
(Chan, Golub & LeVeque 1983: ``M2 = sum M2_i + sum n_i (mean_i - mean)^2``) give the global mean
and variance on every process, bit-identical on all of them. This avoids the cancellation of
``E[x^2] - E[x]^2`` when a channel's mean is large against its spread, and counts stay exact.

Backward (Ioffe & Szegedy 2015, §3): with x_hat = (x - mean) / sqrt(var + eps) over the global
count N, ``dx = gamma / sigma * (dy - sum(dy) / N - x_hat * sum(dy * x_hat) / N)``; the two
per-channel sums are all-reduced (one collective of 2C values), so input gradients are exactly
those of batch norm over the concatenated batch.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, norm_cx

_STATS_DTYPE = torch.float64  # the gathered (count, mean, M2): exact counts, stable combination


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Statistics of half-precision inputs are accumulated in float32, as batch norm does."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _mean_var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and biased variance, with batch norm's own (two-pass) statistics kernel.

    ``torch.var_mean`` over (N, H, W) gives the same numbers but is about 3x slower on CPU.
    """
    try:
        return torch.batch_norm_update_stats(x, None, None, 0.0)
    except NotImplementedError:  # a backend without the kernel
        var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)
        return mean, var


def _local_stats(x: torch.Tensor) -> torch.Tensor:
    """This process's per-channel (count, mean, M2) packed as one float64 vector of 2C + 1."""
    c = x.shape[1]
    n = x.numel() // c if c else 0
    if n == 0:  # a process may hold no samples: it adds nothing but still joins the collective
        mean = x.new_zeros(c, dtype=_STATS_DTYPE)
        m2 = x.new_zeros(c, dtype=_STATS_DTYPE)
    else:
        mean, var = _mean_var(x.to(_acc_dtype(x.dtype)))
        mean = mean.to(_STATS_DTYPE)
        m2 = var.to(_STATS_DTYPE) * n
    count = torch.full((1,), n, dtype=_STATS_DTYPE, device=x.device)
    return torch.cat([count, mean, m2])


def _gather(stats: torch.Tensor, group) -> torch.Tensor:
    """Every process's stats vector, stacked in rank order: shape (world_size, len(stats))."""
    if group is None:
        return stats[None]
    out = [torch.empty_like(stats) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, stats, group=group)
    return torch.stack(out)


def combine_stats(gathered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global (count, mean, biased var) from per-process rows (count, mean_1..C, M2_1..C).

    Chan, Golub & LeVeque (1983): mean = sum n_i mean_i / N, M2 = sum M2_i + sum n_i (mean_i -
    mean)^2, var = M2 / N.
    """
    c = (gathered.shape[1] - 1) // 2
    n_i, means, m2s = gathered[:, :1], gathered[:, 1 : 1 + c], gathered[:, 1 + c :]
    count = n_i.sum()
    mean = (n_i * means).sum(0) / count
    m2 = m2s.sum(0) + (n_i * (means - mean) ** 2).sum(0)
    return count, mean, m2 / count


def _local_grad_sums(dy, x, mean, var, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's per-channel sum(dy) and sum(dy * x_hat), in one fused pass."""
    if x.numel() == 0:  # the fused CPU kernel divides by the count: an empty batch sums to 0
        zeros = torch.zeros_like(mean)
        return zeros, zeros.clone()
    _, sum_dy_xhat, sum_dy = torch.ops.aten.native_batch_norm_backward(
        dy, x, None, mean, var, None, None, False, eps, [False, True, True]
    )
    return sum_dy, sum_dy_xhat


class _DistributedBatchNormFn(torch.autograd.Function):
    """Batch norm over the global batch of ``group`` (None: this process alone)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float, group):
        count, mean, var = combine_stats(_gather(_local_stats(x), group))
        n = int(count.item())
        if n <= 1:
            raise BadValue(
                f"DistributedBatchNorm2d: expected more than 1 value per channel when training, "
                f"got {n} over the whole group (input of shape {tuple(x.shape)} on this "
                f"process); use a larger batch or eval mode"
            )
        acc = _acc_dtype(x.dtype)
        mean, var = mean.to(acc), var.to(acc)
        y = F.batch_norm(x, mean, var, weight, bias, False, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, var)
        ctx.eps, ctx.group, ctx.count = eps, group, n
        ctx.bias_dtype = None if bias is None else bias.dtype
        var_unbiased = var * (n / (n - 1))  # Bessel's correction over the global count
        ctx.mark_non_differentiable(mean, var_unbiased)
        return y, mean, var_unbiased

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, _dmean, _dvar):
        x, weight, mean, var = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        sum_dy, sum_dy_xhat = _local_grad_sums(dy, x, mean, var, ctx.eps)
        dx = None
        if need_x:  # every process takes this branch alike: the same layers need input grads
            sums = torch.cat([sum_dy, sum_dy_xhat])
            if ctx.group is not None:
                dist.all_reduce(sums, group=ctx.group)
            g1, g2 = sums.chunk(2)
            a = torch.rsqrt(var + ctx.eps)  # gamma / sigma
            if weight is not None:
                a = a * weight
            # dx = a * dy + (x - mean) / sigma * (-a * g2 / N) - a * g1 / N: the second and third
            # terms are an eval-mode batch norm of x (one fused pass), then one multiply-add
            t = F.batch_norm(
                x, mean, var, -a * g2 / ctx.count, -a * g1 / ctx.count, False, 0.0, ctx.eps
            )
            dx = t.addcmul_(dy, a.to(t.dtype).view(1, -1, 1, 1))
        dw = sum_dy_xhat.to(weight.dtype) if need_w else None
        db = sum_dy.to(ctx.bias_dtype) if need_b else None
        return dx, dw, db, None, None


def distributed_batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    eps: float = 1e-5,
    group=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training-mode batch norm of an (N, C, H, W) input over the global batch of ``group``.

    ``group=None`` uses this process alone (no communication; the same autograd path). Returns
    the output and the global per-channel mean and unbiased variance (no gradient), from which
    running statistics are updated. Every process of the group must call it, and run backward
    through it, in the same order.
    """
    if x.dim() != 4:
        raise BadValue(f"distributed_batch_norm: expected an (N, C, H, W) input, got {x.dim()}D")
    y, mean, var = _DistributedBatchNormFn.apply(x, weight, bias, eps, group)
    return y, mean, var


def _group_member(group) -> bool:
    """False for the placeholder ``new_group`` returns on processes outside the group."""
    if group is None or group == dist.GroupMember.NON_GROUP_MEMBER:
        return False
    return dist.get_rank(group) >= 0


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """Cross-process batch norm (Ioffe & Szegedy 2015; "sync BN"): statistics of the global batch.

    In training mode, with ``torch.distributed`` initialised and a process group of more than one
    process, the per-channel mean and variance are those of the concatenation of every process's
    batch (any backend: gloo on CPU, nccl on GPU), and so are the input gradients. Uneven
    per-process batch sizes are weighted by their counts; a process may hold 0 samples (it
    contributes nothing, still joins the collectives) as long as the group holds at least 2
    values per channel. Running statistics (unbiased variance over the global count, momentum as
    ``nn.BatchNorm2d``, ``num_batches_tracked``) are identical on every process.

    Parameter gradients are this process's own share: summed over the processes they equal those
    of batch norm over the concatenated batch with the summed loss. DDP averages gradients (sum /
    world size), so under DDP they are the gradients of the mean of the per-process losses.

    With no process group initialised, a group of one process, or in eval mode, this is exactly
    ``nn.BatchNorm2d`` (and folds like it). Same parameter and buffer names: state dicts
    interchange. ``process_group=None`` means the default (world) group. Every process must run
    the layer, forward and backward, in the same order; the channel counts of the processes are
    compared once per group (a mismatch raises ValueError instead of corrupting the collective).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        process_group=None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            num_features, eps, momentum, affine, track_running_stats, device=device, dtype=dtype
        )
        self.process_group = process_group
        self._checked_groups: set[int] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        group = self._sync_group() if self.training else None
        if group is None:
            return super().forward(x)
        if x.shape[1] != self.num_features:
            raise BadValue(
                f"DistributedBatchNorm2d: input has {x.shape[1]} channels, the layer "
                f"num_features={self.num_features}"
            )
        self._check_channels(x.device, group)
        y, mean, var = distributed_batch_norm(x, self.weight, self.bias, eps=self.eps, group=group)
        if self.track_running_stats:
            self._update_running_stats(mean, var)
        return y

    def _sync_group(self):
        """The process group to synchronise over, or None for plain batch norm."""
        if not (dist.is_available() and dist.is_initialized()):
            return None
        group = dist.group.WORLD if self.process_group is None else self.process_group
        if not _group_member(group):
            raise BadValue(
                f"DistributedBatchNorm2d: this process (global rank {dist.get_rank()}) is not a "
                f"member of its process_group; pass a group that contains every process that "
                f"runs this layer, or process_group=None for the world group"
            )
        return group if dist.get_world_size(group) > 1 else None

    def _check_channels(self, device: torch.device, group) -> None:
        """Compare num_features across the group once (fixed-size gather, safe on mismatch)."""
        if id(group) in self._checked_groups:
            return
        world = dist.get_world_size(group)
        mine = torch.tensor([self.num_features], dtype=torch.int64, device=device)
        out = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(out, mine, group=group)
        counts = [int(t.item()) for t in out]
        if len(set(counts)) > 1:
            per_rank = ", ".join(f"rank {r}: {c}" for r, c in enumerate(counts))
            raise BadValue(
                f"DistributedBatchNorm2d: the processes of the group disagree on num_features "
                f"({per_rank}); every process must run the same model, layers in the same order"
            )
        self._checked_groups.add(id(group))

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Momentum update as nn.BatchNorm2d: r <- (1 - f) r + f stat; f = 1/t if momentum None."""
        self.num_batches_tracked.add_(1)
        f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - f).add_(mean.to(self.running_mean.dtype), alpha=f)
        self.running_var.mul_(1 - f).add_(var.to(self.running_var.dtype), alpha=f)

    def __deepcopy__(self, memo):
        """Copies share the process group: a communicator handle cannot be copied."""
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for k, v in self.__dict__.items():
            clone.__dict__[k] = v if k == "process_group" else copy.deepcopy(v, memo)
        return clone

    def extra_repr(self) -> str:
        group = "world" if self.process_group is None else "custom"
        return f"{super().extra_repr()}, process_group={group}"

    @staticmethod
    def complexity(cx: Cx, num_features: int, *, folded: bool = True) -> Cx:
        """Analytic cost: as batch norm (2C parameters; free when folded after a conv, as in eval).

        Training adds communication, not counted here: per call, one gather of 2C + 1 values per
        process forward and one all-reduce of 2C values backward.
        """
        if cx.c != num_features:
            raise BadValue(
                f"DistributedBatchNorm2d: input has {cx.c} channels, num_features={num_features}"
            )
        return norm_cx(cx, folded=folded)
