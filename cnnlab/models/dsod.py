"""DSOD300 backbone and dense prediction structure (Shen et al. ICCV 2017, Table 1, Fig. 1).

As the official ``DSOD300_V3_Body`` (szq0214/DSOD ``model_libs.py``) builds it [V-repo]:

- stem: 3x3/2 conv 64, 3x3 conv 64, 3x3 conv 128 (conv-BN-ReLU), 2x2/2 max pool;
- dense blocks of 6, 8, 8, 8 bottleneck layers (BN-ReLU-1x1 4k, BN-ReLU-3x3 k) with growth
  k = 48; transition layers are BN-ReLU-1x1 convs that keep the width, the first followed by a
  2x2 max pool, the others "without pooling"; the last transition projects to 256;
- the dense prediction structure: scale 1 (38x38) is the output of the second transition; scale
  2 (19x19) concatenates the learned half (dense blocks 3-4 on the pooled scale 1) with the
  reused half (pooled scale 1, BN-ReLU-1x1 to 256); scales 3-6 each concatenate a reused half
  (pool, BN-ReLU-1x1) and a learned half (BN-ReLU-1x1, BN-ReLU-3x3/2) of 256, 128, 128, 128.

For 300x300 input the six scales are 38, 19, 10, 5, 3, 2 (Caffe's ceil-rounded pooling; the
repo's comment "1 x 1" for the sixth is SSD's); :func:`prediction_scales` returns them. As a
classification network, ``forward_features`` ends at the sixth scale (256 channels) and the
classifier pools it.

Params: the README's 14.8 M is DSOD300 *with* its SSD heads (VOC, 21 classes), counting every
blob of the Caffe model. Backbone + prediction structure here: 11,802,912. The heads the official
script builds (an L2 Normalize scale per channel and 3x3 conv-BN loc/conf predictors with 4, 6,
6, 6, 4, 4 priors per location) add 2,912,892 learnable parameters: 14,715,804 in all, and
14,795,828 with the batch norms' 80,024 running statistics, i.e. the README's 14.8 M (both are
tested in tests/test_dsod.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.blocks.dense import DenseLayer, check_growth
from cnnlab.blocks.dsod import CeilMaxPool, DenseScale, LearnReuse, PreActConv
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, Net, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct

SCALES = ("first", "second", "third", "fourth", "fifth", "sixth")


@dataclass(frozen=True, kw_only=True)
class DSODConfig(NetConfig):
    """DSOD: stem widths, growth rate, dense block sizes, prediction-scale half widths."""

    stem: tuple[int, int, int] = (64, 64, 128)
    growth: int = 48
    blocks: tuple[int, ...] = (6, 8, 8, 8)  # the first two before scale 1, the rest in scale 2
    bn_size: int = 4  # bottleneck 1x1 width = bn_size * growth
    halves: tuple[int, ...] = (256, 256, 128, 128, 128)  # learned = reused width, scales 2-6

    def check(self) -> None:
        super().check()
        check_growth(self.growth, self.bn_size)
        if len(self.blocks) < 3 or min(self.blocks) < 1:
            raise BadValue(
                f"DSOD: blocks must be >= 3 layer counts >= 1 (two before scale 1), got {self.blocks}"
            )
        if len(self.stem) != 3 or min(self.stem) < 1:
            raise BadValue(f"DSOD: stem must be three widths >= 1, got {self.stem}")
        if not self.halves or min(self.halves) < 1:
            raise BadValue(f"DSOD: halves must be widths >= 1, got {self.halves}")


def plan(cfg: DSODConfig) -> Plan:
    """Stem, dense blocks 1-2 to scale 1, then one layer per prediction scale."""
    s1, s2, s3 = cfg.stem
    layers = [
        Layer("stem1", ConvNormAct, dict(c_in=cfg.in_chans, c_out=s1, k=3, stride=2)),
        Layer("stem2", ConvNormAct, dict(c_in=s1, c_out=s2, k=3)),
        Layer("stem3", ConvNormAct, dict(c_in=s2, c_out=s3, k=3)),
        Layer("stem_pool", CeilMaxPool),
    ]
    c = s3
    for i, n in enumerate(cfg.blocks[:2]):
        for j in range(n):
            args = dict(c_in=c, growth=cfg.growth, bn_size=cfg.bn_size)
            layers.append(Layer(f"block{i + 1}_{j + 1}", DenseLayer, args))
            c += cfg.growth
        name = "first" if i == 1 else f"transition{i + 1}"
        layers.append(Layer(name, PreActConv, dict(c_in=c, c_out=c, k=1)))
        if i == 0:
            layers.append(Layer("pool1", CeilMaxPool))
    learn, *rest = cfg.halves
    args = dict(c_in=c, growth=cfg.growth, blocks=cfg.blocks[2:], bn_size=cfg.bn_size)
    layers.append(Layer("second", DenseScale, dict(args, c_learn=learn, c_reuse=learn)))
    c = 2 * learn
    for name, half in zip(SCALES[2:], rest, strict=False):
        layers.append(Layer(name, LearnReuse, dict(c_in=c, c_half=half)))
        c = 2 * half
    return Plan(layers, c)


def prediction_scales(model: Net, x: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps of DSOD's dense prediction structure (38, 19, 10, 5, 3, 2 at 300x300)."""
    names = set(SCALES[: len(model.cfg.halves) + 1])
    outs = []
    for name, layer in model.features.named_children():
        x = layer(x)
        if name in names:
            outs.append(x)
    return outs


FAMILY = Family("dsod", DSODConfig, plan)

_NOTE = (
    "14.8 M is DSOD300 with its SSD heads (21 classes), every blob of the Caffe model counted; "
    "backbone + dense prediction structure are 11,802,912 here (+ 257,000 for this 1000-class FC); "
    "the official heads add 2,912,892 learnable (14,715,804) and the BN running statistics 80,024 "
    "more (14,795,828 = 14.8 M), tested"
)
register_model(
    "dsod300_backbone",
    FAMILY,
    DSODConfig(),
    input_size=(3, 300, 300),
    paper=PaperFigures(
        "szq0214/DSOD README, DSOD300 [V-repo]",
        params="14.8",
        computed_params="12.06",
        note=_NOTE,
    ),
)
