"""``cnnlab lut build|predict|evaluate``: per-operator latency tables measured on this device."""

from __future__ import annotations

import fnmatch
import json
import time
from pathlib import Path
from typing import Annotated, Optional

import torch
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cnnlab.cli.app import (
    AsJson,
    BatchSize,
    Device,
    InputSize,
    Threads,
    UsageError,
    app,
    console,
    parse_input_size,
    writable_file,
)
from cnnlab.models import list_models
from cnnlab.speedlab.lut.regress import Synthetic
from cnnlab.speedlab.lut.table import (
    NN_METER_TOLERANCE,
    SOURCES,
    LatencyTable,
    LutRow,
    Prediction,
    build_lut,
    evaluate_lut,
    load_lut,
    measure_like,
    predict_latency,
)

lut_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Latency tables (nn-Meter's recipe): measure each operator once on this device, "
    "predict a model as the sum over its operators.",
)
app.add_typer(lut_app, name="lut")

DEFAULT_MODELS = "mobilenet_v2_*,shufflenet_v2_x0_5,shufflenet_v2_x1_5"
QUICK = {"min_samples": 5, "min_seconds": 0.02}
FULL = {"min_samples": 10, "min_seconds": 0.1}
CHECKPOINT_EVERY = 20  # operators measured between two saves of a table being built

LutPath = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--lut", help="table file (default: cnnlab-out/lut/<device>-t<N>-b<B>.json)"),
]
MeasureMissing = Annotated[
    bool,
    typer.Option(
        "--measure-missing", help="measure operators missing from the table now and add them"
    ),
]
NoRegressors = Annotated[
    bool,
    typer.Option("--no-regressors", help="exact table entries only: no per-kind regressors"),
]
Force = Annotated[
    bool, typer.Option("--force", help="use a table from another device, setting or version")
]


def default_path(device: str, threads: int, batch_size: int, backend: str | None = None) -> Path:
    """Where a table for this setting lives unless --out/--lut says otherwise."""
    name = f"{device.replace(':', '_')}-t{threads}-b{batch_size}"
    return Path("cnnlab-out") / "lut" / (f"{name}-{backend}.json" if backend else f"{name}.json")


def select_models(text: str) -> list[str]:
    """Registered names from a comma-separated list of names and fnmatch patterns."""
    registered = list_models()
    names: list[str] = []
    for item in (t.strip() for t in text.split(",")):
        matches = [item] if item in registered else fnmatch.filter(registered, item)
        if not item or not matches:
            raise UsageError(f"no model matches {item!r}; `cnnlab models` lists them all")
        names += matches
    return list(dict.fromkeys(names))


