"""``cnnlab breakdown`` and ``cnnlab roofline``: where the time of a model goes on this machine."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

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
    writable_folder,
)
from cnnlab.models import get_entry
from cnnlab.speedlab import breakdown as bd
from cnnlab.speedlab import roofline as rl


def _out_dir(out: Path | None, command: str) -> Path:
    """The output folder, made and checked writable before anything is measured."""
    return writable_folder(out if out is not None else Path("cnnlab-out") / command)


def _quiet_profiler() -> None:
    # Kineto prints start/stop lines (and a CUDA probe error on CPU-only machines) to stderr;
    # level 6 silences them. Read when the profiler first starts; a user's setting wins.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")


@app.command("breakdown")
def breakdown_cmd(
    models: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Argument(help="registered model names (default: the two networks of Figure 2)"),
    ] = None,
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = None,
    iterations: Annotated[
        int, typer.Option("--iterations", help="profiled forward passes after warm-up")
    ] = 50,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="output folder (default ./cnnlab-out/breakdown)"),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Runtime breakdown by operator category (ShuffleNet v2, Figure 2): table, PNG and JSON."""
    names = list(models or bd.DEFAULT_MODELS)
    size = parse_input_size(input_size)
    for name in names:
        get_entry(name)  # unknown names fail before anything is profiled
    folder = _out_dir(out, "breakdown")
    _quiet_profiler()
    results = []
    for name in names:
        b = bd.runtime_breakdown(
            name,
            input_size=size,
            batch_size=batch_size,
            device=device,
            threads=threads,
            backend=backend,
            iterations=iterations,
        )
        results.append((name, b))
    data = {
        "attribution": "top-level operators charged their total time; children skipped",
        "models": {name: b.as_dict() for name, b in results},
    }
    json_path = bd.atomic_write(folder / "breakdown.json", json.dumps(data, indent=2).encode())
    png_path = bd.plot_breakdown(results, folder / "breakdown.png")
    if as_json:
        print(json.dumps(data, indent=2))
        return
    _print_breakdown(results)
    console().print(f"wrote {png_path} and {json_path}")


def _print_breakdown(results) -> None:
    table = Table(title="Runtime breakdown (ms per forward pass and share)")
    table.add_column("category", no_wrap=True)
    for name, _ in results:
        table.add_column(f"{name} ms", justify="right", no_wrap=True)
        table.add_column("%", justify="right", no_wrap=True)
    for category in bd.CATEGORIES:
        cells = []
        for _, b in results:
            cells += [f"{b.ms[category]:.3f}", f"{b.percent(category):.1f}"]
        table.add_row(category, *cells)
    table.add_section()
    table.add_row("total", *[c for _, b in results for c in (f"{b.total_ms:.3f}", "100.0")])
    console().print(table)
    for name, b in results:
        size = "x".join(map(str, b.settings.input_size))
        console().print(
            f"{name}: {size}, {settings_line(b.settings)}, mean of {b.iterations} profiled passes"
        )
    console().print(
        "Each top-level operator is charged its whole time (children skipped); framework "
        "overhead = time outside every operator (Python, dispatch, profiler)."
    )


@app.command("roofline")
def roofline_cmd(
    model: Annotated[str, typer.Argument(help="registered model name")],
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = None,
    peak_matmul: Annotated[
        int, typer.Option("--peak-matmul", help="n of the n x n matmul that measures the peak")
    ] = 2048,
    peak_copy_mb: Annotated[
        float, typer.Option("--peak-copy-mb", help="MiB copied to measure the bandwidth")
    ] = 256.0,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="output folder (default ./cnnlab-out/roofline)"),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Each layer of a model on this machine's measured roofline: table, PNG and JSON."""
    size = parse_input_size(input_size)
    if peak_matmul < 1 or peak_copy_mb <= 0:
        raise UsageError(
            f"--peak-matmul and --peak-copy-mb must be positive, got {peak_matmul} and "
            f"{peak_copy_mb}"
        )
    folder = _out_dir(out, "roofline")
    r = rl.roofline(
        model,
        input_size=size,
        batch_size=batch_size,
        device=device,
        threads=threads,
        backend=backend,
        peak_options=dict(matmul_size=peak_matmul, copy_mb=peak_copy_mb),
    )
    json_path = bd.atomic_write(folder / "roofline.json", r.to_json().encode())
    png_path = rl.plot_roofline(r, folder / "roofline.png")
    if as_json:
        print(r.to_json())
        return
    _print_roofline(r)
    console().print(f"wrote {png_path} and {json_path}")


def _roofline_cells(row: rl.RooflineRow) -> list[str]:
    share = "" if row.fraction is None else f"{100 * row.fraction:.1f}"
    return [
        f"{row.macs / 1e6:,.2f}",
        f"{row.memory_access / 1e6:,.3f}",
        f"{row.intensity:.2f}",
        f"{row.bound_gflops:.1f}",
        f"{row.ms:.3f}",
        f"{row.achieved_gflops:.2f}",
        share,
    ]


def _print_roofline(r: rl.Roofline) -> None:
    s = r.settings
    table = Table(title=f"Roofline of {r.model} at {'x'.join(map(str, s.input_size))}")
    columns = ("layer", "block", "MACs (M)", "mem. access (M el.)", "FLOP/byte",
               "bound GFLOP/s", "time ms", "GFLOP/s", "% of bound")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col in ("layer", "block") else "right")
    for row in r.rows:
        table.add_row(row.name, row.kind, *_roofline_cells(row))
    table.add_section()
    table.add_row("whole model", "", *_roofline_cells(r.total))
    console().print(table)
    p = r.peak
    console().print(
        f"peak: {p.gflops:.1f} GFLOP/s ({p.settings['matmul_size']}^2 fp32 matmul), "
        f"{p.gbps:.1f} GB/s ({p.settings['copy_bytes'] / 2**20:.0f} MiB copy, read + write); "
        f"ridge at {rl.ridge_point(p.gflops, p.gbps):.1f} FLOP/byte"
    )
    console().print(f"model: {settings_line(s)}; sum of the layers timed alone: "
                    f"{r.layers_ms:.3f} ms vs {r.total.ms:.3f} ms whole")  # fmt: skip
    console().print(
        "FLOPs = 2 x MACs; bytes = 4 x memory access elements (ShuffleNet v2 MAC, fp32); "
        "bound = min(peak, bandwidth x FLOP/byte)."
    )
    above = [row.name for row in r.rows if row.fraction is not None and row.fraction > 1]
    if above:
        console().print(
            f"above 100% of the bound: {', '.join(above)}; probably served from cache (a layer "
            "timed alone keeps its data cached), which the main-memory roof does not limit."
        )
