"""``Request``: what one call of the speed lab asks for, checked once where the library is entered.

A public entry point (``measure_latency``, ``compare_latency``, ``deploy``, ``run_bench``, ...)
builds one :class:`Request` with :func:`check_request` and passes it down; the functions below it
(``measure``, ``compare``, ``deploy_request``) take it as checked, so the device, the settings and
whether each model can take the input (an analytic count of a registered model) are checked once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab._device import (
    FLOAT_BYTES,
    check_device,  # the one device check, shared with training
    check_memory,
    check_threads,
)
from cnnlab.counting.analytic import check_input_size, complexity
from cnnlab.errors import BadType, BadValue
from cnnlab.models.net import Net
from cnnlab.models.registry import input_size_of

MODES = ("inference", "train")


@dataclass(frozen=True)
class Request:
    """A checked measurement request: input, batch sizes, device, threads, numerics, backend."""

    input_size: tuple[int, int, int]
    batch_sizes: tuple[int, ...]
    device: torch.device
    threads: int | None = None
    dtype: torch.dtype = torch.float32
    mode: str = "inference"
    channels_last: bool = False
    backend: str | None = None  # the deploy backend of the timed module; None: the model as given

    @property
    def batch_size(self) -> int:
        """The batch size of a request for one batch size."""
        if len(self.batch_sizes) != 1:
            raise BadValue(f"this request holds several batch sizes {self.batch_sizes}; pick one")
        return self.batch_sizes[0]

    def at_batch(self, batch_size: int) -> Request:
        """The same request at one of its batch sizes."""
        return replace(self, batch_sizes=(batch_size,))

    @property
    def label(self) -> str:
        """The backend as printed beside a figure: "as given" when nothing was deployed."""
        return self.backend or "as given"


def check_shape(input_size) -> tuple[int, int, int]:
    """``input_size`` as a tuple of three ints >= 1 (channels, height, width)."""
    size = tuple(int(v) for v in input_size)
    if len(size) != 3 or min(size) < 1:
        raise BadValue(f"input_size must be (channels, height, width), all >= 1; got {input_size}")
    return size


def check_batch_sizes(batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """One or more distinct batch sizes, each >= 1."""
    if not batch_sizes:
        raise BadValue("one or more batch sizes are needed, got none")
    if len(set(batch_sizes)) != len(batch_sizes):
        raise BadValue(f"batch sizes must differ from one another, got {list(batch_sizes)}")
    for batch in batch_sizes:
        if batch < 1:
            raise BadValue(f"batch_size must be >= 1, got {batch}")
    return tuple(batch_sizes)


def _check_threads_and_mode(threads: int | None, mode: str) -> None:
    check_threads(threads)
    if mode not in MODES:
        raise BadValue(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def check_settings(input_size, batch_size: int, threads: int | None, mode: str) -> tuple:
    """Validate the common measurement arguments; returns input_size as a tuple of ints."""
    size = check_shape(input_size)
    check_batch_sizes((batch_size,))
    _check_threads_and_mode(threads, mode)
    return size


def _check_dtype(dtype) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise BadType(f"dtype must be a floating torch.dtype such as torch.float32, got {dtype!r}")
    return dtype


def _check_models(models: Sequence[nn.Module | str], size: tuple[int, int, int]) -> None:
    for model in models:
        check_input_size(model, size)  # a registered model: an analytic count


def _activations(model: nn.Module | str, size: tuple[int, int, int]) -> int:
    """Output elements of the model's layers at batch 1, analytically for a registered model or
    a cnnlab network; for any other module (which cannot be counted without running it) none."""
    if isinstance(model, str) or (isinstance(model, Net) and model.matches_plan()):
        return complexity(model, size).activations
    return 0


def estimated_bytes(
    models: Sequence[nn.Module | str], size: tuple[int, int, int], batch: int
) -> int:
    """Memory a request needs at ``batch``, estimated from the analytic activations of its
    largest model plus the input, 4 bytes per float."""
    per_image = math.prod(size) + max((_activations(m, size) for m in models), default=0)
    return per_image * batch * FLOAT_BYTES


def check_fits(
    models: Sequence[nn.Module | str], size: tuple[int, int, int], batch: int, dev: torch.device
) -> None:
    """Refuse an input too large for this machine's memory (RAM, or the GPU's on CUDA), naming
    the estimate and what the machine has, before anything is allocated."""
    shape = "x".join(map(str, size))
    check_memory(
        estimated_bytes(models, size, batch),
        dev,
        f"input {shape} at batch {batch}",
        "use a smaller --input-size or --batch-size",
    )


def for_models(req: Request, models: Sequence[nn.Module | str], input_size=None) -> Request:
    """``req`` at ``input_size``, else at the first model's own (``input_size_of``), checked
    once against each of ``models``."""
    size = check_shape(input_size_of(models[0], input_size))
    _check_models(models, size)
    check_fits(models, size, max(req.batch_sizes), req.device)
    return replace(req, input_size=size)


def check_request(
    models: nn.Module | str | Sequence[nn.Module | str] = (),
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_sizes: Sequence[int] = (1,),
    device: str | torch.device = "cpu",
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    mode: str = "inference",
    channels_last: bool = False,
) -> Request:
    """Every check of a measurement, once: a :class:`Request` for ``models`` (a model or name, or
    several timed on one input), at ``input_size``, else the first model's own, else 3x224x224."""
    models = [models] if isinstance(models, (str, nn.Module)) else list(models)
    size = check_shape(input_size_of(models[0] if models else None, input_size))
    batches = check_batch_sizes(batch_sizes)
    _check_threads_and_mode(threads, mode)
    dev = check_device(device)
    _check_models(models, size)
    check_fits(models, size, max(batches), dev)
    return Request(size, batches, dev, threads, _check_dtype(dtype), mode, bool(channels_last))
