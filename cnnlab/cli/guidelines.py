"""``cnnlab guidelines`` and ``cnnlab lint``: ShuffleNet v2's four guidelines, measured and applied."""

from __future__ import annotations

import json
import sys
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
    writable_folder,
)
from cnnlab.speedlab.guidelines.experiments import (
    TITLES,
    GuidelineResults,
    check_guideline_args,
    run_guidelines,
    write_guidelines,
)
from cnnlab.speedlab.guidelines.lint import GUIDELINES, LintReport, lint

OptionalInt = Optional[int]  # noqa: UP045  (typer reads annotations at run time on Python 3.10)


def _tables(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _m(n: float) -> str:
    return f"{n / 1e6:,.2f}"


def _rho(rho: float, verdict: str) -> str:
    return "n/a" if verdict == "n/a" else f"{rho:+.2f} ({verdict})"


def _print_guidelines(results: GuidelineResults, files: dict[str, Path]) -> None:
    s = results.settings
    out = console()
    for table, scale, rows in results.groups():
        t = Table(
            title=f"{table} x{scale}: {TITLES[table]}",
            caption=f"{s['platform']} widths at {s['input_size'][0]}x{s['input_size'][1]}",
        )
        cols = ("row", "widths", "MACs (M)", "mem. access (M)", "ours img/s", "ours rel.")
        cols += ("paper GPU batch/s", "GPU rel.", "paper ARM img/s", "ARM rel.")
        for col in cols:
            t.add_column(col, justify="left" if col in ("row", "widths") else "right")
        for r in rows:
            first = rows[0]
            t.add_row(
                r.label,
                r.widths,
                _m(r.macs),
                _m(r.memory_access),
                f"{r.images_per_s:,.1f}",
                f"{r.relative_speed:.2f} [{r.relative_low:.2f}-{r.relative_high:.2f}]",
                f"{r.paper_gpu:g}",
                f"{r.paper_gpu / first.paper_gpu:.2f}",
                f"{r.paper_arm:g}",
                f"{r.paper_arm / first.paper_arm:.2f}",
            )
        out.print(t)
        c = results.correlation(table, scale)
        out.print(
            f"  Spearman rho of our speed ordering vs Ma et al. 2018's: GPU "
            f"{_rho(c.rho_gpu, c.verdict_gpu)}, ARM {_rho(c.rho_arm, c.verdict_arm)}\n"
        )
    out.print(
        f"device {s['device']}, batch {s['batch_size']}, threads {s['threads']}, "
        f"backend {s['backend']}, {s['dtype']}, malloc {s['malloc']}; rel. = speed / first row (interleaved rounds, "
        "95% interval); Ma et al. 2018: GTX 1080Ti (batches/s) and Snapdragon 810 (images/s)."
    )
    out.print("wrote " + ", ".join(str(p) for p in files.values()))


@app.command()
def guidelines(
    quick: Annotated[bool, typer.Option("--quick", help="x1 only, fewer rounds")] = False,
    device: Device = "cpu",
    batch_size: BatchSize = 1,
    threads: Threads = None,
    platform: Annotated[
        str,
        typer.Option(
            "--platform",
            help="ShuffleNet v2's widths (Ma et al. 2018, Tables 1-4): arm (for a CPU) or gpu",
        ),
    ] = "arm",
    backend: Backend = None,
    tables: Annotated[str, typer.Option("--tables", help="comma list of G1..G4")] = "G1,G2,G3,G4",
    out: Annotated[Path, typer.Option("--out", help="directory for CSV, JSON and PNG")] = Path(
        "cnnlab-out/guidelines"
    ),
    as_json: AsJson = False,
    input_hw: Annotated[
        int,
        typer.Option(
            "--input-hw",
            hidden=True,
            help="feature map side of the experiment nets (Table 1-4: 56)",
        ),
    ] = 56,
    rounds: Annotated[
        OptionalInt,
        typer.Option(
            "--rounds", hidden=True, help="interleaved rounds per table (default: by --quick)"
        ),
    ] = None,
) -> None:
    """Re-measure ShuffleNet v2's guideline tables G1-G4 (Ma et al. 2018, Tables 1-4) here,
    beside the paper's GPU and ARM figures."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    check_guideline_args(_tables(tables), platform, device)  # before the folder is made
    writable_folder(out)
    results = run_guidelines(
        quick=quick,
        device=device,
        batch_size=batch_size,
        threads=threads,
        backend=backend,
        tables=_tables(tables),
        platform=platform,
        input_hw=input_hw,
        rounds=rounds,
        progress=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    files = write_guidelines(results, out)
    if as_json:
        print(json.dumps({**results.as_dict(), "files": {k: str(p) for k, p in files.items()}}))
        return
    _print_guidelines(results, files)


_COST = {
    "G1": "extra elements",
    "G2": "extra elements",
    "G3": "operators",
    "G4": "elements",
}


def _print_lint(report: LintReport, top: int) -> None:
    out = console()
    size = "x".join(map(str, report.input_size))
    out.print(
        f"{report.model} at {size}: {_m(report.macs)} M MACs, {_m(report.memory_access)} M "
        "elements of memory access (batch 1)"
    )
    summary = Table(title="ShuffleNet v2 guidelines (Ma et al. 2018, §2)")
    for col in ("guideline", "flagged", "cost", "of mem. access", "fix"):
        summary.add_column(col, justify="right" if col in ("flagged", "of mem. access") else "left")
    for g in GUIDELINES:
        t = report.totals[g]
        share = f"{t.share:.1%}" if t.share is not None else ""
        summary.add_row(f"{g} {t.rule}", str(t.count), t.cost, share, t.fix)
    out.print(summary)
    for g in GUIDELINES:
        found = report.ranked(g)
        if not found:
            out.print(f"{g}: no findings")
            continue
        t = Table(title=f"{g}: top {min(top, len(found))} of {len(found)}, by {_COST[g]}")
        for col in ("layer", "op", "detail", _COST[g]):
            t.add_column(col, justify="left" if col in ("layer", "op", "detail") else "right")
        for f in found[:top]:
            t.add_row(f.layer, f.op, f.detail, str(f.count) if g == "G3" else f"{f.extra:,.0f}")
        out.print(t)
    out.print(
        "Costs in elements of memory access (MAC, ShuffleNet v2 §2) at batch 1: G1 over Eq. 1's "
        "equal-width bound, G2 over the dense conv per Eq. 2, G4 the element-wise ops' own "
        "(depthwise conv included, as Ma et al. 2018 count it). --json lists every finding."
    )


@app.command(name="lint")
def lint_command(
    model: Annotated[str, typer.Argument(help="registered model name")],
    input_size: InputSize = None,
    as_json: AsJson = False,
    top: Annotated[int, typer.Option("--top", help="findings shown per guideline")] = 10,
) -> None:
    """Flag what ShuffleNet v2's guidelines G1-G4 (Ma et al. 2018, §2) warn against, layer by
    layer, with the fix."""
    if top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    report = lint(model, input_size=parse_input_size(input_size))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    _print_lint(report, top)
