"""Layer 4: training: data (embedded digits, MNIST, CIFAR, folders), LARS, the large-batch
schedules (Goyal et al. 2017; You et al. 2017; Smith et al. 2017) and GradNorm. The loop and
checkpoints are still to come."""

from cnnlab.train.data import DataSpec, build_loaders, parse_data_spec
from cnnlab.train.gradnorm import GradNorm
from cnnlab.train.lars import LARS, trust_ratio
from cnnlab.train.schedules import (
    BatchPhase,
    batch_size_schedule,
    lr_at,
    lr_lambda,
    momentum_correction,
    noise_scale,
    scaled_lr,
)

__all__ = [
    "LARS",
    "BatchPhase",
    "DataSpec",
    "GradNorm",
    "batch_size_schedule",
    "build_loaders",
    "lr_at",
    "lr_lambda",
    "momentum_correction",
    "noise_scale",
    "parse_data_spec",
    "scaled_lr",
    "trust_ratio",
]
