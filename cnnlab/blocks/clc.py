"""Channel local convolutions (Zhang, clcNet, CVPR 2018): the CLC block, its receptive field.

A channel local convolution (CLC) computes each output channel from a subset of the input
channels; grouped and depthwise convolutions are special cases. The CLC block of clcNet stacks
an *interlaced grouped convolution* (IGC: a 3x3 grouped conv with g1 groups whose output
channels are interlaced) and a 1x1 grouped convolution (GC) with g2 groups. Structure as in the
official code (dqzhang17/clcnet.torch, ``models/clcnet.lua``): 3x3 conv (g1 groups, the block's
stride, width kept) -> BN -> ChannelInterlace(g1) -> 1x1 conv (g2 groups) -> BN -> ReLU.

The official ``ChannelInterlace`` (``models/ChannelInterlace.lua``) sends input channel
``i * (C / g1) + k`` to position ``k * g1 + i``: exactly ``channel_shuffle(x, g1)``.

Full channel receptive field. Interlacing puts the g1 groups' outputs in round-robin order, so a
GC group, which reads ``C / g2`` consecutive interlaced channels, sees ``min(g1, C / g2)`` of the
g1 groups, each of which reads ``C / g1`` input channels: an output channel depends on
``(C / g1) * min(g1, C / g2)`` input channels (:func:`channel_receptive_field`), all C of them
exactly when ``g1 * g2 <= C`` (:func:`full_channel_receptive_field`), the condition derived
from the channel dependency graph. Every block of the official clcNet has ``g1 * g2 = C``,
the cheapest setting that still sees every channel.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, check_groups
from cnnlab.ops.shuffle import ChannelShuffle


def channel_receptive_field(c: int, g1: int, g2: int) -> int:
    """Input channels one output channel of a CLC block depends on: (C/g1) * min(g1, C/g2)."""
    _check_clc(c, c, g1, g2)
    return (c // g1) * min(g1, c // g2)


def full_channel_receptive_field(c: int, g1: int, g2: int) -> bool:
    """True when every output channel depends on all ``c`` input channels: g1 * g2 <= C."""
    _check_clc(c, c, g1, g2)
    return g1 * g2 <= c


class CLCBlock(nn.Module):
    """CLC block (Zhang 2018): 3x3 interlaced group conv (g1), BN, 1x1 group conv (g2), BN, ReLU.

    The 3x3 conv keeps the width ``c_in`` and carries the stride; the 1x1 conv maps to ``c_out``.
    A configuration with ``g1 * g2 > c_in`` is allowed (it is a valid CLC), but its output
    channels do not see every input channel (:attr:`full_receptive_field` is False).
    """

    def __init__(self, c_in: int, c_out: int, stride: int, g1: int, g2: int) -> None:
        super().__init__()
        _check_clc(c_in, c_out, g1, g2, stride)
        self.full_receptive_field = g1 * g2 <= c_in
        self.igc = ConvNormAct(c_in, c_in, 3, stride, groups=g1, act=None)
        self.interlace = ChannelShuffle(g1)
        self.gc = ConvNormAct(c_in, c_out, 1, groups=g2, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gc(self.interlace(self.igc(x)))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int, g1: int, g2: int) -> Cx:
        _check_clc(c_in, c_out, g1, g2, stride)
        cx = ConvNormAct.complexity(cx, c_in, c_in, 3, stride, groups=g1, act=None)
        cx = ChannelShuffle.complexity(cx, g1)
        return ConvNormAct.complexity(cx, c_in, c_out, 1, groups=g2, act="relu")


def _check_clc(c_in: int, c_out: int, g1: int, g2: int, stride: int = 1) -> None:
    if stride not in (1, 2):
        raise BadValue(f"CLCBlock: stride must be 1 or 2, got {stride}")
    check_groups(f"CLCBlock interlaced grouped conv (g1={g1})", c_in, c_in, g1)
    check_groups(f"CLCBlock grouped 1x1 conv (g2={g2})", c_in, c_out, g2)
