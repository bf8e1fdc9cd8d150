"""Inception modules: GoogLeNet's (Szegedy et al. 2015, Fig. 2b) and Inception v3's (2016, Fig. 5-7).

Every convolution is conv -> BN (eps 1e-3, as the released models and torchvision) -> ReLU. The
branches run on the same input and are concatenated along channels in the order listed.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.ops.cost import Cx, act_cx, concat_cx, conv2d_cx, norm_cx, pool_cx

Pair = int | tuple[int, int]

# ImageNet mean and std: ``transform_input`` maps inputs normalised with them to the [-1, 1]
# scaling the Inception weights were trained with (torchvision's GoogLeNet and Inception3).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _check_width(what: str, **widths: int) -> None:
    bad = {k: v for k, v in widths.items() if v < 1}
    if bad:
        raise ValueError(f"{what}: branch widths must be >= 1, got {bad}")


class BasicConv(nn.Sequential):
    """Conv (no bias) -> BatchNorm2d(eps=1e-3) -> ReLU: the unit of every Inception network."""

    def __init__(self, c_in: int, c_out: int, k: Pair, stride: int = 1, padding: Pair = 0) -> None:
        super().__init__(
            OrderedDict(
                conv=nn.Conv2d(c_in, c_out, k, stride, padding, bias=False),
                bn=nn.BatchNorm2d(c_out, eps=1e-3),
                act=nn.ReLU(inplace=True),
            )
        )

    @staticmethod
    def complexity(
        cx: Cx, c_in: int, c_out: int, k: Pair, stride: int = 1, padding: Pair = 0
    ) -> Cx:
        cx = conv2d_cx(cx, c_out, k, stride=stride, padding=padding)
        return act_cx(norm_cx(cx), "relu")


class TransformInput(nn.Module):
    """x * (std / 0.5) + (mean - 0.5) / 0.5 per channel: ImageNet-normalised input to [-1, 1]."""

    def __init__(self, c_in: int = 3) -> None:
        super().__init__()
        if c_in != 3:
            raise ValueError(f"transform_input needs 3 input channels (RGB), got {c_in}")
        scale = torch.tensor([s / 0.5 for s in _STD]).view(1, 3, 1, 1)
        shift = torch.tensor([(m - 0.5) / 0.5 for m in _MEAN]).view(1, 3, 1, 1)
        # not persistent: the state dict (and a port's tensor order) holds no extra entries
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift

    @staticmethod
    def complexity(cx: Cx, c_in: int = 3) -> Cx:
        if c_in != 3:
            raise ValueError(f"transform_input needs 3 input channels (RGB), got {c_in}")
        # a multiply and an add, each reading the map and 3 constants and writing the map
        return cx.add(memory_access=2 * (2 * cx.numel + 3))


class GoogLeNetInception(nn.Module):
    """GoogLeNet Inception module: 1x1 | 1x1-3x3 | 1x1-kxk (k=5 paper) | 3x3 max pool-1x1, concat."""

    def __init__(
        self,
        c_in: int,
        c1: int,
        c3r: int,
        c3: int,
        c5r: int,
        c5: int,
        pool_proj: int,
        branch3_kernel: int = 5,
    ) -> None:
        super().__init__()
        _check_googlenet(c1, c3r, c3, c5r, c5, pool_proj, branch3_kernel)
        k = branch3_kernel
        self.branch1 = BasicConv(c_in, c1, 1)
        self.branch2 = nn.Sequential(BasicConv(c_in, c3r, 1), BasicConv(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv(c_in, c5r, 1), BasicConv(c5r, c5, k, padding=k // 2))
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv(c_in, pool_proj, 1)
        )
        self.c_out = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c1: int,
        c3r: int,
        c3: int,
        c5r: int,
        c5: int,
        pool_proj: int,
        branch3_kernel: int = 5,
    ) -> Cx:
        _check_googlenet(c1, c3r, c3, c5r, c5, pool_proj, branch3_kernel)
        k = branch3_kernel
        b1 = BasicConv.complexity(cx.branch(), c_in, c1, 1)
        b2 = BasicConv.complexity(cx.branch(), c_in, c3r, 1)
        b2 = BasicConv.complexity(b2, c3r, c3, 3, padding=1)
        b3 = BasicConv.complexity(cx.branch(), c_in, c5r, 1)
        b3 = BasicConv.complexity(b3, c5r, c5, k, padding=k // 2)
        b4 = pool_cx(cx.branch(), 3, 1, 1, ceil_mode=True)
        b4 = BasicConv.complexity(b4, c_in, pool_proj, 1)
        return concat_cx(cx, [b1, b2, b3, b4])


def _check_googlenet(c1, c3r, c3, c5r, c5, pool_proj, branch3_kernel) -> None:
    _check_width("GoogLeNet Inception", c1=c1, c3r=c3r, c3=c3, c5r=c5r, c5=c5, pool_proj=pool_proj)
    if branch3_kernel not in (3, 5):
        raise ValueError(
            f"GoogLeNet Inception: branch3_kernel must be 5 (the paper) or 3 (torchvision), "
            f"got {branch3_kernel}"
        )
