"""The benchmark networks of the four guidelines of ShuffleNet v2 (Ma et al. 2018, §2, Tables 1-4).

Each network is 10 identical blocks on a 56x56 input (Tables 1-3 captions). Choices the paper
leaves open, and how they are made here:

- Plain convolutions without bias, BN or activation (G1-G3): the paper names only the convs, and
  an activation would add element-wise cost that differs between rows, mixing G4 into G1-G3.
  G4's bottleneck has no BN either: at inference BN folds into the conv (the paper's library
  fuses it), so it changes neither MACs nor memory access.
- x2 and x4 multiply every channel count by 2 and 4; the paper does not spell this out.
- G2 ARM g=8: the printed c=180 is not divisible by 8; 184 is used (c^2/8 = 4232, 3.3% above the
  g=1 row, against 3872 for 176).
- G3 (exact widths not given): a k-fragment-series block is k 1x1 convs c'->c' with
  c' = round(c / sqrt(k)), so k*c'^2 ~ c^2; a k-fragment-parallel block runs k 1x1 convs c->c/k
  side by side on the same input and concatenates them, so its MACs equal the 1-fragment block's
  exactly. The parallel block is the same arithmetic as one conv, only split into fragments.
- G4 "c is the number of channels in the unit": a ResNet bottleneck with in/out width c and
  bottleneck width c/4 (expansion 4, He et al. 2016). This is the reading that fits the paper's
  ARM speeds: c=32 gives 34 M MACs per network at 56.7 images/s (1.9 GMAC/s); reading c as the
  bottleneck width would need 546 M MACs at 56.7 images/s (31 GMAC/s), ten times what Table 3's
  plain 1x1 convs reach on the same phone (about 5 GMAC/s).
- Every network starts with :class:`TakeChannels`, a zero-cost view, so that all networks of a
  table can take the one shared input tensor that a side-by-side comparison feeds them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, concat_cx, conv2d_cx, elementwise_cx

Platform = Literal["gpu", "arm"]
PLATFORMS = ("arm", "gpu")
TABLES = ("G1", "G2", "G3", "G4")
SCALES = (1, 2, 4)
BLOCKS = 10  # blocks stacked in every benchmark network (§2, Tables 1-4)
INPUT_HW = 56  # input height and width (captions of Tables 1-3)


def _conv1x1(c_in: int, c_out: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 1, groups=groups, bias=False)


class TakeChannels(nn.Module):
    """View the first b*c*h*w elements of the input as (b, c, h, w): no copy, no cost."""

    def __init__(self, c: int) -> None:
        super().__init__()
        _check_positive("TakeChannels", c=c)
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c_in, h, w = x.shape
        if c_in < self.c:
            raise BadValue(
                f"TakeChannels: the input has {c_in} channels, fewer than the {self.c} needed"
            )
        return x.reshape(-1)[: b * self.c * h * w].view(b, self.c, h, w)

    @staticmethod
    def complexity(cx: Cx, c: int) -> Cx:
        if cx.c < c:
            raise BadValue(f"TakeChannels: the input has {cx.c} channels, fewer than {c}")
        return cx.add(c=c)


class G1Block(nn.Module):
    """G1 block (Ma et al. 2018, Table 1): 1x1 conv c1->c2, then 1x1 conv c2->c1 (plain convs)."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        _check_positive("G1Block", c1=c1, c2=c2)
        self.conv1 = _conv1x1(c1, c2)
        self.conv2 = _conv1x1(c2, c1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))

    @staticmethod
    def complexity(cx: Cx, c1: int, c2: int) -> Cx:
        return conv2d_cx(conv2d_cx(cx, c2, 1), c1, 1)


class G2Layer(nn.Conv2d):
    """G2 layer (Ma et al. 2018, Table 2): one pointwise group conv c->c with g groups."""

    def __init__(self, c: int, g: int) -> None:
        _check_positive("G2Layer", c=c, g=g)
        if c % g:
            raise BadValue(f"G2Layer: c={c} is not divisible by g={g}; choose c a multiple of g")
        super().__init__(c, c, 1, groups=g, bias=False)

    @staticmethod
    def complexity(cx: Cx, c: int, g: int) -> Cx:
        return conv2d_cx(cx, c, 1, groups=g)


