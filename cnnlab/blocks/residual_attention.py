"""Network-level pieces of the Residual Attention Network (Wang et al. 2017) beyond the module.

The attention module and the identity pre-activation unit live in
:mod:`cnnlab.ops.residual_attention`. A network also needs the unit that opens each stage: a
pre-activation bottleneck (He et al. 2016, ECCV) whose shortcut is a 1x1 projection, as in the
authors' deploy prototxt (fwang91/residual-attention-network, ``pre_res_1..3``,
``post_res_4_1``): BN-ReLU once, then both the 1x1-3x3-1x1 branch (stride in the 3x3) and the
strided 1x1 shortcut read the pre-activated input.

AttentionNeXt (the README: "we replace pre-activation residual unit with resnext unit") keeps
the module layout on post-activation ResNeXt units (``AttentionNeXt-56-deploy.prototxt``: 32
groups in every 3x3, 3x3 width c/2, conv-BN-ReLU, add, ReLU; projection 1x1 conv + BN), and its
mask head has no BN-ReLU before the first 1x1 conv: 1x1-BN-ReLU, 1x1, sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.blocks.resnet import Bottleneck
from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, elementwise_cx, norm_act_cx, norm_cx
from cnnlab.ops.residual_attention import ResidualAttentionModule

BOTTLENECK = 4  # the unit's 1x1-3x3 width is c_out / 4 (He et al. 2016; prototxt num_output)
CARDINALITY = 32  # AttentionNeXt prototxt: "group: 32" in every 3x3
NEXT_WIDTH = 2  # AttentionNeXt 3x3 width is c_out / 2 (128 at 256 channels: ResNeXt 32x4d)


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
        y = norm_act_cx(conv2d_cx(a.branch(), mid, 1), True, "relu")
        y = norm_act_cx(conv2d_cx(y, mid, 3, stride=stride), True, "relu")
        y = conv2d_cx(y, c_out, 1)
        shortcut = conv2d_cx(a.branch(), c_out, 1, stride=stride)
        return elementwise_cx(a.merge([y, shortcut], c_out, y.h, y.w), 2)


def _mid(c_in: int, c_out: int, stride: int) -> int:
    if stride not in (1, 2):
        raise BadValue(f"PreActProjection: stride must be 1 or 2, got {stride}")
    if c_in < 1 or c_out < BOTTLENECK:
        raise BadValue(
            f"PreActProjection: needs c_in >= 1 and c_out >= {BOTTLENECK} (bottleneck c_out // "
            f"{BOTTLENECK}); got c_in={c_in}, c_out={c_out}"
        )
    return c_out // BOTTLENECK


def next_unit_args(c_out: int) -> dict:
    """Arguments of the ResNeXt :class:`Bottleneck` with c_out outputs, as AttentionNeXt uses it."""
    if c_out % (NEXT_WIDTH * CARDINALITY):
        raise BadValue(
            f"AttentionNeXt: c_out={c_out} must be a multiple of {NEXT_WIDTH * CARDINALITY} (3x3 "
            f"width c_out/{NEXT_WIDTH} in {CARDINALITY} groups); use 256, 512, 1024 or 2048"
        )
    return dict(planes=c_out // BOTTLENECK, width=c_out // NEXT_WIDTH, groups=CARDINALITY)


class AttentionNeXtModule(ResidualAttentionModule):
    """AttentionNeXt module: the residual attention layout on ResNeXt units; head 1x1-BN-ReLU, 1x1."""

    def __init__(self, c: int, *, depth: int = 1, p: int = 1, t: int = 2, r: int = 1) -> None:
        next_unit_args(c)
        super().__init__(c, depth=depth, p=p, t=t, r=r)

    @staticmethod
    def unit(c: int) -> nn.Module:
        return Bottleneck(c, **next_unit_args(c))

    @staticmethod
    def unit_cx(cx: Cx, c: int) -> Cx:
        return Bottleneck.complexity(cx, c, **next_unit_args(c))

    @staticmethod
    def mask_head_layers(c: int) -> nn.Module:
        return nn.Sequential(ConvNormAct(c, c, 1), nn.Conv2d(c, c, 1, bias=False), nn.Sigmoid())

    @staticmethod
    def mask_head_cx(cx: Cx, c: int) -> Cx:
        cx = ConvNormAct.complexity(cx, c, c, 1)
        return act_cx(conv2d_cx(cx, c, 1), "sigmoid")

    @classmethod
    def complexity(
        cls, cx: Cx, c: int, *, depth: int = 1, p: int = 1, t: int = 2, r: int = 1
    ) -> Cx:
        next_unit_args(c)
        return super().complexity(cx, c, depth=depth, p=p, t=t, r=r)
