"""Residual Attention Network (Wang et al. 2017, CVPR): Attention-56/92 and AttentionNeXt-56.

Laid out as the authors' deploy prototxts (fwang91/residual-attention-network,
``imagenet_model/Attention-56-deploy.prototxt``, ``model/Attention-92-deploy.prototxt``) and the
paper's Table 2, on pre-activation bottleneck units (He et al. 2016, ECCV):

- conv 7x7/2 64 + BN + ReLU, max pool 3x3/2 (Caffe: no padding, ceil rounding) -> 56x56;
- stages 1-3 at 56, 28, 14: a projection unit to 256, 512, 1024 channels (stride 2 in its 3x3
  from stage 2 on), then the stage's attention modules (p = 1, t = 2, r = 1); the mask branch has
  3, 2 and 1 max-pool levels (down to 7x7 in every stage);
- stage 4 at 7x7: a projection unit to 2048 and two identity units, BN + ReLU, global average
  pool, FC. Attention-56 has 1/1/1 modules in stages 1-3, Attention-92 1/2/3.

Input sides that are multiples of 32 always work (224, 320): stage 1 runs at about 1/4 of the
input and its mask branch pools three times; the module refuses a feature map its poolings
cannot halve exactly (e.g. 50x50 at a 200 px input).

AttentionNeXt-56 (``unit="resnext"``, ``imagenet_model/AttentionNeXt-56-deploy.prototxt``) has
the same layout on post-activation ResNeXt units (32 groups, 3x3 width c/2, conv + BN projection
shortcuts, no final BN-ReLU) and a mask head without the leading BN-ReLU; see
:class:`cnnlab.blocks.residual_attention.AttentionNeXtModule`.

Figures (conv + FC multiply-accumulates, the convention of the other families; the bilinear
upsampling of the mask branch counts no MACs, like pooling and adds), at 224:

- Attention-56: 6,270.8 M MACs, 31,810,728 params. Printed: 6.32 G, 31.9 M (SKNet, Li et al.
  2019, Table 2, quoting Wang et al.; the row is labelled AttentionNeXt-56 but carries
  Attention-56's 21.76 top-1); the paper itself is remembered as 6.3 G / 31.9 M. Within 1%.
- Attention-92: 10,533.8 M MACs (printed 10.43 G, within 1%), 52,466,344 params against the
  printed 51.3 M (+2.3%): a documented exception. The count above follows the deploy prototxt
  unit by unit (92 = 56 + one stage-2 and two stage-3 modules: +20.66 M params here, +19.4 M
  between the printed figures); what the printed 92 figure leaves out is not known.

- AttentionNeXt-56: 6,419.1 M MACs, 31,318,824 params. SKNet's row labelled AttentionNeXt-56
  prints 31.9 M / 6.32 G, the same as Attention-56 (and with Attention-56's top-1): -1.8% params,
  +1.6% MACs against this count of the NeXt prototxt, a documented exception; the printed row
  appears to repeat Attention-56's figures.

Top-1 errors: 21.76 (Attention-56) and 21.2 (AttentionNeXt-56), 224 crop, fwang91 README; Attention-92's 19.5 is at a 320
crop, so it is not attached to the 224 entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.blocks.dense import NormAct
from cnnlab.blocks.residual_attention import AttentionNeXtModule, PreActProjection, next_unit_args
from cnnlab.blocks.resnet import Bottleneck
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import MaxPool
from cnnlab.ops.residual_attention import PreActBottleneck, ResidualAttentionModule

# Wang et al. 2017, Table 2 and the deploy prototxt: per stage, output channels, stride of the
# opening projection unit, and mask-branch depth (max-pool levels) of its attention modules.
#         c,    s, depth
STAGES = (
    (256, 1, 3),
    (512, 2, 2),
    (1024, 2, 1),
)
LAST = 2048  # stage 4: projection unit 1024 -> 2048, stride 2 (prototxt post_res_4_1)
UNITS = ("preact", "resnext")  # Attention-N (pre-activation) or AttentionNeXt-N (ResNeXt units)


@dataclass(frozen=True, kw_only=True)
class ResidualAttentionConfig(NetConfig):
    """Attention modules per stage 1-3, module hyper-parameters p, t, r, stage-4 units, unit type."""

    unit: str = "preact"
    modules: tuple[int, int, int] = (1, 1, 1)
    p: int = 1
    t: int = 2
    r: int = 1
    last_units: int = 3
    stem: int = 64

    def check(self) -> None:
        super().check()
        if self.unit not in UNITS:
            raise BadValue(
                f"unknown unit={self.unit!r}; choose 'preact' (Attention-N) or 'resnext' "
                f"(AttentionNeXt-N)"
            )
        if len(self.modules) != len(STAGES) or min(self.modules) < 0:
            raise BadValue(
                f"modules must be {len(STAGES)} attention-module counts >= 0 (stages 1-3), "
                f"got {self.modules}"
            )
        if self.p < 0 or self.t < 1 or self.r < 1:
            raise BadValue(
                f"needs p >= 0, t >= 1 and r >= 1 (Wang et al. use 1, 2, 1); got p={self.p}, "
                f"t={self.t}, r={self.r}"
            )
        if self.last_units < 1 or self.stem < 1:
            raise BadValue(
                f"last_units and stem must be >= 1, got last_units={self.last_units}, "
                f"stem={self.stem}"
            )


def plan(cfg: ResidualAttentionConfig) -> Plan:
    """Stem, stages 1-3 (projection unit + attention modules), stage 4 [, final BN-ReLU]."""
    nxt = cfg.unit == "resnext"
    module = AttentionNeXtModule if nxt else ResidualAttentionModule
    layers = [
        Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=7, stride=2)),
        Layer("pool", MaxPool, dict(k=3, stride=2, padding=0, ceil_mode=True)),
    ]
    c_in = cfg.stem
    att = dict(p=cfg.p, t=cfg.t, r=cfg.r)
    for i, ((c, s, depth), n) in enumerate(zip(STAGES, cfg.modules), start=1):
        layers.append(_projection(f"stage{i}_proj", c_in, c, s, nxt))
        for j in range(n):
            layers.append(Layer(f"stage{i}_att{j}", module, dict(c=c, depth=depth, **att)))
        c_in = c
    layers.append(_projection("stage4_proj", c_in, LAST, 2, nxt))
    for j in range(1, cfg.last_units):
        if nxt:
            layers.append(Layer(f"stage4_{j}", Bottleneck, dict(c_in=LAST, **next_unit_args(LAST))))
        else:
            layers.append(Layer(f"stage4_{j}", PreActBottleneck, dict(c=LAST)))
    if not nxt:  # pre-activation ends with BN-ReLU (prototxt post_res_4_3/bn/relu)
        layers.append(Layer("final", NormAct, dict(c_in=LAST)))
    return Plan(layers, LAST)


def _projection(name: str, c_in: int, c_out: int, stride: int, nxt: bool) -> Layer:
    """The unit opening a stage: ResNeXt with conv + BN shortcut, or pre-activation projection."""
    if nxt:
        return Layer(name, Bottleneck, dict(c_in=c_in, stride=stride, **next_unit_args(c_out)))
    return Layer(name, PreActProjection, dict(c_in=c_in, c_out=c_out, stride=stride))


FAMILY = Family("residual_attention", ResidualAttentionConfig, plan)

_SRC = "Li et al. 2019 (SKNet), Table 2, quoting Wang et al. 2017; top-1: fwang91 README at 224"
_NOTE_92 = (
    "printed 51.3 M params; the deploy prototxt counted unit by unit gives 52.47 M (the three "
    "extra modules over Attention-56 add 20.66 M here, 19.4 M between the printed figures); "
    "MACs are within 1% of the printed 10.43 G"
)
_NOTE_NEXT = (
    "the row labelled AttentionNeXt-56 prints 31.9 M / 6.32 G, Attention-56's figures (and its "
    "21.76 top-1); the AttentionNeXt-56 deploy prototxt counted unit by unit gives 31.32 M / "
    "6.42 G (ResNeXt units: 32 groups, 3x3 width c/2)"
)
MODELS = {
    "attention56": (
        ResidualAttentionConfig(modules=(1, 1, 1)),
        PaperFigures(_SRC, "6320", "31.9", "21.76"),
    ),
    "attention92": (
        ResidualAttentionConfig(modules=(1, 2, 3)),
        PaperFigures(_SRC, "10430", "51.3", None, computed_params="52.47", note=_NOTE_92),
    ),
    "attentionnext56": (
        ResidualAttentionConfig(unit="resnext", modules=(1, 1, 1)),
        PaperFigures(
            _SRC,
            "6320",
            "31.9",
            "21.2",
            computed_macs="6419",
            computed_params="31.32",
            note=_NOTE_NEXT,
        ),
    ),
}

for _name, (_c, _fig) in MODELS.items():
    register_model(_name, FAMILY, _c, paper=_fig)
