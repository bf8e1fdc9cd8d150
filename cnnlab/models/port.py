"""Porting a model of another library into the cnnlab network of the same architecture.

The architecture is read off the foreign module and the weights are copied tensor by tensor in
registration order, each shape checked, so eval outputs are identical. A :class:`Ports` table
maps the foreign class name to the cnnlab family and the function reading the config.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cnnlab.errors import BadType, BadValue
from cnnlab.models.net import Net, NetConfig
from cnnlab.models.registry import Family

ReadConfig = Callable[[nn.Module], NetConfig]


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst`` in order, checking shapes."""
    s, d = src.state_dict(), dst.state_dict()
    if len(s) != len(d):
        raise BadValue(f"cannot port: source has {len(s)} tensors, target {len(d)}")
    for (ks, vs), (kd, vd) in zip(s.items(), d.items()):
        if vs.shape != vd.shape:
            raise BadValue(f"cannot port {ks} {tuple(vs.shape)} into {kd} {tuple(vd.shape)}")
    dst.load_state_dict(dict(zip(d.keys(), s.values())))


class Ports:
    """The converters from one library (``torchvision``, ``timm``) keyed by its class names."""

    def __init__(self, library: str, entry: str):
        self.library, self.entry = library, entry
        self._table: dict[str, tuple[Family, ReadConfig]] = {}

    def register(self, cls_name: str, family: Family, read_config: ReadConfig) -> None:
        """Let ``convert`` port the library's ``cls_name`` into ``family``.

        ``read_config`` reads the architecture off the foreign module; the family's plan must
        then register its parameters and buffers in the library's order (the copy is by order).
        """
        if cls_name in self._table:
            raise BadValue(f"a {self.library} port for {cls_name} is already registered")
        self._table[cls_name] = (family, read_config)

    def names(self) -> list[str]:
        return sorted(self._table)

    def convert(self, module: nn.Module) -> Net:
        """The cnnlab network with the architecture and weights of ``module``."""
        name = type(module).__name__
        ours = type(module).__module__.startswith(self.library + ".")
        if name not in self._table or not ours:
            raise BadType(
                f"{self.entry} supports {self.library}'s {', '.join(self.names())}, got "
                f"{name}; build it with cnnlab.create_model instead"
            )
        family, read_config = self._table[name]
        cfg = read_config(module)
        cfg.check()
        net = Net(cfg, family.plan(cfg))
        copy_state(module, net)
        return net.train(module.training)
