"""DenseNet-BC (Huang et al. 2017, Table 1): dense blocks of bottleneck layers, compressing transitions.

Each dense layer returns the concatenation of its input and its k new maps, so one ``torch.cat``
per layer copies the block's features so far. torchvision instead concatenates the list of all
earlier outputs inside every layer; the outputs are identical but the memory access differs, and
the counts here are those of the module as implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.dense import DenseLayer, NormAct, Transition, check_growth, compressed_width
from cnnlab.errors import BadValue
from cnnlab.models.net import Layer, NetConfig, Plan
from cnnlab.models.registry import Family, PaperFigures, register_model
from cnnlab.models.torchvision_port import register_port
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.pool import MaxPool


@dataclass(frozen=True, kw_only=True)
class DenseNetConfig(NetConfig):
    """DenseNet-BC: growth rate k, layers per dense block, stem width, bottleneck and compression."""

    SMALL_INPUT = True

    growth: int = 32
    blocks: tuple[int, ...] = (6, 12, 24, 16)
    stem: int = 64  # 2k in the paper; 64 for k=32, 96 for DenseNet-161 (k=48)
    bn_size: int = 4  # the "B" of BC: a 1x1 conv to 4k maps before each 3x3 (§3)
    compression: float = 0.5  # the "C" of BC: theta (§3)

    def check(self) -> None:
        super().check()
        check_growth(self.growth, self.bn_size)
        compressed_width(max(self.stem, 2), self.compression)
        if not self.blocks or min(self.blocks) < 1:
            raise BadValue(f"DenseNet: blocks must be layer counts >= 1, got {self.blocks}")
        if self.stem < 1:
            raise BadValue(f"DenseNet: stem width must be >= 1, got {self.stem}")


def plan(cfg: DenseNetConfig) -> Plan:
    """7x7/2 conv, 3x3/2 max pool, dense blocks with transitions between them, final BN-ReLU."""
    if cfg.small_input:  # CIFAR-style: one 3x3 conv at stride 1, no pool
        layers = [Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=3))]
    else:
        layers = [
            Layer("stem", ConvNormAct, dict(c_in=cfg.in_chans, c_out=cfg.stem, k=7, stride=2)),
            Layer("pool", MaxPool, dict(k=3, stride=2, padding=1)),
        ]
    c = cfg.stem
    for i, n in enumerate(cfg.blocks):
        for j in range(n):
            args = dict(c_in=c, growth=cfg.growth, bn_size=cfg.bn_size)
            layers.append(Layer(f"block{i + 1}_{j + 1}", DenseLayer, args))
            c += cfg.growth
        if i < len(cfg.blocks) - 1:
            args = dict(c_in=c, compression=cfg.compression)
            layers.append(Layer(f"transition{i + 1}", Transition, args))
            c = compressed_width(c, cfg.compression)
    layers.append(Layer("norm_final", NormAct, dict(c_in=c)))
    return Plan(layers, c)


FAMILY = Family("densenet", DenseNetConfig, plan)


def _densenet_config(tv: nn.Module) -> DenseNetConfig:
    """Read growth, blocks, stem, bottleneck and compression off a torchvision DenseNet."""
    f = tv.features
    dense = [m for n, m in f.named_children() if n.startswith("denseblock")]
    first = dense[0].denselayer1
    if first.drop_rate > 0:
        raise BadValue(
            f"cannot port a DenseNet with drop_rate={first.drop_rate} inside its dense layers; "
            "build it with drop_rate=0"
        )
    growth = first.conv2.out_channels
    trans = getattr(f, "transition1", None)
    theta = trans.conv.out_channels / trans.conv.in_channels if trans is not None else 0.5
    return DenseNetConfig(
        num_classes=tv.classifier.out_features,
        in_chans=f.conv0.in_channels,
        growth=growth,
        blocks=tuple(len(b) for b in dense),
        stem=f.conv0.out_channels,
        bn_size=first.conv1.out_channels // growth,
        compression=theta,
    )


register_port("DenseNet", FAMILY, _densenet_config)

_SRC = "torchvision weight metadata (_ops, num_params)"
_VARIANTS = {
    # name: (k, blocks, stem, GMACs, params)
    "densenet121": (32, (6, 12, 24, 16), 64, "2834", "7.978856"),
    "densenet169": (32, (6, 12, 32, 32), 64, "3360", "14.149480"),
    "densenet201": (32, (6, 12, 48, 32), 64, "4291", "20.013928"),
    "densenet161": (48, (6, 12, 36, 24), 96, "7728", "28.681000"),
}

for _name, (_k, _blocks, _stem, _macs, _params) in _VARIANTS.items():
    _cfg = DenseNetConfig(growth=_k, blocks=_blocks, stem=_stem)
    register_model(_name, FAMILY, _cfg, paper=PaperFigures(_SRC, _macs, _params))
