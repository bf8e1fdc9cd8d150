"""DSOD units (Shen et al. ICCV 2017): pre-activation convs and the dense prediction structure.

As the official ``DSOD300_V3_Body`` (szq0214/DSOD ``model_libs.py``) builds them: every conv
after the stem is BN-ReLU-conv; a prediction scale is half *learned* (from the previous scale,
through convolutions) and half *reused* (the previous scale max-pooled, then a BN-ReLU-1x1
conv), concatenated. Max pools are 2x2/2 with Caffe's ceil rounding (75 -> 38, 19 -> 10).

Memory access follows cnnlab.ops.cost: a batch norm whose input is a convolution's output counts
as folded (nothing), any other one as an element-wise pass (the traced counter applies the same
rule, so the first dense layer after a transition without pooling has its first BN folded).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.blocks.dense import DenseLayer, check_growth
from cnnlab.ops.cost import Cx, act_cx, concat_cx, conv2d_cx, norm_cx, pool_cx


def preact_cx(cx: Cx, c_out: int, k: int, stride: int = 1, *, folded: bool = False) -> Cx:
    """BN-ReLU-kxk conv (padding k//2); ``folded``: the BN reads a convolution's output."""
    cx = act_cx(norm_cx(cx, folded=folded), "relu")
    return conv2d_cx(cx, c_out, k, stride=stride, padding=k // 2)


def dense_layer_cx(cx: Cx, c_in: int, growth: int, bn_size: int, *, folded: bool) -> Cx:
    """The cost of cnnlab.blocks.dense.DenseLayer, its first BN folded or not."""
    y = preact_cx(cx.branch(), bn_size * growth, 1, folded=folded)
    y = preact_cx(y, growth, 3, folded=True)  # this BN follows conv1
    return concat_cx(cx, [cx.branch(), y])


def ceil_pool() -> nn.MaxPool2d:
    """DSOD's 2x2/2 max pool with Caffe's ceil rounding."""
    return nn.MaxPool2d(2, 2, ceil_mode=True)


def ceil_pool_cx(cx: Cx) -> Cx:
    return pool_cx(cx, 2, 2, 0, ceil_mode=True)


class PreActConv(nn.Sequential):
    """BN-ReLU-kxk conv (DSOD's ``bn_relu_conv``); a 1x1 one is a transition w/o pooling."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False)
        self.c_in, self.c_out = c_in, c_out

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, k: int = 1, stride: int = 1) -> Cx:
        return preact_cx(cx, c_out, k, stride)


class CeilMaxPool(nn.MaxPool2d):
    """The 2x2/2 max pool of DSOD, ceil rounding (Caffe), with its cost."""

    def __init__(self) -> None:
        super().__init__(2, 2, ceil_mode=True)

    @staticmethod
    def complexity(cx: Cx) -> Cx:
        return ceil_pool_cx(cx)


class DenseScale(nn.Module):
    """DSOD's second scale: pool, then learned half (dense blocks, transitions w/o pooling, 1x1
    to c_learn) concatenated with the reused half (BN-ReLU-1x1 of the pooled input to c_reuse)."""

    def __init__(
        self,
        c_in: int,
        growth: int,
        blocks: tuple[int, ...],
        bn_size: int,
        c_learn: int,
        c_reuse: int,
    ) -> None:
        super().__init__()
        check_growth(growth, bn_size)
        self.pool = ceil_pool()
        self.learn = nn.Sequential()
        c = c_in
        for i, n in enumerate(blocks):
            for j in range(n):
                self.learn.add_module(f"block{i + 1}_{j + 1}", DenseLayer(c, growth, bn_size))
                c += growth
            c_out = c_learn if i == len(blocks) - 1 else c
            self.learn.add_module(f"transition{i + 1}", PreActConv(c, c_out, 1))
            c = c_out
        self.reuse = PreActConv(c_in, c_reuse, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pool(x)
        return torch.cat([self.learn(p), self.reuse(p)], 1)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        growth: int,
        blocks: tuple[int, ...],
        bn_size: int,
        c_learn: int,
        c_reuse: int,
    ) -> Cx:
        check_growth(growth, bn_size)
        p = ceil_pool_cx(cx)
        y, c = p.branch(), c_in
        for i, n in enumerate(blocks):
            for j in range(n):
                # after a transition w/o pooling, the first BN reads that 1x1 conv's output
                y = dense_layer_cx(y, c, growth, bn_size, folded=i > 0 and j == 0)
                c += growth
            c = c_learn if i == len(blocks) - 1 else c
            y = preact_cx(y, c, 1)
        z = preact_cx(p.branch(), c_reuse, 1)
        return concat_cx(p, [y, z])


class LearnReuse(nn.Module):
    """DSOD dense prediction scale (Fig. 1 right): cat(reuse: pool-BN-ReLU-1x1, learn: BN-ReLU-1x1,
    BN-ReLU-3x3/2), each half c_half channels; halves the resolution."""

    def __init__(self, c_in: int, c_half: int) -> None:
        super().__init__()
        self.pool = ceil_pool()
        self.reuse = PreActConv(c_in, c_half, 1)
        self.learn = nn.Sequential(PreActConv(c_in, c_half, 1), PreActConv(c_half, c_half, 3, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.reuse(self.pool(x)), self.learn(x)], 1)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_half: int) -> Cx:
        z = preact_cx(ceil_pool_cx(cx.branch()), c_half, 1)
        y = preact_cx(cx.branch(), c_half, 1)
        y = preact_cx(y, c_half, 3, 2, folded=True)  # this BN follows the 1x1 conv
        return concat_cx(cx, [z, y])
