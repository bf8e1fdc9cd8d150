"""One factory for the normalization layers, the converter between them, and weight norm.

Kinds (``get_norm(kind, num_features, **options)``):

- ``"bn"``: ``nn.BatchNorm2d``: per-channel statistics over (N, H, W) (Ioffe & Szegedy 2015).
- ``"gn"``: ``nn.GroupNorm(groups, C)``: per-sample statistics over (H, W) and each group of
  C/G channels, G = 32 by default (Wu & He 2018, §3.1).
- ``"ln"``: layer norm as the GN paper defines it for conv nets: per-sample statistics over
  (C, H, W), i.e. ``nn.GroupNorm(1, C)`` with a per-channel gamma, beta (Wu & He 2018, §3.1).
  ``nn.LayerNorm((C, H, W))`` computes the same statistics but learns one gamma per element.
- ``"in"``: instance norm as the GN paper defines it, G = C: ``nn.GroupNorm(C, C)``, affine,
  without running statistics (train and eval both normalize per sample and channel).
- ``"brn"``: :class:`BatchRenorm2d` (Ioffe 2017). ``"ghost"``: :class:`GhostBatchNorm2d`.
- ``"distributed"``: ``cnnlab.ops.distributed_bn.DistributedBatchNorm2d``, BN over the global batch
  of a process group (imported when asked for).

Weight norm (Salimans & Kingma 2016, ``w = g * v / ||v||``) reparametrises a layer's weights instead
of normalizing activations, so it is not a kind: :func:`apply_weight_norm` wraps every conv.
"""

from __future__ import annotations

import copy
import inspect

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm
from torch.nn.utils.parametrize import is_parametrized

from cnnlab.errors import BadType, BadValue
from cnnlab.ops.cost import Cx
from cnnlab.ops.ghost_bn import GhostBatchNorm2d
from cnnlab.ops.renorm import BatchRenorm2d, batch_norm_cx

NORM_KINDS = ("bn", "gn", "ln", "in", "brn", "ghost", "distributed")
BATCH_KINDS = ("bn", "brn", "ghost", "distributed")  # BN at inference: running stats, foldable
_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _distributed_bn() -> type[nn.Module]:
    from cnnlab.ops.distributed_bn import DistributedBatchNorm2d  # lazy: layer written separately

    return DistributedBatchNorm2d


def _group_norm(num_features: int, groups: int = 32, eps: float = 1e-5, affine: bool = True):
    check_groups(num_features, groups)
    return nn.GroupNorm(groups, num_features, eps, affine)


def _layer_norm(num_features: int, eps: float = 1e-5, affine: bool = True):
    return nn.GroupNorm(1, num_features, eps, affine)


def _instance_norm(num_features: int, eps: float = 1e-5, affine: bool = True):
    return nn.GroupNorm(num_features, num_features, eps, affine)


def _builder(kind: str):
    check_kind(kind)
    return {
        "bn": nn.BatchNorm2d,
        "gn": _group_norm,
        "ln": _layer_norm,
        "in": _instance_norm,
        "brn": BatchRenorm2d,
        "ghost": GhostBatchNorm2d,
    }.get(kind) or _distributed_bn()


def check_kind(kind) -> None:
    """Refuse an unknown norm kind, listing the known ones."""
    if kind in NORM_KINDS:
        return
    hint = ""
    if kind == "wn":
        hint = " (weight norm reparametrises conv weights: use apply_weight_norm(model))"
    raise BadValue(f"unknown norm kind {kind!r}{hint}; choose one of {', '.join(NORM_KINDS)}")


