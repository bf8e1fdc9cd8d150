"""DenseNet-BC units (Huang et al. 2017, §3): the bottleneck dense layer and the transition layer.

Both are pre-activation (BN-ReLU-conv): their first batch norm reads the concatenated features,
not a convolution's output, so it cannot be folded and counts as an element-wise pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, act_cx, concat_cx, conv2d_cx, norm_act_cx, norm_cx, pool_cx


def check_growth(growth: int, bn_size: int) -> None:
    """Refuse a growth rate k or bottleneck factor that leaves no channels."""
    if growth < 1:
        raise BadValue(f"DenseNet: growth rate k must be >= 1, got {growth}")
    if bn_size < 1:
        raise BadValue(
            f"DenseNet: bottleneck factor bn_size must be >= 1 (BC uses 4), got {bn_size}"
        )


def compressed_width(c_in: int, compression: float) -> int:
    """Transition output width floor(theta * m) (Huang et al. 2017, §3 "Compression")."""
    if not 0.0 < compression <= 1.0:
        raise BadValue(f"DenseNet: compression theta must be in (0, 1], got {compression}")
    c_out = math.floor(compression * c_in)
    if c_out < 1:
        raise BadValue(f"DenseNet: compression {compression} of {c_in} channels leaves none")
    return c_out


class DenseLayer(nn.Module):
    """Dense layer H_l of DenseNet-BC: BN-ReLU-1x1 (bn_size*k)-BN-ReLU-3x3 (k), concat to input."""

    def __init__(self, c_in: int, growth: int, bn_size: int = 4) -> None:
        super().__init__()
        check_growth(growth, bn_size)
        hidden = bn_size * growth
        self.norm1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(c_in, hidden, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(hidden, growth, 3, padding=1, bias=False)
        self.c_in, self.c_out = c_in, c_in + growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(self.relu1(self.norm1(x)))
        y = self.conv2(self.relu2(self.norm2(y)))
        return torch.cat([x, y], 1)

    @staticmethod
    def complexity(cx: Cx, c_in: int, growth: int, bn_size: int = 4) -> Cx:
        check_growth(growth, bn_size)
        hidden = bn_size * growth
        y = act_cx(norm_cx(cx.branch(), folded=False), "relu")
        y = conv2d_cx(y, hidden, 1)
        y = norm_act_cx(y, True, "relu")  # this BN follows conv1: folded
        y = conv2d_cx(y, growth, 3, padding=1)
        return concat_cx(cx, [cx.branch(), y])


class Transition(nn.Module):
    """Transition layer of DenseNet-BC: BN-ReLU-1x1 conv to floor(theta*m)-2x2 average pool."""

    def __init__(self, c_in: int, compression: float = 0.5) -> None:
        super().__init__()
        c_out = compressed_width(c_in, compression)
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)
        self.c_in, self.c_out = c_in, c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))

    @staticmethod
    def complexity(cx: Cx, c_in: int, compression: float = 0.5) -> Cx:
        c_out = compressed_width(c_in, compression)
        cx = act_cx(norm_cx(cx, folded=False), "relu")
        return pool_cx(conv2d_cx(cx, c_out, 1), 2, 2)


class NormAct(nn.Module):
    """The final BN + ReLU of a pre-activation network, before the classifier (unfolded BN)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(x))

    @staticmethod
    def complexity(cx: Cx, c_in: int) -> Cx:
        return act_cx(norm_cx(cx, folded=False), "relu")
