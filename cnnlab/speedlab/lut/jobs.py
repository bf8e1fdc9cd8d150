"""The latency-table jobs of ``cnnlab lut``, as library calls: which models, which table file, a
build that saves as it goes and continues the file it finds, a table opened with the reasons it
does not match this setting, and a table grown by on-demand measurements saved only when it does.

A table's default file names its setting, the backend included (:func:`default_path`), so that
``build`` with a backend and ``predict``/``evaluate`` with the same one meet at the same file.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab._device import check_threads
from cnnlab.errors import BadValue
from cnnlab.models import list_models
from cnnlab.speedlab.lut.regress import Synthetic
from cnnlab.speedlab.lut.table import (
    AS_GIVEN,
    LatencyTable,
    LutAccuracy,
    LutRow,
    Prediction,
    build_lut,
    check_sampling,
    evaluate_lut,
    load_lut,
    measure_like,
    predict_latency,
)

DEFAULT_MODELS = "mobilenet_v2_*,shufflenet_v2_x0_5,shufflenet_v2_x1_5"
QUICK = {"min_samples": 5, "min_seconds": 0.02}  # a rough table
FULL = {"min_samples": 10, "min_seconds": 0.1}
CHECKPOINT_EVERY = 20  # operators measured between two saves of a table being built
SYNTHETIC = Synthetic()  # the default sample for the regressors


def select_models(text: str | Iterable[str]) -> list[str]:
    """Registered names from comma-separated names and fnmatch patterns, each once, in order."""
    items = text.split(",") if isinstance(text, str) else [t for s in text for t in s.split(",")]
    registered = list_models()
    names: list[str] = []
    for item in (t.strip() for t in items):
        matches = [item] if item in registered else fnmatch.filter(registered, item)
        if not item or not matches:
            raise BadValue(f"no model matches {item!r}; `cnnlab models` lists them all")
        names += matches
    return list(dict.fromkeys(names))


def check_setting(threads: int | None, batch_size: int) -> None:
    """A table's setting as given: threads None (torch's count) or >= 1, batch >= 1; zero is
    refused, never read as the default."""
    check_threads(threads)
    if isinstance(batch_size, bool) or batch_size < 1:
        raise BadValue(f"batch_size must be >= 1, got {batch_size}")


def default_path(
    device: str = "cpu", threads: int | None = None, batch_size: int = 1, backend: str | None = None
) -> Path:
    """Where the table of this setting lives unless a path is given:
    ``cnnlab-out/lut/<device>-t<threads>-b<batch>[-<backend>].json`` (threads: torch's count)."""
    check_setting(threads, batch_size)
    name = f"{device.replace(':', '_')}-t{threads or torch.get_num_threads()}-b{batch_size}"
    return Path("cnnlab-out") / "lut" / (f"{name}-{backend}.json" if backend else f"{name}.json")


def build_sampling(
    quick: bool = False, min_samples: int | None = None, min_seconds: float | None = None
) -> dict:
    """Samples and seconds per operator: QUICK or FULL, with what is given in their place."""
    given = {"min_samples": min_samples, "min_seconds": min_seconds}
    sampling = {**(QUICK if quick else FULL), **{k: v for k, v in given.items() if v is not None}}
    check_sampling(**sampling)
    return sampling


def synthetic_sample(per_group: int) -> Synthetic | None:
    """The synthetic operators per regressor group to measure; None for 0."""
    if per_group < 0:
        raise BadValue(f"synthetic must be >= 0 operators per group, got {per_group}")
    return Synthetic(per_group=per_group) if per_group else None


@dataclass(frozen=True)
class Built:
    """A table written by :func:`build_file`: ``kept`` entries were there, the rest are new."""

    path: Path
    table: LatencyTable
    models: list[str]
    kept: int
    seconds: float
    sampling: dict

    @property
    def new(self) -> int:
        return len(self.table.entries) - self.kept

    def as_dict(self) -> dict:
        summary = {"path": str(self.path), "new": self.new, "kept": self.kept}
        return {**summary, "seconds": self.seconds, **self.table.to_dict()}


def _continued(path: Path, fresh: bool, backend: str | None, **setting) -> LatencyTable | None:
    """The table at ``path`` to continue (None: start a new one); it must be of this setting."""
    if fresh or not path.exists():
        return None
    try:
        return load_lut(path, backend=backend or AS_GIVEN, **setting)
    except BadValue as e:
        raise BadValue(f"{e}; or pass --fresh to start a new table at {path}") from None


def build_file(
    path: str | Path,
    models: list[str],
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    backend: str | None = None,
    sampling: dict = FULL,
    fresh: bool = False,
    synthetic: Synthetic | None = SYNTHETIC,
    on_progress: Callable[[int, int], None] | None = None,
) -> Built:
    """:func:`build_lut` into ``path``, saved every CHECKPOINT_EVERY operators and at the end.

    A table already at ``path`` is continued (its entries kept, only new operators measured)
    unless ``fresh``; one of another setting is refused. ``on_progress(done, total)`` follows
    each operator.
    """
    check_setting(threads, batch_size)
    path, threads = Path(path), threads or torch.get_num_threads()
    setting = {"device": device, "threads": threads, "batch_size": batch_size}
    table = _continued(path, fresh, backend, **setting)
    kept, start = (len(table.entries) if table else 0), time.perf_counter()

    def on_measured(t: LatencyTable, done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done, total)
        if done % CHECKPOINT_EVERY == 0:
            t.save(path)

    table = build_lut(
        models, input_size=input_size, backend=backend, table=table, on_measured=on_measured,
        synthetic=synthetic, **setting, **sampling,
    )  # fmt: skip
    table.save(path)
    return Built(path, table, list(models), kept, time.perf_counter() - start, dict(sampling))


@dataclass
class OpenTable:
    """A table read for prediction, and why it does not match this setting (empty: it does;
    otherwise it was forced)."""

    path: Path
    table: LatencyTable
    problems: list[str] = field(default_factory=list)
    opened_with: int = 0  # entries when read

    def save_grown(self) -> str | None:
        """Save the operators measured since it was read, unless it is of another setting;
        what was done, in a sentence (None: nothing was measured)."""
        added = len(self.table.entries) - self.opened_with
        if not added:
            return None
        if self.problems:
            return f"{added} operators measured now; not saved to {self.path}: it is from another setting"
        self.table.save(self.path)
        return f"{added} operators measured now and added to {self.path}"


def open_table(
    path: str | Path | None = None,
    *,
    device: str = "cpu",
    threads: int | None = None,
    batch_size: int = 1,
    backend: str | None = None,
    force: bool = False,
) -> OpenTable:
    """The table at ``path`` (default: :func:`default_path` of this setting, the backend
    included), refused when of another setting unless ``force``."""
    check_setting(threads, batch_size)
    threads = threads or torch.get_num_threads()
    path = Path(path) if path else default_path(device, threads, batch_size, backend)
    setting = {"device": device, "threads": threads, "batch_size": batch_size, "backend": backend}
    table = load_lut(path, force=force, **setting)
    return OpenTable(path, table, table.mismatches(**setting), len(table.entries))


@dataclass(frozen=True)
class Predicted:
    """A prediction from an opened table, the whole model's measured latency if asked for,
    and the note of :meth:`OpenTable.save_grown`."""

    opened: OpenTable
    prediction: Prediction
    measured_ms: float | None = None
    note: str | None = None

    @property
    def error(self) -> float | None:
        """(predicted - measured) / measured, when measured."""
        if self.measured_ms is None:
            return None
        return (self.prediction.total_ms - self.measured_ms) / self.measured_ms

    def as_dict(self) -> dict:
        where = {"lut": str(self.opened.path), "setting": self.opened.table.settings}
        return {**self.prediction.as_dict(), **where, "measured_ms": self.measured_ms}


def predict_in(
    opened: OpenTable,
    model: str,
    input_size: tuple[int, int, int] | None = None,
    *,
    measure: bool = False,
    measure_missing: bool = False,
    use_regressors: bool = True,
) -> Predicted:
    """:func:`predict_latency` of ``model``, its operators measured now saved to the table when
    it matches; ``measure`` also times the whole model under the table's setting."""
    table = opened.table
    p = predict_latency(
        model, table, input_size, measure_missing=measure_missing, use_regressors=use_regressors
    )
    note = opened.save_grown()
    measured = measure_like(model, table, p.input_size) if measure else None
    return Predicted(opened, p, measured, note)


@dataclass(frozen=True)
class Evaluated:
    """An accuracy check from an opened table and the note of :meth:`OpenTable.save_grown`."""

    opened: OpenTable
    accuracy: LutAccuracy
    note: str | None = None

    def as_dict(self) -> dict:
        where = {"lut": str(self.opened.path), "setting": self.opened.table.settings}
        return {**where, **self.accuracy.as_dict()}


def evaluate_in(
    opened: OpenTable,
    models: list[str],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    **options,
) -> Evaluated:
    """:func:`evaluate_lut` of ``models`` (its ``options``), operators measured now saved to
    the table when it matches; ``on_progress(done, total)`` follows each model."""
    done: list[LutRow] = []

    def on_model(row: LutRow) -> None:
        done.append(row)
        if on_progress is not None:
            on_progress(len(done), len(models))

    accuracy = evaluate_lut(opened.table, models, on_model=on_model, **options)
    return Evaluated(opened, accuracy, opened.save_grown())