def _table_to_continue(path: Path, device: str, threads: int, batch_size: int, fresh: bool):
    if fresh or not path.exists():
        return None
    try:
        return load_lut(path, device=device, threads=threads, batch_size=batch_size)
    except ValueError as e:
        raise UsageError(f"{e}; or pass --fresh to start a new table at {path}") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("measuring operators"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@lut_app.command("build")
def build(
    models: Annotated[
        str, typer.Option("--models", help="comma-separated model names or fnmatch patterns")
    ] = DEFAULT_MODELS,
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--backend", help="deploy backend each operator is timed with"),
    ] = None,
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="table file (default: cnnlab-out/lut/<device>-t<N>-b<B>.json)"),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="5 samples and 0.02 s per operator: a rough table")
    ] = False,
    min_samples: Annotated[Optional[int], typer.Option("--min-samples")] = None,  # noqa: UP045
    min_seconds: Annotated[Optional[float], typer.Option("--min-seconds")] = None,  # noqa: UP045
    fresh: Annotated[
        bool, typer.Option("--fresh", help="remeasure all instead of continuing the table at --out")
    ] = False,
    synthetic: Annotated[
        int,
        typer.Option(
            "--synthetic",
            help="synthetic operators per regressor group measured to train the regressors "
            "(0: the models' own operators only)",
        ),
    ] = Synthetic.per_group,
    as_json: AsJson = False,
) -> None:
    """Measure every distinct operator of the models once, in isolation, and write the table.

    An existing table at --out of the same setting is continued: its entries are kept and only
    new operators are measured, so a killed build resumes and a table grows to more models.
    """
    names = select_models(models)
    if synthetic < 0:
        raise UsageError(f"--synthetic must be >= 0, got {synthetic}")
    size = parse_input_size(input_size)
    n_threads = threads or torch.get_num_threads()
    path = writable_file(out or default_path(device, n_threads, batch_size, backend))
    sampling = {**(QUICK if quick else FULL)}
    sampling.update(
        {
            k: v
            for k, v in (("min_samples", min_samples), ("min_seconds", min_seconds))
            if v is not None
        }
    )
    table = _table_to_continue(path, device, n_threads, batch_size, fresh)
    kept = len(table.entries) if table else 0
    start = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task("measure", total=None)

        def on_measured(t: LatencyTable, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
            if done % CHECKPOINT_EVERY == 0:
                t.save(path)

        table = build_lut(
            names,
            input_size=size,
            batch_size=batch_size,
            device=device,
            threads=threads,
            backend=backend,
            table=table,
            on_measured=on_measured,
            synthetic=Synthetic(per_group=synthetic) if synthetic else None,
            **sampling,
        )
    table.save(path)
    seconds = time.perf_counter() - start
    new = len(table.entries) - kept
    if as_json:
        print(
            json.dumps(
                {
                    "path": str(path),
                    "new": new,
                    "kept": kept,
                    "seconds": seconds,
                    **table.to_dict(),
                },
                indent=1,
            )
        )
        return
    _print_kinds(table)
    _print_regressors(table)
    console().print(
        f"wrote {path}: {len(table.entries)} operators ({new} measured now, {kept} kept) "
        f"from {len(names)} models + {table.synthetic} synthetic in {seconds:.1f} s; "
        f"{sampling['min_samples']} samples / {sampling['min_seconds']} s per operator"
    )
    console().print(f"table setting: {table.settings}")


def _print_kinds(table: LatencyTable) -> None:
    by_kind: dict[str, list[float]] = {}
    for key, e in table.entries.items():
        by_kind.setdefault(key.split(" ", 1)[0], []).append(e.median_ms)
    t = Table(title=f"latency table: {len(table.entries)} operators by kind")
    for col in ("kind", "operators", "min ms", "max ms", "sum ms"):
        t.add_column(col, justify="left" if col == "kind" else "right", no_wrap=True)
    for kind, ms in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
        t.add_row(kind, str(len(ms)), f"{min(ms):.4f}", f"{max(ms):.4f}", f"{sum(ms):.3f}")
    console().print(t)


def _print_regressors(table: LatencyTable) -> None:
    t = Table(
        title="per-kind regressors (nn-Meter): model chosen by 5-fold CV relative error",
        caption="beyond the range of its samples, a group predicts by its linear law",
    )
    for col in ("group", "samples", "model", "CV error", "linear CV", "power CV", "forest CV"):
        t.add_column(col, justify="left" if col in ("group", "model") else "right", no_wrap=True)
    for group, m in table.regressors.items():
        cv = m.get("cv") or {}
        cells = [_pct(cv.get(name), "") for name in ("linear", "power", "forest")]
        err = m.get("cv_error")
        t.add_row(
            escape(group),
            str(m["samples"]),
            m["model"],
            "-" if err is None else f"{err:.1%}",
            *cells,
        )
    console().print(t)


def _load(lut: Path | None, device: str, threads, batch_size: int, force: bool) -> tuple:
    """(path, table, matches): the table, and whether it matches this setting (else forced)."""
    n_threads = threads or torch.get_num_threads()
    path = lut or default_path(device, n_threads, batch_size)
    table = load_lut(path, force=force, device=device, threads=n_threads, batch_size=batch_size)
    problems = table.mismatches(device=device, threads=n_threads, batch_size=batch_size)
    if problems:
        message = f"warning: forced use of {path}: " + "; ".join(problems)
        Console(stderr=True).print(message, markup=False, highlight=False)
    return path, table, not problems


def _save_grown(table: LatencyTable, path: Path, added: int, matches: bool) -> str | None:
    """Save a table that grew by on-demand measurements, unless it is from another setting."""
    if not added:
        return None
    if not matches:
        return f"{added} operators measured now; not saved to {path}: it is from another setting"
    table.save(path)
    return f"{added} operators measured now and added to {path}"


@lut_app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="registered model name")],
    lut: LutPath = None,
    input_size: InputSize = None,
    device: Device = "cpu",
    threads: Threads = None,
    batch_size: BatchSize = 1,
    force: Force = False,
    measure: Annotated[
        bool, typer.Option("--measure", help="also measure the model and print the error")
    ] = False,
    measure_missing: MeasureMissing = False,
    no_regressors: NoRegressors = False,
    top: Annotated[int, typer.Option("--top", help="rows to show, slowest first (0: all)")] = 15,
    as_json: AsJson = False,
) -> None:
    """Predict a model's latency: the table's entries, else its kind's regressor, summed."""
    select_models(model)
    path, table, matches = _load(lut, device, threads, batch_size, force)
    size = parse_input_size(input_size)
    p = predict_latency(
        model, table, size, measure_missing=measure_missing, use_regressors=not no_regressors
    )
    note = _save_grown(table, path, len(p.measured_now), matches)
    measured = measure_like(model, table, p.input_size) if measure else None
    if as_json:
        d = {**p.as_dict(), "lut": str(path), "setting": table.settings, "measured_ms": measured}
        print(json.dumps(d, indent=1))
        return
    _print_prediction(p, top)
    _print_summary(p, path, table, measured)
    if note:
        console().print(note, markup=False)


