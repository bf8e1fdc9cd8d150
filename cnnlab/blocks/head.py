"""The classifier head shared by the families: global average pool, dropout, fully connected."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, global_pool_cx, linear_cx


class ClassifierHead(nn.Module):
    """Global average pool -> flatten -> dropout -> FC (num_classes=0 keeps the pooled features)."""

    def __init__(self, c_in: int, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        if num_classes < 0:
            raise BadValue(
                f"num_classes must be >= 0 (0 removes the classifier), got {num_classes}"
            )
        if not 0.0 <= drop_rate < 1.0:
            raise BadValue(f"drop_rate must be in [0, 1), got {drop_rate}")
        self.c_in = c_in
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c_in, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        x = self.drop(x)
        return x if pre_logits else self.fc(x)

    def reset(self, num_classes: int) -> None:
        """Replace the FC layer by a freshly initialised one with ``num_classes`` outputs."""
        if num_classes < 0:
            raise BadValue(
                f"num_classes must be >= 0 (0 removes the classifier), got {num_classes}"
            )
        self.fc = nn.Linear(self.c_in, num_classes) if num_classes > 0 else nn.Identity()

    @staticmethod
    def complexity(cx: Cx, c_in: int, num_classes: int, drop_rate: float = 0.0) -> Cx:
        cx = global_pool_cx(cx)
        return linear_cx(cx, num_classes) if num_classes > 0 else cx
