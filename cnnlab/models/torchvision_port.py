"""``from_torchvision``: a torchvision model as the cnnlab network of the same architecture.

The architecture is read off the torchvision module (widths, repeats, strides, expansions) and
the weights are copied tensor by tensor in registration order, each shape checked, so the eval
outputs are identical. Each family registers its converter with :func:`register_port`; this file
holds ``ShuffleNetV2`` (as layout="torchvision") and ``MobileNetV2``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cnnlab.models.mobilenet_v2 import FAMILY as MOBILENET_V2
from cnnlab.models.mobilenet_v2 import MobileNetV2Config
from cnnlab.models.net import Net, NetConfig
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


def _copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst`` in order, checking shapes."""
    s, d = src.state_dict(), dst.state_dict()
    if len(s) != len(d):
        raise ValueError(f"cannot port: source has {len(s)} tensors, target {len(d)}")
    for (ks, vs), (kd, vd) in zip(s.items(), d.items()):
        if vs.shape != vd.shape:
            raise ValueError(f"cannot port {ks} {tuple(vs.shape)} into {kd} {tuple(vd.shape)}")
    dst.load_state_dict(dict(zip(d.keys(), s.values())))


# torchvision class name -> (cnnlab family, function reading the config off the module)
_PORTS: dict[str, tuple[Family, Callable[[nn.Module], NetConfig]]] = {}


def register_port(tv_class: str, family: Family, read_config: Callable[[nn.Module], NetConfig]):
    """Let ``from_torchvision`` port torchvision's ``tv_class`` into ``family``.

    ``read_config`` reads the architecture off the torchvision module; the family's plan must
    then register its parameters and buffers in torchvision's order (the copy is by order).
    """
    if tv_class in _PORTS:
        raise ValueError(f"a torchvision port for {tv_class} is already registered")
    _PORTS[tv_class] = (family, read_config)


register_port("ShuffleNetV2", SHUFFLENET_V2, _shufflenet_v2_config)
register_port("MobileNetV2", MOBILENET_V2, _mobilenet_v2_config)


def from_torchvision(tv_module: nn.Module) -> Net:
    """The cnnlab network with the architecture and weights of a torchvision model."""
    name = type(tv_module).__name__
    if name not in _PORTS or not type(tv_module).__module__.startswith("torchvision."):
        raise TypeError(
            f"from_torchvision supports torchvision's {', '.join(sorted(_PORTS))}, got "
            f"{name}; build it with cnnlab.create_model instead"
        )
    family, read_config = _PORTS[name]
    cfg = read_config(tv_module)
    cfg.check()
    net = Net(cfg, family.plan(cfg))
    _copy_state(tv_module, net)
    return net.train(tv_module.training)
