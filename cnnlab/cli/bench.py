"""``cnnlab bench``: ShuffleNet v2's comparison at matched MACs (Ma et al. 2018), measured here."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cnnlab.cli.app import (
    AsJson,
    Backend,
    Device,
    InputSize,
    Threads,
    UsageError,
    app,
    console,
    parse_input_size,
    writable_folder,
)
from cnnlab.measure.allocator import malloc_mode
from cnnlab.speedlab.bench import bench_levels, run_bench, write_bench


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(v) for v in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--batch-sizes must be positive integers like 1,8; got {text!r}")
    return sizes


@app.command()
def bench(
    models: Annotated[
        list[str] | None, typer.Argument(help="models (default: the rows of ShuffleNet v2 Table 8)")
    ] = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="comma-separated")] = "1,8",
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = None,
    rounds: Annotated[int, typer.Option(help="interleaved rounds per comparison (>= 3)")] = 6,
    out: Annotated[Path, typer.Option(help="folder for bench.csv, bench.json, bench.png")] = Path(
        "cnnlab-out/bench"
    ),
    input_size: InputSize = None,
    as_json: AsJson = False,
) -> None:
    """Latency and throughput at matched MACs, eager and deployed, with params and memory access.

    The deployed column's --backend defaults to cudagraphs on a GPU; on the CPU to openvino,
    else onnxruntime, where installed; else eager."""
    sizes = _batch_sizes(batch_sizes)
    size = parse_input_size(input_size)
    if size is not None and (size[1] != size[2] or size[0] != 3):
        raise UsageError(
            f"bench takes a square RGB input (one side, like 160, or 3xSxS); got --input-size "
            f"{input_size}"
        )
    steps = len(bench_levels(models)) * len(sizes)
    writable_folder(out)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=True) as bar:
        task = bar.add_task("bench", total=steps)

        def tick(done: int, what: str) -> None:
            bar.update(task, completed=done, description=f"[{done + 1}/{steps}] measuring {what}")

        rows = run_bench(
            models or None,
            batch_sizes=sizes,
            device=device,
            threads=threads,
            backend=backend,
            rounds=rounds,
            side=size[1] if size else None,
            progress=tick,
            on_step=lambda done: write_bench(done, out, plot=False),  # kept if interrupted
        )
    paths = write_bench(rows, out)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    _print(rows, paths)


def _print(rows, paths) -> None:
    table = Table(
        title=f"cnnlab bench: {rows[0].threads} threads, deployed with {rows[0].deploy_backend}, "
        f"malloc {malloc_mode()}"
    )
    cols = [
        "level",
        "model",
        "input",
        "batch",
        "params (M)",
        "MACs (M)",
        "mem. access (M)",
        "latency (ms)",
        "IQR",
        "images/s",
        "deployed (ms)",
        "speed-up",
    ]
    for c in cols:
        table.add_column(
            c, justify="left" if c in ("level", "model", "input") else "right", no_wrap=True
        )
    for r in rows:
        table.add_row(
            r.level,
            r.model,
            "x".join(map(str, r.input_size[1:])),
            str(r.batch_size),
            f"{r.params / 1e6:.2f}",
            f"{r.macs / 1e6:.1f}",
            f"{r.memory_access / 1e6:.1f}",
            f"{r.latency_ms:.2f}",
            f"{r.iqr_ms:.2f}" + (" *" if r.unreliable else ""),
            f"{r.throughput:.1f}",
            f"{r.deployed_ms:.2f}",
            f"{r.deploy_speedup:.2f}x",
        )
    out = console()
    out.print(table)
    unreliable = [r.model for r in rows if r.unreliable]
    if unreliable:
        out.print(
            f"* unreliable: IQR above the median for {', '.join(unreliable)} (the machine was "
            "busy or the timing too short); rerun on an idle machine or with more --rounds",
            markup=False,
        )
    out.print(f"wrote {paths['csv']}, {paths['json']}, {paths['png']}")
