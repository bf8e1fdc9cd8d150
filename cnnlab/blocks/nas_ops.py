"""The operations of NAS cells (NASNet, PNASNet, AmoebaNet), by name, with their analytic cost.

Every op maps a state of ``c_in`` channels to ``c_out`` channels at ``stride`` (1, or 2 when it
reads a cell input of a reduction cell). Padding is TensorFlow's 'SAME', as in TF-slim's NASNet
and PNASNet and the TPU AmoebaNet: total ``max((ceil(n/s)-1)*s + (k-1)*d + 1 - n, 0)``, the odd
pixel at the end. A symmetric 'SAME' padding is the layer's own padding argument; an asymmetric
one (stride 2 on an even size) is an explicit ``F.pad``, counted as one copy. Strided average
pooling counts the zero padding in the mean and stride-1 pooling does not, as timm's ports of the
TF weights do. Batch norm uses TF's epsilon 1e-3.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, conv_out, norm_act_cx, norm_cx, pair

BN_EPS = 1e-3  # TF-slim's batch_norm_epsilon for NASNet, PNASNet and AmoebaNet


def batch_norm(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


def same_pads(n: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF 'SAME' padding (before, after) of one axis of length ``n``."""
    total = max((-(-n // stride) - 1) * stride + (k - 1) * dilation + 1 - n, 0)
    return total // 2, total - total // 2


def _hw(x: torch.Tensor) -> tuple[int, int]:
    """The input's spatial size as Python ints: under ONNX export tracing the sizes would be
    traced tensors and the padding dynamic; the plan is static for a fixed input size."""
    return int(x.shape[-2]), int(x.shape[-1])


def _same_plan(h: int, w: int, k, stride, dilation: int) -> tuple[tuple[int, ...] | None, tuple]:
    """(F.pad pads or None, the layer's own padding) for 'SAME' on an h x w input."""
    (kh, kw), (sh, sw) = pair(k), pair(stride)
    ph, pw = same_pads(h, kh, sh, dilation), same_pads(w, kw, sw, dilation)
    if ph[0] == ph[1] and pw[0] == pw[1]:
        return None, (ph[0], pw[0])
    return (pw[0], pw[1], ph[0], ph[1]), (0, 0)


def pad_cx(cx: Cx, pads: tuple[int, ...]) -> Cx:
    """F.pad: reads the input, writes the padded copy."""
    h, w = cx.h + pads[2] + pads[3], cx.w + pads[0] + pads[1]
    return cx.add(h=h, w=w, memory_access=cx.numel + cx.c * h * w)


class SameConv2d(nn.Conv2d):
    """Conv2d (no bias) with TF 'SAME' padding computed from the input size."""

    def __init__(self, c_in: int, c_out: int, k, stride=1, *, groups: int = 1, dilation: int = 1):
        super().__init__(c_in, c_out, k, stride, 0, dilation, groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads, padding = _same_plan(*_hw(x), self.kernel_size, self.stride,
                                   self.dilation[0])  # fmt: skip
        if pads is not None:
            x = F.pad(x, pads)
        return F.conv2d(x, self.weight, None, self.stride, padding, self.dilation, self.groups)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, k, stride=1, *, groups=1, dilation=1) -> Cx:
        pads, padding = _same_plan(cx.h, cx.w, k, stride, dilation)
        if pads is not None:
            cx = pad_cx(cx, pads)
        return conv2d_cx(
            cx, c_out, k, stride=stride, padding=padding, dilation=dilation, groups=groups
        )


class SamePool(nn.Module):
    """3x3 max or average pooling with TF 'SAME' padding (see the module docstring for the mean)."""

    def __init__(self, kind: str, k: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.kind, self.k, self.stride = kind, k, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads, padding = _same_plan(*_hw(x), self.k, self.stride, 1)
        if pads is not None:
            x = F.pad(x, pads, value=-math.inf if self.kind == "max" else 0.0)
        if self.kind == "max":
            return F.max_pool2d(x, self.k, self.stride, padding)
        return F.avg_pool2d(x, self.k, self.stride, padding, count_include_pad=self.stride > 1)

    @staticmethod
    def complexity(cx: Cx, kind: str, k: int = 3, stride: int = 1) -> Cx:
        pads, padding = _same_plan(cx.h, cx.w, k, stride, 1)
        if pads is not None:
            cx = pad_cx(cx, pads)
        h = conv_out(cx.h, k, stride, padding[0])
        w = conv_out(cx.w, k, stride, padding[1])
        return cx.add(h=h, w=w, memory_access=cx.numel + cx.c * h * w)


class ActConvBn(nn.Module):
    """ReLU -> kxk conv ('SAME') -> BN: TF-slim's 1x1 'beginning' and 'prev' projections."""

    def __init__(self, c_in: int, c_out: int, k=1, stride=1) -> None:
        super().__init__()
        self.act = nn.ReLU()  # not in place: the input is a cell output read elsewhere too
        self.conv = SameConv2d(c_in, c_out, k, stride)
        self.bn = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, k=1, stride=1) -> Cx:
        cx = act_cx(cx, "relu")
        return norm_cx(SameConv2d.complexity(cx, c_in, c_out, k, stride))


class FactorizedReduction(nn.Module):
    """Factorized reduction (Zoph et al. 2018, TF-slim): ReLU, two 1x1 s2 convs on x and x shifted
    by one pixel, concat, BN. A 1x1 average pool with stride 2 then a 1x1 conv is a 1x1 conv with
    stride 2; the shift is TF's pad-right-bottom-then-crop-top-left. Each half has c_out // 2
    channels (TF-slim's ``int(output_filters / 2)``): an odd c_out gives c_out - 1."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        half = _half(c_out)
        self.act = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, half, 1, 2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, half, 1, 2, bias=False)
        self.bn = batch_norm(2 * half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        shifted = x[:, :, 1:, 1:]
        pads = _shift_pads(*_hw(x))
        if pads is not None:
            shifted = F.pad(shifted, pads)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], 1))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int) -> Cx:
        half = _half(c_out)
        x = act_cx(cx, "relu")
        a = conv2d_cx(x.branch(), half, 1, stride=2, padding=0)
        shifted = Cx(x.c, x.h - 1, x.w - 1)
        pads = _shift_pads(x.h, x.w)
        if pads is not None:
            shifted = pad_cx(shifted, pads)
        b = conv2d_cx(shifted, half, 1, stride=2, padding=0)
        out = x.merge([a, b], 2 * half, a.h, a.w).add(memory_access=4 * half * a.h * a.w)
        return norm_cx(out, folded=False)  # BN after a concat: a pass of its own


def _shift_pads(h: int, w: int) -> tuple[int, int, int, int] | None:
    """Zero row/column restoring ceil(n/2) outputs after the crop, where n is odd."""
    return (0, w % 2, 0, h % 2) if h % 2 or w % 2 else None


def _half(c_out: int) -> int:
    if c_out < 2:
        raise BadValue(f"FactorizedReduction: c_out={c_out} must be >= 2 (two halves)")
    return c_out // 2


class SepConvOp(nn.Module):
    """NASNet's 'separable_kxk_2' (Zoph et al. 2018, §3 and TF-slim): [ReLU, depthwise kxk (stride
    s) + pointwise 1x1 to c_out, BN], then the same again at stride 1 ("applied twice")."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, k: int = 3) -> None:
        super().__init__()
        self.act_1 = nn.ReLU()  # the input is a state other ops read: not in place
        self.depthwise_1 = SameConv2d(c_in, c_in, k, stride, groups=c_in)
        self.pointwise_1 = SameConv2d(c_in, c_out, 1)
        self.bn_1 = batch_norm(c_out)
        self.act_2 = nn.ReLU(inplace=True)
        self.depthwise_2 = SameConv2d(c_out, c_out, k, groups=c_out)
        self.pointwise_2 = SameConv2d(c_out, c_out, 1)
        self.bn_2 = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_1(self.pointwise_1(self.depthwise_1(self.act_1(x))))
        return self.bn_2(self.pointwise_2(self.depthwise_2(self.act_2(x))))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1, *, k: int = 3) -> Cx:
        cx = act_cx(cx, "relu")
        cx = SameConv2d.complexity(cx, c_in, c_in, k, stride, groups=c_in)
        cx = norm_act_cx(SameConv2d.complexity(cx, c_in, c_out, 1), True, "relu")
        cx = SameConv2d.complexity(cx, c_out, c_out, k, groups=c_out)
        return norm_cx(SameConv2d.complexity(cx, c_out, c_out, 1))


