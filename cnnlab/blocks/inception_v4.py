"""Inception-v4 modules (Szegedy et al. 2017, Fig. 3-8) in the layout of the released model.

Each module is a small branch graph (:class:`cnnlab.blocks.inception.InceptionV3Module`): conv
nodes are conv -> BN (eps 1e-3) -> ReLU and are registered in node order, which is TF-slim's and
timm's order, so a port copies tensors by order. Where the figures and the released model differ
in the order of a 1x7 / 7x1 pair, the released model is followed. The average pools of the
Inception-A/B/C modules leave the zero padding out of the mean (TF's "SAME" average pooling).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from cnnlab.blocks.inception import InceptionV3Module, Node, _check_width

ROW7, COL7 = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of a 1x7 and a 7x1 conv
ROW3, COL3 = ((1, 3), (0, 1)), ((3, 1), (1, 0))


def _conv(name: str, src: str, c_out: int, k=1, stride: int = 1, padding=0) -> Node:
    return (name, src, "conv", (c_out, k, stride, padding))


def _conv_kp(name: str, src: str, c_out: int, kp: tuple) -> Node:
    """A conv node with a (kernel, padding) pair such as ROW7."""
    return _conv(name, src, c_out, kp[0], 1, kp[1])


class InceptionV4Module(InceptionV3Module):
    """An Inception-v4 module: parallel branches, one concat; avg pools exclude the padding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = {"x": x}
        for name, src, op, args in self.nodes:
            if op == "conv":
                y[name] = getattr(self, name)(y[src])
            elif op == "avg":
                y[name] = F.avg_pool2d(y[src], *args, count_include_pad=False)
            else:
                y[name] = F.max_pool2d(y[src], *args)
        return torch.cat([y[n] for n in self.outputs], 1)


class StemA(InceptionV4Module):
    """Stem (Fig. 3), Mixed_3a: 3x3/2 max pool | 3x3/2 conv (96), both valid; 147 -> 73."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [("pool", "x", "max", (3, 2, 0)), _conv("conv", "x", 96, 3, 2)]
        return nodes, ("pool", "conv")


class StemB(InceptionV4Module):
    """Stem (Fig. 3), Mixed_4a: 1x1 (64)-3x3 (96) | 1x1 (64)-1x7-7x1 (64)-3x3 (96), valid 3x3."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch0_0", "x", 64),
            _conv("branch0_1", "branch0_0", 96, 3),
            _conv("branch1_0", "x", 64),
            _conv_kp("branch1_1", "branch1_0", 64, ROW7),
            _conv_kp("branch1_2", "branch1_1", 64, COL7),
            _conv("branch1_3", "branch1_2", 96, 3),
        ]
        return nodes, ("branch0_1", "branch1_3")


class StemC(InceptionV4Module):
    """Stem (Fig. 3), Mixed_5a: 3x3/2 conv (192) | 3x3/2 max pool, both valid; 71 -> 35."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [_conv("conv", "x", 192, 3, 2), ("pool", "x", "max", (3, 2, 0))]
        return nodes, ("conv", "pool")


class InceptionA(InceptionV4Module):
    """Inception-A (Fig. 4, 35x35): 1x1 (96) | 1x1 (64)-3x3 (96) | 1x1-3x3-3x3 | avg-1x1 (96)."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch0", "x", 96),
            _conv("branch1_0", "x", 64),
            _conv("branch1_1", "branch1_0", 96, 3, 1, 1),
            _conv("branch2_0", "x", 64),
            _conv("branch2_1", "branch2_0", 96, 3, 1, 1),
            _conv("branch2_2", "branch2_1", 96, 3, 1, 1),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch3", "pool", 96),
        ]
        return nodes, ("branch0", "branch1_1", "branch2_2", "branch3")


class ReductionA(InceptionV4Module):
    """Reduction-A (Fig. 7; Table 1 k, l, m, n): 3x3/2 (n) | 1x1 (k)-3x3 (l)-3x3/2 (m) | max pool."""

    @staticmethod
    def graph(
        c_in: int,
        k: int = 192,
        l: int = 224,  # noqa: E741 (Table 1's symbol)
        m: int = 256,
        n: int = 384,
    ) -> tuple[list[Node], tuple[str, ...]]:
        _check_width("ReductionA", k=k, l=l, m=m, n=n)
        nodes = [
            _conv("branch0", "x", n, 3, 2),
            _conv("branch1_0", "x", k),
            _conv("branch1_1", "branch1_0", l, 3, 1, 1),
            _conv("branch1_2", "branch1_1", m, 3, 2),
            ("pool", "x", "max", (3, 2, 0)),
        ]
        return nodes, ("branch0", "branch1_2", "pool")


class InceptionB(InceptionV4Module):
    """Inception-B (Fig. 5, 17x17): 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg pool-1x1."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch0", "x", 384),
            _conv("branch1_0", "x", 192),
            _conv_kp("branch1_1", "branch1_0", 224, ROW7),
            _conv_kp("branch1_2", "branch1_1", 256, COL7),
            _conv("branch2_0", "x", 192),
            _conv_kp("branch2_1", "branch2_0", 192, COL7),
            _conv_kp("branch2_2", "branch2_1", 224, ROW7),
            _conv_kp("branch2_3", "branch2_2", 224, COL7),
            _conv_kp("branch2_4", "branch2_3", 256, ROW7),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch3", "pool", 128),
        ]
        return nodes, ("branch0", "branch1_2", "branch2_4", "branch3")


class ReductionB(InceptionV4Module):
    """Reduction-B (Fig. 8): 1x1 (192)-3x3/2 (192) | 1x1 (256)-1x7-7x1 (320)-3x3/2 | max pool."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch0_0", "x", 192),
            _conv("branch0_1", "branch0_0", 192, 3, 2),
            _conv("branch1_0", "x", 256),
            _conv_kp("branch1_1", "branch1_0", 256, ROW7),
            _conv_kp("branch1_2", "branch1_1", 320, COL7),
            _conv("branch1_3", "branch1_2", 320, 3, 2),
            ("pool", "x", "max", (3, 2, 0)),
        ]
        return nodes, ("branch0_1", "branch1_3", "pool")


class InceptionC(InceptionV4Module):
    """Inception-C (Fig. 6, 8x8): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x1-1x3-(1x3, 3x1) | avg pool-1x1.

    The released model concatenates each split pair first and then the four branches; one flat
    concat of the six outputs in the same order gives the same tensor with one copy fewer.
    """

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch0", "x", 256),
            _conv("branch1_0", "x", 384),
            _conv_kp("branch1_1a", "branch1_0", 256, ROW3),
            _conv_kp("branch1_1b", "branch1_0", 256, COL3),
            _conv("branch2_0", "x", 384),
            _conv_kp("branch2_1", "branch2_0", 448, COL3),
            _conv_kp("branch2_2", "branch2_1", 512, ROW3),
            _conv_kp("branch2_3a", "branch2_2", 256, ROW3),
            _conv_kp("branch2_3b", "branch2_2", 256, COL3),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch3", "pool", 256),
        ]
        outputs = ("branch0", "branch1_1a", "branch1_1b", "branch2_3a", "branch2_3b", "branch3")
        return nodes, outputs
