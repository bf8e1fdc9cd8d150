"""Interleaved group convolutions: IGCV1 (Zhang et al., ICCV 2017), IGCV3 (Sun et al., BMVC 2018).

IGCV1 (Zhang, Qi, Xiao, Wang 2017, Fig. 1): the ``c_out = L * M`` output channels form L primary
partitions of M channels. The primary group convolution is a kxk spatial conv with L groups; a
permutation gathers the m-th channel of every primary partition into the m-th secondary partition
(M partitions of L channels); the secondary group convolution is a 1x1 conv with M groups; a
second permutation puts the channels back in primary order. The permutations are the official
MXNet ``Reorder`` op (hellozting/InterleavedGroupConvolutions, ``src/reorder-inl.h``), which is
exactly a channel shuffle: ``Reorder(branch_factor=L)`` = ``channel_shuffle(x, L)``, and
``channel_shuffle(., M)`` undoes it when the width is L * M. Every output channel is connected to
every input channel by exactly one path (the paper's complementary condition).

BN placement. The official code applies BN + ReLU after the second permutation. BN and ReLU act
per channel, so they commute with a permutation; here BN sits directly after the secondary conv
(so it folds into it at deploy time) and the permutation back follows: the same function class.

IGCV2 (Xie et al., CVPR 2018; as the IGCV3 README summarises it): a channel-wise (depthwise) 3x3
conv followed by a chain of 1x1 group convs with permutations between them, the product of
structured sparse kernels W_L P_{L-1} ... P_1 W_1. With group sizes K_2..K_L and a shuffle by the
previous conv's group count before each 1x1 conv, an output channel reaches prod(K) input
channels, each by exactly one path; all C of them (the complementary condition) exactly when
prod(K) = C. The BN/activation placement inside the IGCV2 block is not verified: here the chain is
linear, with BN and ``act`` after the last conv, as in the IGCV1 block.

IGCV3 (Sun, Li, Liu, Wang 2018; homles11/IGCV3 ``symbols/igcv3.py``): MobileNet v2's inverted
bottleneck with both 1x1 convs grouped (G1 = G2 = 2) and permutations after them: 1x1 group conv
(expand, BN, *no* activation), permutation, 3x3 depthwise (BN, ReLU6), 1x1 group conv (project,
BN), permutation back. The released pretrained graph (``models/igcv3-symbol.json``) has no ReLU6
after the expansion either; it omits the last permutation, which only reorders channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.act import check_activation, get_activation
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import (
    Cx,
    act_cx,
    check_groups,
    conv2d_cx,
    elementwise_cx,
    norm_act_cx,
    norm_cx,
)
from cnnlab.ops.shuffle import ChannelShuffle, channel_shuffle


class InterleavedGroupConv(nn.Module):
    """IGC block (Zhang et al. 2017, Fig. 1): kxk conv L groups, permute, 1x1 conv M groups, back.

    ``L`` primary partitions of ``M`` channels each (``c_out = L * M``); BN after the secondary
    conv, then the permutation back and ``act`` (None: the block is linear up to BN).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        L: int,  # the paper's symbols L, M
        M: int,
        *,
        k: int = 3,
        stride: int = 1,
        act: str | None = "relu",
    ) -> None:
        super().__init__()
        _check_igc(c_in, c_out, L, M, k, stride)
        check_activation(act)
        self.L, self.M = L, M
        self.primary = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=L, bias=False)
        self.secondary = nn.Conv2d(c_out, c_out, 1, groups=M, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channel_shuffle(self.primary(x), self.L)  # m-th channel of each primary partition
        y = self.bn(self.secondary(y))
        return self.act(channel_shuffle(y, self.M))  # back to primary order

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        L: int,
        M: int,
        *,
        k: int = 3,
        stride: int = 1,
        act: str | None = "relu",
    ) -> Cx:
        _check_igc(c_in, c_out, L, M, k, stride)
        cx = conv2d_cx(cx, c_out, k, stride=stride, padding=(k - 1) // 2, groups=L)
        cx = ChannelShuffle.complexity(cx, L)
        cx = norm_cx(conv2d_cx(cx, c_out, 1, groups=M))
        return act_cx(ChannelShuffle.complexity(cx, M), act)


class IGCResidualBlock(nn.Module):
    """IGCNet residual block ("+Ident.", resnet_igc_imgnet_d18): IGC-BN-ReLU, IGC-BN, add, ReLU.

    The shortcut is the identity, or, when the width changes, a 1x1 conv with ``L`` groups and
    the block's stride, followed by BN (the released IGC-L4M32/L16M16/L100M2 graphs). The
    secondary partitions number ``M = c_out // L``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, L: int) -> None:
        super().__init__()
        M = _secondary(c_out, L)
        self.igc1 = InterleavedGroupConv(c_in, c_out, L, M, stride=stride)
        self.igc2 = InterleavedGroupConv(c_out, c_out, L, M, act=None)
        self.shortcut = _projection(c_in, c_out, stride, L)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.igc2(self.igc1(x)))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, stride: int, L: int) -> Cx:
        M = _secondary(c_out, L)
        y = InterleavedGroupConv.complexity(cx.branch(), c_in, c_out, L, M, stride=stride)
        y = InterleavedGroupConv.complexity(y, c_out, c_out, L, M, act=None)
        branches = [y]
        if c_in != c_out or stride != 1:
            proj = ConvNormAct.complexity(cx.branch(), c_in, c_out, 1, stride, groups=L, act=None)
            branches.append(proj)
        out = elementwise_cx(cx.merge(branches, y.c, y.h, y.w), n_inputs=2)
        return act_cx(out, "relu")


class InterleavedStructuredSparseConv(nn.Module):
    """IGCV2 block (Xie et al. 2018): depthwise 3x3, then per K: shuffle, 1x1 conv in groups of K.

    ``ks`` are the group sizes K_2..K_L of the 1x1 convs (groups = c / K); BN and ``act`` follow
    the last conv. :func:`structured_sparse_receptive_field` gives each output's input channels.
    """

    def __init__(
        self, c: int, ks: tuple[int, ...], *, stride: int = 1, act: str | None = "relu"
    ) -> None:
        super().__init__()
        _check_igcv2(c, ks, stride)
        check_activation(act)
        # shuffle by the previous conv's group count; 1 or c groups would be the identity
        self.shuffles = [g if 1 < g < c else None for g in _igcv2_shuffles(c, ks)]
        self.dw = nn.Conv2d(c, c, 3, stride, 1, groups=c, bias=False)
        self.pw = nn.ModuleList(nn.Conv2d(c, c, 1, groups=c // k, bias=False) for k in ks)
        self.bn = nn.BatchNorm2d(c)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x)
        for groups, conv in zip(self.shuffles, self.pw):
            y = conv(y if groups is None else channel_shuffle(y, groups))
        return self.act(self.bn(y))

    @staticmethod
    def complexity(
        cx: Cx, c: int, ks: tuple[int, ...], *, stride: int = 1, act: str | None = "relu"
    ) -> Cx:
        _check_igcv2(c, ks, stride)
        cx = conv2d_cx(cx, c, 3, stride=stride, padding=1, groups=c)
        for groups, k in zip(_igcv2_shuffles(c, ks), ks):
            if 1 < groups < c:
                cx = ChannelShuffle.complexity(cx, groups)
            cx = conv2d_cx(cx, c, 1, groups=c // k)
        return norm_act_cx(cx, True, act)


def structured_sparse_receptive_field(c: int, ks: tuple[int, ...]) -> int:
    """Input channels one output of an IGCV2 block reaches: prod(K), all C when prod(K) = C."""
    _check_igcv2(c, ks, 1)
    return math.prod(ks)


class IGCV3Block(nn.Module):
    """IGCV3 block (Sun et al. 2018): 1x1 GConv G1 (linear), permute, dw3x3, 1x1 GConv G2, permute.

    Expansion ``t`` as MobileNet v2 (hidden = round(c_in * t); the expansion conv exists also
    at t = 1, as in the official code); residual add when stride 1 and c_in == c_out.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        t: float,
        *,
        g1: int = 2,
        g2: int = 2,
        act: str = "relu6",
    ) -> None:
        super().__init__()
        hidden = _check_igcv3(c_in, c_out, stride, t, g1, g2)
        self.use_res = stride == 1 and c_in == c_out
        self.expand = ConvNormAct(c_in, hidden, 1, groups=g1, act=None)
        self.shuffle1 = ChannelShuffle(g1)
        self.dw = ConvNormAct(hidden, hidden, 3, stride, groups=hidden, act=act)
        self.project = ConvNormAct(hidden, c_out, 1, groups=g2, act=None)
        self.shuffle2 = ChannelShuffle(c_out // g2)  # the inverse of channel_shuffle(., g2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(self.shuffle1(self.expand(x)))
        y = self.shuffle2(self.project(y))
        return x + y if self.use_res else y

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        c_out: int,
        stride: int,
        t: float,
        *,
        g1: int = 2,
        g2: int = 2,
        act: str = "relu6",
    ) -> Cx:
        hidden = _check_igcv3(c_in, c_out, stride, t, g1, g2)
        y = ConvNormAct.complexity(cx.branch(), c_in, hidden, 1, groups=g1, act=None)
        y = ChannelShuffle.complexity(y, g1)
        y = ConvNormAct.complexity(y, hidden, hidden, 3, stride, groups=hidden, act=act)
        y = ConvNormAct.complexity(y, hidden, c_out, 1, groups=g2, act=None)
        y = ChannelShuffle.complexity(y, c_out // g2)
        out = cx.merge([y], y.c, y.h, y.w)
        return elementwise_cx(out, 2) if stride == 1 and c_in == c_out else out


def _projection(c_in: int, c_out: int, stride: int, groups: int) -> nn.Module:
    if c_in == c_out and stride == 1:
        return nn.Identity()
    return ConvNormAct(c_in, c_out, 1, stride, groups=groups, act=None)


def _secondary(c_out: int, L: int) -> int:
    if L < 1 or c_out % L:
        raise BadValue(
            f"IGCResidualBlock: c_out={c_out} is not divisible by L={L} primary partitions; "
            "choose c_out a multiple of L"
        )
    return c_out // L


def _check_igc(c_in: int, c_out: int, L: int, M: int, k: int, stride: int) -> None:
    name = "InterleavedGroupConv"
    if L < 1 or M < 1 or c_out != L * M:
        raise BadValue(
            f"{name}: c_out={c_out} must equal L * M (L={L} primary partitions of M={M} "
            "channels); choose c_out = L * M"
        )
    check_groups(f"{name} primary conv (L={L} groups)", c_in, c_out, L)
    if k < 1 or k % 2 == 0 or stride < 1:
        raise BadValue(f"{name}: kernel must be odd and >= 1 and stride >= 1; got k={k}, {stride=}")


def _check_igcv3(c_in: int, c_out: int, stride: int, t: float, g1: int, g2: int) -> int:
    """Refuse an impossible IGCV3 block; return its hidden (expanded) width."""
    if stride not in (1, 2):
        raise BadValue(f"IGCV3Block: stride must be 1 or 2, got {stride}")
    hidden = int(round(c_in * t))
    if t <= 0 or hidden < 1:
        raise BadValue(f"IGCV3Block: expansion t={t} on {c_in} channels leaves no width")
    check_groups(f"IGCV3Block expansion (G1={g1} groups)", c_in, hidden, g1)
    check_groups(f"IGCV3Block projection (G2={g2} groups)", hidden, c_out, g2)
    return hidden


def _igcv2_shuffles(c: int, ks: tuple[int, ...]) -> list[int]:
    """Groups of the shuffle before each 1x1 conv: the previous conv's group count c / K."""
    return [c // k for k in (1, *ks[:-1])]


def _check_igcv2(c: int, ks: tuple[int, ...], stride: int) -> None:
    """Every prefix product of the group sizes must divide C (else the interleaving is ragged)."""
    if stride not in (1, 2) or not ks or min(ks) < 1:
        raise BadValue(
            f"InterleavedStructuredSparseConv: need stride 1 or 2 and group sizes >= 1; "
            f"got stride={stride}, ks={ks}"
        )
    for i in range(1, len(ks) + 1):
        if c % math.prod(ks[:i]):
            raise BadValue(
                f"InterleavedStructuredSparseConv: the group sizes {ks[:i]} multiply to "
                f"{math.prod(ks[:i])}, which does not divide c={c}; choose K's whose running "
                "products divide c (prod(K) = c for the complementary condition)"
            )
