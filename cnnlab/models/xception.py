"""Xception (Chollet, CVPR 2017) at 299x299, declared as the entry/middle/exit flows of Fig. 5.

The structure is the one the Keras application builds (and timm's ``legacy_xception`` ports):
valid-padded 3x3 stem convs, blocks of separable convs with BN after the pointwise conv and
nothing between depthwise and pointwise, max pool 3x3 s2 padding 1 in the strided blocks, and
two separable convs with BN + ReLU after the exit block. 22,855,952 parameters, as the paper's
Table 3 prints and Keras reports. The paper prints no MACs figure: this count gives 8.36 G at 299.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.xception import XceptionBlock
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.act import check_activation
from cnnlab.ops.conv import ConvNormAct, SeparableConv

# Fig. 5: one row per group of blocks.
#   c_out, reps, stride, n, grow_first
BLOCKS = (
    (128, 2, 2, 1, True),  # entry flow
    (256, 2, 2, 1, True),
    (728, 2, 2, 1, True),
    (728, 3, 1, 8, True),  # middle flow: identity shortcut
    (1024, 2, 2, 1, False),  # exit flow: 728 -> 728 -> 1024, the width grows last
)
STEM = (32, 64)  # conv 3x3 s2 valid, conv 3x3 valid, each BN + ReLU
EXIT = (1536, 2048)  # separable 3x3 convs after the exit block, each BN + ReLU


@dataclass(frozen=True, kw_only=True)
class XceptionConfig(NetConfig):
    """Xception: stem widths, the block table of Fig. 5 and the exit-flow separable convs.

    ``drop_rate`` stays 0.0: neither Keras nor timm put dropout before the classifier.
    ``act`` names every activation (ReLU in the paper) from :mod:`cnnlab.ops.act`.
    """

    stem: tuple[int, ...] = STEM
    blocks: tuple[tuple[int, int, int, int, bool], ...] = BLOCKS
    exit: tuple[int, ...] = EXIT
    act: str = "relu"

    def check(self) -> None:
        super().check()
        check_activation(self.act)
        if len(self.stem) != 2 or min(self.stem) < 1:
            raise BadValue(f"stem must be two widths >= 1, got {self.stem}")
        if not self.blocks or any(len(row) != 5 for row in self.blocks):
            raise BadValue(
                f"blocks must be rows of (c_out, reps, stride, n, grow_first), got {self.blocks}"
            )
        if any(row[3] < 1 for row in self.blocks):
            raise BadValue(f"each block row needs n >= 1 blocks, got {self.blocks}")
        if min(self.exit, default=1) < 1:
            raise BadValue(f"exit widths must be >= 1, got {self.exit}")


def plan(cfg: XceptionConfig) -> Plan:
    """Stem (two valid 3x3 convs), entry/middle/exit blocks, exit separable convs (Fig. 5)."""
    c1, c2 = cfg.stem
    stem = dict(k=3, padding=0, act=cfg.act)
    layers = [
        Layer("conv1", ConvNormAct, dict(c_in=cfg.in_chans, c_out=c1, stride=2, **stem)),
        Layer("conv2", ConvNormAct, dict(c_in=c1, c_out=c2, stride=1, **stem)),
    ]
    c_in, i = c2, 1
    for c_out, reps, stride, n, grow_first in cfg.blocks:
        for _ in range(n):
            # the first block's input has just passed the stem's ReLU: it starts with the conv
            args = dict(
                c_in=c_in,
                c_out=c_out,
                reps=reps,
                stride=stride,
                start_with_relu=i > 1,
                grow_first=grow_first,
                act=cfg.act,
            )
            layers.append(Layer(f"block{i}", XceptionBlock, args))
            c_in, i = c_out, i + 1
    for j, c_out in enumerate(cfg.exit, start=3):
        args = dict(c_in=c_in, c_out=c_out, k=3, mid="none", act=cfg.act)
        layers.append(Layer(f"conv{j}", SeparableConv, args))
        c_in = c_out
    return Plan(layers, c_in)


FAMILY = Family("xception", XceptionConfig, plan)

register_model(
    "xception",
    FAMILY,
    XceptionConfig(),
    input_size=(3, 299, 299),
    paper=PaperFigures(
        "Chollet 2017, Table 3 (params; Keras and timm legacy_xception agree) and Table 1 (top-1)",
        macs=None,
        params="22.855952",
        top1_err="21.0",
        note="the paper prints no MACs; this count gives 8.36 G at 299x299",
    ),
)
