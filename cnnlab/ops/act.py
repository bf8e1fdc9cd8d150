"""Activation functions by name, so families take their activation as plain data."""

from __future__ import annotations

from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_swish": nn.Hardswish,
    "silu": nn.SiLU,
}
_INPLACE = {"relu", "relu6", "hard_sigmoid", "hard_swish", "silu"}


def activation_names() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return sorted(_ACTIVATIONS)


def check_activation(name: str | None) -> None:
    """Refuse an unknown activation name, listing the known ones."""
    if name is not None and name not in _ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {', '.join(activation_names())} or None"
        )


def get_activation(name: str | None, *, inplace: bool = True) -> nn.Module:
    """A new activation module for ``name`` (``None`` gives ``nn.Identity``)."""
    check_activation(name)
    if name is None:
        return nn.Identity()
    cls = _ACTIVATIONS[name]
    return cls(inplace=inplace) if name in _INPLACE else cls()