class DilConvOp(nn.Module):
    """Dilated separable conv (DARTS's dil_conv_kxk, Liu et al. 2019): ReLU, depthwise kxk with
    dilation 2 (stride s), pointwise 1x1, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, k: int = 3) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.depthwise = SameConv2d(c_in, c_in, k, stride, groups=c_in, dilation=2)
        self.pointwise = SameConv2d(c_in, c_out, 1)
        self.bn = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(self.act(x))))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1, *, k: int = 3) -> Cx:
        cx = act_cx(cx, "relu")
        cx = SameConv2d.complexity(cx, c_in, c_in, k, stride, groups=c_in, dilation=2)
        return norm_cx(SameConv2d.complexity(cx, c_in, c_out, 1))


class PoolOp(nn.Module):
    """avg/max_pool_3x3 ('SAME'); a 1x1 conv + BN follows when the channels differ (TF-slim)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, kind: str = "avg") -> None:
        super().__init__()
        self.pool = SamePool(kind, 3, stride)
        self.proj = None
        if c_in != c_out:
            self.proj = nn.Sequential(SameConv2d(c_in, c_out, 1), batch_norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        return x if self.proj is None else self.proj(x)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1, *, kind: str = "avg") -> Cx:
        cx = SamePool.complexity(cx, kind, 3, stride)
        return cx if c_in == c_out else norm_cx(SameConv2d.complexity(cx, c_in, c_out, 1))


