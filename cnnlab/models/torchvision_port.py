"""``from_torchvision``: a torchvision model as the cnnlab network of the same architecture.

The architecture is read off the torchvision module (widths, repeats, strides, expansions) and
the weights are copied tensor by tensor in registration order (:mod:`cnnlab.models.port`). Each
family registers its converter with :func:`register_port`; this file holds ``ShuffleNetV2`` (as
layout="torchvision") and ``MobileNetV2``.
"""

from __future__ import annotations

from torch import nn

from cnnlab.models.mobilenet_v2 import FAMILY as MOBILENET_V2
from cnnlab.models.mobilenet_v2 import MobileNetV2Config
from cnnlab.models.net import Net
from cnnlab.models.port import Ports, ReadConfig
from cnnlab.models.registry import Family
from cnnlab.models.shufflenet_v2 import FAMILY as SHUFFLENET_V2
from cnnlab.models.shufflenet_v2 import ShuffleNetV2Config


def _shufflenet_v2_config(tv: nn.Module) -> ShuffleNetV2Config:
    stem, *stages, conv5 = tv._stage_out_channels
    return ShuffleNetV2Config(
        num_classes=tv.fc.out_features,
        in_chans=tv.conv1[0].in_channels,
        stem=stem,
        stage_channels=tuple(stages),
        repeats=tuple(len(getattr(tv, f"stage{i}")) for i in (2, 3, 4)),
        conv5=conv5,
        layout="torchvision",
    )


def _mobilenet_v2_table(blocks: list[nn.Module]) -> tuple[tuple, ...]:
    """The (t, c, n, s) rows of a sequence of torchvision InvertedResidual blocks."""
    rows: list[list] = []
    for block in blocks:
        convs = [m for m in block.conv.modules() if isinstance(m, nn.Conv2d)]
        c_in, hidden, c_out = convs[0].in_channels, convs[-1].in_channels, convs[-1].out_channels
        t = hidden / c_in if len(convs) == 3 else 1
        t = int(t) if float(t).is_integer() else t
        stride = convs[-2].stride[0]
        if rows and rows[-1][0] == t and rows[-1][1] == c_out and stride == 1:
            rows[-1][2] += 1
        else:
            rows.append([t, c_out, 1, stride])
    return tuple(tuple(r) for r in rows)


def _mobilenet_v2_config(tv: nn.Module) -> MobileNetV2Config:
    stem, *blocks, last = tv.features
    return MobileNetV2Config(
        num_classes=tv.classifier[1].out_features,
        in_chans=stem[0].in_channels,
        drop_rate=tv.classifier[0].p,
        width=1.0,
        round_to=1,  # the widths read off the module are final: no further rounding
        stem=stem[0].out_channels,
        last=last[0].out_channels,
        table=_mobilenet_v2_table(blocks),
    )


_TORCHVISION = Ports("torchvision", "from_torchvision")


def register_port(tv_class: str, family: Family, read_config: ReadConfig) -> None:
    """Let ``from_torchvision`` port torchvision's ``tv_class`` into ``family`` (by order)."""
    _TORCHVISION.register(tv_class, family, read_config)


register_port("ShuffleNetV2", SHUFFLENET_V2, _shufflenet_v2_config)
register_port("MobileNetV2", MOBILENET_V2, _mobilenet_v2_config)


def from_torchvision(tv_module: nn.Module) -> Net:
    """The cnnlab network with the architecture and weights of a torchvision model."""
    return _TORCHVISION.convert(tv_module)
