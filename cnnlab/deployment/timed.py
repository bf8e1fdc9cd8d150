"""Latency of a deployed model: ``deploy`` for the request first, then ``measure`` or ``compare``.

The measurement layer times a module as it is given; this is where a deploy ``backend`` joins a
measurement. Every figure states the backend it ran on ("eager", or "auto -> openvino" once
"auto" chose), because the ranking of two designs can change with the runtime (Ma et al. 2018,
§2, measured an in-house library with tensor fusion).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import nn

from cnnlab.deployment.select import CANDIDATES, check_backend, deploy_request
from cnnlab.measure.latency import Contender, Latency, check_rounds, compare, measure
from cnnlab.measure.request import Request, check_request


def deployed(
    model: nn.Module | str, req: Request, candidates: tuple[str, ...] = CANDIDATES
) -> tuple[nn.Module, str]:
    """``model`` deployed for a checked request with a backend, and the label its figures carry."""
    module = deploy_request(model, req, candidates)[req.batch_size]
    chosen = module.deploy_report.backend
    return module, chosen if chosen == req.backend else f"{req.backend} -> {chosen}"


def measure_request(model: nn.Module | str, req: Request, **sampling) -> Latency:
    """``measure`` of a checked request, deploying the model first when it names a backend."""
    if req.backend is None:
        return measure(model, req, **sampling)
    module, label = deployed(model, req)
    return measure(module, replace(req, backend=label), **sampling)


def compare_request(
    models: Mapping[str, nn.Module | str], req: Request, **effort
) -> list[Contender]:
    """``compare`` of a checked request, deploying each model first when it names a backend."""
    if req.backend is None:
        return compare(models, req, **effort)
    pairs = {name: deployed(m, req) for name, m in models.items()}
    modules = {name: module for name, (module, _) in pairs.items()}
    labels = {name: label for name, (_, label) in pairs.items()}
    return compare(modules, req, backends=labels, **effort)


def _request(models, backend: str | None, **settings) -> Request:
    """The checked request of a deployed measurement: settings once, then the backend."""
    req = check_request(models, **settings)
    return req if backend is None else check_backend(req, backend)


def measure_deployed(
    model: nn.Module | str,
    *,
    backend: str | None = None,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
    mode: str = "inference",
    min_samples: int = 30,
    min_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> Latency:
    """``measure_latency`` of ``deploy(model, backend=backend)`` at the same settings (the model
    as given when ``backend`` is None), every check made once."""
    settings = dict(
        input_size=input_size,
        batch_sizes=(batch_size,),
        device=device,
        threads=threads,
        dtype=dtype,
        mode=mode,
        channels_last=channels_last,
    )
    req = _request(model, backend, **settings)
    sampling = dict(min_samples=min_samples, min_seconds=min_seconds, max_seconds=max_seconds)
    return measure_request(model, req, **sampling)


def compare_deployed(
    models: Mapping[str, nn.Module | str],
    *,
    backend: str | None = None,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
    mode: str = "inference",
    rounds: int = 30,
    min_seconds: float = 2.0,
    max_seconds: float = 120.0,
    warmup_seconds: float = 20.0,
    gap_ms: float = 20.0,
) -> list[Contender]:
    """``compare_latency`` of each model deployed with ``backend`` (the models as given when it
    is None), interleaved on one input, every check made once."""
    check_rounds(rounds, gap_ms, len(models))
    settings = dict(
        input_size=input_size,
        batch_sizes=(batch_size,),
        device=device,
        threads=threads,
        dtype=dtype,
        mode=mode,
        channels_last=channels_last,
    )
    req = _request(list(models.values()), backend, **settings)
    effort = dict(
        rounds=rounds,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        warmup_seconds=warmup_seconds,
        gap_ms=gap_ms,
    )
    return compare_request(models, req, **effort)
