"""ShuffleNet v1 (Zhang, Zhou, Lin, Sun; CVPR 2018), declared as the paper's Table 1.

Conv1 3x3 s2, max pool 3x3 s2, Stages 2/3/4 of 4/8/4 :class:`ShuffleV1Unit` (the first of each
with stride 2; the first pointwise conv of the very first unit is not grouped), global pool, FC.
There is no Conv5 (that is ShuffleNet v2's addition).

Widths. "ShuffleNet s x" scales the number of filters by s (§4.1.1). The 1x widths are Table 1.
The official Megvii code (megvii-model/ShuffleNet-Series) publishes 0.5x/1.5x/2.0x widths for
g=3 and g=8 only; they are used as published (:data:`OFFICIAL`). Every other (g, s) scales
Table 1 by s (``int(c * s)``) with the Conv1 width of :data:`SCALED_CONV1`. Where a scaled width
cannot be built, that width is adjusted, never the tables: a stage width c with c or its
bottleneck c // 4 not a multiple of g becomes the nearest width where both are (ties up: g=2 at
0.25x/0.5x 100 -> 98, g=4 136 -> 144), and a Conv1 width that is not a multiple of g becomes the
nearest multiple (g=8 at 0.25x, 12 -> 16, as in the official 0.5x g=8 model).
:func:`scaled_widths` applies both rules.

Paper figures: Table 1 (1x), Table 2 (0.5x, 0.25x), Table 5 (1.5x, 2x, SE, all g=3); params and the
1.5x/2x g=8 figures from the Megvii README. Five variants carry a documented exception in
:data:`_EXCEPTIONS`: the computed figure and why it differs from the printed one.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.shufflenet_v1 import ShuffleV1Unit
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.act import check_activation
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import MaxPool

# Table 1 of the paper: output channels of Stage2, Stage3, Stage4 at 1x; Conv1 has 24.
#   g: (stage2, stage3, stage4)
TABLE1 = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
CONV1_1X = 24
REPEATS = (4, 8, 4)  # units per stage 2/3/4; the first of each has stride 2
GROUPS = tuple(TABLE1)

# Official Megvii configs (network.py), the only published widths other than 1x.
#   (g, s): (conv1, stage2, stage3, stage4)
OFFICIAL = {
    (3, 0.5): (12, 120, 240, 480),
    (3, 1.5): (24, 360, 720, 1440),
    (3, 2.0): (48, 480, 960, 1920),
    (8, 0.5): (16, 192, 384, 768),
    (8, 1.5): (24, 576, 1152, 2304),
    (8, 2.0): (48, 768, 1536, 3072),
}
# Conv1 width of the scaled variants without an official config: as the official ones at
# 0.5x/1.5x/2.0x; 0.25x keeps 12 (Conv1 = 6 would give about 11 M MACs, not the paper's 13 M).
SCALED_CONV1 = {0.25: 12, 0.5: 12, 1.0: CONV1_1X, 1.5: 24, 2.0: 48}
WIDTHS = tuple(SCALED_CONV1)


@dataclass(frozen=True, kw_only=True)
class ShuffleNetV1Config(NetConfig):
    """ShuffleNet v1: groups g, Conv1 width, stage widths and repeats, unit options.

    ``act`` names every activation (ReLU in the paper) from :mod:`cnnlab.ops.act`.
    """

    SMALL_INPUT = True

    groups: int = 3
    stem: int = CONV1_1X
    stage_channels: tuple[int, ...] = TABLE1[3]
    repeats: tuple[int, ...] = REPEATS
    se: bool = False
    se_reduction: int = 16
    act: str = "relu"

    def check(self) -> None:
        super().check()
        check_activation(self.act)
        if self.groups not in GROUPS:
            raise BadValue(
                f"groups={self.groups} is not one of Table 1's {', '.join(map(str, GROUPS))}"
            )
        if len(self.stage_channels) != len(self.repeats):
            raise BadValue(
                f"stage_channels {self.stage_channels} and repeats {self.repeats} must have the "
                "same length (one entry per stage)"
            )
        if min(self.stage_channels + (self.stem,)) < 1 or min(self.repeats) < 1:
            raise BadValue(
                f"ShuffleNet v1 widths and repeats must all be >= 1; got stem={self.stem}, "
                f"stage_channels={self.stage_channels}, repeats={self.repeats}"
            )


def plan(cfg: ShuffleNetV1Config) -> Plan:
    """Conv1 3x3 s2, max pool, stages of ShuffleV1Unit (first stride 2); the head pools (Table 1)."""
    stem = dict(c_in=cfg.in_chans, c_out=cfg.stem, k=3, stride=cfg.stem_stride(2), act=cfg.act)
    layers = [Layer("conv1", ConvNormAct, stem)]
    if not cfg.small_input:
        layers.append(Layer("maxpool", MaxPool, dict(k=3, stride=2, padding=1)))
    c_in = cfg.stem
    unit = dict(groups=cfg.groups, se=cfg.se, se_reduction=cfg.se_reduction, act=cfg.act)
    for s, (c, n) in enumerate(zip(cfg.stage_channels, cfg.repeats), start=2):
        for i in range(n):
            first = s == 2 and i == 0  # §3.3: the 24-channel input is too narrow to group
            args = dict(c_in=c_in, c_out=c, stride=2 if i == 0 else 1, grouped_first=not first)
            layers.append(Layer(f"stage{s}_{i}", ShuffleV1Unit, {**args, **unit}))
            c_in = c
    return Plan(layers, c_in)


FAMILY = Family("shufflenet_v1", ShuffleNetV1Config, plan)


def _nearest(v: int, valid) -> int:
    """The value nearest to ``v`` that satisfies ``valid``, ties going to the larger one."""
    for d in range(v):
        for c in (v + d, v - d):
            if valid(c):
                return c
    raise BadValue(f"no valid width near {v}")


def _stage_ok(c: int, g: int) -> bool:
    """A stage width ShuffleV1Unit can build with g groups: c and its bottleneck c // 4 divide."""
    return c >= 4 and c % g == 0 and (c // 4) % g == 0


def scaled_widths(groups: int, width: float) -> tuple[int, tuple[int, ...]]:
    """(Conv1, stage widths) of ShuffleNet ``width`` x with ``groups``: official or scaled.

    Scaled widths are ``int(c * width)`` of Table 1 and Conv1 from :data:`SCALED_CONV1`. A stage
    width whose bottleneck ``c // 4`` (or ``c``) is not a multiple of g becomes the nearest width
    that is (ties up; g=2: 100 -> 98, g=4: 136 -> 144); a Conv1 width that is not a multiple of g
    becomes the nearest multiple (ties up: g=8, 12 -> 16, as the official 0.5x g=8 model has).
    """
    if groups not in TABLE1 or width not in SCALED_CONV1:
        raise BadValue(
            f"no ShuffleNet v1 widths for groups={groups}, width={width}; groups must be one of "
            f"{GROUPS} and width one of {WIDTHS}"
        )
    if (groups, width) in OFFICIAL:
        stem, *stages = OFFICIAL[groups, width]
        return stem, tuple(stages)
    stages = tuple(_nearest(int(c * width), lambda c: _stage_ok(c, groups)) for c in TABLE1[groups])
    stem = _nearest(SCALED_CONV1[width], lambda c: c % groups == 0)
    return stem, stages


def config_for(groups: int, width: float, **kw) -> ShuffleNetV1Config:
    """The config of ShuffleNet ``width`` x (g = ``groups``), widths from :func:`scaled_widths`."""
    stem, stages = scaled_widths(groups, width)
    return ShuffleNetV1Config(groups=groups, stem=stem, stage_channels=stages, **kw)


# Paper MACs ("MFLOPs", millions; 1x: Table 1, 0.5x/0.25x: Table 2) and Table 2's top-1 err.
#   width: (MACs for g = 1, 2, 3, 4, 8), (top-1 err for g = 1, 2, 3, 4, 8)
_TABLE2 = {
    1.0: (("143", "140", "137", "133", "137"), ("33.6", "32.7", "32.6", "32.8", "32.4")),
    0.5: (("38",) * 5, ("45.1", "44.4", "43.2", "41.6", "42.3")),
    0.25: (("13",) * 5, ("57.1", "56.8", "55.0", "54.2", "52.7")),
}
# Table 5 of the paper (g=3 only):  (g, width): (MACs, top-1 err)
_TABLE5 = {(3, 1.5): ("292", "28.5"), (3, 2.0): ("524", "26.3")}
# The Megvii README (megvii-model/ShuffleNet-Series, ShuffleNetV1): params in millions (the paper
# prints none), and the two official models the paper does not list: (g, width): (MACs, top-1 err)
_README = "Megvii ShuffleNet-Series README"
_README_PARAMS = {
    (3, 0.5): "0.7",
    (8, 0.5): "1.0",
    (3, 1.0): "1.9",
    (8, 1.0): "2.4",
    (3, 1.5): "3.4",
    (8, 1.5): "4.3",
    (3, 2.0): "5.4",
    (8, 2.0): "6.5",
}
_README_ONLY = {(8, 1.5): ("290", "29.0"), (8, 2.0): ("522", "27.1")}
# Known mismatches with the printed MACs: (g, width): (computed MACs, why).
_EXCEPTIONS = {
    (4, 1.0): (
        "134.3",
        "Table 1 prints 133; its architecture gives 134.34 M, while g=1/2/3 reproduce 143/140/137 "
        "exactly with the same construction; the paper's small difference is unexplained",
    ),
    (8, 1.0): (
        "138.4",
        "Table 1 prints 137 (1.0% below, just within 1%); the Megvii README gives 138 M for this "
        "model, as computed here; the paper's small difference, like g=4's, is unexplained",
    ),
    (1, 0.5): (
        "38.52",
        "Table 2 prints 38; no official 0.5x g=1 widths exist and Table 1 x 0.5 (72/144/288, "
        "Conv1 12) gives 38.52 M, 1.4% high; the paper's exact widths are not published",
    ),
    (8, 0.5): (
        "40.47",
        "Table 2 prints 38; the official Megvii 0.5x g=8 model (Conv1 16, 192/384/768) gives "
        "40.47 M, and the Megvii README says 40 M",
    ),
    (8, 0.25): (
        "15.72",
        "Table 2 prints 13; Conv1 12 cannot feed g=8 (96 - 12 = 84 is not divisible by 8), so "
        "Conv1 is 16 as in the official 0.5x g=8 model (+1.6 M); Conv1 8 would give 12.43 M, "
        "also not 13; the paper's 0.25x widths are not published",
    ),
}


def _figures(g: int, width: float) -> PaperFigures | None:
    """The published figures of ShuffleNet ``width`` x (g), with a documented exception if any."""
    params = _README_PARAMS.get((g, width))
    if width in _TABLE2:
        macs, err = (col[GROUPS.index(g)] for col in _TABLE2[width])
        src = "Zhang et al. 2018, " + ("Tables 1 and 2" if width == 1.0 else "Table 2")
    elif (g, width) in _TABLE5:
        (macs, err), src = _TABLE5[g, width], "Zhang et al. 2018, Table 5"
    elif (g, width) in _README_ONLY:
        (macs, err), src = _README_ONLY[g, width], _README
    else:
        return None  # no published figures: scaled widths of this module's own construction
    src += f"; params: {_README}" if params and src != _README else ""
    computed, note = _EXCEPTIONS.get((g, width), (None, ""))
    return PaperFigures(src, macs, params, err, computed_macs=computed, note=note)


# The registered variants: every Table 1 group count at every width; widths from
# :func:`scaled_widths`, figures from :func:`_figures` (None where nothing is published).
#   name: (groups, width)
VARIANTS = {
    "shufflenet_v1_g1_x0_25": (1, 0.25),
    "shufflenet_v1_g2_x0_25": (2, 0.25),
    "shufflenet_v1_g3_x0_25": (3, 0.25),
    "shufflenet_v1_g4_x0_25": (4, 0.25),
    "shufflenet_v1_g8_x0_25": (8, 0.25),
    "shufflenet_v1_g1_x0_5": (1, 0.5),
    "shufflenet_v1_g2_x0_5": (2, 0.5),
    "shufflenet_v1_g3_x0_5": (3, 0.5),
    "shufflenet_v1_g4_x0_5": (4, 0.5),
    "shufflenet_v1_g8_x0_5": (8, 0.5),
    "shufflenet_v1_g1_x1_0": (1, 1.0),
    "shufflenet_v1_g2_x1_0": (2, 1.0),
    "shufflenet_v1_g3_x1_0": (3, 1.0),
    "shufflenet_v1_g4_x1_0": (4, 1.0),
    "shufflenet_v1_g8_x1_0": (8, 1.0),
    "shufflenet_v1_g1_x1_5": (1, 1.5),
    "shufflenet_v1_g2_x1_5": (2, 1.5),
    "shufflenet_v1_g3_x1_5": (3, 1.5),
    "shufflenet_v1_g4_x1_5": (4, 1.5),
    "shufflenet_v1_g8_x1_5": (8, 1.5),
    "shufflenet_v1_g1_x2_0": (1, 2.0),
    "shufflenet_v1_g2_x2_0": (2, 2.0),
    "shufflenet_v1_g3_x2_0": (3, 2.0),
    "shufflenet_v1_g4_x2_0": (4, 2.0),
    "shufflenet_v1_g8_x2_0": (8, 2.0),
}

for _name, (_g, _w) in VARIANTS.items():
    register_model(_name, FAMILY, config_for(_g, _w), paper=_figures(_g, _w))

register_model(
    "shufflenet_v1_g3_x2_0_se",
    FAMILY,
    config_for(3, 2.0, se=True),
    paper=PaperFigures("Zhang et al. 2018, Table 5", "527", None, "24.7"),
)
