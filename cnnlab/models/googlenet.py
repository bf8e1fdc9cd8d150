"""GoogLeNet (Szegedy et al. 2015, Table 1) with batch norm after every conv, as torchvision has it.

``branch3_kernel`` picks the third branch's conv: 5x5 as in the paper (``googlenet``), or 3x3 as in
torchvision's model (``googlenet_tv``; its source calls the 3x3 a known bug kept for the weights).
The two auxiliary classifiers are left out: they only add training losses, torchvision drops them
in eval mode, and its weight metadata counts the model without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.inception import BasicConv, GoogLeNetInception, TransformInput
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.torchvision_port import register_port
from cnnlab.ops.pool import MaxPool

# Szegedy et al. 2015, Table 1: Inception modules and the max pools between them ("pool").
#         name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
TABLE = (
    ("inception3a", 64, 96, 128, 16, 32, 32),
    ("inception3b", 128, 128, 192, 32, 96, 64),
    ("pool3", 3),
    ("inception4a", 192, 96, 208, 16, 48, 64),
    ("inception4b", 160, 112, 224, 24, 64, 64),
    ("inception4c", 128, 128, 256, 24, 64, 64),
    ("inception4d", 112, 144, 288, 32, 64, 64),
    ("inception4e", 256, 160, 320, 32, 128, 128),
    ("pool4", 2),
    ("inception5a", 256, 160, 320, 32, 128, 128),
    ("inception5b", 384, 192, 384, 48, 128, 128),
)


@dataclass(frozen=True, kw_only=True)
class GoogLeNetConfig(NetConfig):
    """GoogLeNet: the Table 1 modules, the third branch's kernel, optional input transform."""

    table: tuple[tuple, ...] = TABLE
    branch3_kernel: int = 5  # the paper's 5x5; torchvision's model uses 3
    transform_input: bool = False  # torchvision's flag: ImageNet-normalised input to [-1, 1]
    drop_rate: float = 0.2  # torchvision's; the paper uses 0.4

    def check(self) -> None:
        super().check()
        if self.branch3_kernel not in (3, 5):
            raise BadValue(
                f"GoogLeNet: branch3_kernel must be 5 (the paper) or 3 (torchvision), "
                f"got {self.branch3_kernel}"
            )
        if self.transform_input and self.in_chans != 3:
            raise BadValue(f"transform_input needs in_chans=3, got {self.in_chans}")


def plan(cfg: GoogLeNetConfig) -> Plan:
    """7x7/2 conv, pool, 1x1 and 3x3 convs, pool, then the Table 1 modules (pools ceil-mode)."""
    layers = [Layer("transform_input", TransformInput)] if cfg.transform_input else []
    layers += [
        Layer("conv1", BasicConv, dict(c_in=cfg.in_chans, c_out=64, k=7, stride=2, padding=3)),
        Layer("pool1", MaxPool, dict(k=3, stride=2, padding=0, ceil_mode=True)),
        Layer("conv2", BasicConv, dict(c_in=64, c_out=64, k=1)),
        Layer("conv3", BasicConv, dict(c_in=64, c_out=192, k=3, padding=1)),
        Layer("pool2", MaxPool, dict(k=3, stride=2, padding=0, ceil_mode=True)),
    ]
    c = 192
    for name, *widths in cfg.table:
        if name.startswith("pool"):
            (k,) = widths
            layers.append(Layer(name, MaxPool, dict(k=k, stride=2, padding=0, ceil_mode=True)))
            continue
        c1, c3r, c3, c5r, c5, pp = widths
        args = dict(c_in=c, c1=c1, c3r=c3r, c3=c3, c5r=c5r, c5=c5, pool_proj=pp)
        layers.append(
            Layer(name, GoogLeNetInception, {**args, "branch3_kernel": cfg.branch3_kernel})
        )
        c = c1 + c3 + c5 + pp
    return Plan(layers, c)


FAMILY = Family("googlenet", GoogLeNetConfig, plan)


def _googlenet_config(tv: nn.Module) -> GoogLeNetConfig:
    """Read the module widths, third-branch kernel and input transform off torchvision's model."""
    if tv.aux1 is not None or tv.aux2 is not None:
        raise BadValue(
            "cannot port a GoogLeNet with auxiliary classifiers (cnnlab's has none); build it "
            "with torchvision.models.googlenet(aux_logits=False, init_weights=False)"
        )
    names = [n for n, _ in tv.named_children() if n.startswith(("inception", "maxpool"))][2:]
    table = []
    for name in names:
        m = getattr(tv, name)
        if name.startswith("maxpool"):
            table.append((f"pool{name[-1]}", m.kernel_size))
            continue
        (r3, c3), (r5, c5) = (tuple(b.conv for b in getattr(m, f"branch{i}")) for i in (2, 3))
        c1, pp = m.branch1.conv.out_channels, m.branch4[1].conv.out_channels
        widths = (c1, r3.out_channels, c3.out_channels, r5.out_channels, c5.out_channels, pp)
        table.append((name, *widths))
    return GoogLeNetConfig(
        num_classes=tv.fc.out_features,
        drop_rate=tv.dropout.p,
        table=tuple(table),
        branch3_kernel=tv.inception3a.branch3[1].conv.kernel_size[0],
        transform_input=tv.transform_input,
    )


register_port("GoogLeNet", FAMILY, _googlenet_config)

_NOTE_5X5 = (
    "the paper states a budget of 1.5 billion multiply-adds, not an exact count; Table 1's layers "
    "with 5x5 convs in the third branch give {macs} M (7,005,832 params with BN); torchvision's "
    "3x3 variant is googlenet_tv"
)
_PAPER = "Szegedy et al. 2015, §1 ('1.5 billion multiply-adds at inference time')"
_TV = "torchvision weight metadata (_ops, num_params)"
register_model(
    "googlenet",
    FAMILY,
    GoogLeNetConfig(branch3_kernel=5),
    paper=PaperFigures(
        _PAPER, "1500", None, computed_macs="1583", note=_NOTE_5X5.format(macs="1,582.7")
    ),
)
register_model(
    "googlenet_tv",
    FAMILY,
    GoogLeNetConfig(branch3_kernel=3),
    paper=PaperFigures(_TV, "1498", "6.624904"),
)
