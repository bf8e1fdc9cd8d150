"""Gradually updated layer of GUNN (Qiao et al. ICML 2018, §3; official joe-siyuan-qiao/GUNN).

The c channels are split into K segments of c/K, updated one after another: update i reads the
concatenation of the segments already updated (< i) and the untouched ones (>= i), and adds its
output to segment i; every other segment passes through unchanged (identity). A plain conv layer
is the same computation with all updates done at once. The update unit is the official
``GunnLayer``'s: 1x1 (2c/K)-BN-ReLU, 3x3 (2c/K)-BN-ReLU, 1x1 (c/K)-BN, plus, for CIFAR, a
1x1-BN projection shortcut of the same input; no activation after the sums.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, concat_cx, elementwise_cx


def segment_width(c: int, segments: int) -> int:
    """Channels per segment, c/K; refuses a width that K does not divide."""
    if segments < 1 or c % segments:
        raise BadValue(
            f"GUNN: {c} channels cannot be split into K={segments} equal segments; "
            "choose K dividing the width"
        )
    return c // segments


class GunnUpdate(nn.Module):
    """One segment's update unit: 1x1-3x3-1x1 bottleneck (2c/K wide) [+ 1x1 projection]."""

    def __init__(self, c: int, c_seg: int, shortcut: bool = True) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            ConvNormAct(c, 2 * c_seg, 1),
            ConvNormAct(2 * c_seg, 2 * c_seg, 3),
            ConvNormAct(2 * c_seg, c_seg, 1, act=None),
        )
        self.shortcut = ConvNormAct(c, c_seg, 1, act=None) if shortcut else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = self.conv(z)
        return y if self.shortcut is None else self.shortcut(z) + y

    @staticmethod
    def complexity(cx: Cx, c: int, c_seg: int, shortcut: bool = True) -> Cx:
        y = ConvNormAct.complexity(cx.branch(), c, 2 * c_seg, 1)
        y = ConvNormAct.complexity(y, 2 * c_seg, 2 * c_seg, 3)
        y = ConvNormAct.complexity(y, 2 * c_seg, c_seg, 1, act=None)
        if not shortcut:
            return cx.merge([y], y.c, y.h, y.w)
        s = ConvNormAct.complexity(cx.branch(), c, c_seg, 1, act=None)
        return elementwise_cx(cx.merge([y, s], y.c, y.h, y.w), 2)


class GunnLayer(nn.Module):
    """Gradually updated layer (Qiao et al. 2018, Fig. 1): K segments updated in order, each
    update seeing the segments updated before it; identity on the others."""

    def __init__(self, c: int, segments: int, shortcut: bool = True) -> None:
        super().__init__()
        c_seg = segment_width(c, segments)
        self.c, self.c_seg = c, c_seg
        self.units = nn.ModuleList(GunnUpdate(c, c_seg, shortcut) for _ in range(segments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = list(torch.split(x, self.c_seg, 1))
        for i, unit in enumerate(self.units):
            z = x if i == 0 else torch.cat(xs, 1)  # segments < i updated, >= i untouched
            xs[i] = xs[i] + unit(z)
        return torch.cat(xs, 1)

    @staticmethod
    def complexity(cx: Cx, c: int, segments: int, shortcut: bool = True) -> Cx:
        c_seg = segment_width(c, segments)
        seg = Cx(c_seg, cx.h, cx.w)
        # update 1 reads x; updates 2..K read the concatenated segments, all of one shape, so
        # their cost is counted once and repeated
        first = _updated_segment(cx.branch(), c, c_seg, shortcut)
        rest = _updated_segment(concat_cx(cx.branch(), [seg] * segments), c, c_seg, shortcut)
        parts = [first] + [rest] * (segments - 1)
        return concat_cx(cx.merge(parts, c, cx.h, cx.w), [seg] * segments)


def _updated_segment(z: Cx, c: int, c_seg: int, shortcut: bool) -> Cx:
    """x_i + update(z): the cost of one segment's update unit and its sum."""
    return elementwise_cx(GunnUpdate.complexity(z, c, c_seg, shortcut).add(c=c_seg), 2)
