"""``cnnlab latency`` and ``cnnlab deploy``: measure_latency, compare_latency and deploy from the
command line."""

from __future__ import annotations

import json
from typing import Annotated

import torch
import typer
from rich.table import Table

from cnnlab.cli.app import (
    AsJson,
    Backend,
    BatchSize,
    Device,
    InputSize,
    Threads,
    UsageError,
    app,
    console,
    model_input_size,
    settings_line,
)
from cnnlab.deployment.select import BACKENDS, CANDIDATES, deploy
from cnnlab.measure.latency import MODES, Contender, Latency, compare_latency, measure_latency
from cnnlab.models import get_entry

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def _size(models: list[str], input_size: str | None) -> tuple[int, int, int]:
    """--input-size, else the first model's registered size (every contender gets one input)."""
    for name in models:
        get_entry(name)  # an unknown name fails before anything is built
    return model_input_size(models[0], input_size)


@app.command("latency")
def latency_cmd(
    models: Annotated[
        list[str], typer.Argument(help="one model to measure, or several to compare (first = 1)")
    ],
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = None,
    mode: Annotated[
        str, typer.Option("--mode", help="inference, or train (forward + backward + SGD step)")
    ] = "inference",
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="run the model and its input channels_last")
    ] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="float32, float16 or bfloat16")] = "float32",
    rounds: Annotated[
        int, typer.Option("--rounds", help="interleaved rounds when comparing (>= 3)")
    ] = 30,
    as_json: AsJson = False,
) -> None:
    """Median latency after warm-up (one model), or models timed side by side, round by round,
    on one input: --input-size, else the first model's registered size."""
    size = _size(models, input_size)
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if backend is not None and (mode != "inference" or dtype != "float32" or channels_last):
        raise UsageError(
            "--backend deploys an fp32 inference module that chooses its own layout; drop "
            "--mode train, --dtype and --channels-last, or drop --backend"
        )
    common = dict(
        input_size=size,
        batch_size=batch_size,
        device=device,
        threads=threads,
        channels_last=channels_last,
        dtype=_dtype(dtype),
        mode=mode,
        backend=backend,
    )
    if len(models) == 1:
        lat = measure_latency(models[0], **common)
        if as_json:
            print(json.dumps({"model": models[0], **lat.as_dict()}, indent=2))
            return
        _print_latency(models[0], lat)
        return
    if len(set(models)) != len(models):
        raise UsageError(f"name each model once to compare them; got {' '.join(models)}")
    contenders = compare_latency({n: n for n in models}, rounds=rounds, **common)
    if as_json:
        rows = [
            {"model": c.name, "ratio": c.ratio, "ratio_low": c.ratio_low,
             "ratio_high": c.ratio_high, **c.latency.as_dict()}
            for c in contenders
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return
    _print_comparison(contenders)


def _settings_line(lat: Latency) -> str:
    return f"input {'x'.join(map(str, lat.settings.input_size))}, {settings_line(lat.settings)}"


def _print_latency(name: str, lat: Latency) -> None:
    console().print(
        f"{name}: median {lat.median_ms:.3f} ms (IQR {lat.q1_ms:.3f}-{lat.q3_ms:.3f}), "
        f"{lat.throughput:,.1f} images/s; {lat.samples} samples after {lat.warmup_runs} "
        f"warm-up calls; {lat.page_faults:.1f} page faults per call"
    )
    console().print(_settings_line(lat))


def _print_comparison(contenders: list[Contender]) -> None:
    first = contenders[0].name
    table = Table(title=f"Side by side, interleaved round by round (ratio to {first})")
    for col in ("model", "median ms", "IQR ms", "images/s", "ratio", "95% CI"):
        table.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for c in contenders:
        lat = c.latency
        table.add_row(
            c.name,
            f"{lat.median_ms:.3f}",
            f"{lat.iqr_ms:.3f}",
            f"{lat.throughput:,.1f}",
            f"{c.ratio:.3f}",
            f"{c.ratio_low:.3f}-{c.ratio_high:.3f}",
        )
    console().print(table)
    lat = contenders[0].latency
    console().print(f"{_settings_line(lat)}; {lat.samples} rounds")
    console().print(
        "ratio: median of the per-round ratios to the first model; CI: distribution-free, of "
        "that median"
    )


def _candidates(text: str | None) -> tuple[str, ...]:
    if text is None:
        return CANDIDATES
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or "eager" not in names:
        raise UsageError(
            f"--candidates must include eager and come from {', '.join(CANDIDATES)}; got {text!r}"
        )
    return names


@app.command("deploy")
def deploy_cmd(
    model: Annotated[str, typer.Argument(help="registered model name")],
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Annotated[
        str, typer.Option("--backend", help=f"one of {', '.join(BACKENDS)}")
    ] = "auto",
    candidates: Annotated[
        str | None,
        typer.Option(
            "--candidates",
            help="what auto measures, comma-separated, eager included (default: every backend "
            "available here; compile takes tens of seconds per model)",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Fold BN (and ShuffleNet v2's shuffles), pick the fastest runtime measured here, and say why."""
    size = model_input_size(model, input_size)
    if backend not in BACKENDS:
        raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    out = deploy(
        model,
        input_size=size,
        batch_size=batch_size,
        backend=backend,
        device=device,
        threads=threads,
        candidates=_candidates(candidates),
    )
    report = out.deploy_report
    if as_json:
        print(json.dumps({"model": model, "input_size": size, "batch_size": batch_size,
                          **vars(report)}, indent=2))  # fmt: skip
        return
    _print_report(model, report)


def _print_report(model: str, r) -> None:
    console().print(f"{model}: deployed with {r.backend} ({r.reason})")
    if r.candidates:
        table = Table(title="Candidates measured side by side")
        for col in ("backend", "median ms", "vs eager"):
            table.add_column(col, justify="left" if col == "backend" else "right")
        eager = r.candidates.get("eager")
        for name, ms in sorted(r.candidates.items(), key=lambda kv: kv[1]):
            table.add_row(name, f"{ms:.3f}", f"{ms / eager:.3f}" if eager else "")
        console().print(table)
    console().print(
        f"BN folded into convs: {r.bn_folded} ({r.bn_left} left); channel shuffles folded into "
        f"weights: {r.shuffles_folded}; eager layout channels_last: {r.channels_last}; "
        f"max |output - original| {r.max_abs_diff:.2e} (limit 1e-4)"
    )
