"""CondenseNet (Huang, Liu, van der Maaten, Weinberger, CVPR 2018): learned group convolutions.

The registered models are the converted test-time networks at 224 (``condensed=True``); build the
training-time network with ``create_model(name, condensed=False)``, condense it during training
with :func:`cnnlab.blocks.condense.condense_step` and :func:`~cnnlab.blocks.condense.group_lasso`,
and convert it with :func:`convert_condensenet`.

Configuration (official ``script.sh``; docs/provenance.md#condensenet): stages 4-6-8-10-8, growth
8-16-32-64-128 (doubling per stage), bottleneck 4, a 3x3/2 stem conv of 2*growth[0] = 16 maps,
"fully dense" transitions that are a 2x2 average pool without a conv, a final BN-ReLU, and the
classifier condensed to 50 % of its inputs ("CondenseLinear"). Its index is the last feature
layer here (selecting channels commutes with the global average pool), so the shared classifier
head is the CondenseLinear's linear layer and ``num_features`` is the kept half.

Counting: conv + FC multiply-accumulates are 516.6 M (C = G = 4) and 261.5 M (C = G = 8); the
paper prints 529 M and 274 M, which also count one operation per BN output element and per
average-pool input element (11.0 M + 1.7 M at 224, the final 7x7 pool over all 2064 features).
:func:`condensenet_paper_flops` reproduces that convention: 529.3 M and 274.2 M.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.blocks.condense import (
    ChannelIndex,
    CondenseLayer,
    classifier_index,
    index_width,
    kept_width,
)
from cnnlab.blocks.dense import NormAct
from cnnlab.errors import BadType, BadValue
from cnnlab.models.net import Layer, Net, NetConfig, Plan, plan_cost
from cnnlab.models.registry import Family, PaperFigures, get_entry, model_config, register_model
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import AvgPool


@dataclass(frozen=True, kw_only=True)
class CondenseNetConfig(NetConfig):
    """CondenseNet: layers and growth rate per stage, bottleneck, groups G and condensation C."""

    SMALL_INPUT = True  # the official CIFAR network: the same stem conv at stride 1

    stages: tuple[int, ...] = (4, 6, 8, 10, 8)
    growth: tuple[int, ...] = (8, 16, 32, 64, 128)  # doubles per stage ("exponential growth")
    bottleneck: int = 4  # the 1x1 conv gives bottleneck * k maps
    group_1x1: int = 4  # G of the learned group conv
    group_3x3: int = 4  # groups of the 3x3 conv
    condense_factor: int = 4  # C: each group keeps 1/C of the inputs
    fc_keep: float = 0.5  # CondenseLinear keeps int(0.5 * features) inputs
    init_stride: int = 2  # stem stride: 2 on ImageNet, 1 on CIFAR
    condensed: bool = True  # True: converted test-time layers; False: training-time layers

    def check(self) -> None:
        super().check()
        if not self.stages or min(self.stages) < 1:
            raise BadValue(f"CondenseNet: stages must be layer counts >= 1, got {self.stages}")
        if len(self.growth) != len(self.stages) or min(self.growth) < 1:
            raise BadValue(
                f"CondenseNet: growth needs one rate >= 1 per stage; got growth={self.growth} "
                f"for stages={self.stages}"
            )
        if self.bottleneck < 1 or self.init_stride < 1:
            raise BadValue(
                f"CondenseNet: bottleneck and init_stride must be >= 1, got "
                f"{self.bottleneck} and {self.init_stride}"
            )
        index_width(sum(s * k for s, k in zip(self.stages, self.growth)), self.fc_keep)


def plan(cfg: CondenseNetConfig) -> Plan:
    """3x3 stem conv, dense stages joined by 2x2 average pools, BN-ReLU, the classifier's index."""
    c = 2 * cfg.growth[0]
    stride = cfg.stem_stride(cfg.init_stride)
    stem = dict(c_in=cfg.in_chans, c_out=c, k=3, stride=stride, norm=False, act=None)
    layers = [Layer("stem", ConvNormAct, stem)]
    unit = dict(
        bottleneck=cfg.bottleneck,
        group_1x1=cfg.group_1x1,
        group_3x3=cfg.group_3x3,
        condense_factor=cfg.condense_factor,
        condensed=cfg.condensed,
    )
    for i, (n, k) in enumerate(zip(cfg.stages, cfg.growth)):
        for j in range(n):
            args = dict(c_in=c, growth=k, after_conv=(i, j) == (0, 0), **unit)
            layers.append(Layer(f"block{i + 1}_{j + 1}", CondenseLayer, args))
            c += k
        if i < len(cfg.stages) - 1:
            layers.append(Layer(f"transition{i + 1}", AvgPool, dict(k=2, stride=2, padding=0)))
    layers.append(Layer("norm_final", NormAct, dict(c_in=c)))
    if cfg.condensed:
        layers.append(Layer("fc_index", ChannelIndex, dict(c_in=c, keep=cfg.fc_keep)))
        c = index_width(c, cfg.fc_keep)
    return Plan(layers, c)


FAMILY = Family("condensenet", CondenseNetConfig, plan)


