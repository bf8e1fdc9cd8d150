"""ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2b/2c): 1x1 GConv, shuffle, dw3x3, 1x1 GConv.

How this follows the paper and the official Megvii code (megvii-model/ShuffleNet-Series):

- Bottleneck width ``mid = c_out // 4`` with ``c_out`` the unit's *total* output, also in
  stride-2 units (this is what reproduces Table 1's complexity; ``(c_out - c_in) // 4`` does not).
- No ReLU after the depthwise conv, no shuffle after the second pointwise conv (§3.2).
- The channel shuffle runs whenever ``groups > 1``, also in the first Stage-2 unit whose first
  pointwise conv is not grouped: the official code tests the network's ``group``, not the conv's.
  There it is only a fixed permutation of channels, kept to mirror the official network.
- The shuffle sits between the first pointwise conv and the depthwise conv as in the paper's
  Fig. 2; the official code applies it after the depthwise conv instead. A depthwise conv acts per
  channel, so both compute the same function; only memory access of stride-2 units differs.
- Stride 2: 3x3 average pool (stride 2, padding 1) on the shortcut, concat instead of add, the
  main branch emits ``c_out - c_in``. The official code applies the final ReLU to the main branch
  only; the pooled shortcut is an average of ReLU outputs, hence non-negative, so this equals the
  paper's ReLU after the concat. (With another ``act`` the pooled shortcut stays as it is, as
  in the official code.)
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import get_activation
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, act_cx, concat_cx, elementwise_cx
from cnnlab.ops.pool import AvgPool
from cnnlab.ops.se import SqueezeExcite
from cnnlab.ops.shuffle import ChannelShuffle


def unit_widths(c_in: int, c_out: int, stride: int) -> tuple[int, int]:
    """(bottleneck width, main-branch output) of a unit: (c_out // 4, c_out or c_out - c_in)."""
    return c_out // 4, c_out - c_in if stride == 2 else c_out


class ShuffleV1Unit(nn.Module):
    """ShuffleNet v1 unit (Zhang et al. 2018, Fig. 2b/c): 1x1 GConv, shuffle, dw3x3, 1x1 GConv.

    ``grouped_first=False`` makes the first pointwise conv dense, as in the first Stage-2 unit
    (§3.3: its input is too narrow to group). ``se`` adds squeeze-and-excitation on the main
    branch after its last BN, before the add or concat (Table 5, "with SE"). ``act`` names the
    activation (ReLU in the paper) from :mod:`cnnlab.ops.act`.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        groups: int,
        *,
        grouped_first: bool = True,
        se: bool = False,
        se_reduction: int = 16,
        act: str = "relu",
    ) -> None:
        super().__init__()
        _check(c_in, c_out, stride, groups, grouped_first)
        mid, main = unit_widths(c_in, c_out, stride)
        self.stride = stride
        g1 = groups if grouped_first else 1
        layers: list[nn.Module] = [ConvNormAct(c_in, mid, 1, groups=g1, act=act)]
        if groups > 1:
            layers.append(ChannelShuffle(groups))
        layers += [
            ConvNormAct(mid, mid, 3, stride, groups=mid, act=None),
            ConvNormAct(mid, main, 1, groups=groups, act=None),
        ]
        if se:
            layers.append(SqueezeExcite(main, se_reduction))
        self.main = nn.Sequential(*layers)
        self.shortcut = AvgPool(3, 2, 1) if stride == 2 else nn.Identity()
        self.act = get_activation(act, inplace=False)

    def zero_init_last(self) -> None:
        """At stride 1 (residual add), zero the last BN gamma (Goyal et al. 2017, §5.1)."""
        if self.stride == 1:
            last = [m for m in self.main if isinstance(m, ConvNormAct)][-1]
            nn.init.zeros_(last.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.main(x)
        if self.stride == 2:
            return torch.cat((self.shortcut(x), self.act(y)), dim=1)
        return self.act(y + x)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        stride: int,
        groups: int,
        *,
        grouped_first: bool = True,
        se: bool = False,
        se_reduction: int = 16,
        act: str = "relu",
    ) -> Cx:
        _check(c_in, c_out, stride, groups, grouped_first)
        mid, main = unit_widths(c_in, c_out, stride)
        g1 = groups if grouped_first else 1
        y = ConvNormAct.complexity(cx.branch(), c_in, mid, 1, groups=g1, act=act)
        if groups > 1:
            y = ChannelShuffle.complexity(y, groups)
        y = ConvNormAct.complexity(y, mid, mid, 3, stride, groups=mid, act=None)
        y = ConvNormAct.complexity(y, mid, main, 1, groups=groups, act=None)
        if se:
            y = SqueezeExcite.complexity(y, main, se_reduction)
        if stride == 2:
            shortcut = AvgPool.complexity(cx.branch(), 3, 2, 1)
            return concat_cx(cx, [shortcut, act_cx(y, act)])
        out = elementwise_cx(cx.merge([y], y.c, y.h, y.w), n_inputs=2)  # y + x
        return act_cx(out, act)


def _check(c_in: int, c_out: int, stride: int, groups: int, grouped_first: bool) -> None:
    """Refuse a unit whose widths the paper's construction cannot build, naming the numbers."""
    name = "ShuffleV1Unit"
    if stride not in (1, 2):
        raise BadValue(f"{name}: stride must be 1 or 2, got {stride}")
    if groups < 1:
        raise BadValue(f"{name}: groups must be >= 1, got {groups}")
    if min(c_in, c_out) < 1:
        raise BadValue(f"{name}: channel counts must be >= 1; got c_in={c_in}, c_out={c_out}")
    if stride == 1 and c_in != c_out:
        raise BadValue(
            f"{name}: a stride-1 unit adds its input and needs c_in == c_out; "
            f"got c_in={c_in}, c_out={c_out}"
        )
    if stride == 2 and c_out <= c_in:
        raise BadValue(
            f"{name}: a stride-2 unit concatenates its input and needs c_out > c_in; "
            f"got c_in={c_in}, c_out={c_out}"
        )
    mid, main = unit_widths(c_in, c_out, stride)
    if mid < 1 or mid % groups:
        raise BadValue(
            f"{name}: bottleneck width c_out // 4 = {mid} (c_out={c_out}) must be a positive "
            f"multiple of groups={groups}; choose c_out a multiple of 4 * groups = {4 * groups}"
        )
    if main % groups:
        raise BadValue(
            f"{name}: main-branch output {main} (c_in={c_in}, c_out={c_out}, stride={stride}) is "
            f"not divisible by groups={groups}"
        )
    if grouped_first and c_in % groups:
        raise BadValue(
            f"{name}: c_in={c_in} is not divisible by groups={groups} of the first 1x1 conv"
        )
