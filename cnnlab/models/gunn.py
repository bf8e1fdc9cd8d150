"""GUNN-15 (CIFAR) and GUNN-18 (ImageNet) (Qiao et al. ICML 2018), as the official
joe-siyuan-qiao/GUNN ``models/gunn-15.lua`` and ``models/gunn-18.lua`` build them [V-repo].

- GUNN-15: 3x3 conv 64; three stages of a 1x1 conv-BN-ReLU to 240, 300, 360, a 2x2 average pool
  from the second stage on, and a gradually updated layer of K = 20, 25, 30 segments (12
  channels each) whose update units have a projection shortcut; a last 1x1 conv-BN-ReLU 360,
  global average pool, FC.
- GUNN-18: ResNet's stem (7x7/2 conv 64, 3x3/2 max pool); four stages of a 1x1 conv-BN-ReLU to
  400, 800, 1600, 2000 and a gradually updated layer of K = 10, 20, 40, 50 segments (40
  channels each, update units without shortcut), a 2x2 average pool after each but the last;
  global average pool, FC 1000.

Params against the README: GUNN-18 has 28,909,736 (README 28.9 M). GUNN-15 has 1,585,746 with
the CIFAR-10 classifier and 1,618,236 with CIFAR-100's (README 1.6 M; tested), 1.94 M with the
1000-class one counted by default, hence its documented exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cnnlab.blocks.gunn import GunnLayer, segment_width
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import AvgPool, MaxPool

STEMS = ("cifar", "imagenet")
POOLS = ("before", "after")


@dataclass(frozen=True, kw_only=True)
class GUNNConfig(NetConfig):
    """GUNN: stem, per stage a width and a number of segments K, pool placement, final 1x1."""

    stem: Literal["cifar", "imagenet"] = "cifar"  # 3x3 conv, or 7x7/2 conv + 3x3/2 max pool
    stem_width: int = 64
    widths: tuple[int, ...] = (240, 300, 360)  # cfg of gunn-15.lua
    segments: tuple[int, ...] = (20, 25, 30)  # stp of gunn-15.lua
    pool: Literal["before", "after"] = "before"  # 2x2 avg pool before a stage's GUNN layer
    # (from stage 2 on, gunn-15) or after it (all but the last stage, gunn-18)
    final: int = 360  # a last 1x1 conv-BN-ReLU width; 0: none
    shortcut: bool = True  # the CIFAR update unit adds a 1x1 projection shortcut

    def check(self) -> None:
        super().check()
        if self.stem not in STEMS or self.pool not in POOLS:
            raise BadValue(
                f"GUNN: stem must be one of {STEMS} and pool one of {POOLS}, "
                f"got {self.stem!r}, {self.pool!r}"
            )
        if not self.widths or len(self.widths) != len(self.segments):
            raise BadValue(
                f"GUNN: widths {self.widths} and segments {self.segments} need one entry per stage"
            )
        for c, k in zip(self.widths, self.segments, strict=True):
            segment_width(c, k)
        if self.stem_width < 1 or self.final < 0:
            raise BadValue(
                f"GUNN: stem_width must be >= 1 and final >= 0, got {self.stem_width}, {self.final}"
            )


def _stem(cfg: GUNNConfig) -> list[Layer]:
    if cfg.stem == "cifar":
        return [Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem_width, k=3))]
    conv = dict(c_in=cfg.in_chans, c_out=cfg.stem_width, k=7, stride=2)
    return [Layer("stem", ConvNormAct, conv), Layer("stem_pool", MaxPool, dict(k=3, stride=2))]


def plan(cfg: GUNNConfig) -> Plan:
    """Stem, then per stage a 1x1 conv and a gradually updated layer, 2x2 average pools between."""
    layers, c = _stem(cfg), cfg.stem_width
    last = len(cfg.widths) - 1
    pool = dict(k=2, stride=2, padding=0)
    for i, (w, k) in enumerate(zip(cfg.widths, cfg.segments, strict=True)):
        layers.append(Layer(f"conv{i + 1}", ConvNormAct, dict(c_in=c, c_out=w, k=1)))
        if cfg.pool == "before" and i > 0:
            layers.append(Layer(f"pool{i + 1}", AvgPool, pool))
        args = dict(c=w, segments=k, shortcut=cfg.shortcut)
        layers.append(Layer(f"gunn{i + 1}", GunnLayer, args))
        if cfg.pool == "after" and i < last:
            layers.append(Layer(f"pool{i + 1}", AvgPool, pool))
        c = w
    if cfg.final:
        layers.append(Layer("conv_final", ConvNormAct, dict(c_in=c, c_out=cfg.final, k=1)))
        c = cfg.final
    return Plan(layers, c)


FAMILY = Family("gunn", GUNNConfig, plan)

_SRC = "joe-siyuan-qiao/GUNN README [V-repo]"
register_model(
    "gunn15_cifar",
    FAMILY,
    GUNNConfig(),
    input_size=(3, 32, 32),
    paper=PaperFigures(
        _SRC,
        params="1.6",
        computed_params="1.94",
        note=(
            "the README's 1.6 M is the CIFAR network; 1,585,746 with 10 classes and 1,618,236 "
            "with 100 (tested), 1.94 M with the 1000-class classifier counted here"
        ),
    ),
)
register_model(
    "gunn18",
    FAMILY,
    GUNNConfig(
        stem="imagenet",
        widths=(400, 800, 1600, 2000),
        segments=(10, 20, 40, 50),
        pool="after",
        final=0,
        shortcut=False,
    ),
    paper=PaperFigures(_SRC, params="28.9", top1_err="21.65"),
)