def _print_prediction(p: Prediction, top: int) -> None:
    rows = sorted(p.rows, key=lambda r: -(r.total_ms if r.ms is not None else float("inf")))
    shown = rows[:top] if top > 0 else rows
    size = "x".join(str(v) for v in p.input_size)
    t = Table(title=f"{p.model} at {size}: {len(shown)} of {len(rows)} operators, slowest first")
    for col in ("operator", "source", "count", "ms", "total ms", "share"):
        t.add_column(col, justify="left" if col == "operator" else "right", no_wrap=True)
    for r in shown:
        if r.ms is None:
            t.add_row(escape(r.key), r.source, str(r.count), "missing", "-", "-")
        else:
            share = r.total_ms / p.total_ms if p.total_ms else 0.0
            cells = (f"{r.ms:.4f}", f"{r.total_ms:.3f}", f"{share:.1%}")
            t.add_row(escape(r.key), r.source, str(r.count), *cells)
    console().print(t)


def _print_summary(p: Prediction, path: Path, table: LatencyTable, measured) -> None:
    out = console()
    out.print(
        f"{p.model}: predicted {p.total_ms:.3f} ms = sum over {p.ops} operators "
        f"({len(p.rows)} distinct); exact table coverage {p.coverage:.1%}"
    )
    out.print(
        "operators by source: " + ", ".join(f"{s} {p.sources.get(s, 0)}" for s in SOURCES),
        markup=False,
    )
    if p.missing:
        out.print(
            f"{len(p.missing)} distinct operators have neither a table entry nor a regressor and "
            f"are not counted (the prediction is a lower bound); pass --measure-missing to "
            f"measure them now",
            markup=False,
        )
    if measured is not None:
        err = (p.total_ms - measured) / measured
        out.print(f"measured {measured:.3f} ms; prediction error {err:+.1%}")
    out.print(f"table {path}: {table.settings}", markup=False)