def condense_classifier(model: Net) -> torch.Tensor:
    """Zero the FC columns that the conversion drops (CondenseLinear); returns the kept index.

    The official code selects the classifier's inputs only when converting. Calling this first
    makes the training model compute exactly what the converted one will (and lets you fine-tune
    after the selection, re-calling it before converting).
    """
    fc = _training_fc(model)
    index = classifier_index(fc.weight, model.cfg.fc_keep)
    with torch.no_grad():
        dropped = torch.ones(fc.in_features, dtype=torch.bool)
        dropped[index] = False
        fc.weight[:, dropped] = 0.0
    return index


def convert_condensenet(model: Net) -> Net:
    """The test-time network of a fully condensed training-time CondenseNet (Huang et al. 2018).

    Each :class:`LearnedGroupConv` becomes a :class:`CondenseConv` (index layer, BN-ReLU, grouped
    1x1, shuffle); the FC keeps the ``fc_keep`` fraction of its inputs with the largest summed
    |w|. The result is a plain registered-style ``Net`` (``cfg.condensed=True``), counted
    analytically. Its eval outputs equal the training model's once :func:`condense_classifier`
    was applied to it (else they differ by the dropped FC columns, as in the official code).
    """
    fc = _training_fc(model)
    cfg = replace(model.cfg, condensed=True)
    out = Net(cfg, plan(cfg))
    out.train(model.training)
    for name, new in out.features.named_children():
        if isinstance(new, ChannelIndex):
            index = classifier_index(fc.weight, cfg.fc_keep)
            new.index.copy_(index)
            continue
        old = getattr(model.features, name)
        if isinstance(new, CondenseLayer):
            new.conv_1.load_learned(old.conv_1)
            new.conv_2.load_state_dict(old.conv_2.state_dict())
        else:
            new.load_state_dict(old.state_dict())
    with torch.no_grad():
        out.head.fc.weight.copy_(fc.weight[:, index])
        out.head.fc.bias.copy_(fc.bias)
    return out


def _training_fc(model: Net) -> nn.Linear:
    """The full classifier of a training-time CondenseNet, or a ValueError saying what is wrong."""
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, Net) or not isinstance(cfg, CondenseNetConfig) or cfg.condensed:
        raise BadValue(
            "expected a training-time CondenseNet, e.g. "
            "create_model('condensenet74_c4_g4', condensed=False)"
        )
    if cfg.num_classes == 0:
        raise BadValue(
            "CondenseNet conversion selects the classifier's inputs by its weights; the model "
            "has num_classes=0 (no classifier): reset_classifier(n) and train it first"
        )
    return model.head.fc


def condensenet_paper_flops(
    model_or_name: str | Net | CondenseNetConfig, input_size: tuple[int, int, int] | None = None
) -> int:
    """FLOPs as the CondenseNet paper counts them: conv + FC MACs + BN outputs + avg-pool inputs.

    Not a stated rule: an inference that reproduces the printed 529 M / 274 M exactly
    (docs/provenance.md#condensenet). The final 7x7 average pool of the official network reads
    all final features, before the classifier's index; the index, ReLU and concat count nothing.
    """
    if isinstance(model_or_name, str):
        cfg = model_config(model_or_name)
        input_size = input_size or get_entry(model_or_name).input_size
    else:
        cfg = model_or_name.cfg if isinstance(model_or_name, Net) else model_or_name
        if not isinstance(cfg, CondenseNetConfig):
            raise BadType(f"condensenet_paper_flops: not a CondenseNet: {type(cfg).__name__}")
        input_size = input_size or (cfg.in_chans, 224, 224)
    p = plan(cfg)
    rows = plan_cost(cfg, p, input_size)
    extra, shape = 0, input_size
    for layer, row in zip(p.layers, rows):
        extra += _bn_and_pool_elements(layer, shape)
        shape = row.cx.shape
    return sum(r.cx.macs for r in rows) + extra


def _bn_and_pool_elements(layer: Layer, shape: tuple[int, int, int]) -> int:
    """BN output elements + average-pool input elements of one plan layer, on input ``shape``."""
    c, h, w = shape
    a = layer.args
    if layer.block is CondenseLayer:
        width = kept_width(c, a["group_1x1"], a["condense_factor"]) if a["condensed"] else c
        return (width + a["bottleneck"] * a["growth"]) * h * w
    if layer.block is AvgPool:
        return c * h * w
    if layer.block is NormAct:
        return 2 * c * h * w  # the final BN, then the global average pool reading all of it
    return 0


_SRC = "Huang et al. 2018 (ShichenLiu/CondenseNet README; ShuffleNet v2 Table 8)"
_NOTE = (
    "the paper's FLOPs add one op per BN output element and per average-pool input element "
    "(condensenet_paper_flops: {paper} M); conv + FC MACs are {macs} M"
)
_VARIANTS = {
    # name: (G = C, paper MFLOPs, paper M params, top-1 err, computed conv+FC MMACs, paper-style)
    "condensenet74_c4_g4": (4, "529", "4.8", "26.2", "516.6", "529.3"),
    "condensenet74_c8_g8": (8, "274", "2.9", "29.0", "261.5", "274.2"),
}

for _name, (_g, _flops, _params, _err, _macs, _paper) in _VARIANTS.items():
    _cfg = CondenseNetConfig(group_1x1=_g, group_3x3=_g, condense_factor=_g)
    _fig = PaperFigures(
        _SRC,
        macs=_flops,
        params=_params,
        top1_err=_err,
        computed_macs=_macs,
        note=_NOTE.format(paper=_paper, macs=_macs),
    )
    register_model(_name, FAMILY, _cfg, paper=_fig)
