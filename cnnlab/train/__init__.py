"""Layer 4: training helpers (GradNorm multi-task loss balancing; loops and optimizers to come)."""

from cnnlab.train.gradnorm import GradNorm

__all__ = ["GradNorm"]
