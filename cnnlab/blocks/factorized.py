"""Spatially factorised convolutions: a kxk kernel as a 1xk and a kx1 kernel.

- :class:`FactorizedConv`: Inception v3's factorisation into asymmetric convolutions (Szegedy
  et al. 2016, §3.2, Fig. 3 and 6): an MxM conv becomes a 1xM conv followed by an Mx1 conv, which
  costs ``M*c_in*c_mid + M*c_mid*c_out`` weights instead of ``M*M*c_in*c_out``.
- :class:`GlobalConvolution` and :class:`BoundaryRefinement`: the "Large Kernel Matters" Global
  Convolutional Network module and its boundary refinement block (Peng et al., CVPR 2017, Fig. 2b
  and 2c), which keep a large kxk receptive field at O(k) cost.

Every kernel is odd and "same"-padded, so a block keeps the spatial size. A conv with no BN after
it carries a bias, as in the GCN paper's layers; :class:`FactorizedConv` puts BN + activation
after each factor by default, as Inception v3 does (§3.1: a ReLU between the factors is better
than a linear one).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import check_activation, get_activation
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, elementwise_cx, norm_act_cx


def _check_kernel(what: str, k: int) -> None:
    if k < 1 or k % 2 == 0:
        raise BadValue(f"{what}: the kernel size must be odd and >= 1 (same padding), got {k}")


def _check_widths(what: str, **widths: int) -> None:
    bad = {name: v for name, v in widths.items() if v < 1}
    if bad:
        raise BadValue(f"{what}: widths must be >= 1, got {bad}")


def _axis_kernel(k: int, row: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """(kernel, padding) of a 1xk (row) or a kx1 (column) convolution with same padding."""
    return ((1, k), (0, k // 2)) if row else ((k, 1), (k // 2, 0))


class AxisConv(nn.Sequential):
    """A 1xk (``row``) or kx1 conv, same padding; BN and activation optional (a bias without BN)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int,
        row: bool,
        *,
        norm: bool = False,
        act: str | None = None,
    ) -> None:
        kernel, padding = _axis_kernel(k, row)
        layers = OrderedDict(conv=nn.Conv2d(c_in, c_out, kernel, 1, padding, bias=not norm))
        if norm:
            layers["bn"] = nn.BatchNorm2d(c_out)
        if act is not None:
            layers["act"] = get_activation(act)
        super().__init__(layers)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        k: int,
        row: bool,
        *,
        norm: bool = False,
        act: str | None = None,
    ) -> Cx:
        kernel, padding = _axis_kernel(k, row)
        cx = conv2d_cx(cx, c_out, kernel, padding=padding, bias=not norm)
        return norm_act_cx(cx, norm, act)


class FactorizedConv(nn.Sequential):
    """Factorised MxM conv (Szegedy et al. 2016, §3.2, Fig. 6): 1xM (c_mid) then Mx1 (c_out).

    ``row_first=False`` puts the Mx1 conv first. ``c_mid`` defaults to ``c_out``. ``norm`` and
    ``act`` apply after each factor (BN + ReLU, as in Inception v3); ``norm=False`` gives each conv
    a bias instead.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        m: int,
        c_mid: int | None = None,
        *,
        row_first: bool = True,
        norm: bool = True,
        act: str | None = "relu",
    ) -> None:
        c_mid = _check_factorized(c_in, c_out, m, c_mid, act)
        super().__init__(
            OrderedDict(
                conv1=AxisConv(c_in, c_mid, m, row_first, norm=norm, act=act),
                conv2=AxisConv(c_mid, c_out, m, not row_first, norm=norm, act=act),
            )
        )

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        m: int,
        c_mid: int | None = None,
        *,
        row_first: bool = True,
        norm: bool = True,
        act: str | None = "relu",
    ) -> Cx:
        c_mid = _check_factorized(c_in, c_out, m, c_mid, act)
        cx = AxisConv.complexity(cx, c_in, c_mid, m, row_first, norm=norm, act=act)
        return AxisConv.complexity(cx, c_mid, c_out, m, not row_first, norm=norm, act=act)


def _check_factorized(c_in: int, c_out: int, m: int, c_mid: int | None, act: str | None) -> int:
    c_mid = c_out if c_mid is None else c_mid
    _check_widths("FactorizedConv", c_in=c_in, c_mid=c_mid, c_out=c_out)
    _check_kernel("FactorizedConv", m)
    check_activation(act)
    return c_mid


class GlobalConvolution(nn.Module):
    """GCN module (Peng et al. 2017, Fig. 2b): (kx1 -> 1xk) + (1xk -> kx1), no BN or ReLU.

    Both branches have ``c_out`` channels throughout and every conv a bias, so the parameters
    are ``2*k*c_out*(c_in + c_out) + 4*c_out``: a kxk receptive field at O(k) cost.
    """

    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__()
        _check_gcn(c_in, c_out, k)
        self.left = nn.Sequential(AxisConv(c_in, c_out, k, False), AxisConv(c_out, c_out, k, True))
        self.right = nn.Sequential(AxisConv(c_in, c_out, k, True), AxisConv(c_out, c_out, k, False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, k: int) -> Cx:
        _check_gcn(c_in, c_out, k)
        left = AxisConv.complexity(cx.branch(), c_in, c_out, k, False)
        left = AxisConv.complexity(left, c_out, c_out, k, True)
        right = AxisConv.complexity(cx.branch(), c_in, c_out, k, True)
        right = AxisConv.complexity(right, c_out, c_out, k, False)
        return elementwise_cx(cx.merge([left, right], c_out, left.h, left.w), 2)


def _check_gcn(c_in: int, c_out: int, k: int) -> None:
    _check_widths("GlobalConvolution", c_in=c_in, c_out=c_out)
    _check_kernel("GlobalConvolution", k)


class BoundaryRefinement(nn.Module):
    """Boundary Refinement (Peng et al. 2017, Fig. 2c): x + conv3x3(relu(conv3x3(x))), c channels.

    Every conv has a bias (no BN): ``2*(9*c*c + c)`` parameters; the output keeps the input shape.
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        _check_widths("BoundaryRefinement", c=c)
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.act = nn.ReLU(inplace=True)  # on conv1's output: the input x is left intact
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))

    @staticmethod
    def complexity(cx: Cx, c: int) -> Cx:
        _check_widths("BoundaryRefinement", c=c)
        if cx.c != c:
            raise BadValue(f"BoundaryRefinement: input has {cx.c} channels, the block takes {c}")
        r = conv2d_cx(cx.branch(), c, 3, padding=1, bias=True)
        r = conv2d_cx(act_cx(r, "relu"), c, 3, padding=1, bias=True)
        return elementwise_cx(cx.merge([r], c, r.h, r.w), 2)
