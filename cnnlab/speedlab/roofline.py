"""Roofline of a model on this machine (Williams, Waterman and Patterson 2009, CACM 52(4)).

A kernel of arithmetic intensity I (FLOPs per byte of memory traffic) can run no faster than
``min(peak GFLOP/s, bandwidth GB/s * I)``. The peak and the bandwidth are measured here; each
layer's intensity comes from the analytic counts of ``cnnlab.complexity`` and its achieved rate
from measured time, which shows which layers are memory bound (ShuffleNet v2's point: MACs alone
do not predict speed, memory access does too).

Conventions (stated once, used everywhere):

- FLOPs = 2 x MACs (one multiply-accumulate is two floating-point operations).
- bytes = 4 x memory access, memory access being ShuffleNet v2's count in elements (inputs read +
  outputs written + parameters read; Ma et al. 2018, §2, Eq. 1) and 4 bytes per fp32 element.
- Both are counted per image, as the paper counts them, and multiplied by the batch size, so the
  intensity does not depend on the batch (weights re-read per image: a conservative intensity).
- Per-layer time: each plan layer (and the head) is timed on its own by ``measure_latency`` on an
  input of its own shape (simpler and steadier than cutting a profile into layers); the sum of
  the layers can differ from the whole model's time. With a deploy backend the layers run on the
  backend chosen for the whole model.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from cnnlab.counting.analytic import Complexity, complexity
from cnnlab.deployment.select import check_backend
from cnnlab.deployment.timed import measure_request
from cnnlab.errors import BadType, BadValue
from cnnlab.measure.latency import LatencySettings, measure
from cnnlab.measure.request import Request, check_request
from cnnlab.models.registry import input_size_of

BYTES_PER_ELEMENT = 4  # fp32
FLOPS_PER_MAC = 2


def arithmetic_intensity(macs: float, memory_access: float) -> float:
    """FLOPs per byte: 2*MACs / (4*memory access elements); 0 when there is no traffic."""
    if memory_access <= 0:
        return 0.0
    return FLOPS_PER_MAC * macs / (BYTES_PER_ELEMENT * memory_access)


def attainable_gflops(peak_gflops: float, gbps: float, intensity: float) -> float:
    """The roofline bound, min(peak, bandwidth * intensity) (Williams et al. 2009, Eq. 1)."""
    return min(peak_gflops, gbps * intensity)


def ridge_point(peak_gflops: float, gbps: float) -> float:
    """The intensity (FLOP/byte) where the memory roof meets the compute roof."""
    return peak_gflops / gbps


@dataclass(frozen=True)
class Peak:
    """This machine's measured fp32 peak: matmul GFLOP/s (2n^3 flops) and copy GB/s (read+write)."""

    gflops: float
    gbps: float
    settings: dict[str, Any]


class _MatMul(nn.Module):
    """x @ B for an n x n fp32 input x: 2n^3 floating-point operations per call."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("b", torch.randn(n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.b


class _Copy(nn.Module):
    """Copy the input into a preallocated buffer: every byte read once and written once."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.register_buffer("out", torch.empty(numel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.copy_(x.view(-1))


def machine_peak(
    device: str = "cpu",
    threads: int | None = None,
    *,
    matmul_size: int = 2048,
    copy_mb: float = 256.0,
    min_samples: int = 5,
    min_seconds: float = 0.2,
) -> Peak:
    """Measure peak fp32 GFLOP/s (n x n matmul) and memory bandwidth GB/s (a large copy).

    Both are timed by ``measure_latency`` (warm-up, then the median of ``min_samples`` or more
    samples over at least ``min_seconds``); use the defaults for a real roof, small sizes for a
    quick check. GB = 1e9 bytes; the copy moves 2 x its size (read + write).
    """
    if matmul_size < 1:
        raise BadValue(f"matmul_size must be >= 1, got {matmul_size}")
    if not math.isfinite(copy_mb):
        raise BadValue(f"copy_mb must be a finite number of MiB, got {copy_mb}")
    numel = int(copy_mb * 2**20) // BYTES_PER_ELEMENT
    if numel < 1:
        raise BadValue(f"copy_mb must hold at least one fp32 element, got {copy_mb}")
    n = matmul_size
    req = check_request(input_size=(1, n, n), device=device, threads=threads)
    sampling = dict(min_samples=min_samples, min_seconds=min_seconds)
    mm = measure(_MatMul(n), req, **sampling)
    cp = measure(_Copy(numel), replace(req, input_size=(1, 1, numel)), **sampling)
    gflops = FLOPS_PER_MAC * n**3 / (mm.median_ms * 1e6)
    gbps = 2 * numel * BYTES_PER_ELEMENT / (cp.median_ms * 1e6)
    settings = {
        "device": str(req.device),
        "threads": mm.settings.threads,
        "matmul_size": n,
        "copy_bytes": numel * BYTES_PER_ELEMENT,
        "matmul_ms": mm.median_ms,
        "copy_ms": cp.median_ms,
    }
    return Peak(gflops, gbps, settings)