@lut_app.command("evaluate")
def evaluate(
    models: Annotated[list[str], typer.Argument(help="model names or fnmatch patterns")],
    lut: LutPath = None,
    input_size: InputSize = None,
    device: Device = "cpu",
    threads: Threads = None,
    batch_size: BatchSize = 1,
    force: Force = False,
    min_samples: Annotated[int, typer.Option("--min-samples")] = 30,
    min_seconds: Annotated[float, typer.Option("--min-seconds")] = 1.0,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="relative error counted as accurate")
    ] = NN_METER_TOLERANCE,
    measure_missing: MeasureMissing = False,
    as_json: AsJson = False,
) -> None:
    """nn-Meter's accuracy: the fraction of models predicted within ±10% of measured latency."""
    names = select_models(",".join(models))
    path, table, matches = _load(lut, device, threads, batch_size, force)
    before = len(table.entries)
    with _progress() as bar:
        task = bar.add_task("measure", total=len(names))
        acc = evaluate_lut(
            table,
            names,
            input_size=parse_input_size(input_size),
            min_samples=min_samples,
            min_seconds=min_seconds,
            tolerance=tolerance,
            measure_missing=measure_missing,
            on_model=lambda row: bar.advance(task),
        )
    note = _save_grown(table, path, len(table.entries) - before, matches)
    if as_json:
        rows = [
            {**r.__dict__, "error": r.error, "regressed_error": r.error_of("regressed")}
            for r in acc.rows
        ]
        print(
            json.dumps(
                {
                    "lut": str(path),
                    "setting": table.settings,
                    "tolerance": tolerance,
                    "within": acc.within,
                    "held_out_within": acc.held_out_within,
                    "held_out_within_table_only": acc.held_out_within_of("table"),
                    "held_out_within_regressed": acc.held_out_within_of("regressed"),
                    "rows": rows,
                },
                indent=1,
            )
        )
        return
    _print_accuracy(acc.rows, tolerance)
    out = console()
    held = [r for r in acc.rows if r.held_out]
    out.print(
        f"within ±{tolerance:.0%}: {_fraction(acc.rows, tolerance)} of all models; "
        f"{_fraction(held, tolerance)} of held-out models"
        + (" (operators not in the table measured now)" if measure_missing else "")
    )
    out.print(
        f"held-out within ±{tolerance:.0%}: exact entries only {_fraction(held, tolerance, 'table')}"
        f"; table + regressors {_fraction(held, tolerance, 'regressed')}",
        markup=False,
    )
    if note:
        out.print(note, markup=False)
    out.print(f"table {path}: {table.settings}", markup=False)


def _fraction(rows: list[LutRow], tolerance: float, what: str = "predicted") -> str:
    if not rows:
        return "none"
    errors = [r.error_of(what) for r in rows]
    hits = sum(e is not None and abs(e) <= tolerance for e in errors)
    return f"{hits}/{len(rows)} ({hits / len(rows):.0%})"


def _print_accuracy(rows: tuple[LutRow, ...], tolerance: float) -> None:
    t = Table(title=f"latency table accuracy (nn-Meter's metric: within ±{tolerance:.0%})")
    cols = ("model", "held out", "coverage", "measured now", "table-only err", "regressed err")
    cols += ("predicted ms", "measured ms", "error", "within")
    for col in cols:
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in rows:
        ok = "yes" if abs(r.error) <= tolerance else "no"
        t.add_row(
            r.model,
            "yes" if r.held_out else "no",
            f"{r.coverage:.1%}",
            str(r.measured_now),
            *(_pct(r.error_of(w)) for w in ("table", "regressed")),
            f"{r.predicted_ms:.3f}",
            f"{r.measured_ms:.3f}",
            f"{r.error:+.1%}",
            ok,
        )
    console().print(t)


def _pct(v: float | None, sign: str = "+") -> str:
    return "-" if v is None else f"{v:{sign}.1%}"
