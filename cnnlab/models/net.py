"""A classification network built from a plan: named feature layers, then the classifier head.

A family turns its config (a dataclass mirroring the paper's table) into a :class:`Plan`, a list
of :class:`Layer` records (block class + constructor arguments). The same plan builds the modules
and, through each block's ``complexity`` static method, computes the analytic cost without
building anything, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from cnnlab.blocks.head import ClassifierHead
from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx


@dataclass(frozen=True, kw_only=True)
class NetConfig:
    """Fields every classification model has; each family's config adds its own table.

    ``small_input``: the CIFAR-style stem for 8-32 px images (stem conv at stride 1, no stem
    pooling), so small inputs are not shrunk to nothing; families that offer it set
    ``SMALL_INPUT = True``, the others refuse it.
    """

    SMALL_INPUT: ClassVar[bool] = False

    num_classes: int = 1000
    in_chans: int = 3
    drop_rate: float = 0.0
    small_input: bool = False

    def stem_stride(self, stride: int) -> int:
        """The stem's stride: 1 with the small-input stem."""
        return 1 if self.small_input else stride

    def check(self) -> None:
        """Refuse impossible values of the common fields."""
        if self.small_input and not self.SMALL_INPUT:
            raise BadValue(
                f"{type(self).__name__} has no small-input (CIFAR-style) stem; use "
                f"small_input=False and an input of the model's size, or another family"
            )
        if self.in_chans < 1:
            raise BadValue(f"in_chans must be >= 1, got {self.in_chans}")
        if self.num_classes < 0:
            raise BadValue(
                f"num_classes must be >= 0 (0 removes the classifier), got {self.num_classes}"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise BadValue(f"drop_rate must be in [0, 1), got {self.drop_rate}")


@dataclass(slots=True)
class Layer:
    """One named layer of a plan: a block class and the arguments of its constructor.

    Read-only once in a plan, yet not frozen: a frozen dataclass's ``__init__`` takes 3x as long,
    and every count builds every layer of its plan: frozen, bench_complexity's fresh reading
    (analytic side) took 8-12% longer.
    """

    name: str
    block: type[nn.Module]
    args: dict[str, Any] = field(default_factory=dict)

    def build(self) -> nn.Module:
        try:
            return self.block(**self.args)
        except ValueError as e:
            raise BadValue(f"layer {self.name!r}: {e}") from None

    def cost(self, cx: Cx) -> Cx:
        try:
            return self.block.complexity(cx, **self.args)
        except ValueError as e:
            raise BadValue(f"layer {self.name!r}: {e}") from None


@dataclass(frozen=True)
class Plan:
    """Feature layers in order and the width of the features they produce."""

    layers: list[Layer]
    num_features: int


class CostRow(NamedTuple):
    """The analytic cost of one layer: its name, block type and output state (a named tuple: a
    count makes one per layer, and a tuple is cheaper to build than a frozen dataclass)."""

    name: str
    kind: str
    cx: Cx


class Net(nn.Module):
    """Feature layers from a plan + :class:`ClassifierHead`; the cnnlab model contract."""

    def __init__(
        self, cfg: NetConfig, plan: Plan, input_size: tuple[int, int, int] | None = None
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.plan = plan
        # the input it is counted and timed at unless told otherwise: a registered model's own
        self.default_input_size = tuple(input_size or (cfg.in_chans, 224, 224))
        self.num_features = plan.num_features
        self.features = nn.Sequential()
        for layer in plan.layers:
            self.features.add_module(layer.name, layer.build())
        self.head = ClassifierHead(plan.num_features, cfg.num_classes, cfg.drop_rate)
        self._structure = self.structure()

    def structure(self) -> tuple[tuple[str, type], ...]:
        """Every feature submodule's name and type: what the plan describes."""
        return tuple((n, type(m)) for n, m in self.features.named_modules())

    def matches_plan(self) -> bool:
        """False once a feature module was swapped (e.g. by ``convert_norm``) after building."""
        return self.structure() == self._structure

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final FC by a new one with ``num_classes`` outputs (0: no classifier)."""
        self.head.reset(num_classes)
        self.cfg = replace(self.cfg, num_classes=num_classes)


class Memo:
    """A bounded dict for the analytic count's pure functions; ``clear()`` gives cold starts."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: dict = {}

    def get(self, key):
        """The value remembered for ``key``, or None (TypeError: ``key`` is unhashable)."""
        return self._data.get(key)

    def put(self, key, value) -> None:
        if len(self._data) >= self.maxsize:
            self._data.pop(next(iter(self._data)))  # drop the oldest entry
        self._data[key] = value

    def clear(self) -> None:
        self._data.clear()


# The cost of a block is a pure function of (block, arguments, input shape): units repeat within
# a network (ShuffleNet's stages) and across the candidates of a search, so each distinct one is
# counted once. Without it, bench_complexity's fresh reading (a config not seen before, its
# blocks remembered) is a cold count: 6.3x the time of the analytic side.
LAYER_COSTS = Memo(65536)


def clear_cost_caches() -> None:
    """Forget every remembered layer cost: the next count starts cold."""
    LAYER_COSTS.clear()


def plan_cost(cfg: NetConfig, plan: Plan, input_size: tuple[int, int, int]) -> list[CostRow]:
    """The analytic cost of every layer of ``plan`` and of the head, for one input of input_size."""
    c, h, w = input_size
    if c != cfg.in_chans:
        raise BadValue(
            f"input_size has {c} channels but the model takes in_chans={cfg.in_chans}; "
            f"pass input_size=({cfg.in_chans}, {h}, {w})"
        )
    cx = Cx(c, h, w)
    rows = []
    for layer in plan.layers:
        # the layer's identity on this input (arguments in insertion order: the same ones
        # listed in another order only miss the memo)
        key = (layer.block, tuple(layer.args.items()), cx.shape)
        try:
            cached = LAYER_COSTS.get(key)
        except TypeError:  # unhashable arguments: counted without the memo
            key = cached = None
        if cached is None:
            cached = layer.cost(cx.branch())
            if key is not None:
                LAYER_COSTS.put(key, cached)
        cx = cached
        rows.append(CostRow(layer.name, layer.block.__name__, cx))
    head = ClassifierHead.complexity(cx.branch(), plan.num_features, cfg.num_classes)
    rows.append(CostRow("head", ClassifierHead.__name__, head))
    return rows
