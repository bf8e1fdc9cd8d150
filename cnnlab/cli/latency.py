"""``cnnlab latency`` and ``cnnlab deploy``: measure_deployed, compare_deployed and deploy from the
command line (without --backend, the first two are measure_latency and compare_latency)."""

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
    parse_input_size,
    settings_line,
)
from cnnlab.deployment.select import CANDIDATES, deploy
from cnnlab.deployment.timed import compare_deployed, measure_deployed
from cnnlab.measure.latency import Contender, Latency, check_rounds
from cnnlab.measure.request import MODES

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def _mode(name: str) -> str:
    if name not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {name!r}")
    return name


Mode = Annotated[
    str, typer.Option("--mode", help="inference, or train (forward + backward + SGD step)")
]
ChannelsLastFlag = Annotated[
    bool, typer.Option("--channels-last", help="run the model and its input channels_last")
]
DType = Annotated[str, typer.Option("--dtype", help="float32, float16 or bfloat16")]
Rounds = Annotated[int, typer.Option("--rounds", help="interleaved rounds when comparing (>= 3)")]


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
    mode: Mode = "inference",
    channels_last: ChannelsLastFlag = False,
    dtype: DType = "float32",
    rounds: Rounds = 30,
    as_json: AsJson = False,
) -> None:
    """Median latency after warm-up (one model), or models timed side by side, round by round,
    on one input: --input-size, else the first model's registered size. With --backend the
    models are deployed first; without it they are timed as built."""
    common = dict(
        backend=backend,
        input_size=parse_input_size(input_size),
        batch_size=batch_size,
        device=device,
        threads=threads,
        channels_last=channels_last,
        dtype=_dtype(dtype),
        mode=_mode(mode),
    )
    check_rounds(rounds, models=len(models))
    if len(models) == 1:
        _print_latency(models[0], measure_deployed(models[0], **common), as_json)
        return
    if len(set(models)) != len(models):
        raise UsageError(f"name each model once to compare them; got {' '.join(models)}")
    _print_comparison(compare_deployed({n: n for n in models}, rounds=rounds, **common), as_json)


def _settings_line(lat: Latency) -> str:
    return f"input {'x'.join(map(str, lat.settings.input_size))}, {settings_line(lat.settings)}"


def _print_latency(name: str, lat: Latency, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"model": name, **lat.as_dict()}, indent=2))
        return
    console().print(
        f"{name}: median {lat.median_ms:.3f} ms (IQR {lat.q1_ms:.3f}-{lat.q3_ms:.3f}), "
        f"{lat.throughput:,.1f} images/s; {lat.samples} samples after {lat.warmup_runs} "
        f"warm-up calls; {lat.page_faults:.1f} page faults per call"
    )
    console().print(_settings_line(lat))


def _comparison_json(contenders: list[Contender]) -> str:
    rows = [
        {"model": c.name, "ratio": c.ratio, "ratio_low": c.ratio_low,
         "ratio_high": c.ratio_high, **c.latency.as_dict()}
        for c in contenders
    ]  # fmt: skip
    return json.dumps(rows, indent=2)


def _print_comparison(contenders: list[Contender], as_json: bool) -> None:
    if as_json:
        print(_comparison_json(contenders))
        return
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
    """--candidates split at its commas (the library checks the names); None: all of them."""
    if text is None:
        return CANDIDATES
    return tuple(n.strip() for n in text.split(",") if n.strip())


@app.command("deploy")
def deploy_cmd(
    model: Annotated[str, typer.Argument(help="registered model name")],
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = "auto",
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
    out = deploy(
        model,
        input_size=parse_input_size(input_size),
        batch_size=batch_size,
        backend=backend,
        device=device,
        threads=threads,
        candidates=_candidates(candidates),
    )
    report = out.deploy_report
    if as_json:
        print(json.dumps({"model": model, "batch_size": batch_size, **vars(report)}, indent=2))
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
