"""``cnnlab lut build|predict|evaluate``: per-operator latency tables measured on this device."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cnnlab.cli.app import (
    AsJson,
    Backend,
    BatchSize,
    Device,
    InputSize,
    Threads,
    app,
    backend_option,
    console,
    parse_input_size,
    writable_file,
)
from cnnlab.errors import BadValue
from cnnlab.speedlab.lut.jobs import (
    DEFAULT_MODELS,
    Built,
    Evaluated,
    OpenTable,
    Predicted,
    build_file,
    build_sampling,
    default_path,
    evaluate_in,
    open_table,
    predict_in,
    select_models,
    synthetic_sample,
)
from cnnlab.speedlab.lut.regress import Synthetic
from cnnlab.speedlab.lut.table import (
    NN_METER_TOLERANCE,
    SOURCES,
    LatencyTable,
    LutAccuracy,
    check_sampling,
)

__all__ = ["lut_app"]

lut_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Latency tables (nn-Meter, Zhang et al. 2021): measure each operator once on this "
    "device, predict a model as the sum over its operators.",
)
app.add_typer(lut_app, name="lut")

PATH_HELP = "table file (default: cnnlab-out/lut/<device>-t<N>-b<B>[-<backend>].json)"
LutPath = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option("--lut", help=PATH_HELP),
]
TableBackend = backend_option(
    "the --backend the table was built with: picks the default --lut and must match"
)
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


@contextmanager
def _progress(total: int | None = None) -> Iterator[Callable[..., None]]:
    """``show(done, total)``: a progress bar on stderr from its first call on, so that a refusal
    before any measurement is printed alone."""
    columns = (TextColumn("measuring operators"), BarColumn(), MofNCompleteColumn())
    bar = Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task = bar.add_task("measure", total=total)

    def show(done: int, of: int | None = total) -> None:
        bar.start()  # once: a started bar ignores it
        bar.update(task, completed=done, total=of)

    try:
        yield show
    finally:
        if bar.live.is_started:  # a bar never shown prints nothing, not even a newline
            bar.stop()


@lut_app.command("build")
def build(
    models: Annotated[
        str, typer.Option("--models", help="comma-separated model names or fnmatch patterns")
    ] = DEFAULT_MODELS,
    input_size: InputSize = None,
    batch_size: BatchSize = 1,
    threads: Threads = None,
    device: Device = "cpu",
    backend: Backend = None,
    out: Annotated[Optional[Path], typer.Option("--out", help=PATH_HELP)] = None,  # noqa: UP045
    quick: Annotated[
        bool, typer.Option("--quick", help="5 samples and 0.02 s per operator: a rough table")
    ] = False,
    min_samples: Annotated[
        int | None, typer.Option("--min-samples", help="timed samples per operator (>= 1)")
    ] = None,  # noqa: UP045
    min_seconds: Annotated[
        float | None,
        typer.Option("--min-seconds", help="seconds of timing per operator, at least (>= 0)"),
    ] = None,  # noqa: UP045
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
    names, sample = select_models(models), synthetic_sample(synthetic)
    size, sampling = parse_input_size(input_size), build_sampling(quick, min_samples, min_seconds)
    path = writable_file(out or default_path(device, threads, batch_size, backend))
    with _progress() as show:
        built = build_file(
            path, names, input_size=size, batch_size=batch_size, device=device, threads=threads,
            backend=backend, fresh=fresh, synthetic=sample, sampling=sampling, on_progress=show,
        )  # fmt: skip
    if as_json:
        print(json.dumps(built.as_dict(), indent=1))
        return
    _print_built(built)


def _print_built(built: Built) -> None:
    table, s = built.table, built.sampling
    _print_kinds(table)
    _print_regressors(table)
    console().print(
        f"wrote {built.path}: {len(table.entries)} operators ({built.new} measured now, "
        f"{built.kept} kept) from {len(built.models)} models + {table.synthetic} synthetic in "
        f"{built.seconds:.1f} s; {s['min_samples']} samples / {s['min_seconds']} s per operator"
    )
    console().print(f"table setting: {table.settings}")


def _print_kinds(table: LatencyTable) -> None:
    t = Table(title=f"latency table: {len(table.entries)} operators by kind")
    for col in ("kind", "operators", "min ms", "max ms", "sum ms"):
        t.add_column(col, justify="left" if col == "kind" else "right", no_wrap=True)
    for kind, ms in table.by_kind().items():
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
        cv_error = "-" if err is None else f"{err:.1%}"
        t.add_row(escape(group), str(m["samples"]), m["model"], cv_error, *cells)
    console().print(t)


def _open(lut, device: str, threads, batch_size: int, backend, force: bool) -> OpenTable:
    """The table, with a warning on stderr when it was forced from another setting."""
    opened = open_table(
        lut, device=device, threads=threads, batch_size=batch_size, backend=backend, force=force
    )
    if opened.problems:
        message = f"warning: forced use of {opened.path}: " + "; ".join(opened.problems)
        Console(stderr=True).print(message, markup=False, highlight=False)
    return opened


@lut_app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="registered model name")],
    lut: LutPath = None,
    input_size: InputSize = None,
    device: Device = "cpu",
    threads: Threads = None,
    batch_size: BatchSize = 1,
    backend: TableBackend = None,
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
    select_models(model)  # an unknown name is refused before the table is read
    if top < 0:
        raise BadValue(f"--top must be >= 0 rows (0: all), got {top}")
    opened = _open(lut, device, threads, batch_size, backend, force)
    run = predict_in(
        opened, model, parse_input_size(input_size), measure=measure,
        measure_missing=measure_missing, use_regressors=not no_regressors,
    )  # fmt: skip
    if as_json:
        print(json.dumps(run.as_dict(), indent=1))
        return
    _print_prediction(run, top)
    _print_summary(run)


def _print_prediction(run: Predicted, top: int) -> None:
    p = run.prediction
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


def _print_summary(run: Predicted) -> None:
    out, p = console(), run.prediction
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
    if run.measured_ms is not None:
        out.print(f"measured {run.measured_ms:.3f} ms; prediction error {run.error:+.1%}")
    out.print(f"table {run.opened.path}: {run.opened.table.settings}", markup=False)
    if run.note:
        out.print(run.note, markup=False)


@lut_app.command("evaluate")
def evaluate(
    models: Annotated[list[str], typer.Argument(help="model names or fnmatch patterns")],
    lut: LutPath = None,
    input_size: InputSize = None,
    device: Device = "cpu",
    threads: Threads = None,
    batch_size: BatchSize = 1,
    backend: TableBackend = None,
    force: Force = False,
    min_samples: Annotated[
        int, typer.Option("--min-samples", help="timed samples per operator (>= 1)")
    ] = 30,
    min_seconds: Annotated[
        float, typer.Option("--min-seconds", help="seconds of timing per operator, at least (>= 0)")
    ] = 1.0,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="relative error counted as accurate")
    ] = NN_METER_TOLERANCE,
    measure_missing: MeasureMissing = False,
    as_json: AsJson = False,
) -> None:
    """nn-Meter's accuracy (Zhang et al. 2021): the fraction of models predicted within ±10%
    of their measured latency."""
    names = select_models(models)
    check_sampling(min_samples, min_seconds)  # before the table is read
    opened = _open(lut, device, threads, batch_size, backend, force)
    with _progress(len(names)) as show:
        run = evaluate_in(
            opened, names, input_size=parse_input_size(input_size), min_samples=min_samples,
            min_seconds=min_seconds, tolerance=tolerance, measure_missing=measure_missing,
            on_progress=show,
        )  # fmt: skip
    if as_json:
        print(json.dumps(run.as_dict(), indent=1))
        return
    _print_accuracy(run.accuracy)
    _print_fractions(run, measure_missing)


def _print_fractions(run: Evaluated, measure_missing: bool) -> None:
    acc, out = run.accuracy, console()
    tol = f"±{acc.tolerance:.0%}"
    out.print(
        f"within {tol}: {_fraction(acc)} of all models; {_fraction(acc, held_out=True)} of "
        "held-out models"
        + (" (operators not in the table measured now)" if measure_missing else "")
    )
    out.print(
        f"held-out within {tol}: exact entries only {_fraction(acc, 'table', True)}; "
        f"table + regressors {_fraction(acc, 'regressed', True)}",
        markup=False,
    )
    if run.note:
        out.print(run.note, markup=False)
    out.print(f"table {run.opened.path}: {run.opened.table.settings}", markup=False)


def _fraction(acc: LutAccuracy, what: str = "predicted", held_out: bool = False) -> str:
    hits, n = acc.count_within(what, held_out)
    return f"{hits}/{n} ({hits / n:.0%})" if n else "none"


def _print_accuracy(acc: LutAccuracy) -> None:
    t = Table(title=f"latency table accuracy (nn-Meter's metric: within ±{acc.tolerance:.0%})")
    cols = ("model", "held out", "coverage", "measured now", "table-only err", "regressed err")
    cols += ("predicted ms", "measured ms", "error", "within")
    for col in cols:
        t.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for r in acc.rows:
        t.add_row(
            r.model,
            "yes" if r.held_out else "no",
            f"{r.coverage:.1%}",
            str(r.measured_now),
            *(_pct(r.error_of(w)) for w in ("table", "regressed")),
            f"{r.predicted_ms:.3f}",
            f"{r.measured_ms:.3f}",
            f"{r.error:+.1%}",
            "yes" if abs(r.error) <= acc.tolerance else "no",
        )
    console().print(t)


def _pct(v: float | None, sign: str = "+") -> str:
    return "-" if v is None else f"{v:{sign}.1%}"
