"""ResNet blocks (He et al. 2016, Fig. 5) with ResNeXt groups (Xie et al. 2017) and SE (Hu et al. 2018).

Both blocks add a residual branch to the shortcut (identity, or 1x1 conv + BN when the shape
changes) and apply ReLU after the add. Parameters are registered in torchvision's order
(conv1, bn1, conv2, bn2, conv3, bn3, [SE], downsample) so its weights copy over by order.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, act_cx, elementwise_cx
from cnnlab.ops.se import SqueezeExcite

EXPANSION = 4  # bottleneck output = 4 x planes (He et al. 2016, Table 1)
STRIDE_IN = ("3x3", "1x1")


def bottleneck_width(planes: int, groups: int = 1, base_width: int = 64) -> int:
    """Width of the bottleneck's 3x3 conv (ResNeXt): int(planes * base_width / 64) * groups."""
    return int(planes * base_width / 64) * groups


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016, Fig. 5 left): 3x3-BN-ReLU, 3x3-BN, [SE], add, ReLU."""

    def __init__(
        self, c_in: int, planes: int, stride: int = 1, *, se: int = 0, zero_init: bool = False
    ) -> None:
        super().__init__()
        _check_stride("BasicBlock", stride)
        self.conv1 = ConvNormAct(c_in, planes, 3, stride)
        self.conv2 = ConvNormAct(planes, planes, 3, act=None)
        self.se = SqueezeExcite(planes, se) if se else None
        self.downsample = _shortcut(c_in, planes, stride)
        self.act = nn.ReLU(inplace=True)
        if zero_init:
            self.zero_init_last()

    def zero_init_last(self) -> None:
        """Zero the branch's last BN gamma: the block starts as identity (Goyal et al. §5.1)."""
        nn.init.zeros_(self.conv2.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return _finish(self, x, y)

    @staticmethod
    def complexity(cx: Cx, c_in: int, planes: int, stride: int = 1, *, se=0, zero_init=False) -> Cx:
        _check_stride("BasicBlock", stride)
        y = ConvNormAct.complexity(cx.branch(), c_in, planes, 3, stride)
        y = ConvNormAct.complexity(y, planes, planes, 3, act=None)
        return _finish_cx(cx, y, c_in, planes, stride, se)


class Bottleneck(nn.Module):
    """Bottleneck (He et al. 2016, Fig. 5 right; ResNeXt Fig. 3c): 1x1, grouped 3x3, 1x1 x4, add.

    ``width`` is the 3x3 conv's width (see :func:`bottleneck_width`) with ``groups`` groups; a
    Deep Roots "root" (Ioannou et al. 2017) is the same block with groups in the 3x3 only and
    width = planes. ``stride_in`` puts the stride in the 3x3 conv (torchvision, "ResNet v1.5")
    or in the first 1x1 conv (the original Caffe ResNet and SENet's SE-ResNet models).
    ``se`` > 0 adds squeeze-and-excitation with that reduction on the branch before the add.
    """

    def __init__(
        self,
        c_in: int,
        planes: int,
        stride: int = 1,
        *,
        width: int | None = None,
        groups: int = 1,
        stride_in: str = "3x3",
        se: int = 0,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        width, c_out, s1, s3 = _bottleneck_args(c_in, planes, stride, width, groups, stride_in)
        self.conv1 = ConvNormAct(c_in, width, 1, s1)
        self.conv2 = ConvNormAct(width, width, 3, s3, groups=groups)
        self.conv3 = ConvNormAct(width, c_out, 1, act=None)
        self.se = SqueezeExcite(c_out, se) if se else None
        self.downsample = _shortcut(c_in, c_out, stride)
        self.act = nn.ReLU(inplace=True)
        if zero_init:
            self.zero_init_last()

    def zero_init_last(self) -> None:
        """Zero the branch's last BN gamma: the block starts as identity (Goyal et al. §5.1)."""
        nn.init.zeros_(self.conv3.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.conv2(self.conv1(x)))
        return _finish(self, x, y)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        planes: int,
        stride: int = 1,
        *,
        width: int | None = None,
        groups: int = 1,
        stride_in: str = "3x3",
        se: int = 0,
        zero_init: bool = False,
    ) -> Cx:
        width, c_out, s1, s3 = _bottleneck_args(c_in, planes, stride, width, groups, stride_in)
        y = ConvNormAct.complexity(cx.branch(), c_in, width, 1, s1)
        y = ConvNormAct.complexity(y, width, width, 3, s3, groups=groups)
        y = ConvNormAct.complexity(y, width, c_out, 1, act=None)
        return _finish_cx(cx, y, c_in, c_out, stride, se)


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """Projection shortcut (He et al. 2016, option B): 1x1 conv + BN when the shape changes."""
    if stride == 1 and c_in == c_out:
        return None
    return ConvNormAct(c_in, c_out, 1, stride, act=None)


def _finish(block: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if block.se is not None:
        y = block.se(y)
    skip = x if block.downsample is None else block.downsample(x)
    return block.act(y + skip)


def _finish_cx(cx: Cx, y: Cx, c_in: int, c_out: int, stride: int, se: int) -> Cx:
    if se:
        y = SqueezeExcite.complexity(y, c_out, se)
    skip = cx.branch()
    if stride != 1 or c_in != c_out:
        skip = ConvNormAct.complexity(skip, c_in, c_out, 1, stride, act=None)
    out = elementwise_cx(cx.merge([y, skip], y.c, y.h, y.w), 2)
    return act_cx(out, "relu")


def _check_stride(what: str, stride: int) -> None:
    if stride not in (1, 2):
        raise BadValue(f"{what}: stride must be 1 or 2, got {stride}")


def _bottleneck_args(c_in, planes, stride, width, groups, stride_in):
    """(3x3 width, output width, stride of the 1x1, stride of the 3x3), checked."""
    _check_stride("Bottleneck", stride)
    if stride_in not in STRIDE_IN:
        raise BadValue(
            f"Bottleneck: unknown stride_in={stride_in!r}; choose '3x3' (torchvision, v1.5) or "
            f"'1x1' (original Caffe ResNet, SENet)"
        )
    width = bottleneck_width(planes, groups) if width is None else width
    if width < 1:
        raise BadValue(f"Bottleneck: 3x3 width must be >= 1, got {width} for planes={planes}")
    if groups < 1 or width % groups:
        raise BadValue(
            f"Bottleneck: 3x3 width={width} (planes={planes}) is not divisible by groups={groups};"
            f" choose groups dividing the width"
        )
    s1, s3 = (stride, 1) if stride_in == "1x1" else (1, stride)
    return width, planes * EXPANSION, s1, s3