Arrangement = Literal["series", "parallel"]


class G3Block(nn.Module):
    """G3 block (Ma et al. 2018, App. Fig. 1): k 1x1 convs c->c in series, or c->c/k in parallel + concat."""

    def __init__(self, c: int, fragments: int, arrangement: Arrangement) -> None:
        super().__init__()
        _check_g3(c, fragments, arrangement)
        self.parallel = arrangement == "parallel"
        c_out = c // fragments if self.parallel else c
        self.fragments = nn.ModuleList(_conv1x1(c, c_out) for _ in range(fragments))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:
            return torch.cat([f(x) for f in self.fragments], dim=1)
        for f in self.fragments:
            x = f(x)
        return x

    @staticmethod
    def complexity(cx: Cx, c: int, fragments: int, arrangement: Arrangement) -> Cx:
        _check_g3(c, fragments, arrangement)
        if arrangement == "parallel":
            return concat_cx(cx, [conv2d_cx(cx.branch(), c // fragments, 1)] * fragments)
        for _ in range(fragments):
            cx = conv2d_cx(cx, c, 1)
        return cx


class G4Bottleneck(nn.Module):
    """G4 unit (Ma et al. 2018, Table 4): bottleneck 1x1 c->c/4, 3x3, 1x1 c/4->c, [ReLU], [+x]."""

    def __init__(self, c: int, relu: bool, shortcut: bool) -> None:
        super().__init__()
        _check_g4(c)
        mid = c // 4
        self.conv1 = nn.Conv2d(c, mid, 1, bias=False)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(mid, c, 1, bias=False)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
        if self.shortcut:
            y = y + x
        return self.act(y)

    @staticmethod
    def complexity(cx: Cx, c: int, relu: bool, shortcut: bool) -> Cx:
        _check_g4(c)
        mid = c // 4

        def act(s: Cx) -> Cx:
            return elementwise_cx(s) if relu else s

        y = act(conv2d_cx(cx.branch(), mid, 1))
        y = act(conv2d_cx(y, mid, 3))
        y = conv2d_cx(y, c, 1)
        out = cx.merge([y], y.c, y.h, y.w)
        if shortcut:
            out = elementwise_cx(out, n_inputs=2)  # y + x
        return act(out)


class BenchmarkNet(nn.Sequential):
    """Guideline benchmark network (Ma et al. 2018, §2): take c_in channels, then 10 equal blocks."""

    def __init__(
        self, c_in: int, block: type[nn.Module], args: dict[str, Any], blocks: int = BLOCKS
    ) -> None:
        _check_positive("BenchmarkNet", blocks=blocks)
        super().__init__(TakeChannels(c_in), *(block(**args) for _ in range(blocks)))

    @staticmethod
    def complexity(
        cx: Cx, c_in: int, block: type[nn.Module], args: dict[str, Any], blocks: int = BLOCKS
    ) -> Cx:
        cx = TakeChannels.complexity(cx, c_in)
        for _ in range(blocks):
            cx = block.complexity(cx, **args)
        return cx


# ---- the tables of §2, as data -----------------------------------------------------------------

# Table 1 (G1): c1:c2 -> (c1, c2) at x1.
G1_WIDTHS = {
    "gpu": {"1:1": (128, 128), "1:2": (90, 180), "1:6": (52, 312), "1:12": (36, 432)},
    "arm": {"1:1": (32, 32), "1:2": (22, 44), "1:6": (13, 78), "1:12": (9, 108)},
}
# Table 2 (G2): groups g -> c at x1 (ARM g=8: 184 for the printed 180, see the module docstring).
G2_WIDTHS = {
    "gpu": {1: 128, 2: 180, 4: 256, 8: 360},
    "arm": {1: 64, 2: 90, 4: 128, 8: 184},
}
# Table 3 (G3): c of the 1-fragment block at x1, and the blocks as (label, fragments, arrangement).
G3_WIDTH = {"gpu": 128, "arm": 64}
G3_BLOCKS = (
    ("1-fragment", 1, "series"),
    ("2-fragment-series", 2, "series"),
    ("4-fragment-series", 4, "series"),
    ("2-fragment-parallel", 2, "parallel"),
    ("4-fragment-parallel", 4, "parallel"),
)
# Table 4 (G4): c = 32 at x1 on both platforms; rows (relu, shortcut) in the paper's order.
G4_WIDTH = {"gpu": 32, "arm": 32}
G4_ROWS = ((True, True), (True, False), (False, True), (False, False))


@dataclass(frozen=True)
class BenchmarkSpec:
    """One row of a guideline table: its label and the arguments of its :class:`BenchmarkNet`."""

    label: str
    c_in: int
    block: type[nn.Module]
    args: dict[str, Any]

    def build(self) -> BenchmarkNet:
        return BenchmarkNet(self.c_in, self.block, self.args)

    def cost(self, hw: int = INPUT_HW) -> Cx:
        """Analytic cost of the network on a (c_in, hw, hw) input at batch 1."""
        return BenchmarkNet.complexity(Cx(self.c_in, hw, hw), self.c_in, self.block, self.args)


def series_width(c: int, fragments: int) -> int:
    """Width c' of a k-fragment-series block with the 1-fragment block's MACs: k*c'^2 ~ c^2."""
    return round(c / math.sqrt(fragments))


def benchmark_specs(table: str, platform: str, scale: int) -> list[BenchmarkSpec]:
    """The rows of guideline table G1-G4 for a platform's widths ("gpu" or "arm") at x1/x2/x4."""
    table, platform = check_table(table), check_platform(platform)
    if scale not in SCALES:
        raise BadValue(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale}")
    s = scale
    if table == "G1":
        return [
            BenchmarkSpec(r, c1 * s, G1Block, dict(c1=c1 * s, c2=c2 * s))
            for r, (c1, c2) in G1_WIDTHS[platform].items()
        ]
    if table == "G2":
        return [
            BenchmarkSpec(f"g={g}", c * s, G2Layer, dict(c=c * s, g=g))
            for g, c in G2_WIDTHS[platform].items()
        ]
    if table == "G3":
        c = G3_WIDTH[platform] * s
        specs = []
        for label, k, arrangement in G3_BLOCKS:
            w = series_width(c, k) if arrangement == "series" else c
            specs.append(
                BenchmarkSpec(label, w, G3Block, dict(c=w, fragments=k, arrangement=arrangement))
            )
        return specs
    c = G4_WIDTH[platform] * s
    return [
        BenchmarkSpec(
            f"relu={'yes' if relu else 'no'} shortcut={'yes' if sc else 'no'}",
            c,
            G4Bottleneck,
            dict(c=c, relu=relu, shortcut=sc),
        )
        for relu, sc in G4_ROWS
    ]


def check_table(table: str) -> str:
    t = str(table).upper()
    if t not in TABLES:
        raise BadValue(f"unknown guideline table {table!r}; choose one of {', '.join(TABLES)}")
    return t


def check_platform(platform: str) -> str:
    p = str(platform).lower()
    if p not in PLATFORMS:
        raise BadValue(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
    return p


def _check_positive(name: str, **values: int) -> None:
    for k, v in values.items():
        if v < 1:
            raise BadValue(f"{name}: {k} must be >= 1, got {v}")


def _check_g3(c: int, fragments: int, arrangement: str) -> None:
    _check_positive("G3Block", c=c, fragments=fragments)
    if arrangement not in ("series", "parallel"):
        raise BadValue(f"G3Block: arrangement must be 'series' or 'parallel', got {arrangement!r}")
    if arrangement == "parallel" and c % fragments:
        raise BadValue(
            f"G3Block: a parallel block splits c={c} outputs into {fragments} fragments; "
            f"choose c a multiple of {fragments}"
        )


def _check_g4(c: int) -> None:
    if c < 4 or c % 4:
        raise BadValue(f"G4Bottleneck: c={c} must be a positive multiple of 4 (bottleneck c/4)")
