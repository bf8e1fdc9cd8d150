"""The model registry: explicit registration, fnmatch listing and the ``create_model`` factory."""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from cnnlab.errors import BadType, BadValue
from cnnlab.models.net import Net, NetConfig, Plan


@dataclass(frozen=True)
class PaperFigures:
    """A model's figures as its paper prints them (MACs and params in millions, as strings).

    Strings keep the printed precision: "0.5" M params means anything in [0.45, 0.55).
    ``computed_macs``/``computed_params`` document a known, explained mismatch with the paper:
    the figure this implementation computes, with ``note`` saying why.
    """

    source: str
    macs: str | None = None
    params: str | None = None
    top1_err: str | None = None
    computed_macs: str | None = None
    computed_params: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Family:
    """A model family: its config dataclass and the function that turns a config into a plan."""

    name: str
    config: type[NetConfig]
    plan: Callable[[NetConfig], Plan]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its family, its config and the figures it is checked against."""

    name: str
    family: Family
    cfg: NetConfig
    input_size: tuple[int, int, int] = (3, 224, 224)
    paper: PaperFigures | None = None


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    family: Family,
    cfg: NetConfig,
    *,
    input_size: tuple[int, int, int] = (3, 224, 224),
    paper: PaperFigures | None = None,
) -> None:
    """Register one model variant; a name can be registered only once."""
    if name in _REGISTRY:
        raise BadValue(f"model {name!r} is already registered")
    if not isinstance(cfg, family.config):
        raise BadType(f"model {name!r}: config must be a {family.config.__name__}")
    try:
        cfg.check()  # once: the config is frozen, so model_config can hand it out unchecked
    except ValueError as e:
        raise BadValue(f"model {name!r}: {e}") from None
    _REGISTRY[name] = ModelEntry(name, family, cfg, input_size, paper)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the fnmatch ``pattern``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name names the closest registered ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise BadValue(
            f"unknown model {name!r}{hint} (`cnnlab models` lists all {len(_REGISTRY)})"
        ) from None


def model_config(name: str, **overrides) -> NetConfig:
    """The config of ``name`` with ``overrides`` applied and checked (nothing is built)."""
    entry = get_entry(name)
    if not overrides:  # the registered config itself: frozen and checked when registered
        return entry.cfg
    fields = {f.name for f in dataclasses.fields(entry.cfg)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise BadType(
            f"{name}: unknown override(s) {', '.join(unknown)}; "
            f"valid fields of {type(entry.cfg).__name__}: {', '.join(sorted(fields))}"
        )
    cfg = dataclasses.replace(entry.cfg, **overrides)
    cfg.check()
    return cfg


def create_model(name: str, *, num_classes: int = 1000, in_chans: int = 3, **overrides) -> Net:
    """Build the registered model ``name``; ``overrides`` replace fields of its config."""
    entry = get_entry(name)
    cfg = model_config(name, num_classes=num_classes, in_chans=in_chans, **overrides)
    return Net(cfg, entry.family.plan(cfg), (cfg.in_chans, *entry.input_size[1:]))


def input_size_of(model_or_name, input_size=None, **overrides) -> tuple[int, int, int]:
    """The input a model is counted and timed at: ``input_size`` if given, else a name's
    registered size (with its ``in_chans`` override), else a built model's
    ``default_input_size`` (a registered model's own), else (3, 224, 224)."""
    if input_size is not None:
        return tuple(input_size)
    if isinstance(model_or_name, str):
        size = get_entry(model_or_name).input_size
        return (overrides.get("in_chans", size[0]), *size[1:])
    return tuple(getattr(model_or_name, "default_input_size", (3, 224, 224)))
