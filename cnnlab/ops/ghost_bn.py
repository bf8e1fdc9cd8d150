"""Ghost batch norm: BN statistics over fixed sub-batches ("virtual batches") of the batch.

Goyal et al. 2017 ("ImageNet in 1 hour") keep the BN batch at n = 32 images per worker however
large the total minibatch, statistics not synchronised across workers; Hoffer, Hubara and Soudry
2017 ("Train longer, generalize better") call this ghost batch normalization and apply it within
one device. The batch is split along dim 0
into consecutive chunks of ``virtual_batch`` samples (the last one may be smaller); each chunk is
normalized with its own mean and variance.

Running statistics: each chunk updates them in turn, exactly as if the chunks had been passed
through ``nn.BatchNorm2d`` one after the other (so ``num_batches_tracked`` grows by the number of
chunks, and with momentum m a forward of k chunks applies k updates). Inference uses them like BN.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx
from cnnlab.ops.renorm import batch_norm_cx


def check_virtual_batch(virtual_batch) -> int:
    """Refuse a virtual batch that is not a positive integer."""
    if isinstance(virtual_batch, bool) or not isinstance(virtual_batch, int) or virtual_batch < 1:
        raise BadValue(
            f"GhostBatchNorm2d: virtual_batch must be a positive integer (samples per BN "
            f"statistic; Goyal et al. use 32), got {virtual_batch!r}"
        )
    return virtual_batch


class GhostBatchNorm2d(nn.BatchNorm2d):
    """Ghost BN (Hoffer et al. 2017; Goyal et al. 2017): BN stats per sub-batch of 32; eval BN."""

    def __init__(
        self,
        num_features: int,
        virtual_batch: int = 32,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        device=None,
        dtype=None,
    ) -> None:
        self.virtual_batch = check_virtual_batch(virtual_batch)
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_stats = self.training or not self.track_running_stats
        if not batch_stats or x.shape[0] <= self.virtual_batch:
            return super().forward(x)
        self._check_input_dim(x)
        bn = nn.BatchNorm2d.forward  # each chunk is one ordinary BN pass, running stats included
        return torch.cat([bn(self, c) for c in x.split(self.virtual_batch)])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, virtual_batch={self.virtual_batch}"

    @staticmethod
    def complexity(
        cx: Cx,
        num_features: int,
        virtual_batch: int = 32,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        device=None,
        dtype=None,
        folded: bool = False,
    ) -> Cx:
        """Inference is BN: ``folded=True`` when it directly follows a conv."""
        check_virtual_batch(virtual_batch)
        return batch_norm_cx(cx, num_features, affine=affine, folded=folded)
