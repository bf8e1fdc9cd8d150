"""Activation functions by name, so families take their activation as plain data.

Every entry of the registry records, besides how to build the module, what its eager forward
costs: one element-wise ATen operator per entry of ``passes``, each reading that many n-element
tensors and writing one. :func:`cnnlab.ops.cost.act_cx` turns this into memory access, so the
analytic count equals what :mod:`cnnlab.counting.trace` sees when the module runs.

The searched functions are the best ones found by Ramachandran, Zoph & Le 2017 ("Searching for
activation functions", the table X. Zhang's survey reproduces; docs/provenance.md#activations).
Their ``sinc(x)`` is the unnormalised ``sin(x)/x`` (``sinc(0) = 1``), not ``torch.sinc``'s
``sin(pi x)/(pi x)``; it is computed as ``torch.sinc(x / pi)``, whose gradient is defined at 0
(``sinc'(0) = 0``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import BadType, BadValue


class Swish(nn.Module):
    """Swish x*sigmoid(beta*x) (Ramachandran et al. 2017, §4): beta fixed, or trainable per channel.

    beta = 1 is SiLU (computed by ``F.silu``, one pass); beta = 0 gives x/2; beta -> inf tends to
    ReLU. ``trainable=True`` makes beta a parameter initialised to ``beta``: one scalar, or one per
    channel when ``channels`` is given (broadcast over dim 1 of an (N, C, H, W) input).
    """

    def __init__(
        self, beta: float = 1.0, *, trainable: bool = False, channels: int | None = None
    ) -> None:
        super().__init__()
        if channels is not None and (not trainable or channels < 1):
            raise BadValue(
                f"Swish: channels={channels} needs trainable=True and channels >= 1 "
                "(a per-channel beta is a parameter)"
            )
        self.trainable = trainable
        if trainable:
            shape = () if channels is None else (channels, 1, 1)
            self.beta = nn.Parameter(torch.full(shape, float(beta)))
        else:
            self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.trainable and self.beta == 1.0:
            return F.silu(x)
        return x * torch.sigmoid(self.beta * x)

    def extra_repr(self) -> str:
        beta = tuple(self.beta.shape) if self.trainable else self.beta
        return f"beta={beta}, trainable={self.trainable}"


def sinc(x: torch.Tensor) -> torch.Tensor:
    """The paper's sinc(x) = sin(x)/x with sinc(0) = 1, via torch.sinc(y) = sin(pi y)/(pi y)."""
    return torch.sinc(x / math.pi)


def max_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.maximum(x, torch.sigmoid(x))


def cos_minus_x(x: torch.Tensor) -> torch.Tensor:
    return torch.cos(x) - x


def min_sin(x: torch.Tensor) -> torch.Tensor:
    return torch.minimum(x, torch.sin(x))


def atan_sq_minus_x(x: torch.Tensor) -> torch.Tensor:
    return torch.atan(x).pow(2) - x


def max_tanh(x: torch.Tensor) -> torch.Tensor:
    return torch.maximum(x, torch.tanh(x))


def sinc_plus_x(x: torch.Tensor) -> torch.Tensor:
    return sinc(x) + x


def x_asinh_sq(x: torch.Tensor) -> torch.Tensor:
    return x * torch.asinh(x).pow(2)


# The searched functions of Ramachandran et al. 2017, and the reads of each eager ATen pass
# (sigmoid then maximum: (1, 2); atan, pow, sub: (1, 1, 2); x / pi, sinc, add: (1, 1, 2)).
#   name: (formula, function, reads per pass)
SEARCHED: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor], tuple[int, ...]]] = {
    "max_sigmoid": ("max(x, sigmoid(x))", max_sigmoid, (1, 2)),
    "cos_minus_x": ("cos(x) - x", cos_minus_x, (1, 2)),
    "min_sin": ("min(x, sin(x))", min_sin, (1, 2)),
    "atan_sq_minus_x": ("atan(x)^2 - x", atan_sq_minus_x, (1, 1, 2)),
    "max_tanh": ("max(x, tanh(x))", max_tanh, (1, 2)),
    "sinc_plus_x": ("sin(x)/x + x", sinc_plus_x, (1, 1, 2)),
    "x_asinh_sq": ("x * asinh(x)^2", x_asinh_sq, (1, 1, 2)),
}