@dataclass(frozen=True)
class RooflineRow:
    """One layer (or the whole model) on the roofline: counts, intensity, bound, achieved rate."""

    name: str
    kind: str
    macs: int  # per image
    memory_access: int  # elements per image
    intensity: float  # FLOP/byte
    bound_gflops: float
    ms: float  # measured median time of one call at the batch size
    achieved_gflops: float
    fraction: float | None  # achieved / bound; None for a layer without MACs


@dataclass(frozen=True)
class Roofline:
    """A model's layers and total on this machine's roofline (module docstring: conventions)."""

    model: str
    rows: tuple[RooflineRow, ...]
    total: RooflineRow
    peak: Peak
    settings: LatencySettings
    layer_timing: str

    @property
    def layers_ms(self) -> float:
        return sum(r.ms for r in self.rows)

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "conventions": "FLOPs = 2*MACs; bytes = 4*memory access elements; per image x batch",
            "peak": asdict(self.peak),
            "settings": asdict(self.settings),
            "layer_timing": self.layer_timing,
            "total": asdict(self.total),
            "layers_ms": self.layers_ms,
            "layers": [asdict(r) for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)


def roofline_row(name, kind, macs, memory_access, ms, batch_size, peak: Peak) -> RooflineRow:
    """Place one measured layer on the roofline of ``peak``."""
    intensity = arithmetic_intensity(macs, memory_access)
    bound = attainable_gflops(peak.gflops, peak.gbps, intensity)
    achieved = FLOPS_PER_MAC * macs * batch_size / (ms * 1e6) if ms > 0 else 0.0
    fraction = achieved / bound if bound > 0 else None
    return RooflineRow(name, kind, macs, memory_access, intensity, bound, ms, achieved, fraction)


def _resolve(model_or_name, input_size) -> tuple[str, nn.Module, Complexity]:
    from cnnlab.models import create_model

    if isinstance(model_or_name, str):
        c = complexity(model_or_name, input_size)  # validates name and size before building
        return model_or_name, create_model(model_or_name), c
    if isinstance(model_or_name, nn.Module):
        return type(model_or_name).__name__, model_or_name, complexity(model_or_name, input_size)
    raise BadType(f"expected a model or a model name, got {type(model_or_name).__name__}")


def _layer_modules(model: nn.Module, c: Complexity) -> list[tuple[nn.Module, tuple]]:
    """(module, input shape) of each complexity row of a cnnlab Net, in order."""
    modules, shape = [], c.input_size
    for row in c.rows:
        module = model.head if row.name == "head" else model.features.get_submodule(row.name)
        modules.append((module, shape))
        shape = row.cx.shape
    return modules


def _request(backend: str | None, **settings) -> Request:
    """The checked request of a roofline (its input counted by ``complexity`` in ``_resolve``)."""
    req = check_request(**settings)
    return req if backend is None else check_backend(req, backend)


def _layer_rows(model, c: Complexity, req: Request, peak: Peak, **sampling) -> list[RooflineRow]:
    """Each plan layer (and the head) timed alone on an input of its own shape, placed."""
    rows = []
    for row, (module, shape) in zip(c.rows, _layer_modules(model, c) if c.rows else []):
        lat = measure_request(module, replace(req, input_size=shape), **sampling)
        cx = row.cx
        rows.append(roofline_row(row.name, row.kind, cx.macs, cx.memory_access, lat.median_ms,
                                 req.batch_size, peak))  # fmt: skip
    return rows


