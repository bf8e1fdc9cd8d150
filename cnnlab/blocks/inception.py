"""Inception modules: GoogLeNet's (Szegedy et al. 2015, Fig. 2b) and Inception v3's (2016, Fig. 5-7).

Every convolution is conv -> BN (eps 1e-3, as the released models and torchvision) -> ReLU. The
branches run on the same input and are concatenated along channels in the order listed.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, concat_cx, conv2d_cx, norm_act_cx, pool_cx

Pair = int | tuple[int, int]

# ImageNet mean and std: ``transform_input`` maps inputs normalised with them to the [-1, 1]
# scaling the Inception weights were trained with (torchvision's GoogLeNet and Inception3).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _check_width(what: str, **widths: int) -> None:
    bad = {k: v for k, v in widths.items() if v < 1}
    if bad:
        raise BadValue(f"{what}: branch widths must be >= 1, got {bad}")


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
        return norm_act_cx(cx, True, "relu")


class TransformInput(nn.Module):
    """x * (std / 0.5) + (mean - 0.5) / 0.5 per channel: ImageNet-normalised input to [-1, 1]."""

    def __init__(self, c_in: int = 3) -> None:
        super().__init__()
        if c_in != 3:
            raise BadValue(f"transform_input needs 3 input channels (RGB), got {c_in}")
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
            raise BadValue(f"transform_input needs 3 input channels (RGB), got {c_in}")
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
        raise BadValue(
            f"GoogLeNet Inception: branch3_kernel must be 5 (the paper) or 3 (torchvision), "
            f"got {branch3_kernel}"
        )


# An Inception v3 module as a small graph: nodes (name, source, op, args) run in order, where the
# source is "x" (the module input) or an earlier node, op is "conv" (c_out, k, stride, padding),
# "avg" or "max" (k, stride, padding); the output concatenates the listed nodes. Conv nodes are
# registered in node order, which is torchvision's order, so a port can copy tensors by order.
Node = tuple[str, str, str, tuple]


class InceptionV3Module(nn.Module):
    """An Inception v3 module (Szegedy et al. 2016, Fig. 5-7, 10): parallel branches, one concat."""

    def __init__(self, c_in: int, **widths: int) -> None:
        super().__init__()
        nodes, self.outputs = self.graph(c_in, **widths)
        self.nodes = [(name, src, op, args) for name, src, op, args in nodes]
        c = {"x": c_in}
        for name, src, op, args in nodes:
            if op == "conv":
                c_out, k, stride, padding = args
                self.add_module(name, BasicConv(c[src], c_out, k, stride, padding))
            c[name] = args[0] if op == "conv" else c[src]
        self.c_out = sum(c[n] for n in self.outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = {"x": x}
        for name, src, op, args in self.nodes:
            if op == "conv":
                y[name] = getattr(self, name)(y[src])
            elif op == "avg":
                y[name] = F.avg_pool2d(y[src], *args)
            else:
                y[name] = F.max_pool2d(y[src], *args)
        return torch.cat([y[n] for n in self.outputs], 1)

    @classmethod
    def complexity(cls, cx: Cx, c_in: int, **widths: int) -> Cx:
        nodes, outputs = cls.graph(c_in, **widths)
        y = {"x": cx.branch()}  # each node's output shape and its own cost only
        for name, src, op, args in nodes:
            if op == "conv":
                c_out, k, stride, padding = args
                y[name] = BasicConv.complexity(y[src].branch(), y[src].c, c_out, k, stride, padding)
            else:
                y[name] = pool_cx(y[src].branch(), *args)
        out = concat_cx(cx, [y[n] for n in outputs])
        inner = [y[name] for name, *_ in nodes if name not in outputs]
        return out.merge(inner, out.c, out.h, out.w)

    @staticmethod
    def graph(c_in: int, **widths: int) -> tuple[list[Node], tuple[str, ...]]:
        raise NotImplementedError


def _conv(name: str, src: str, c_out: int, k: Pair = 1, stride: int = 1, padding: Pair = 0) -> Node:
    return (name, src, "conv", (c_out, k, stride, padding))


class InceptionA(InceptionV3Module):
    """Fig. 5 (35x35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | 3x3 avg pool-1x1 (pool_features)."""

    @staticmethod
    def graph(c_in: int, pool_features: int) -> tuple[list[Node], tuple[str, ...]]:
        _check_width("InceptionA", pool_features=pool_features)
        nodes = [
            _conv("branch1x1", "x", 64),
            _conv("branch5x5_1", "x", 48),
            _conv("branch5x5_2", "branch5x5_1", 64, 5, 1, 2),
            _conv("branch3x3dbl_1", "x", 64),
            _conv("branch3x3dbl_2", "branch3x3dbl_1", 96, 3, 1, 1),
            _conv("branch3x3dbl_3", "branch3x3dbl_2", 96, 3, 1, 1),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch_pool", "pool", pool_features),
        ]
        return nodes, ("branch1x1", "branch5x5_2", "branch3x3dbl_3", "branch_pool")


class InceptionB(InceptionV3Module):
    """Grid reduction 35 -> 17 (Fig. 10): 3x3/2 | 1x1-3x3-3x3/2 | 3x3/2 max pool."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch3x3", "x", 384, 3, 2),
            _conv("branch3x3dbl_1", "x", 64),
            _conv("branch3x3dbl_2", "branch3x3dbl_1", 96, 3, 1, 1),
            _conv("branch3x3dbl_3", "branch3x3dbl_2", 96, 3, 2),
            ("pool", "x", "max", (3, 2, 0)),
        ]
        return nodes, ("branch3x3", "branch3x3dbl_3", "pool")


