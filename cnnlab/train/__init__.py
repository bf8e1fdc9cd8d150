"""Layer 4: training helpers (GradNorm multi-task loss balancing; loops and optimizers to come)."""

from cnnlab.train.gradnorm import GradNorm

__all__ = ["GradNorm"]

# LARS and the large-batch schedules (You et al. 2017; Goyal et al. 2017; Smith et al. 2017).
from cnnlab.train.lars import LARS, trust_ratio  # noqa: E402
from cnnlab.train.schedules import (  # noqa: E402
    BatchPhase,
    batch_size_schedule,
    lr_at,
    lr_lambda,
    momentum_correction,
    noise_scale,
    scaled_lr,
)

__all__ += [
    "LARS",
    "BatchPhase",
    "batch_size_schedule",
    "lr_at",
    "lr_lambda",
    "momentum_correction",
    "noise_scale",
    "scaled_lr",
    "trust_ratio",
]