class IdentityOp(nn.Module):
    """'identity' (TF's 'none'): the state itself; ReLU-1x1 conv (stride s)-BN when the stride or
    the channels change. ``force_conv`` makes it AmoebaNet's '1x1' op."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, force_conv: bool = False):
        super().__init__()
        self.proj = None
        if force_conv or stride > 1 or c_in != c_out:
            self.proj = ActConvBn(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1, *, force_conv=False) -> Cx:
        if force_conv or stride > 1 or c_in != c_out:
            return ActConvBn.complexity(cx, c_in, c_out, 1, stride)
        return cx


class ConvPairOp(nn.Module):
    """AmoebaNet's '1x7_7x1' (TPU amoeba_net network_utils): ReLU, 1x1 to c_out/4, BN, ReLU,
    1x7 (stride 1,s), BN, ReLU, 7x1 (stride s,1), BN, ReLU, 1x1 to c_out, BN. Without the
    bottleneck when c_out/4 < 1."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, *, k: int = 7) -> None:
        super().__init__()
        mid = c_out // 4
        layers: list[nn.Module] = [nn.ReLU()]
        c = c_in
        if mid >= 1:
            layers += [SameConv2d(c_in, mid, 1), batch_norm(mid), nn.ReLU(inplace=True)]
            c = mid
        c_pair = mid if mid >= 1 else c_out
        layers += [SameConv2d(c, c_pair, (1, k), (1, stride)), batch_norm(c_pair)]
        layers += [nn.ReLU(inplace=True), SameConv2d(c_pair, c_pair, (k, 1), (stride, 1))]
        layers.append(batch_norm(c_pair))
        if mid >= 1:
            layers += [nn.ReLU(inplace=True), SameConv2d(mid, c_out, 1), batch_norm(c_out)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int = 1, *, k: int = 7) -> Cx:
        mid = c_out // 4
        cx = act_cx(cx, "relu")
        if mid >= 1:
            cx = norm_act_cx(SameConv2d.complexity(cx, c_in, mid, 1), True, "relu")
        c, c_pair = cx.c, (mid if mid >= 1 else c_out)
        cx = norm_act_cx(SameConv2d.complexity(cx, c, c_pair, (1, k), (1, stride)), True, "relu")
        cx = norm_cx(SameConv2d.complexity(cx, c_pair, c_pair, (k, 1), (stride, 1)))
        if mid >= 1:
            cx = norm_cx(SameConv2d.complexity(act_cx(cx, "relu"), mid, c_out, 1))
        return cx


# name -> (class, keyword arguments): the op vocabulary of NASNet, PNASNet, AmoebaNet and DARTS.
OPS: dict[str, tuple[type[nn.Module], dict]] = {
    "sep_conv_3x3": (SepConvOp, dict(k=3)),
    "sep_conv_5x5": (SepConvOp, dict(k=5)),
    "sep_conv_7x7": (SepConvOp, dict(k=7)),
    "dil_conv_3x3": (DilConvOp, dict(k=3)),
    "dil_conv_5x5": (DilConvOp, dict(k=5)),
    "avg_pool_3x3": (PoolOp, dict(kind="avg")),
    "max_pool_3x3": (PoolOp, dict(kind="max")),
    "identity": (IdentityOp, {}),
    "conv_1x1": (IdentityOp, dict(force_conv=True)),
    "1x7_7x1": (ConvPairOp, dict(k=7)),
}


def op_names() -> list[str]:
    """Every op a genotype may name."""
    return sorted(OPS)


def build_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    cls, kw = OPS[name]
    return cls(c_in, c_out, stride, **kw)


def op_cx(cx: Cx, name: str, c_in: int, c_out: int, stride: int) -> Cx:
    cls, kw = OPS[name]
    return cls.complexity(cx, c_in, c_out, stride, **kw)
