"""Squeeze-and-excitation (Hu et al. 2018, SENet §3): pool, FC c->c/r, ReLU, FC c/r->c, gate, scale."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.ops.act import check_activation, get_activation
from cnnlab.ops.cost import Cx, act_cx, channel_scale_cx, conv2d_cx, global_pool_cx


def se_hidden(c: int, reduction: int) -> int:
    """Width of the excitation bottleneck: c // r, at least 1."""
    if reduction < 1:
        raise ValueError(f"SqueezeExcite: reduction must be >= 1, got {reduction}")
    return max(1, c // reduction)


class SqueezeExcite(nn.Module):
    """SE block (Hu et al. 2018): channel gates from global context; FCs as 1x1 convs with bias."""

    def __init__(self, c: int, reduction: int = 16, *, gate: str = "sigmoid") -> None:
        super().__init__()
        check_activation(gate)
        hidden = se_hidden(c, reduction)
        self.fc1 = nn.Conv2d(c, hidden, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, c, 1, bias=True)
        self.gate = get_activation(gate, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.gate(self.fc2(self.act(self.fc1(s))))
        return x * s

    @staticmethod
    def complexity(cx: Cx, c: int, reduction: int = 16, *, gate: str = "sigmoid") -> Cx:
        s = global_pool_cx(cx.branch())
        s = act_cx(conv2d_cx(s, se_hidden(c, reduction), 1, bias=True), "relu")
        s = act_cx(conv2d_cx(s, c, 1, bias=True), gate)
        return channel_scale_cx(cx.merge([s], cx.c, cx.h, cx.w))
