"""Channel shuffle (Zhang et al. 2018, ShuffleNet §3.1): reshape channels to (g, n), transpose, flatten."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, shuffle_cx


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal groups so the next group conv mixes them."""
    b, c, h, w = x.shape
    if c % groups:
        raise BadValue(f"channel_shuffle: {c} channels are not divisible by groups={groups}")
    x = x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous()
    return x.view(b, c, h, w)


class ChannelShuffle(nn.Module):
    """Channel shuffle as a module (ShuffleNet, Zhang et al. 2018, Fig. 1c)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)

    @staticmethod
    def complexity(cx: Cx, groups: int) -> Cx:
        return shuffle_cx(cx)
