"""Exponential moving average of the weights (Polyak & Juditsky 1992; as timm's ModelEmaV2).

After every optimizer update: ema <- decay * ema + (1 - decay) * w, for every floating parameter
and buffer (BN running statistics included); integer buffers are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.errors import BadValue


class ModelEma(nn.Module):
    """A frozen copy of the model whose weights follow the EMA of the trained ones."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0 < decay < 1:
            raise BadValue(f"EMA decay must lie in (0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema, new in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema.dtype.is_floating_point:
                ema.lerp_(new.detach(), 1.0 - self.decay)
            else:
                ema.copy_(new)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)
