"""clcNet (Zhang, CVPR 2018), declared as the official Torch model (dqzhang17/clcnet.torch).

``models/clcnet.lua``: conv 3x3 s2 to 32 (BN, ReLU), then :class:`CLCBlock` rows; each stage
starts with a stride-2 block that doubles the width and repeats (a, b, c, d) width-keeping
blocks; global average pool, FC. In every block g2 = 2 and g1 = C_in / 2, so g1 * g2 = C_in:
the smallest cost that keeps the full channel receptive field (see :mod:`cnnlab.blocks.clc`).

The README gives clcNet-A = (a, b, c, d) = (1, 1, 5, 2), 70.4% top-1, and clcNet-B = (1, 1, 7, 3),
71.6% top-1. The paper's MAC and parameter counts are not verified (the paper's tables could not
be read here); the figures this implementation computes are held in tests/test_clc.py:
clcNet-A 342.97 M MACs / 3.25 M params, clcNet-B 424.56 M / 4.09 M (224x224, BN included).
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.clc import CLCBlock
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct

# models/clcnet.lua, stage by stage (g1 = C_in / 2 and g2 = 2 in every block):
#   (c_out, g1 of the stride-2 block, g1 of the repeated blocks); repeats are (a, b, c, d)
STAGES = ((128, 32, 64), (256, 64, 128), (512, 128, 256), (1024, 256, 512))
STEM = 32
STAGE0 = (64, 16)  # clcBlock(32, 64, 1, 16, 2): the stride-1 block after the stem
G2 = 2


@dataclass(frozen=True, kw_only=True)
class CLCNetConfig(NetConfig):
    """clcNet: repeats (a, b, c, d) of the width-keeping blocks in stages 1-4."""

    repeats: tuple[int, int, int, int] = (1, 1, 5, 2)

    def check(self) -> None:
        super().check()
        if len(self.repeats) != 4 or min(self.repeats) < 0:
            raise BadValue(f"clcNet repeats are four counts (a, b, c, d) >= 0; got {self.repeats}")


def plan(cfg: CLCNetConfig) -> Plan:
    """Stem, CLC block 32->64, then per stage a stride-2 CLC block and its repeats (clcnet.lua)."""
    layers = [Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=STEM, stride=2))]
    c0, g0 = STAGE0
    layers.append(Layer("stage0", CLCBlock, dict(c_in=STEM, c_out=c0, stride=1, g1=g0, g2=G2)))
    c_in = c0
    for i, ((c, g1_down, g1), n) in enumerate(zip(STAGES, cfg.repeats), start=1):
        down = dict(c_in=c_in, c_out=c, stride=2, g1=g1_down, g2=G2)
        layers.append(Layer(f"stage{i}_0", CLCBlock, down))
        for j in range(1, n + 1):
            layers.append(
                Layer(f"stage{i}_{j}", CLCBlock, dict(c_in=c, c_out=c, stride=1, g1=g1, g2=G2))
            )
        c_in = c
    return Plan(layers, c_in)


FAMILY = Family("clcnet", CLCNetConfig, plan)

_SRC = "clcnet.torch README (top-1 accuracy); MACs and params of the paper not verified"
register_model(
    "clcnet_a",
    FAMILY,
    CLCNetConfig(repeats=(1, 1, 5, 2)),
    paper=PaperFigures(_SRC, top1_err="29.6"),
)
register_model(
    "clcnet_b",
    FAMILY,
    CLCNetConfig(repeats=(1, 1, 7, 3)),
    paper=PaperFigures(_SRC, top1_err="28.4"),
)
