"""MobileNet v2 inverted residual (Sandler et al. 2018, Table 1): 1x1 expand, 3x3 dw, linear 1x1."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, elementwise_cx


def expanded_width(c_in: int, t: float) -> int:
    """Width of the expansion layer: round(c_in * t), as torchvision and TF-slim compute it."""
    return int(round(c_in * t))


class InvertedResidual(nn.Module):
    """Inverted residual with linear bottleneck (Sandler et al. 2018): expand t, dw, project, add."""

    def __init__(self, c_in: int, c_out: int, stride: int, t: float, *, act: str = "relu6") -> None:
        super().__init__()
        _check(c_in, c_out, stride, t)
        hidden = expanded_width(c_in, t)
        self.use_res = stride == 1 and c_in == c_out
        self.expand = ConvNormAct(c_in, hidden, 1, act=act) if t != 1 else nn.Identity()
        self.dw = ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act=act)
        self.project = ConvNormAct(hidden, c_out, 1, act=None)

    def zero_init_last(self) -> None:
        """With a residual add, zero the projection BN gamma (Goyal et al. 2017, §5.1)."""
        if self.use_res:
            nn.init.zeros_(self.project.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.use_res else y

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int, t: float, *, act="relu6") -> Cx:
        _check(c_in, c_out, stride, t)
        hidden = expanded_width(c_in, t)
        y = cx.branch()
        if t != 1:
            y = ConvNormAct.complexity(y, c_in, hidden, 1, act=act)
        y = ConvNormAct.complexity(y, hidden, hidden, 3, stride, groups=hidden, act=act)
        y = ConvNormAct.complexity(y, hidden, c_out, 1, act=None)
        out = cx.merge([y], y.c, y.h, y.w)
        return elementwise_cx(out, 2) if stride == 1 and c_in == c_out else out


def _check(c_in: int, c_out: int, stride: int, t: float) -> None:
    if stride not in (1, 2):
        raise BadValue(f"InvertedResidual: stride must be 1 or 2, got {stride}")
    if t <= 0 or expanded_width(c_in, t) < 1:
        raise BadValue(f"InvertedResidual: expansion t={t} on {c_in} channels leaves no width")
