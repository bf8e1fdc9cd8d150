"""Residual attention module (Wang et al. 2017, CVPR): trunk T(x), soft mask M(x), (1 + M) * T.

Laid out as the authors' Attention-56 (fwang91/residual-attention-network, deploy prototxt), on
pre-activation bottleneck units (He et al. 2016):

- p units before the split; the trunk is t more units;
- the mask branch goes bottom-up: 3x3 max pool (stride 2) then r units, ``depth`` times, with 2r
  units at the lowest level; a skip unit at every other level;
- top-down: bilinear upsampling (align_corners=True, as the Caffe Interp layer) to the level
  above, plus that level's skip unit, then r units; a last upsampling to the input size;
- the mask head: BN-ReLU-conv1x1-BN-ReLU-conv1x1, sigmoid;
- attention residual learning: H = (1 + M(x)) * T(x), one fused pass ``T + M * T``;
- p units after, as in the authors' network (the unit after the "fusion" layer).

Memory access assumes the module's input is not the raw output of a convolution (then its first
BN could fold into that conv): true after an activation or a residual add.

The unit and the mask head are hooks (``unit``/``unit_cx``, ``mask_head_layers``/``mask_head_cx``):
a subclass swaps them, e.g. for the ResNeXt units of AttentionNeXt, and keeps the layout.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, elementwise_cx, norm_act_cx, norm_cx, pool_cx


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck unit (He et al. 2016, ECCV): BN-ReLU-conv 1x1, 3x3, 1x1, + x."""

    def __init__(self, c: int) -> None:
        super().__init__()
        mid = _bottleneck(c)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv1 = nn.Conv2d(c, mid, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(F.relu(self.bn1(x), inplace=True))
        y = self.conv2(F.relu(self.bn2(y), inplace=True))
        y = self.conv3(F.relu(self.bn3(y), inplace=True))
        return x + y

    @staticmethod
    def complexity(cx: Cx, c: int) -> Cx:
        mid = _bottleneck(c)
        y = act_cx(norm_cx(cx.branch(), folded=False), "relu")
        y = norm_act_cx(conv2d_cx(y, mid, 1), True, "relu")
        y = norm_act_cx(conv2d_cx(y, mid, 3), True, "relu")
        y = conv2d_cx(y, c, 1)
        return elementwise_cx(cx.merge([y], c, cx.h, cx.w), 2)


def _bottleneck(c: int) -> int:
    if c < 4:
        raise BadValue(f"PreActBottleneck: needs c >= 4 channels (bottleneck c // 4), got c={c}")
    return c // 4


def _upsample_cx(cx: Cx, h: int, w: int) -> Cx:
    """Bilinear upsampling: reads the input, writes the output."""
    return cx.add(h=h, w=w, memory_access=cx.numel + cx.c * h * w)


class ResidualAttentionModule(nn.Module):
    """Attention module (Wang et al. 2017): trunk + bottom-up/top-down soft mask, (1 + M) * T."""

    def __init__(self, c: int, *, depth: int = 1, p: int = 1, t: int = 2, r: int = 1) -> None:
        super().__init__()
        _check(c, depth, p, t, r)
        self.depth = depth
        self.pre = self._units(c, p)
        self.trunk = self._units(c, t)
        # bottom-up: r units after each pooling, 2r at the lowest level
        self.down = nn.ModuleList(
            self._units(c, 2 * r if i == depth - 1 else r) for i in range(depth)
        )
        self.skips = nn.ModuleList(self.unit(c) for _ in range(depth - 1))
        self.up = nn.ModuleList(self._units(c, r) for _ in range(depth - 1))
        self.mask_head = self.mask_head_layers(c)
        self.post = self._units(c, p)

    @staticmethod
    def unit(c: int) -> nn.Module:
        """One residual unit of c channels (pre-activation bottleneck)."""
        return PreActBottleneck(c)

    @staticmethod
    def unit_cx(cx: Cx, c: int) -> Cx:
        return PreActBottleneck.complexity(cx, c)

    @staticmethod
    def mask_head_layers(c: int) -> nn.Module:
        """BN-ReLU-conv1x1-BN-ReLU-conv1x1, sigmoid (the prototxt's interp/bn, linear_1, linear_2)."""
        return nn.Sequential(
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 1, bias=False),
            nn.Sigmoid(),
        )

    @staticmethod
    def mask_head_cx(cx: Cx, c: int) -> Cx:
        cx = act_cx(norm_cx(cx, folded=False), "relu")  # reads the upsampling: not foldable
        cx = norm_act_cx(conv2d_cx(cx, c, 1), True, "relu")
        return act_cx(conv2d_cx(cx, c, 1), "sigmoid")

    def _units(self, c: int, n: int) -> nn.Sequential:
        return nn.Sequential(*(self.unit(c) for _ in range(n)))

    @classmethod
    def _units_cx(cls, cx: Cx, c: int, n: int) -> Cx:
        for _ in range(n):
            cx = cls.unit_cx(cx, c)
        return cx

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """M(x) in (0, 1), the same shape as x."""
        _check_size(x.shape[-2], x.shape[-1], self.depth)
        sizes, skips, y = [], [], x
        for i, units in enumerate(self.down):
            sizes.append(y.shape[-2:])
            y = units(F.max_pool2d(y, 3, 2, 1))
            if i < self.depth - 1:
                skips.append(self.skips[i](y))
        for i in reversed(range(self.depth - 1)):
            y = F.interpolate(y, size=skips[i].shape[-2:], mode="bilinear", align_corners=True)
            y = self.up[i](y + skips[i])
        y = F.interpolate(y, size=sizes[0], mode="bilinear", align_corners=True)
        return self.mask_head(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        t = self.trunk(x)
        return self.post(torch.addcmul(t, self.mask(x), t))  # (1 + M) * T in one pass

    @classmethod
    def complexity(
        cls, cx: Cx, c: int, *, depth: int = 1, p: int = 1, t: int = 2, r: int = 1
    ) -> Cx:
        _check(c, depth, p, t, r)
        _check_size(cx.h, cx.w, depth)
        x = cls._units_cx(cx, c, p)
        trunk = cls._units_cx(x.branch(), c, t)
        mask, skips = x.branch(), []
        for i in range(depth):
            mask = cls._units_cx(pool_cx(mask, 3, 2, 1), c, 2 * r if i == depth - 1 else r)
            if i < depth - 1:
                skips.append(cls.unit_cx(mask.branch(), c))
        for i in reversed(range(depth - 1)):
            mask = _upsample_cx(mask, skips[i].h, skips[i].w)
            mask = elementwise_cx(mask.merge([skips[i]], c, mask.h, mask.w), 2)
            mask = cls._units_cx(mask, c, r)
        mask = cls.mask_head_cx(_upsample_cx(mask, cx.h, cx.w), c)
        fused = x.merge([trunk, mask], c, cx.h, cx.w).add(memory_access=4 * cx.numel)
        return cls._units_cx(fused, c, p)


def _check(c: int, depth: int, p: int, t: int, r: int) -> None:
    name = "ResidualAttentionModule"
    if depth < 1:
        raise BadValue(f"{name}: depth (mask-branch poolings) must be >= 1, got {depth}")
    if min(p, t, r) < 0 or r < 1 or t < 1:
        raise BadValue(f"{name}: needs p >= 0, t >= 1 and r >= 1; got p={p}, t={t}, r={r}")
    _bottleneck(c)


def _check_size(h: int, w: int, depth: int) -> None:
    f = 2**depth
    if h % f or w % f:
        raise BadValue(
            f"ResidualAttentionModule: input {h}x{w} must be divisible by 2**depth = {f} "
            f"(depth={depth} max-poolings in the mask branch); use a size that is a multiple of "
            f"{f} or a smaller depth"
        )
