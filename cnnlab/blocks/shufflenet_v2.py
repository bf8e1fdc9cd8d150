"""ShuffleNet v2 units (Ma et al. 2018, Fig. 3c/3d): split, 1x1-dw3x3-1x1, concat, shuffle."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, concat_cx
from cnnlab.ops.se import SqueezeExcite
from cnnlab.ops.shuffle import ChannelShuffle, channel_shuffle

Layout = Literal["paper", "torchvision"]
LAYOUTS = ("paper", "torchvision")


def branch_widths(c_in: int, c_out: int, stride: int, layout: str) -> tuple[int, int, int]:
    """(projection-branch output, main-branch width, main-branch output) of a unit.

    Stride 1: the input is split in half; the main branch keeps c/2 throughout.
    Stride 2, "paper" (the paper and the official Megvii code): the projection branch keeps c_in
    channels, the main branch runs at c_out/2 and emits c_out - c_in.
    Stride 2, "torchvision": both branches emit c_out/2. The two agree when c_in == c_out/2.
    """
    if stride == 1:
        return 0, c_out // 2, c_out // 2
    if layout == "torchvision":
        return c_out // 2, c_out // 2, c_out // 2
    return c_in, c_out // 2, c_out - c_in


class ShuffleV2Unit(nn.Module):
    """ShuffleNet v2 unit (Ma et al. 2018, Fig. 3c/d): split, 1x1-dw3x3-1x1, concat, shuffle.

    ``extra_dw`` adds a 3x3 depthwise conv before the first 1x1 conv of the main branch
    (ShuffleNet v2*, §5); ``se`` adds squeeze-and-excitation at the end of the main branch.
    ``act`` names the activation of the 1x1 convs (ReLU in the paper) from :mod:`cnnlab.ops.act`.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        *,
        layout: Layout = "paper",
        se: bool = False,
        se_reduction: int = 16,
        extra_dw: bool = False,
        act: str = "relu",
    ) -> None:
        super().__init__()
        _check(c_in, c_out, stride, layout)
        proj, mid, main = branch_widths(c_in, c_out, stride, layout)
        self.stride = stride
        if stride == 2:
            self.proj = nn.Sequential(
                ConvNormAct(c_in, c_in, 3, 2, groups=c_in, act=None),
                ConvNormAct(c_in, proj, 1, act=act),
            )
        c_main_in = c_in if stride == 2 else c_in // 2
        layers: list[nn.Module] = []
        if extra_dw:
            layers.append(ConvNormAct(c_main_in, c_main_in, 3, groups=c_main_in, act=None))
        layers += [
            ConvNormAct(c_main_in, mid, 1, act=act),
            ConvNormAct(mid, mid, 3, stride, groups=mid, act=None),
            ConvNormAct(mid, main, 1, act=act),
        ]
        if se:
            layers.append(SqueezeExcite(main, se_reduction))
        self.main = nn.Sequential(*layers)
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.main(x2)), dim=1)
        else:
            out = torch.cat((self.proj(x), self.main(x)), dim=1)
        return channel_shuffle(out, 2)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        stride: int,
        *,
        layout: Layout = "paper",
        se: bool = False,
        se_reduction: int = 16,
        extra_dw: bool = False,
        act: str = "relu",
    ) -> Cx:
        _check(c_in, c_out, stride, layout)
        proj, mid, main = branch_widths(c_in, c_out, stride, layout)
        c_main_in = c_in if stride == 2 else c_in // 2
        if stride == 2:
            left = ConvNormAct.complexity(cx.branch(), c_in, c_in, 3, 2, groups=c_in, act=None)
            left = ConvNormAct.complexity(left, c_in, proj, 1, act=act)
        else:
            left = Cx(c_in // 2, cx.h, cx.w)  # the identity half of the split: a view, free
        y = Cx(c_main_in, cx.h, cx.w)
        if extra_dw:
            y = ConvNormAct.complexity(y, c_main_in, c_main_in, 3, groups=c_main_in, act=None)
        y = ConvNormAct.complexity(y, c_main_in, mid, 1, act=act)
        y = ConvNormAct.complexity(y, mid, mid, 3, stride, groups=mid, act=None)
        y = ConvNormAct.complexity(y, mid, main, 1, act=act)
        if se:
            y = SqueezeExcite.complexity(y, main, se_reduction)
        out = concat_cx(cx, [left, y])
        return ChannelShuffle.complexity(out, 2)


def _check(c_in: int, c_out: int, stride: int, layout: str) -> None:
    name = "ShuffleV2Unit"
    if layout not in LAYOUTS:
        raise BadValue(f"{name}: unknown layout={layout!r}; choose one of {', '.join(LAYOUTS)}")
    if stride == 1 and (c_in != c_out or c_in % 2):
        raise BadValue(
            f"{name}: a stride-1 unit splits its input in half and needs c_in == c_out, even; "
            f"got c_in={c_in}, c_out={c_out}"
        )
    if stride == 2 and (c_out % 2 or (layout == "paper" and c_out <= c_in)):
        raise BadValue(
            f"{name}: a stride-2 unit needs an even c_out greater than c_in; "
            f"got c_in={c_in}, c_out={c_out}"
        )
    if stride not in (1, 2):
        raise BadValue(f"{name}: stride must be 1 or 2, got {stride}")
