"""CondenseNet units (Huang, Liu, van der Maaten, Weinberger, CVPR 2018): learned group convolution.

Training time, :class:`LearnedGroupConv` (BN-ReLU-1x1) keeps a full 1x1 weight and a 0/1
``mask`` buffer of the same shape. Its G output groups are the strided sets ``g::G`` (the weight
shuffle of the official code, ShichenLiu/CondenseNet ``layers.py``). The first half of training
is split into C - 1 condensing stages; stage s starts when ``2 * progress >= s / (C - 1)``, and at
each stage every group drops the ``in_channels / C`` inputs with the smallest summed |w| among the
inputs it still has, so each group keeps 1/C of the inputs after the last stage (paper §3.1).
A group-lasso term, ``sum_g sum_j sqrt(sum_{i in g} w_ij^2)``, pushes whole input columns of a
group to zero while there are stages left (weight 1e-5 on ImageNet: ``GROUP_LASSO_WEIGHT``).

A training loop drives it with two calls (progress = epoch fraction in [0, 1])::

    condense_step(model, progress)                     # before each step: drop on stage change
    loss = criterion(model(x), y) + GROUP_LASSO_WEIGHT * group_lasso(model)

Test time, :class:`CondenseConv` is the converted layer (paper Fig. 1 right): an index layer
(``index_select`` of the kept inputs, each group's in a block), BN-ReLU, a standard grouped 1x1
conv with G groups, and a channel shuffle that restores the ``g::G`` output order.
:class:`ChannelIndex` is the index of the condensed classifier ("CondenseLinear": the FC keeps
the 50 % of its inputs with the largest summed |w|).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, act_cx, check_groups, concat_cx, conv2d_cx, norm_cx, shuffle_cx
from cnnlab.ops.shuffle import channel_shuffle

# Group-lasso weight of the ImageNet recipe (official ``--group-lasso-lambda 0.00001``).
GROUP_LASSO_WEIGHT = 1e-5


def check_condense(c_in: int, c_out: int, groups: int, condense_factor: int) -> None:
    """Refuse a learned group conv whose channels do not split into its groups and stages."""
    if condense_factor < 1:
        raise BadValue(f"condense_factor C must be >= 1, got {condense_factor}")
    check_groups("LearnedGroupConv", c_in, c_out, groups)
    if c_in % condense_factor:
        raise BadValue(
            f"LearnedGroupConv: in_channels={c_in} must be divisible by condense_factor="
            f"{condense_factor} (each stage drops in_channels/C inputs per group)"
        )


def condense_stage(progress: float, condense_factor: int) -> int:
    """Condensing stages reached at ``progress``: stage s >= 1 starts at 2*progress >= s/(C-1)."""
    if not 0.0 <= progress <= 1.0:
        raise BadValue(f"progress must be in [0, 1] (fraction of training done), got {progress}")
    last = condense_factor - 1
    return sum(1 for s in range(1, last + 1) if progress * 2 >= s / last)


def kept_width(c_in: int, groups: int, condense_factor: int) -> int:
    """Inputs of the converted layer: G groups of in_channels/C kept inputs each."""
    return c_in // condense_factor * groups


class LearnedGroupConv(nn.Module):
    """Learned group conv (Huang et al. 2018, §3.1): BN-ReLU-1x1 with a full weight and a mask."""

    def __init__(self, c_in: int, c_out: int, groups: int = 4, condense_factor: int = 4) -> None:
        super().__init__()
        check_condense(c_in, c_out, groups, condense_factor)
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.register_buffer("mask", torch.ones(c_out, c_in, 1, 1))
        self.register_buffer("stage", torch.zeros((), dtype=torch.long))
        self.c_in, self.c_out = c_in, c_out
        self.groups, self.condense_factor = groups, condense_factor

    @property
    def done(self) -> bool:
        """True once all C - 1 condensing stages have run (each group keeps in_channels/C)."""
        return int(self.stage) >= self.condense_factor - 1

    def masked_weight(self) -> torch.Tensor:
        return self.conv.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.relu(self.norm(x)), self.masked_weight())

    def group_mask(self) -> torch.Tensor:
        """(G, in_channels) 0/1: the inputs each output group still uses."""
        return self.mask[: self.groups, :, 0, 0]

    @torch.no_grad()
    def condense(self) -> None:
        """Run the next condensing stage: each group drops its in_channels/C weakest inputs."""
        if self.done:
            raise BadValue(f"LearnedGroupConv: all {self.condense_factor - 1} stages have run")
        delta, g_count = self.c_in // self.condense_factor, self.groups
        w = self.masked_weight().abs()[:, :, 0, 0]
        # output k*G + g is the k-th member of group g: summed |w| per (group, input)
        importance = w.view(self.c_out // g_count, g_count, self.c_in).sum(0)
        keep = self.group_mask().clone()
        for g in range(g_count):
            kept = keep[g].nonzero().flatten()
            keep[g, kept[importance[g, kept].argsort(stable=True)[:delta]]] = 0.0
        self.mask.copy_(keep.repeat(self.c_out // g_count, 1)[:, :, None, None])
        self.stage += 1

    def lasso(self) -> torch.Tensor:
        """Group lasso sum_g sum_j sqrt(sum_{i in g} w_ij^2); zero once condensing is done.

        The squared sums are clamped at 1e-6 (as the official code) so that the gradient of the
        square root stays finite on columns that were dropped.
        """
        if self.done:
            return self.conv.weight.new_zeros(())
        w2 = self.masked_weight()[:, :, 0, 0].pow(2)
        per_group = w2.view(self.c_out // self.groups, self.groups, self.c_in).sum(0)
        return per_group.clamp(min=1e-6).sqrt().sum()

    @staticmethod
    def complexity(
        cx: Cx, c_in: int, c_out: int, groups: int = 4, condense_factor: int = 4, *, folded=False
    ) -> Cx:
        check_condense(c_in, c_out, groups, condense_factor)
        cx = act_cx(norm_cx(cx, folded=folded), "relu")  # pre-activation: BN reads the concat
        weights = c_out * c_in
        cx = cx.add(memory_access=3 * weights)  # weight * mask: read both, write the product
        return conv2d_cx(cx, c_out, 1)


class CondenseConv(nn.Module):
    """Test-time learned group conv (Huang et al. 2018, Fig. 1): index, BN-ReLU, G-conv, permute."""

    def __init__(self, c_in: int, c_out: int, groups: int = 4, condense_factor: int = 4) -> None:
        super().__init__()
        check_condense(c_in, c_out, groups, condense_factor)
        width = kept_width(c_in, groups, condense_factor)
        self.register_buffer("index", torch.arange(width) % c_in)
        self.norm = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(width, c_out, 1, groups=groups, bias=False)
        self.c_in, self.c_out, self.groups = c_in, c_out, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.index_select(x, 1, self.index)
        x = self.conv(self.relu(self.norm(x)))
        return channel_shuffle(x, self.groups)

    @torch.no_grad()
    def load_learned(self, lgc: LearnedGroupConv) -> None:
        """Take the kept inputs, BN statistics and weights of a fully condensed learned conv.

        Group g's kept inputs fill index block g; its outputs g::G become rows g*d..(g+1)*d of the
        grouped conv, which the shuffle sends back to positions g::G.
        """
        if (lgc.c_in, lgc.c_out, lgc.groups) != (self.c_in, self.c_out, self.groups):
            raise BadValue(
                f"CondenseConv({self.c_in}, {self.c_out}, groups={self.groups}) cannot take a "
                f"LearnedGroupConv({lgc.c_in}, {lgc.c_out}, groups={lgc.groups})"
            )
        if not lgc.done:
            raise BadValue(
                f"LearnedGroupConv is at stage {int(lgc.stage)} of {lgc.condense_factor - 1}; "
                "condense it fully first (condense_step(model, 0.5) runs all stages)"
            )
        g_count, d = self.groups, self.c_out // self.groups
        kept = [m.nonzero().flatten() for m in lgc.group_mask()]
        self.index.copy_(torch.cat(kept))
        w = lgc.masked_weight()
        for g in range(g_count):
            self.conv.weight[g * d : (g + 1) * d] = w[g::g_count, kept[g]]
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(self.norm, name).copy_(getattr(lgc.norm, name)[self.index])
        self.norm.num_batches_tracked.copy_(lgc.norm.num_batches_tracked)

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, groups: int = 4, condense_factor: int = 4) -> Cx:
        check_condense(c_in, c_out, groups, condense_factor)
        width = kept_width(c_in, groups, condense_factor)
        cx = index_select_cx(cx, width)
        cx = act_cx(norm_cx(cx, folded=False), "relu")  # BN reads the index layer's output
        return shuffle_cx(conv2d_cx(cx, c_out, 1, groups=groups))


def index_select_cx(cx: Cx, width: int) -> Cx:
    """index_select along channels: reads the input and the index, writes ``width`` channels."""
    out = width * cx.h * cx.w
    return cx.add(c=width, memory_access=cx.numel + width + out)


class ChannelIndex(nn.Module):
    """Index of CondenseLinear (ShichenLiu/CondenseNet): keep int(keep*c_in) chosen channels."""

    def __init__(self, c_in: int, keep: float = 0.5) -> None:
        super().__init__()
        width = index_width(c_in, keep)
        self.register_buffer("index", torch.arange(width))
        self.c_in, self.c_out = c_in, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.index)

    @staticmethod
    def complexity(cx: Cx, c_in: int, keep: float = 0.5) -> Cx:
        return index_select_cx(cx, index_width(c_in, keep))


def index_width(c_in: int, keep: float) -> int:
    """Features kept by the condensed classifier: int(keep * c_in), as the official code."""
    if not 0.0 < keep <= 1.0:
        raise BadValue(f"CondenseLinear: keep must be in (0, 1], got {keep}")
    width = int(c_in * keep)
    if width < 1:
        raise BadValue(f"CondenseLinear: keep={keep} of {c_in} features leaves none")
    return width


def classifier_index(weight: torch.Tensor, keep: float = 0.5) -> torch.Tensor:
    """Inputs kept by CondenseLinear: the int(keep*in) columns of largest summed |w|, ascending."""
    width = index_width(weight.shape[1], keep)
    order = weight.detach().abs().sum(0).argsort(descending=True, stable=True)
    return order[:width].sort().values


class PreActConv(nn.Module):
    """BN-ReLU-conv (the ``Conv`` of the official code): CondenseNet's grouped 3x3 conv."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, groups: int = 1) -> None:
        super().__init__()
        check_groups("CondenseNet 3x3 conv", c_in, c_out, groups)
        self.norm = nn.BatchNorm2d(c_in)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.relu(self.norm(x)))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, k: int = 3, groups: int = 1, *, folded=False):
        cx = act_cx(norm_cx(cx, folded=folded), "relu")
        return conv2d_cx(cx, c_out, k, padding=k // 2, groups=groups)


class CondenseLayer(nn.Module):
    """CondenseNet layer (Huang et al. 2018, Fig. 1): learned G-group 1x1, G-group 3x3, concat.

    ``condensed=False`` builds the training-time layer (:class:`LearnedGroupConv`), True the
    converted test-time one (:class:`CondenseConv`). ``after_conv`` (the first layer, on the stem
    conv's output) only changes the count: a BN directly on a conv's output is folded
    (docs/conventions.md#memory-access), which the training-time layer's first BN is and the index
    layer's is not.
    """

    def __init__(
        self,
        c_in: int,
        growth: int,
        bottleneck: int = 4,
        group_1x1: int = 4,
        group_3x3: int = 4,
        condense_factor: int = 4,
        condensed: bool = True,
        after_conv: bool = False,
    ) -> None:
        super().__init__()
        hidden = bottleneck * growth
        unit = CondenseConv if condensed else LearnedGroupConv
        self.conv_1 = unit(c_in, hidden, group_1x1, condense_factor)
        self.conv_2 = PreActConv(hidden, growth, 3, group_3x3)
        self.c_in, self.c_out = c_in, c_in + growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv_2(self.conv_1(x))], 1)

    @staticmethod
    def complexity(
        cx: Cx,
        c_in: int,
        growth: int,
        bottleneck: int = 4,
        group_1x1: int = 4,
        group_3x3: int = 4,
        condense_factor: int = 4,
        condensed: bool = True,
        after_conv: bool = False,
    ) -> Cx:
        hidden = bottleneck * growth
        if condensed:
            y = CondenseConv.complexity(cx.branch(), c_in, hidden, group_1x1, condense_factor)
        else:
            y = LearnedGroupConv.complexity(
                cx.branch(), c_in, hidden, group_1x1, condense_factor, folded=after_conv
            )
        # the 3x3's BN directly follows the learned conv (folded), but not the shuffle
        y = PreActConv.complexity(y, hidden, growth, 3, group_3x3, folded=not condensed)
        return concat_cx(cx, [cx.branch(), y])


def learned_convs(model: nn.Module) -> list[LearnedGroupConv]:
    return [m for m in model.modules() if isinstance(m, LearnedGroupConv)]


def condense_step(model: nn.Module, progress: float) -> int:
    """Run every condensing stage that ``progress`` (fraction of training, in [0, 1]) has reached.

    Call it once per iteration before the forward pass. A jump over several stages runs each of
    them. Returns the number of layer stages run (0 when no stage changed).
    """
    ran = 0
    for m in learned_convs(model):
        target = condense_stage(progress, m.condense_factor)
        while int(m.stage) < target:
            m.condense()
            ran += 1
    return ran


def group_lasso(model: nn.Module) -> torch.Tensor:
    """The group-lasso terms of all learned group convs, summed (weight: ``GROUP_LASSO_WEIGHT``)."""
    terms = [m.lasso() for m in learned_convs(model)]
    if not terms:
        raise BadValue("group_lasso: the model has no LearnedGroupConv layers")
    return torch.stack(terms).sum()
