"""GUNN-15 for CIFAR (Qiao et al. ICML 2018), as the official ``models/gunn-15.lua`` builds it.

3x3 conv 64, then three stages: a 1x1 conv-BN-ReLU to the stage width (240, 300, 360), a 2x2
average pool from the second stage on, and a gradually updated layer of K = 20, 25, 30 segments
(12 channels each); a last 1x1 conv-BN-ReLU 360, global average pool, FC [V-repo].

Params: the official README prints 1.6 M for GUNN-15; this network has 1,585,746 with the
CIFAR-10 classifier and 1,618,236 with CIFAR-100's (tested), 1.94 M with the 1000-class one
counted by default, hence the documented exception.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.gunn import GunnLayer, segment_width
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import AvgPool


@dataclass(frozen=True, kw_only=True)
class GUNNConfig(NetConfig):
    """GUNN: stem width, per stage a width and a number of segments K, the final 1x1 width."""

    stem: int = 64
    widths: tuple[int, ...] = (240, 300, 360)  # cfg of gunn-15.lua
    segments: tuple[int, ...] = (20, 25, 30)  # stp of gunn-15.lua
    final: int = 360
    shortcut: bool = True  # the CIFAR update unit adds a 1x1 projection shortcut

    def check(self) -> None:
        super().check()
        if not self.widths or len(self.widths) != len(self.segments):
            raise ValueError(
                f"GUNN: widths {self.widths} and segments {self.segments} need one entry per stage"
            )
        for c, k in zip(self.widths, self.segments, strict=True):
            segment_width(c, k)
        if min(self.stem, self.final) < 1:
            raise ValueError(
                f"GUNN: stem and final widths must be >= 1, got {self.stem}, {self.final}"
            )


def plan(cfg: GUNNConfig) -> Plan:
    """Stem, then per stage 1x1 conv [+ 2x2 average pool] + gradually updated layer, final 1x1."""
    layers = [Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=3))]
    c = cfg.stem
    for i, (w, k) in enumerate(zip(cfg.widths, cfg.segments, strict=True)):
        layers.append(Layer(f"conv{i + 1}", ConvNormAct, dict(c_in=c, c_out=w, k=1)))
        if i > 0:
            layers.append(Layer(f"pool{i + 1}", AvgPool, dict(k=2, stride=2, padding=0)))
        args = dict(c=w, segments=k, shortcut=cfg.shortcut)
        layers.append(Layer(f"gunn{i + 1}", GunnLayer, args))
        c = w
    layers.append(Layer("conv_final", ConvNormAct, dict(c_in=c, c_out=cfg.final, k=1)))
    return Plan(layers, cfg.final)


FAMILY = Family("gunn", GUNNConfig, plan)

register_model(
    "gunn15_cifar",
    FAMILY,
    GUNNConfig(),
    input_size=(3, 32, 32),
    paper=PaperFigures(
        "joe-siyuan-qiao/GUNN README [V-repo]",
        params="1.6",
        computed_params="1.94",
        note=(
            "the README's 1.6 M is the CIFAR network; 1,585,746 with 10 classes and 1,618,236 "
            "with 100 (tested), 1.94 M with the 1000-class classifier counted here"
        ),
    ),
)
