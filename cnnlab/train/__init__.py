"""Layer 4: training: data (embedded digits, MNIST, CIFAR, folders), the loop (``train`` with a
``TrainConfig``; DDP under torchrun; exact resume), LARS, the large-batch schedules (Goyal et al.
2017; You et al. 2017; Smith et al. 2017) and GradNorm."""

from cnnlab.train.config import TrainConfig
from cnnlab.train.data import DataSpec, build_loaders, parse_data_spec
from cnnlab.train.evaluate import evaluate_checkpoint
from cnnlab.train.gradnorm import GradNorm
from cnnlab.train.lars import LARS, trust_ratio
from cnnlab.train.loop import Trainer, TrainingDiverged, TrainResult, evaluate, train
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
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "evaluate",
    "evaluate_checkpoint",
    "train",
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
