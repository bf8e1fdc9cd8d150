"""``cnnlab models`` and ``cnnlab info``: the registry with its analytic complexity."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from cnnlab.cli.app import (
    AsJson,
    InputSize,
    UsageError,
    app,
    console,
    parse_input_size,
)
from cnnlab.counting.analytic import Complexity, complexity
from cnnlab.counting.report import models_markdown
from cnnlab.models import list_models

# what a user may have typed after a flag (``--json true``): a flag takes no value, so the word
# became the pattern
FLAG_VALUES = ("true", "false", "yes", "no", "on", "off", "1", "0")
FLAG_VALUE_HINT = " (a flag such as --json takes no value: write --json alone)"


def _millions(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def _size(size: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in size)


def _summary(name: str, c: Complexity) -> dict:
    return {
        "name": name,
        "params": c.params,
        "macs": c.macs,
        "activations": c.activations,
        "memory_access": c.memory_access,
        "input_size": list(c.input_size),
    }


@app.command()
def models(
    pattern: Annotated[str, typer.Argument(help="fnmatch pattern, e.g. 'shufflenet_v2*'")] = "*",
    input_size: InputSize = None,
    as_json: AsJson = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="print the docs/models.md zoo table (all models)")
    ] = False,
) -> None:
    """List registered models with params, MACs and memory access (analytic, batch 1)."""
    if markdown:
        print(models_markdown(), end="")
        return
    size = parse_input_size(input_size)
    names = list_models(pattern)
    if not names:
        hint = FLAG_VALUE_HINT if pattern.lower() in FLAG_VALUES else ""
        raise UsageError(f"no model matches {pattern!r}; `cnnlab models` lists them all{hint}")
    rows = [_summary(n, complexity(n, size)) for n in names]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"cnnlab models ({len(rows)})")
    for col in ("model", "params (M)", "MACs (M)", "memory access (M)", "input"):
        table.add_column(
            col, justify="left" if col in ("model", "input") else "right", no_wrap=True
        )
    for r in rows:
        table.add_row(
            r["name"],
            _millions(r["params"]),
            _millions(r["macs"]),
            _millions(r["memory_access"]),
            _size(r["input_size"]),
        )
    console().print(table)
    console().print("MACs: conv + FC multiply-accumulates; memory access: elements read + written.")


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="registered model name")],
    input_size: InputSize = None,
    as_json: AsJson = False,
) -> None:
    """Per-layer table of a model: output shape, params, MACs, memory access, and totals."""
    c = complexity(model, parse_input_size(input_size))
    size = c.input_size
    layers = [
        {
            "name": r.name,
            "kind": r.kind,
            "output_shape": list(r.cx.shape),
            "params": r.cx.params,
            "macs": r.cx.macs,
            "memory_access": r.cx.memory_access,
        }
        for r in c.rows
    ]
    if as_json:
        print(json.dumps({**_summary(model, c), "layers": layers}, indent=2))
        return
    table = Table(title=f"{model} at {_size(size)}")
    for col in ("layer", "block", "output", "params", "MACs", "memory access"):
        table.add_column(
            col, justify="left" if col in ("layer", "block", "output") else "right", no_wrap=True
        )
    for r in layers:
        table.add_row(
            r["name"],
            r["kind"],
            _size(r["output_shape"]),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            f"{r['memory_access']:,}",
        )
    table.add_section()
    table.add_row("total", "", "", f"{c.params:,}", f"{c.macs:,}", f"{c.memory_access:,}")
    console().print(table)
    console().print(
        f"{model}: {_millions(c.params)} M params, {_millions(c.macs)} M MACs, "
        f"{_millions(c.memory_access)} M elements of memory access, "
        f"{_millions(c.activations)} M activations"
    )
