"""Xception block (Chollet 2017, Fig. 5): ReLU-separable conv-BN repeats, max pool, shortcut."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import get_activation
from cnnlab.ops.conv import ConvNormAct, SeparableConv
from cnnlab.ops.cost import Cx, act_cx, elementwise_cx
from cnnlab.ops.pool import MaxPool


def rep_widths(c_in: int, c_out: int, reps: int, grow_first: bool) -> list[tuple[int, int]]:
    """(input, output) width of each separable conv of a block.

    ``grow_first``: the first conv goes c_in -> c_out and the rest keep c_out (entry and middle
    flow). Otherwise the width grows at the last conv (exit flow: 728 -> 728 -> 1024).
    """
    if grow_first:
        return [(c_in if i == 0 else c_out, c_out) for i in range(reps)]
    return [(c_in, c_in if i < reps - 1 else c_out) for i in range(reps)]


class XceptionBlock(nn.Module):
    """Xception block (Chollet 2017, Fig. 5): [ReLU, sep3x3, BN] x reps, [max pool s2], + shortcut.

    The separable convs have nothing between depthwise and pointwise (``mid="none"``, the paper's
    §4.7 finding) and BN after the pointwise conv. The shortcut is the identity when shape is kept,
    else 1x1 conv (stride s) + BN. As in Keras, the shortcut takes the block input *before* the
    leading ReLU, so that ReLU must not run in place. ``act`` names the activation (ReLU in the
    paper) from :mod:`cnnlab.ops.act`.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        reps: int,
        stride: int = 1,
        *,
        start_with_relu: bool = True,
        grow_first: bool = True,
        act: str = "relu",
    ) -> None:
        super().__init__()
        _check(c_in, c_out, reps, stride)
        # registered before the main path so the parameter order is timm's (skip, then rep)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = ConvNormAct(c_in, c_out, 1, stride, act=None)
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(rep_widths(c_in, c_out, reps, grow_first)):
            if i > 0 or start_with_relu:
                layers.append(get_activation(act, inplace=i > 0))  # the first keeps the input
            layers.append(SeparableConv(w_in, w_out, 3, mid="none", act=None))
        if stride != 1:
            layers.append(MaxPool(3, stride, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.main(x) + skip

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        reps: int,
        stride: int = 1,
        *,
        start_with_relu: bool = True,
        grow_first: bool = True,
        act: str = "relu",
    ) -> Cx:
        _check(c_in, c_out, reps, stride)
        skip = cx.branch()
        if stride != 1 or c_in != c_out:
            skip = ConvNormAct.complexity(skip, c_in, c_out, 1, stride, act=None)
        y = cx.branch()
        for i, (w_in, w_out) in enumerate(rep_widths(c_in, c_out, reps, grow_first)):
            if i > 0 or start_with_relu:
                y = act_cx(y, act)
            y = SeparableConv.complexity(y, w_in, w_out, 3, mid="none", act=None)
        if stride != 1:
            y = MaxPool.complexity(y, 3, stride, 1)
        return elementwise_cx(cx.merge([skip, y], y.c, y.h, y.w), 2)


def _check(c_in: int, c_out: int, reps: int, stride: int) -> None:
    if min(c_in, c_out) < 1:
        raise BadValue(f"XceptionBlock: widths must be >= 1, got c_in={c_in}, c_out={c_out}")
    if reps < 1:
        raise BadValue(f"XceptionBlock: reps must be >= 1, got {reps}")
    if stride not in (1, 2):
        raise BadValue(f"XceptionBlock: stride must be 1 or 2, got {stride}")
