"""Squeeze-and-excitation (Hu et al. 2018, SENet §3): pool, FC c->c/r, ReLU, FC c/r->c, gate, scale.

BN in the excitation path is an open question of X. Zhang's survey ("Recent advances in CNN model
research"); SENet itself has none. ``use_bn=True`` puts one BN after the first FC, before its
ReLU, where the follow-ups that normalise this path put it: the fuse layer of SKNet (Li et al.
2019, z = relu(BN(W s))) and GCNet's transform (Cao et al. 2019, LayerNorm after the first 1x1
conv). None normalises the second FC, whose output feeds the gate directly. That BN sees one
value per channel and image (a 1x1 map), so it needs more than one image per batch in training;
in inference it folds into the FC (cost zero).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import check_activation, get_activation
from cnnlab.ops.cost import (
    Cx,
    act_cx,
    channel_scale_cx,
    conv2d_cx,
    global_pool_cx,
    norm_act_cx,
)


def se_hidden(c: int, reduction: int) -> int:
    """Width of the excitation bottleneck: c // r, at least 1."""
    if reduction < 1:
        raise BadValue(f"SqueezeExcite: reduction must be >= 1, got {reduction}")
    return max(1, c // reduction)


class SqueezeExcite(nn.Module):
    """SE block (Hu et al. 2018): pool, FC-[BN]-act, FC, gate, scale; FCs as 1x1 convs with bias."""

    def __init__(
        self,
        c: int,
        reduction: int = 16,
        *,
        gate: str = "sigmoid",
        act: str = "relu",
        use_bn: bool = False,
    ) -> None:
        super().__init__()
        check_activation(gate)
        check_activation(act)
        hidden = se_hidden(c, reduction)
        self.fc1 = nn.Conv2d(c, hidden, 1, bias=True)
        self.bn = nn.BatchNorm2d(hidden) if use_bn else None
        self.act = get_activation(act)
        self.fc2 = nn.Conv2d(hidden, c, 1, bias=True)
        self.gate = get_activation(gate, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc1(x.mean((2, 3), keepdim=True))
        if self.bn is not None:
            s = self.bn(s)
        s = self.gate(self.fc2(self.act(s)))
        return x * s

    @staticmethod
    def complexity(
        cx: Cx,
        c: int,
        reduction: int = 16,
        *,
        gate: str = "sigmoid",
        act: str = "relu",
        use_bn: bool = False,
    ) -> Cx:
        s = conv2d_cx(global_pool_cx(cx.branch()), se_hidden(c, reduction), 1, bias=True)
        s = norm_act_cx(s, use_bn, act)
        s = act_cx(conv2d_cx(s, c, 1, bias=True), gate)
        return channel_scale_cx(cx.merge([s], cx.c, cx.h, cx.w))
