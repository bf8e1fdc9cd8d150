"""Convolution helpers: conv-norm-activation and the depthwise-separable convolution."""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import check_activation, get_activation
from cnnlab.ops.cost import Cx, check_groups, conv2d_cx, norm_act_cx

SeparableMid = Literal["bn_relu", "bn", "relu", "none"]
SEPARABLE_MIDS = ("bn_relu", "bn", "relu", "none")


class ConvNormAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> activation: the standard layer of every CNN family here."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        padding: int | None = None,
        norm: bool = True,
        act: str | None = "relu",
        bias: bool = False,
    ) -> None:
        check_groups("ConvNormAct", c_in, c_out, groups)
        check_activation(act)
        pad = (k - 1) // 2 if padding is None else padding
        layers = OrderedDict(conv=nn.Conv2d(c_in, c_out, k, stride, pad, groups=groups, bias=bias))
        if norm:
            layers["bn"] = nn.BatchNorm2d(c_out)
        if act is not None:
            layers["act"] = get_activation(act)
        super().__init__(layers)
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        padding: int | None = None,
        norm: bool = True,
        act: str | None = "relu",
        bias: bool = False,
    ) -> Cx:
        pad = (k - 1) // 2 if padding is None else padding
        cx = conv2d_cx(cx, c_out, k, stride=stride, padding=pad, groups=groups, bias=bias)
        return norm_act_cx(cx, norm, act)


class SeparableConv(nn.Sequential):
    """Depthwise-separable conv (Chollet 2017; Howard et al. 2017): kxk depthwise, then 1x1.

    ``mid`` chooses what sits between the depthwise and the pointwise conv, the question X.
    Zhang's survey ("Recent advances in CNN model research") asks: MobileNet v1 uses BN + ReLU
    ("bn_relu"), Xception nothing ("none"). ``mid_act`` is the activation that "relu" in ``mid``
    stands for (a family's activation by name).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        *,
        mid: SeparableMid = "bn_relu",
        norm: bool = True,
        act: str | None = "relu",
        mid_act: str = "relu",
    ) -> None:
        _check_mid(mid)
        mid_norm, mid_act = _mid_parts(mid, mid_act)
        super().__init__(
            OrderedDict(
                dw=ConvNormAct(c_in, c_in, k, stride, groups=c_in, norm=mid_norm, act=mid_act),
                pw=ConvNormAct(c_in, c_out, 1, norm=norm, act=act),
            )
        )
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        k: int = 3,
        stride: int = 1,
        *,
        mid: SeparableMid = "bn_relu",
        norm: bool = True,
        act: str | None = "relu",
        mid_act: str = "relu",
    ) -> Cx:
        mid_norm, mid_act = _mid_parts(mid, mid_act)
        cx = ConvNormAct.complexity(
            cx, c_in, c_in, k, stride, groups=c_in, norm=mid_norm, act=mid_act
        )
        return ConvNormAct.complexity(cx, c_in, c_out, 1, norm=norm, act=act)


def _check_mid(mid: str) -> None:
    if mid not in SEPARABLE_MIDS:
        raise BadValue(
            f"SeparableConv: unknown mid={mid!r}; choose one of {', '.join(SEPARABLE_MIDS)}"
        )


def _mid_parts(mid: str, act: str = "relu") -> tuple[bool, str | None]:
    """(BN between depthwise and pointwise?, activation there) for a ``mid`` choice."""
    return mid in ("bn_relu", "bn"), (act if mid in ("bn_relu", "relu") else None)
