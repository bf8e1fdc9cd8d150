"""Network-level pieces of the Residual Attention Network (Wang et al. 2017) beyond the module.

The attention module and the identity pre-activation unit live in
:mod:`cnnlab.ops.residual_attention`. A network also needs the unit that opens each stage: a
pre-activation bottleneck (He et al. 2016, ECCV) whose shortcut is a 1x1 projection, as in the
authors' deploy prototxt (fwang91/residual-attention-network, ``pre_res_1..3``,
``post_res_4_1``): BN-ReLU once, then both the 1x1-3x3-1x1 branch (stride in the 3x3) and the
strided 1x1 shortcut read the pre-activated input.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, elementwise_cx, norm_cx

BOTTLENECK = 4  # the unit's 1x1-3x3 width is c_out / 4 (He et al. 2016; prototxt num_output)


class PreActProjection(nn.Module):
    """Pre-activation bottleneck with projection: a = BN-ReLU(x); 1x1, 3x3/s, 1x1 (a) + 1x1/s (a)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        mid = _mid(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.bn1(x), inplace=True)
        y = self.conv1(a)
        y = self.conv2(F.relu(self.bn2(y), inplace=True))
        y = self.conv3(F.relu(self.bn3(y), inplace=True))
        return y + self.shortcut(a)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1) -> Cx:
        mid = _mid(c_in, c_out, stride)
        a = act_cx(norm_cx(cx, folded=False), "relu")  # reads an add or a pool: not foldable
        y = act_cx(norm_cx(conv2d_cx(a.branch(), mid, 1)), "relu")
        y = act_cx(norm_cx(conv2d_cx(y, mid, 3, stride=stride)), "relu")
        y = conv2d_cx(y, c_out, 1)
        shortcut = conv2d_cx(a.branch(), c_out, 1, stride=stride)
        return elementwise_cx(a.merge([y, shortcut], c_out, y.h, y.w), 2)


def _mid(c_in: int, c_out: int, stride: int) -> int:
    if stride not in (1, 2):
        raise ValueError(f"PreActProjection: stride must be 1 or 2, got {stride}")
    if c_in < 1 or c_out < BOTTLENECK:
        raise ValueError(
            f"PreActProjection: needs c_in >= 1 and c_out >= {BOTTLENECK} (bottleneck c_out // "
            f"{BOTTLENECK}); got c_in={c_in}, c_out={c_out}"
        )
    return c_out // BOTTLENECK