class Searched(nn.Module):
    """A function found by activation search (Ramachandran, Zoph, Le 2017, §3), chosen by name."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in SEARCHED:
            raise BadValue(f"Searched: unknown function {name!r}; choose one of {list(SEARCHED)}")
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SEARCHED[self.name][1](x)

    def extra_repr(self) -> str:
        return SEARCHED[self.name][0]


@dataclass(frozen=True)
class ActivationSpec:
    """How to build an activation, which options it takes, and the passes its forward makes.

    ``passes(**options)``: for each element-wise ATen op of the eager forward, how many n-element
    tensors it reads (it writes one). ``beta``: the first pass also reads the trainable beta.
    """

    build: Callable[..., nn.Module]
    formula: str
    options: tuple[str, ...] = ()
    passes: Callable[..., tuple[int, ...]] = lambda **_: (1,)
    inplace: bool = False
    beta: bool = False


def _swish_passes(beta: float = 1.0, **_) -> tuple[int, ...]:
    return (1,) if beta == 1.0 else (1, 1, 2)  # silu; else beta*x, sigmoid, x*s


_ACTIVATIONS: dict[str, ActivationSpec] = {
    "relu": ActivationSpec(nn.ReLU, "max(0, x)", inplace=True),
    "relu6": ActivationSpec(nn.ReLU6, "min(max(0, x), 6)", inplace=True),
    "leaky_relu": ActivationSpec(
        lambda slope=0.01, **kw: nn.LeakyReLU(slope, **kw),
        "max(0, x) + slope * min(0, x)",
        ("slope",),
        inplace=True,
    ),
    "sigmoid": ActivationSpec(nn.Sigmoid, "1 / (1 + exp(-x))"),
    "hard_sigmoid": ActivationSpec(nn.Hardsigmoid, "relu6(x + 3) / 6", inplace=True),
    "hard_swish": ActivationSpec(nn.Hardswish, "x * relu6(x + 3) / 6", inplace=True),
    "silu": ActivationSpec(nn.SiLU, "x * sigmoid(x)", inplace=True),
    "swish": ActivationSpec(
        lambda beta=1.0: Swish(beta), "x * sigmoid(beta x), beta fixed", ("beta",), _swish_passes
    ),
    "swish_trainable": ActivationSpec(
        lambda beta=1.0, channels=None: Swish(beta, trainable=True, channels=channels),
        "x * sigmoid(beta x), beta trainable",
        ("beta", "channels"),
        lambda **_: (1, 1, 2),
        beta=True,
    ),
    **{
        name: ActivationSpec(lambda name=name: Searched(name), formula, (), lambda r=reads, **_: r)
        for name, (formula, _, reads) in SEARCHED.items()
    },
}


def activation_names() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return sorted(_ACTIVATIONS)


def check_activation(name: str | None) -> None:
    """Refuse an unknown activation name, listing the known ones."""
    if name is not None and name not in _ACTIVATIONS:
        raise BadValue(
            f"unknown activation {name!r}; choose one of {', '.join(activation_names())} or None"
        )


def _spec(name: str, options: dict) -> ActivationSpec:
    check_activation(name)
    spec = _ACTIVATIONS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(spec.options) or "none"
        raise BadType(f"activation {name!r}: unknown option(s) {unknown}; it takes: {accepted}")
    return spec


def get_activation(name: str | None, *, inplace: bool = True, **options) -> nn.Module:
    """A new activation module for ``name`` (``None`` gives ``nn.Identity``).

    ``options``: ``slope`` (leaky_relu), ``beta`` (swish, swish_trainable: the fixed value or the
    initial one), ``channels`` (swish_trainable: one beta per channel instead of one scalar).
    ``inplace`` applies where PyTorch's module has it.
    """
    if name is None:
        return nn.Identity()
    spec = _spec(name, options)
    return spec.build(inplace=inplace, **options) if spec.inplace else spec.build(**options)


def activation_cost(name: str, numel: int, **options) -> tuple[int, int]:
    """(params, memory access in elements) of activation ``name`` built with ``options``.

    Each eager pass reads its inputs and writes n = ``numel``; swish_trainable also holds and
    reads its beta (1, or ``channels`` of them). Tested against the traced counter.
    """
    key = tuple(sorted(options.items())) if options else ()
    params, per_element = cost_factors(name, key)
    return params, per_element * numel + params


@functools.cache
def cost_factors(name: str, options: tuple = ()) -> tuple[int, int]:
    """(params, elements moved per input element) of activation ``name`` with ``options`` given
    as sorted (key, value) pairs; cached: this is on the analytic hot path."""
    spec = _spec(name, dict(options))
    per_element = sum(reads + 1 for reads in spec.passes(**dict(options)))
    params = (dict(options).get("channels") or 1) if spec.beta else 0
    return params, per_element
