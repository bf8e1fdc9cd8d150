"""Inception v3 (Szegedy et al. 2016, Table 1) at 299x299, in the layout of the released model.

The widths follow the released TF model (and torchvision, which ports it), as the paper's Table 1
gives only the module types. The auxiliary classifier on the 17x17 grid (§6) is an option
(``aux=True``): it is a pass-through in eval mode, so it adds parameters and no inference cost.
The registered ``inception_v3`` leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.inception import (
    AuxClassifier,
    BasicConv,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE,
    TransformInput,
)
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.torchvision_port import register_port
from cnnlab.ops.pool import MaxPool


@dataclass(frozen=True, kw_only=True)
class InceptionV3Config(NetConfig):
    """Inception v3: pool widths of the 35x35 modules, inner widths of the 17x17 ones, aux head."""

    pool_features: tuple[int, ...] = (32, 64, 64)  # Mixed_5b..5d (Fig. 5 modules)
    c7: tuple[int, ...] = (128, 160, 160, 192)  # Mixed_6b..6e (Fig. 6 modules, n=7)
    aux: bool = False  # auxiliary classifier after Mixed_6e (training only)
    transform_input: bool = False  # torchvision's flag: ImageNet-normalised input to [-1, 1]
    drop_rate: float = 0.5  # torchvision's

    def check(self) -> None:
        super().check()
        for name in ("pool_features", "c7"):
            widths = getattr(self, name)
            if not widths or min(widths) < 1:
                raise BadValue(f"Inception v3: {name} must be widths >= 1, got {widths}")
        if self.transform_input and self.in_chans != 3:
            raise BadValue(f"transform_input needs in_chans=3, got {self.in_chans}")


def plan(cfg: InceptionV3Config) -> Plan:
    """Stem of five convs and two pools, 3 x Fig. 5, reduction, 4 x Fig. 6, reduction, 2 x Fig. 7."""
    layers = [Layer("transform_input", TransformInput)] if cfg.transform_input else []
    layers += [
        Layer("conv1a", BasicConv, dict(c_in=cfg.in_chans, c_out=32, k=3, stride=2)),
        Layer("conv2a", BasicConv, dict(c_in=32, c_out=32, k=3)),
        Layer("conv2b", BasicConv, dict(c_in=32, c_out=64, k=3, padding=1)),
        Layer("pool1", MaxPool, dict(k=3, stride=2, padding=0)),
        Layer("conv3b", BasicConv, dict(c_in=64, c_out=80, k=1)),
        Layer("conv4a", BasicConv, dict(c_in=80, c_out=192, k=3)),
        Layer("pool2", MaxPool, dict(k=3, stride=2, padding=0)),
    ]
    c = 192
    for i, pf in enumerate(cfg.pool_features):
        layers.append(Layer(f"mixed5{'bcdefgh'[i]}", InceptionA, dict(c_in=c, pool_features=pf)))
        c = 64 + 64 + 96 + pf
    layers.append(Layer("mixed6a", InceptionB, dict(c_in=c)))
    c += 384 + 96
    for i, c7 in enumerate(cfg.c7):
        layers.append(Layer(f"mixed6{'bcdefgh'[i]}", InceptionC, dict(c_in=c, c7=c7)))
        c = 4 * 192
    if cfg.aux:
        layers.append(Layer("aux", AuxClassifier, dict(c_in=c, num_classes=cfg.num_classes)))
    layers.append(Layer("mixed7a", InceptionD, dict(c_in=c)))
    c += 320 + 192
    for name in ("mixed7b", "mixed7c"):
        layers.append(Layer(name, InceptionE, dict(c_in=c)))
        c = 320 + 4 * 384 + 192
    return Plan(layers, c)


FAMILY = Family("inception_v3", InceptionV3Config, plan)


def _inception_v3_config(tv: nn.Module) -> InceptionV3Config:
    """Read the module widths, aux head and input transform off torchvision's Inception3."""
    return InceptionV3Config(
        num_classes=tv.fc.out_features,
        drop_rate=tv.dropout.p,
        pool_features=tuple(
            getattr(tv, f"Mixed_5{x}").branch_pool.conv.out_channels for x in "bcd"
        ),
        c7=tuple(getattr(tv, f"Mixed_6{x}").branch7x7_1.conv.out_channels for x in "bcde"),
        aux=tv.AuxLogits is not None,
        transform_input=tv.transform_input,
    )


register_port("Inception3", FAMILY, _inception_v3_config)

_NOTE = (
    "torchvision's num_params (27,161,264) includes the auxiliary classifier (3,326,696 params), "
    "which inception_v3 leaves out; with aux=True the count equals it. MACs exclude the aux head "
    "in both (it runs in training only)"
)
register_model(
    "inception_v3",
    FAMILY,
    InceptionV3Config(),
    input_size=(3, 299, 299),
    paper=PaperFigures(
        "torchvision weight metadata (_ops, num_params)",
        "5713",
        "27.161264",
        computed_params="23.83",
        note=_NOTE,
    ),
)
