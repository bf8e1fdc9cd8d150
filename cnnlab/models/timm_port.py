"""``from_timm``: a timm model as the cnnlab network of the same architecture.

timm is not a dependency: this module only reads modules the caller built with timm. The
architecture is read off the module and the weights copied in order (:mod:`cnnlab.models.port`).
Families register converters with :func:`register_timm_port`, keyed by timm's class name; this
file holds ``Xception`` (``legacy_xception``) and ``SENet`` (``legacy_seresnet*``,
``legacy_seresnext*``).
"""

from __future__ import annotations

import dataclasses

from torch import nn

from cnnlab.errors import BadValue
from cnnlab.models.net import Net
from cnnlab.models.port import Ports, ReadConfig
from cnnlab.models.registry import Family
from cnnlab.models.resnet import FAMILY as RESNET
from cnnlab.models.resnet import ResNetConfig
from cnnlab.models.xception import FAMILY as XCEPTION
from cnnlab.models.xception import XceptionConfig

_TIMM = Ports("timm", "from_timm")


def register_timm_port(timm_class: str, family: Family, read_config: ReadConfig) -> None:
    """Let ``from_timm`` port timm's ``timm_class`` into ``family`` (weights copied by order)."""
    _TIMM.register(timm_class, family, read_config)


def from_timm(timm_module: nn.Module) -> Net:
    """The cnnlab network with the architecture and weights of a timm model."""
    return _TIMM.convert(timm_module)


def _xception_config(m: nn.Module) -> XceptionConfig:
    """timm's legacy Xception has one fixed architecture (Chollet 2017): only the ends vary."""
    base = XceptionConfig()  # the registered xception's config: the paper's architecture
    widths = (m.conv1.out_channels, m.conv2.out_channels)
    if widths != base.stem:
        raise BadValue(f"cannot port an Xception with stem widths {widths}; expected {base.stem}")
    return dataclasses.replace(base, num_classes=m.fc.out_features, in_chans=m.conv1.in_channels)


def _senet_config(m: nn.Module) -> ResNetConfig:
    """SE-ResNet (stride in the first 1x1) or SE-ResNeXt (in the 3x3) read off timm's SENet."""
    first = m.layer1[0]
    kind = type(first).__name__
    if kind not in ("SEResNetBottleneck", "SEResNeXtBottleneck"):
        raise BadValue(
            f"cannot port a SENet built of {kind}; supported: SEResNetBottleneck, "
            f"SEResNeXtBottleneck (legacy_seresnet*, legacy_seresnext*)"
        )
    groups = first.conv2.groups
    planes = first.conv3.out_channels // 4
    return ResNetConfig(
        num_classes=m.last_linear.out_features,
        in_chans=m.layer0.conv1.in_channels,
        block="bottleneck",
        layers=tuple(len(getattr(m, f"layer{i}")) for i in (1, 2, 3, 4)),
        groups=groups,
        base_width=first.conv2.out_channels * 64 // (planes * groups),
        stride_in="3x3" if kind == "SEResNeXtBottleneck" else "1x1",
        se=first.conv3.out_channels // first.se_module.fc1.out_channels,
        stem=m.layer0.conv1.out_channels,
        stem_pool_ceil=True,
    )


register_timm_port("Xception", XCEPTION, _xception_config)
register_timm_port("SENet", RESNET, _senet_config)