def check_groups(num_channels: int, groups) -> None:
    """Refuse a group count that does not divide the channels (GN: C/G channels per group)."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise BadValue(f"group norm: groups must be a positive integer, got {groups!r}")
    if num_channels % groups:
        raise BadValue(
            f"group norm: groups={groups} does not divide num_channels={num_channels}; "
            f"choose groups among the divisors of {num_channels}"
        )


def norm_options(kind: str) -> tuple[str, ...]:
    """Names of the options ``get_norm(kind, ...)`` accepts."""
    params = inspect.signature(_builder(kind)).parameters
    return tuple(n for n in params if n not in ("num_features", "device", "dtype"))


def get_norm(kind: str, num_features: int, **options) -> nn.Module:
    """A normalization layer of ``kind`` for ``num_features`` channels (kinds: module docstring)."""
    build = _builder(kind)
    if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features < 1:
        raise BadValue(f"get_norm: num_features must be a positive integer, got {num_features!r}")
    known = norm_options(kind)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise BadType(
            f"get_norm({kind!r}): unknown option(s) {', '.join(unknown)}; "
            f"options for {kind!r}: {', '.join(known)}"
        )
    return build(num_features, **options)


def get_norm_cx(cx: Cx, kind: str, num_features: int, *, folded: bool = False, **options) -> Cx:
    """Inference cost of ``get_norm(kind, num_features, **options)`` on ``cx``.

    Batch kinds are BN at inference: free when ``folded`` into the conv they directly follow.
    GN/LN/IN normalize with per-sample statistics that exist only at run time, so they are never
    folded: they read the input and 2C parameters and write the output. Parameters: 2C (affine).
    """
    check_kind(kind)
    affine = options.get("affine", True)
    if kind in BATCH_KINDS:
        return batch_norm_cx(cx, num_features, affine=affine, folded=folded)
    if kind == "gn":
        check_groups(num_features, options.get("groups", 32))
    return batch_norm_cx(cx, num_features, affine=affine, folded=False)


def weight_norm_cx(cx: Cx) -> Cx:
    """Weight norm on the conv that produced ``cx``: one magnitude g per output channel (c more
    parameters); at inference w = g v/||v|| is computed once, so no memory access is added."""
    return cx.add(params=cx.c)


def _is_norm(m: nn.Module, distributed: type | None) -> bool:
    if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm, nn.GroupNorm)):
        return True
    return distributed is not None and isinstance(m, distributed)


def _distributed_or_none() -> type | None:
    try:
        return _distributed_bn()
    except ModuleNotFoundError as e:
        if e.name != "cnnlab.ops.distributed_bn":
            raise
        return None


def _inherited(old: nn.Module, kind: str) -> dict:
    """Hyper-parameters that carry over from ``old`` to a layer of ``kind``."""
    found = {"eps": old.eps, "affine": old.affine}
    if kind in BATCH_KINDS and hasattr(old, "track_running_stats"):
        found.update(momentum=old.momentum, track_running_stats=old.track_running_stats)
    if kind == "distributed" and getattr(old, "process_group", None) is not None:
        found["process_group"] = old.process_group  # from nn.SyncBatchNorm or another distributed
    return found


@torch.no_grad()
def _copy_state(old: nn.Module, new: nn.Module) -> None:
    """Copy affine parameters and running statistics present in both layers."""
    for name in _STATE:
        src, dst = getattr(old, name, None), getattr(new, name, None)
        if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor):
            dst.copy_(src)
            dst.requires_grad_(src.requires_grad)


def _replacement(name: str, old: nn.Module, kind: str, options: dict) -> nn.Module:
    num_features = getattr(old, "num_features", None) or old.num_channels
    args = {**_inherited(old, kind), **options}
    try:
        new = get_norm(kind, num_features, **args)
    except ValueError as e:
        raise BadValue(f"convert_norm: layer {name or '<model>'!r}: {e}") from None
    ref = next((t for t in [*old.parameters(), *old.buffers()] if t.is_floating_point()), None)
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
    _copy_state(old, new)
    return new.train(old.training)


def convert_norm(model: nn.Module, kind: str, **options) -> nn.Module:
    """A deep copy of ``model`` with every norm layer replaced by ``get_norm(kind, C, **options)``.

    Sources: ``nn.BatchNorm2d`` and its subclasses (batch renorm, ghost BN), ``nn.SyncBatchNorm``,
    ``DistributedBatchNorm2d`` and ``nn.GroupNorm`` (GN, LN, IN), so every conversion has its way
    back. ``eps`` and ``affine`` (and, between batch kinds, ``momentum`` and
    ``track_running_stats``) are inherited unless given in ``options``. Copied: gamma and beta
    always; ``running_mean``, ``running_var`` and ``num_batches_tracked`` between batch kinds
    (batch renorm's schedule step is ``num_batches_tracked``, so a trained BN converts to batch
    renorm with its limits already relaxed). Train/eval mode and ``requires_grad`` are kept.
    """
    check_kind(kind)
    distributed = _distributed_or_none()
    model = copy.deepcopy(model)
    if _is_norm(model, distributed):
        return _replacement("", model, kind, options)
    targets = [(n, m) for n, m in model.named_modules() if n and _is_norm(m, distributed)]
    for name, old in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, _replacement(name, old, kind, options))
    return model


def apply_weight_norm(
    model: nn.Module, *, dim: int = 0, layers: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
) -> nn.Module:
    """A deep copy of ``model`` whose every conv (and linear) weight is ``g * v / ||v||``
    (Salimans & Kingma 2016), per output channel with ``dim=0``; outputs are unchanged at init.

    Uses ``torch.nn.utils.parametrizations.weight_norm``; layers already parametrised are kept.
    """
    model = copy.deepcopy(model)
    for m in list(model.modules()):
        if isinstance(m, layers) and not is_parametrized(m, "weight"):
            weight_norm(m, "weight", dim=dim)
    return model
