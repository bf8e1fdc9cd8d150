"""ShuffleNet v2 (Ma, Zhang, Zheng, Sun; ECCV 2018), declared as the paper's Table 5.

"paper" layout follows the paper and the official Megvii code; "torchvision" reproduces
torchvision's first stage-2 unit (both stride-2 branches emit c_out/2), which changes the count
only where the stem width differs from half of stage 2 (1.0x: 144.9 M MACs instead of 145.8 M).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.shufflenet_v2 import LAYOUTS, ShuffleV2Unit
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.act import check_activation
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import MaxPool

# Table 5 of the paper: output channels of Conv1, Stage2, Stage3, Stage4, Conv5 per width.
#      width: (conv1, stage2, stage3, stage4, conv5)
WIDTHS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}
REPEATS = (4, 8, 4)  # units per stage 2/3/4; the first of each has stride 2


@dataclass(frozen=True, kw_only=True)
class ShuffleNetV2Config(NetConfig):
    """ShuffleNet v2: stem width, stage widths and repeats, conv5 width, unit options.

    ``act`` names every activation (ReLU in the paper) from :mod:`cnnlab.ops.act`.
    """

    SMALL_INPUT = True

    stem: int = 24
    stage_channels: tuple[int, ...] = (116, 232, 464)
    repeats: tuple[int, ...] = REPEATS
    conv5: int = 1024
    layout: str = "paper"
    se: bool = False
    se_reduction: int = 16
    extra_dw: bool = False
    act: str = "relu"

    def check(self) -> None:
        super().check()
        check_activation(self.act)
        if len(self.stage_channels) != len(self.repeats):
            raise BadValue(
                f"stage_channels {self.stage_channels} and repeats {self.repeats} must have the "
                "same length (one entry per stage)"
            )
        if min(self.repeats) < 1 or min(self.stage_channels + (self.stem, self.conv5)) < 1:
            raise BadValue("ShuffleNet v2 widths and repeats must all be >= 1")
        if self.layout not in LAYOUTS:
            raise BadValue(f"unknown layout={self.layout!r}; choose one of {', '.join(LAYOUTS)}")


def plan(cfg: ShuffleNetV2Config) -> Plan:
    """Conv1 3x3 s2, max pool, stages of ShuffleV2Unit (first stride 2), Conv5 1x1 (Table 5)."""
    stem = dict(c_in=cfg.in_chans, c_out=cfg.stem, k=3, stride=cfg.stem_stride(2), act=cfg.act)
    layers = [Layer("conv1", ConvNormAct, stem)]
    if not cfg.small_input:
        layers.append(Layer("maxpool", MaxPool, dict(k=3, stride=2, padding=1)))
    c_in = cfg.stem
    unit = dict(
        layout=cfg.layout,
        se=cfg.se,
        se_reduction=cfg.se_reduction,
        extra_dw=cfg.extra_dw,
        act=cfg.act,
    )
    for s, (c, n) in enumerate(zip(cfg.stage_channels, cfg.repeats), start=2):
        for i in range(n):
            args = dict(c_in=c_in, c_out=c, stride=2 if i == 0 else 1, **unit)
            layers.append(Layer(f"stage{s}_{i}", ShuffleV2Unit, args))
            c_in = c
    layers.append(Layer("conv5", ConvNormAct, dict(c_in=c_in, c_out=cfg.conv5, k=1, act=cfg.act)))
    return Plan(layers, cfg.conv5)


FAMILY = Family("shufflenet_v2", ShuffleNetV2Config, plan)


def config_for_width(width: float, **kw) -> ShuffleNetV2Config:
    """The Table 5 config for a width multiplier of 0.5, 1.0, 1.5 or 2.0."""
    stem, *stages, conv5 = WIDTHS[width]
    return ShuffleNetV2Config(stem=stem, stage_channels=tuple(stages), conv5=conv5, **kw)


_SRC = "Ma et al. 2018, Tables 5 and 8"
_HALF_NOTE = (
    "the paper prints 41 M; the architecture of Table 5 (and the official code) gives 40.48 M, "
    "the paper appears to round up"
)
_SE_NOTE = (
    "SE sits on the main branch after the last 1x1 conv of every unit with as many hidden units "
    "as the branch has channels, as in the official SE-ShuffleNet v2 code; this gives 593.8 M "
    "against the printed 597 M (the paper shows the block only in a figure)"
)

# The registered variants. Paper figures: Table 5 (FLOPs, weights) and Table 8 (top-1 err) of
# Ma et al. 2018; "_star" is ShuffleNet v2* (an extra 3x3 depthwise conv per branch), unprinted.
#   name: (config, paper figures)
VARIANTS = {
    "shufflenet_v2_x0_5": (
        config_for_width(0.5),
        PaperFigures(_SRC, "41", "1.4", "39.7", computed_macs="40.48", note=_HALF_NOTE),
    ),
    "shufflenet_v2_x0_5_star": (config_for_width(0.5, extra_dw=True), None),
    "shufflenet_v2_x1_0": (config_for_width(1.0), PaperFigures(_SRC, "146", "2.3", "30.6")),
    "shufflenet_v2_x1_0_star": (config_for_width(1.0, extra_dw=True), None),
    "shufflenet_v2_x1_5": (config_for_width(1.5), PaperFigures(_SRC, "299", "3.5", "27.4")),
    "shufflenet_v2_x1_5_star": (config_for_width(1.5, extra_dw=True), None),
    "shufflenet_v2_x2_0": (config_for_width(2.0), PaperFigures(_SRC, "591", "7.4", "25.1")),
    "shufflenet_v2_x2_0_star": (config_for_width(2.0, extra_dw=True), None),
    "shufflenet_v2_x2_0_se": (
        config_for_width(2.0, se=True, se_reduction=1),
        PaperFigures("Ma et al. 2018, Table 8", "597", None, "24.6", note=_SE_NOTE),
    ),
}

for _name, (_cfg, _fig) in VARIANTS.items():
    register_model(_name, FAMILY, _cfg, paper=_fig)