class InceptionC(InceptionV3Module):
    """Fig. 6 (17x17), n=7: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg pool-1x1 (c7 inner)."""

    @staticmethod
    def graph(c_in: int, c7: int) -> tuple[list[Node], tuple[str, ...]]:
        _check_width("InceptionC", c7=c7)
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
        nodes = [
            _conv("branch1x1", "x", 192),
            _conv("branch7x7_1", "x", c7),
            _conv("branch7x7_2", "branch7x7_1", c7, row[0], 1, row[1]),
            _conv("branch7x7_3", "branch7x7_2", 192, col[0], 1, col[1]),
            _conv("branch7x7dbl_1", "x", c7),
            _conv("branch7x7dbl_2", "branch7x7dbl_1", c7, col[0], 1, col[1]),
            _conv("branch7x7dbl_3", "branch7x7dbl_2", c7, row[0], 1, row[1]),
            _conv("branch7x7dbl_4", "branch7x7dbl_3", c7, col[0], 1, col[1]),
            _conv("branch7x7dbl_5", "branch7x7dbl_4", 192, row[0], 1, row[1]),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch_pool", "pool", 192),
        ]
        return nodes, ("branch1x1", "branch7x7_3", "branch7x7dbl_5", "branch_pool")


class InceptionD(InceptionV3Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | 3x3/2 max pool."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch3x3_1", "x", 192),
            _conv("branch3x3_2", "branch3x3_1", 320, 3, 2),
            _conv("branch7x7x3_1", "x", 192),
            _conv("branch7x7x3_2", "branch7x7x3_1", 192, (1, 7), 1, (0, 3)),
            _conv("branch7x7x3_3", "branch7x7x3_2", 192, (7, 1), 1, (3, 0)),
            _conv("branch7x7x3_4", "branch7x7x3_3", 192, 3, 2),
            ("pool", "x", "max", (3, 2, 0)),
        ]
        return nodes, ("branch3x3_2", "branch7x7x3_4", "pool")


class InceptionE(InceptionV3Module):
    """Fig. 7 (8x8): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avg pool-1x1; one flat concat."""

    @staticmethod
    def graph(c_in: int) -> tuple[list[Node], tuple[str, ...]]:
        nodes = [
            _conv("branch1x1", "x", 320),
            _conv("branch3x3_1", "x", 384),
            _conv("branch3x3_2a", "branch3x3_1", 384, (1, 3), 1, (0, 1)),
            _conv("branch3x3_2b", "branch3x3_1", 384, (3, 1), 1, (1, 0)),
            _conv("branch3x3dbl_1", "x", 448),
            _conv("branch3x3dbl_2", "branch3x3dbl_1", 384, 3, 1, 1),
            _conv("branch3x3dbl_3a", "branch3x3dbl_2", 384, (1, 3), 1, (0, 1)),
            _conv("branch3x3dbl_3b", "branch3x3dbl_2", 384, (3, 1), 1, (1, 0)),
            ("pool", "x", "avg", (3, 1, 1)),
            _conv("branch_pool", "pool", 192),
        ]
        outputs = ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a")
        return nodes, (*outputs, "branch3x3dbl_3b", "branch_pool")


class AuxClassifier(nn.Module):
    """Auxiliary classifier (Szegedy et al. 2016, §6): 5x5/3 avg pool, 1x1 (128), 5x5 (768), FC.

    It passes its input through unchanged; in training mode it also computes the auxiliary logits
    into ``self.logits`` (for an extra loss term). In eval it does nothing, so only its
    parameters are counted.
    """

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv(c_in, 128, 1)
        self.conv1 = BasicConv(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)
        self.logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.conv1(self.conv0(F.avg_pool2d(x, 5, 3)))
            self.logits = self.fc(y.mean((2, 3)))
        return x

    @staticmethod
    def complexity(cx: Cx, c_in: int, num_classes: int) -> Cx:
        conv0 = c_in * 128 + 2 * 128
        conv1 = 128 * 768 * 25 + 2 * 768
        return cx.add(params=conv0 + conv1 + 768 * num_classes + num_classes)