def roofline(
    model_or_name: nn.Module | str,
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    backend: str | None = None,
    peak: Peak | None = None,
    peak_options: dict[str, Any] | None = None,
    layer_min_samples: int = 10,
    layer_min_seconds: float = 0.1,
) -> Roofline:
    """Each layer and the whole model of a cnnlab network on this machine's roofline.

    ``peak`` defaults to :func:`machine_peak` at the same device and threads (with
    ``peak_options``), measured once the arguments are checked. The whole model is
    timed by ``measure_latency`` at its defaults; each layer by ``measure_latency`` on its own
    input shape with ``layer_min_samples`` / ``layer_min_seconds``. A model that is not a cnnlab
    network has no layer plan: only its total is placed. ``input_size`` defaults to the model's
    own (``cnnlab.models.registry.input_size_of``).
    """
    shape = dict(input_size=input_size_of(model_or_name, input_size), batch_sizes=(batch_size,))
    req = _request(backend, **shape, device=device, threads=threads)
    name, model, c = _resolve(model_or_name, req.input_size)
    peak = peak or machine_peak(device, threads, **(peak_options or {}))
    whole = measure_request(model, req)
    if backend is not None:  # layers run on the backend chosen for the whole ("auto -> eager")
        req = replace(req, backend=whole.settings.backend.split(" -> ")[-1])
    sampling = dict(min_samples=layer_min_samples, min_seconds=layer_min_seconds)
    rows = _layer_rows(model, c, req, peak, **sampling)
    total = roofline_row(name, "model", c.macs, c.memory_access, whole.median_ms, batch_size, peak)
    how = "each layer timed alone on its own input shape (measure_latency)" if rows else "none"
    return Roofline(name, tuple(rows), total, peak, whole.settings, how)


def _two_and_five(v: float, _pos=None) -> str:
    """Minor tick labels of a log axis at 2x and 5x each decade only."""
    return f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""


def plot_roofline(r: Roofline, path: str | os.PathLike):
    """Log-log roofline: the roof, each layer as a dot, the whole model as a star."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from cnnlab.speedlab.breakdown import save_figure

    placed = [row for row in r.rows if row.intensity > 0 and row.achieved_gflops > 0]
    xs = [row.intensity for row in [*placed, r.total] if row.intensity > 0]
    ridge = ridge_point(r.peak.gflops, r.peak.gbps)
    lo = min([*xs, ridge]) / 4
    hi = max([*xs, ridge]) * 4
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    ax.plot(grid, [attainable_gflops(r.peak.gflops, r.peak.gbps, x) for x in grid], "k-", lw=2,
            label=f"roof: {r.peak.gflops:.1f} GFLOP/s, {r.peak.gbps:.1f} GB/s")  # fmt: skip
    ax.axvline(ridge, color="0.6", ls=":", lw=1)
    if placed:
        sc = ax.scatter([row.intensity for row in placed], [row.achieved_gflops for row in placed],
                        c=range(len(placed)), cmap="viridis", s=28, zorder=3,
                        label="layers (colour: depth)")  # fmt: skip
        for row in placed:
            if re.search(r"_[1-9]\d*$", row.name):
                continue  # repeated units of a stage crowd the plot: the colour shows their depth
            ax.annotate(row.name, (row.intensity, row.achieved_gflops), fontsize=6,
                        xytext=(3, 3), textcoords="offset points", color="0.3")  # fmt: skip
        bar = fig.colorbar(sc, ax=ax, label="layer index", pad=0.01)
        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
    if r.total.intensity > 0:
        ax.scatter([r.total.intensity], [r.total.achieved_gflops], marker="*", s=260,
                   c="#c00000", edgecolors="k", zorder=4, label=f"{r.model} (whole model)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(FuncFormatter(_two_and_five))
    unplaced = [row.name for row in r.rows if row not in placed]
    if unplaced:
        ax.text(0.01, 0.01, f"not placed (no MACs): {', '.join(unplaced)}", fontsize=7,
                transform=ax.transAxes, color="0.4")  # fmt: skip
    ax.set_xlabel("arithmetic intensity (FLOP/byte; FLOPs = 2 MACs, 4 bytes per element)")
    ax.set_ylabel("GFLOP/s")
    s = r.settings
    ax.set_title(
        f"Roofline: {r.model} at {'x'.join(map(str, s.input_size))}, batch {s.batch_size}, "
        f"{s.device}, {s.threads} thread{'s' * (s.threads != 1)}, backend {s.backend}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)
