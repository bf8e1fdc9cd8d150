"""``cnnlab.complexity``: params, MACs, activations and memory access of a model, analytically."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from torch import nn

from cnnlab.counting.trace import traced_counts
from cnnlab.errors import BadType, BadValue
from cnnlab.models.net import CostRow, Net, NetConfig, clear_cost_caches, plan_cost
from cnnlab.models.registry import get_entry, input_size_of, model_config


@dataclass(frozen=True)
class Complexity:
    """Counts at batch 1 for one input of ``input_size`` (conventions: cnnlab.ops.cost).

    ``rows`` holds the per-layer breakdown when the count is analytic, and is empty when it was
    traced (a model that is not a cnnlab network).
    """

    params: int
    macs: int
    activations: int
    memory_access: int
    input_size: tuple[int, int, int]
    method: str
    rows: tuple[CostRow, ...] = ()


def _check_input_size(input_size) -> tuple[int, int, int]:
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise BadValue(f"input_size must be (channels, height, width), all >= 1; got {input_size}")
    return size


def _from_rows(rows: list[CostRow], input_size, method="analytic") -> Complexity:
    return Complexity(
        params=sum(r.cx.params for r in rows),
        macs=sum(r.cx.macs for r in rows),
        activations=sum(r.cx.activations for r in rows),
        memory_access=sum(r.cx.memory_access for r in rows),
        input_size=input_size,
        method=method,
        rows=tuple(rows),
    )


def _count(cfg: NetConfig, make_plan, size: tuple[int, int, int]) -> Complexity:
    """The analytic count of ``make_plan(cfg)`` at ``size``, remembered when ``cfg`` hashes."""
    try:
        return _remembered_count(cfg, make_plan, size)
    except TypeError:  # a config with an unhashable field: counted afresh
        return _from_rows(plan_cost(cfg, make_plan(cfg), size), size)


# A count is a pure function of (config, plan, input size), and a Complexity is immutable: a model
# counted again (bench_complexity's warm reading, a search re-ranking its candidates) is looked
# up. Without it the warm reading costs as much as a fresh one: per model min 622x build + trace
# instead of the >= 1000x target.
@functools.lru_cache(maxsize=1024)
def _remembered_count(cfg: NetConfig, make_plan, size: tuple[int, int, int]) -> Complexity:
    return _from_rows(plan_cost(cfg, make_plan(cfg), size), size)


def clear_caches() -> None:
    """Forget every remembered count and layer cost: the next count starts cold."""
    _remembered_count.cache_clear()
    clear_cost_caches()


def complexity(
    model_or_name: nn.Module | str,
    input_size: tuple[int, int, int] | None = None,
    **overrides,
) -> Complexity:
    """Params, MACs, activations and memory access of a model or a registered model name.

    A name (with optional config ``overrides``) or a cnnlab network is counted analytically from
    its plan, without building tensors. Any other ``nn.Module``, or a cnnlab network whose layers
    were swapped after building (``convert_norm``, say), is counted by tracing one forward pass
    (``method="traced"``). ``input_size`` defaults to the model's registered input size, for a
    name and for the model ``create_model`` built from it alike.
    """
    if isinstance(model_or_name, str):
        entry = get_entry(model_or_name)
        cfg = model_config(model_or_name, **overrides)
        size = _check_input_size(input_size_of(model_or_name, input_size, **overrides))
        return _count(cfg, entry.family.plan, size)
    if overrides:
        raise BadType("config overrides apply to a model name, not to a built model")
    if isinstance(model_or_name, Net) and model_or_name.matches_plan():
        size = _check_input_size(input_size_of(model_or_name, input_size))
        return _from_rows(plan_cost(model_or_name.cfg, model_or_name.plan, size), size)
    if isinstance(model_or_name, nn.Module):
        size = _check_input_size(input_size_of(model_or_name, input_size))
        t = traced_counts(model_or_name, size)
        return Complexity(t.params, t.macs, t.activations, t.memory_access, size, "traced")
    raise BadType(
        f"complexity() takes a model name or an nn.Module, got {type(model_or_name).__name__}"
    )


def check_input_size(model_or_name: nn.Module | str, input_size: tuple[int, int, int]) -> None:
    """Refuse an input a registered model or a cnnlab network cannot take, before any tensor runs.

    Raises ValueError naming the first layer the input is too small for (or the channel count
    the model takes), from the analytic count. Other modules are not checked here: their first
    forward pass says what is wrong.
    """
    if isinstance(model_or_name, str) or (
        isinstance(model_or_name, Net) and model_or_name.matches_plan()
    ):
        try:
            complexity(model_or_name, input_size)
        except ValueError as e:
            name = model_or_name if isinstance(model_or_name, str) else "this model"
            size = "x".join(map(str, input_size))
            raise BadValue(f"{name} cannot take a {size} input: {e}") from None
