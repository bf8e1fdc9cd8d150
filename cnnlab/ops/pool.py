"""Pooling layers that carry their cost model, for use as layers of a network plan."""

from __future__ import annotations

from torch import nn

from cnnlab.ops.cost import Cx, pool_cx


class MaxPool(nn.MaxPool2d):
    """kxk max pooling (same arguments as ``nn.MaxPool2d``) with its analytic cost."""

    def __init__(self, k: int = 3, stride: int = 2, padding: int = 1, *, ceil_mode=False) -> None:
        super().__init__(k, stride, padding, ceil_mode=ceil_mode)

    @staticmethod
    def complexity(cx: Cx, k: int = 3, stride: int = 2, padding: int = 1, *, ceil_mode=False) -> Cx:
        return pool_cx(cx, k, stride, padding, ceil_mode=ceil_mode)


class AvgPool(nn.AvgPool2d):
    """kxk average pooling (padding counted in the mean, as ``nn.AvgPool2d``) with its cost."""

    def __init__(self, k: int = 3, stride: int = 2, padding: int = 1, *, ceil_mode=False) -> None:
        super().__init__(k, stride, padding, ceil_mode=ceil_mode)

    @staticmethod
    def complexity(cx: Cx, k: int = 3, stride: int = 2, padding: int = 1, *, ceil_mode=False) -> Cx:
        return pool_cx(cx, k, stride, padding, ceil_mode=ceil_mode)
