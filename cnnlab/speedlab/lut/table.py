"""Latency lookup tables: per-operator latencies measured on this device, summed to predict models.

The recipe of nn-Meter (Zhang et al., MobiSys 2021): a model's latency is the sum of the
latencies of its operators (kernels, after fusion), each measured in isolation on an input of its
shape. The table stores the exact operators measured; an operator it has not seen is predicted, as
nn-Meter predicts every kernel, by a regressor fitted per operator kind on the table's entries
(:mod:`cnnlab.speedlab.lut.regress`), and the prediction counts how many operators came from each.
nn-Meter's figure of merit is the fraction of held-out models predicted within ±10% of their
measured latency (99.0% on a mobile CPU, per its abstract). Operators and fusion rules are those
of :mod:`cnnlab.speedlab.lut.opsig`; every timing comes from :func:`measure_deployed` (the
module as given, or deployed first when the table names a backend).

A table holds latencies for one device, thread count, batch size, backend and software version:
loading it anywhere else is refused with the reason, unless forced. An operator missing from the
table and without a regressor is reported, and the prediction states its coverage: it is never
counted as zero. Format 2 added the regressors; a format-1 table is refused with that reason.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from cnnlab._io import atomic_write
from cnnlab._version import __version__
from cnnlab.deployment.timed import measure_deployed
from cnnlab.errors import BadType, BadValue
from cnnlab.measure.allocator import malloc_mode
from cnnlab.measure.request import check_device, check_request, check_settings
from cnnlab.models.registry import input_size_of
from cnnlab.speedlab.lut.opsig import OpSig, extract_ops
from cnnlab.speedlab.lut.regress import (
    Synthetic,
    check_regressors,
    fit_regressors,
    predict_key,
    synthetic_ops,
)

FORMAT = 2  # 2: per-kind regressors (lut_regress) stored with the entries
AS_GIVEN = "as given"  # the backend of a table timed on the modules as built
NN_METER_TOLERANCE = 0.10  # nn-Meter's accuracy metric: |predicted - measured| <= 10% of measured
_DEFAULT_INPUT = (3, 224, 224)


@dataclass(frozen=True)
class LutEntry:
    """One operator's latency: median and interquartile range (ms) over ``count`` samples."""

    median_ms: float
    iqr_ms: float
    count: int


@dataclass
class LatencyTable:
    """Per-operator latencies on one device and setting (nn-Meter, Zhang et al. 2021)."""

    device: str
    device_name: str
    threads: int
    batch_size: int
    backend: str
    torch: str
    torchvision: str
    cnnlab: str
    created: str
    models: list[str] = field(default_factory=list)
    min_samples: int = 0
    min_seconds: float = 0.0
    entries: dict[str, LutEntry] = field(default_factory=dict)
    synthetic: int = 0  # entries measured for the regressors only (not from any model)
    regressors: dict[str, dict] = field(default_factory=dict)  # group -> fitted model (numbers)
    malloc: str = field(default_factory=malloc_mode)  # allocator mode it was measured under

    def fit(self) -> None:
        """Fit one regressor per operator group on the entries (lut_regress.fit_regressors)."""
        self.regressors = fit_regressors({k: e.median_ms for k, e in self.entries.items()})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["format"] = FORMAT
        d["entries"] = {k: asdict(v) for k, v in self.entries.items()}
        return d

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as JSON atomically (temporary file in the same folder, then rename)."""
        return atomic_write(path, json.dumps(self.to_dict(), indent=1))

    def mismatches(
        self,
        *,
        device: str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        backend: str | None = None,
    ) -> list[str]:
        """Why this table does not describe the current setup (empty when it does).

        ``device``, ``batch_size`` and ``backend`` default to the table's own (``backend`` is
        ``"as given"`` for a table timed without one); ``threads`` to torch's current intra-op
        thread count, the count :func:`measure_deployed` would use.
        """
        try:
            dev = str(check_device(device or self.device))
        except BadValue as e:
            return [f"device {device or self.device!r} is not usable here ({e})"]
        here = environment(dev)
        wanted = {
            "device": dev,
            "device_name": here["device_name"],
            "threads": threads or torch.get_num_threads(),
            "batch_size": batch_size or self.batch_size,
            "backend": backend or self.backend,
            "torch": here["torch"],
            "torchvision": here["torchvision"],
            "cnnlab": here["cnnlab"],
            "malloc": malloc_mode(),
        }
        return [
            f"{k} {getattr(self, k)!r} (table) != {v!r} (here)"
            for k, v in wanted.items()
            if getattr(self, k) != v
        ]

    def by_kind(self) -> dict[str, list[float]]:
        """Median latencies (ms) of the entries by operator kind, the largest sum first."""
        kinds: dict[str, list[float]] = {}
        for key, e in self.entries.items():
            kinds.setdefault(key.split(" ", 1)[0], []).append(e.median_ms)
        return dict(sorted(kinds.items(), key=lambda kv: -sum(kv[1])))

    @property
    def settings(self) -> str:
        """One line naming what the table was measured under."""
        t = "thread" if self.threads == 1 else "threads"
        return (
            f"{self.device} ({self.device_name}), {self.threads} {t}, batch {self.batch_size}, "
            f"backend {self.backend}, malloc {self.malloc}, torch {self.torch}"
        )


def device_name(device: str | torch.device) -> str:
    """The processor behind ``device``: the GPU's name, or the CPU model from /proc/cpuinfo."""
    dev = check_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def environment(device: str | torch.device = "cpu") -> dict[str, str]:
    """Device name and software versions a table is only valid for."""
    import torchvision  # seconds of imports (it pulls in torch._dynamo): only when needed

    return {
        "device_name": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cnnlab": __version__,
    }


def _resolve(
    model_or_name: nn.Module | str, input_size, batch_size: int = 1, device: str = "cpu"
) -> tuple[str, nn.Module, tuple]:
    """(name, model, input size): a registered name's own input size unless one is given,
    checked (``check_request``: the model takes it, the memory holds it) before it is built."""
    from cnnlab.models import create_model

    if isinstance(model_or_name, str):
        size = input_size_of(model_or_name, input_size)
        check_request(model_or_name, input_size=size, batch_sizes=(batch_size,), device=device)
        return model_or_name, create_model(model_or_name), size
    if isinstance(model_or_name, nn.Module):
        return type(model_or_name).__name__, model_or_name, input_size_of(model_or_name, input_size)
    raise BadType(f"expected a model name or an nn.Module, got {type(model_or_name).__name__}")


def _measure(model: nn.Module, input_size, batch_size: int, backend: str | None, **kw):
    """measure_deployed: the module as given when ``backend`` is None, else deployed first."""
    return measure_deployed(
        model, backend=backend, input_size=input_size, batch_size=batch_size, **kw
    )


def model_signatures(
    models: Iterable[nn.Module | str], input_size=None, batch_size: int = 1, device: str = "cpu"
) -> tuple[list[str], dict[str, OpSig]]:
    """Names of ``models`` and their distinct operator signatures, in order of first occurrence."""
    names, sigs = [], {}
    for m in [models] if isinstance(models, (str, nn.Module)) else models:
        name, model, size = _resolve(m, input_size, batch_size, device)
        names.append(name)
        for op in extract_ops(model, size, batch_size):
            sigs.setdefault(op.key, op)
    return names, sigs


def build_lut(
    models: Iterable[nn.Module | str],
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    backend: str | None = None,
    min_samples: int = 10,
    min_seconds: float = 0.1,
    max_seconds: float = 5.0,
    table: LatencyTable | None = None,
    on_measured: Callable[[LatencyTable, int, int], None] | None = None,
    synthetic: Synthetic | None = None,
) -> LatencyTable:
    """Measure every distinct operator of ``models`` once, in isolation, with measure_deployed.

    ``synthetic`` also measures a seeded sample of operators per group (lut_regress), so that
    every group's regressor has training samples; the regressors are fitted on all entries.

    ``input_size`` defaults to each registered model's own. ``table`` continues an existing table
    of the same setting: its entries are kept and only new operators are measured (a killed build
    resumes, and a table grows to cover more models). ``on_measured(table, done, total)`` is
    called after each operator.
    """
    check_settings(input_size or _DEFAULT_INPUT, batch_size, threads, "inference")
    check_sampling(min_samples, min_seconds)
    dev = str(check_device(device))
    threads = threads or torch.get_num_threads()
    names, sigs = model_signatures(models, input_size, batch_size, dev)
    if table is None:
        table = LatencyTable(
            dev,
            batch_size=batch_size,
            threads=threads,
            backend=backend or AS_GIVEN,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            min_samples=min_samples,
            min_seconds=min_seconds,
            **environment(dev),
        )
    else:
        _check_continuation(table, dev, threads, batch_size, backend)
    table.models = list(dict.fromkeys([*table.models, *names]))
    extra = synthetic_ops(synthetic) if synthetic is not None else {}
    todo = [s for k, s in {**sigs, **extra}.items() if k not in table.entries]
    sampling = {"min_samples": min_samples, "min_seconds": min_seconds, "max_seconds": max_seconds}
    for i, sig in enumerate(todo, start=1):
        table.entries[sig.key] = measure_op(sig, table, **sampling)
        if on_measured is not None:
            on_measured(table, i, len(todo))
    table.synthetic = len(set(extra) - set(sigs)) if extra else table.synthetic
    table.fit()
    return table


def measure_op(sig: OpSig, lut: LatencyTable, **sampling) -> LutEntry:
    """One operator timed alone on a random input of its shape, under the table's setting."""
    module, size, batch = sig.build(lut.batch_size)
    lat = _measure(
        module, size, batch, _backend(lut), device=lut.device, threads=lut.threads, **sampling
    )
    return LutEntry(lat.median_ms, lat.iqr_ms, lat.samples)


def _backend(lut: LatencyTable) -> str | None:
    return None if lut.backend == AS_GIVEN else lut.backend


def _check_continuation(table, device, threads, batch_size, backend) -> None:
    problems = table.mismatches(
        device=device, threads=threads, batch_size=batch_size, backend=backend or AS_GIVEN
    )
    if problems:
        raise BadValue(
            "cannot continue a latency table measured under another setting: "
            + "; ".join(problems)
            + "; start a new table instead"
        )


_REQUIRED = {
    "device": str,
    "device_name": str,
    "threads": int,
    "batch_size": int,
    "backend": str,
    "torch": str,
    "torchvision": str,
    "cnnlab": str,
    "created": str,
    "entries": dict,
}


def table_from_dict(data: object, source: str = "latency table") -> LatencyTable:
    """A :class:`LatencyTable` from its JSON form; a ValueError names what is wrong."""
    if not isinstance(data, dict):
        raise BadValue(f"{source} is not a latency table: expected a JSON object")
    for key, typ in _REQUIRED.items():
        if not isinstance(data.get(key), typ):
            raise BadValue(
                f"{source} is not a latency table: field {key!r} is missing or not a "
                f"{typ.__name__}; rebuild it with `cnnlab lut build`"
            )
    if data.get("format") != FORMAT:
        raise BadValue(
            f"{source} is a latency table of format {data.get('format')!r}, this cnnlab reads "
            f"format {FORMAT} (per-kind regressors added in format 2); rebuild it with "
            "`cnnlab lut build --fresh`"
        )
    entries = {key: _entry(key, e, source) for key, e in data["entries"].items()}
    meta = {k: data[k] for k in _REQUIRED if k != "entries"}
    return LatencyTable(
        **meta,
        **_optional_fields(data, source),
        entries=entries,
        regressors=check_regressors(data.get("regressors", {}), source),
    )


def _entry(key: str, e: object, source: str) -> LutEntry:
    """One operator's entry; a BadValue names the file and the operator of a bad one."""
    try:
        entry = LutEntry(float(e["median_ms"]), float(e["iqr_ms"]), int(e["count"]))
    except (KeyError, TypeError, ValueError):
        raise BadValue(
            f"{source}: entry {key!r} needs numbers median_ms, iqr_ms and count, got {e!r}"
        ) from None
    ms = (entry.median_ms, entry.iqr_ms)
    if not all(math.isfinite(v) and v >= 0 for v in ms) or entry.count < 1:
        raise BadValue(
            f"{source}: operator {key!r} has median_ms={entry.median_ms}, "
            f"iqr_ms={entry.iqr_ms}, count={entry.count}; latencies must be finite and >= 0 "
            "and count >= 1: rebuild the table with `cnnlab lut build --fresh`"
        )
    return entry


def check_sampling(min_samples: int, min_seconds: float) -> None:
    """Samples per measurement >= 1 and seconds >= 0 (finite), else a BadValue with the fix."""
    if min_samples < 1:
        raise BadValue(f"min_samples must be >= 1, got {min_samples}; pass --min-samples 1 or more")
    if not (math.isfinite(min_seconds) and min_seconds >= 0):
        raise BadValue(f"min_seconds must be >= 0, got {min_seconds}; pass --min-seconds 0 or more")


def _optional_fields(data: dict, source: str) -> dict:
    """The fields a table may lack (older formats), converted; a BadValue names a bad one."""
    models = data.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise BadValue(
            f"{source}: field 'models' is malformed: it must be a list of model names, got "
            f"{models!r}; "
            "rebuild it with `cnnlab lut build --fresh`"
        )
    try:
        return {
            "models": models,
            "min_samples": int(data.get("min_samples", 0)),
            "min_seconds": float(data.get("min_seconds", 0.0)),
            "synthetic": int(data.get("synthetic", 0)),
            "malloc": str(data.get("malloc", "system")),  # tables before the field: glibc's own
        }
    except (TypeError, ValueError) as e:
        raise BadValue(
            f"{source}: models, min_samples, min_seconds or synthetic is malformed ({e}); "
            "rebuild it with `cnnlab lut build --fresh`"
        ) from None


def load_lut(
    path: str | os.PathLike,
    *,
    force: bool = False,
    device: str | None = None,
    threads: int | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
) -> LatencyTable:
    """Read a table; refuse one from another device, thread count, batch, backend or version
    unless forced.

    The expected setting defaults to the table's device, batch size and backend on this machine
    at torch's current thread count (see :meth:`LatencyTable.mismatches`).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise BadValue(
            f"no latency table at {str(path)!r}; build one with `cnnlab lut build --out {path}`"
        ) from None
    except OSError as e:
        raise BadValue(f"cannot read latency table {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise BadValue(
            f"{str(path)!r} is not a latency table (binary, not JSON text); pass a table "
            "written by `cnnlab lut build`"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadValue(
            f"{str(path)!r} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            "rebuild it with `cnnlab lut build`"
        ) from None
    table = table_from_dict(data, repr(str(path)))
    problems = table.mismatches(
        device=device, threads=threads, batch_size=batch_size, backend=backend
    )
    if problems and not force:
        raise BadValue(
            f"latency table {str(path)!r} was measured under another setting: "
            + "; ".join(problems)
            + "; rebuild it here, pass the matching options, or force it (--force)"
        )
    return table


SOURCES = ("table", "regressor", "measured now", "missing")


@dataclass(frozen=True)
class PredictionRow:
    """One distinct operator of a model: occurrences, latency (None: missing) and its source.

    ``source`` is ``table`` (exact signature), ``regressor`` (its group's fitted model),
    ``measured now`` (measured on demand) or ``missing``.
    """

    key: str
    kind: str
    count: int
    ms: float | None
    source: str = "table"

    @property
    def total_ms(self) -> float | None:
        return None if self.ms is None else self.count * self.ms


@dataclass(frozen=True)
class Prediction:
    """Predicted latency: the sum over a model's operators (nn-Meter, Zhang et al. 2021).

    ``total_ms`` sums every operator with a latency: exact table entries, then the regressors,
    then those measured on demand (``measured_now``). ``coverage`` is the fraction of operator
    occurrences the table covered exactly, ``sources`` counts occurrences by source, ``missing``
    lists the keys without any latency. ``table_ms`` sums the exact entries alone, and
    ``regressed_ms`` is the table + regressor prediction (None when some operator had neither),
    also when operators were then measured on demand.
    """

    model: str
    input_size: tuple[int, int, int]
    total_ms: float
    rows: tuple[PredictionRow, ...]
    missing: tuple[str, ...]
    coverage: float
    ops: int
    measured_now: tuple[str, ...] = ()
    sources: dict[str, int] = field(default_factory=dict)
    table_ms: float = 0.0
    regressed_ms: float | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        for row, r in zip(d["rows"], self.rows):
            row["total_ms"] = r.total_ms
        return d


def _latency(key: str, lut: LatencyTable) -> tuple[str, float | None]:
    """(source, ms) of one operator before any on-demand measurement."""
    if key in lut.entries:
        return "table", lut.entries[key].median_ms
    ms = predict_key(lut.regressors, key)[1]
    return ("missing", None) if ms is None else ("regressor", ms)


def _predict(
    name: str,
    model: nn.Module,
    size,
    lut: LatencyTable,
    measure_missing: bool,
    sampling: dict,
    use_regressors: bool = True,
) -> Prediction:
    ops = extract_ops(model, size, lut.batch_size)
    sigs = {op.key: op for op in ops}
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.key] = counts.get(op.key, 0) + 1
    first = {k: _latency(k, lut) for k in counts}
    regressed = None
    if all(ms is not None for _, ms in first.values()):
        regressed = math.fsum(counts[k] * ms for k, (_, ms) in first.items())
    table_ms = math.fsum(counts[k] * ms for k, (src, ms) in first.items() if src == "table")
    chosen = {
        k: v if use_regressors or v[0] == "table" else ("missing", None) for k, v in first.items()
    }
    todo = tuple(k for k, (src, _) in chosen.items() if src != "table") if measure_missing else ()
    for key in todo:
        lut.entries[key] = measure_op(sigs[key], lut, **sampling)
        chosen[key] = ("measured now", lut.entries[key].median_ms)
    rows = tuple(
        PredictionRow(k, sigs[k].kind, n, chosen[k][1], chosen[k][0]) for k, n in counts.items()
    )
    sources = {src: sum(r.count for r in rows if r.source == src) for src in SOURCES}
    return Prediction(
        model=name,
        input_size=tuple(size),
        total_ms=math.fsum(r.total_ms for r in rows if r.ms is not None),
        rows=rows,
        missing=tuple(r.key for r in rows if r.ms is None),
        coverage=sources["table"] / len(ops) if ops else 1.0,
        ops=len(ops),
        measured_now=todo,
        sources=sources,
        table_ms=table_ms,
        regressed_ms=regressed,
    )


def _sampling(lut: LatencyTable, min_samples: int | None, min_seconds: float | None) -> dict:
    """On-demand sampling: as given, else as the table was built (nn-Meter measures alike)."""
    return {
        "min_samples": min_samples or lut.min_samples or 10,
        "min_seconds": min_seconds if min_seconds is not None else (lut.min_seconds or 0.1),
    }


def predict_latency(
    model_or_name: nn.Module | str,
    lut: LatencyTable,
    input_size: tuple[int, int, int] | None = None,
    *,
    measure_missing: bool = False,
    min_samples: int | None = None,
    min_seconds: float | None = None,
    use_regressors: bool = True,
) -> Prediction:
    """Predicted latency of a model under the table's setting: the sum over its operators.

    An operator missing from the table is predicted by its group's regressor (unless
    ``use_regressors`` is False); one with neither is reported and not counted.
    ``measure_missing`` measures every operator not in the table now (with the table's sampling
    unless given), adds it to ``lut`` and counts it.
    """
    name, model, size = _resolve(model_or_name, input_size, lut.batch_size)  # counted on CPU
    check_settings(size, lut.batch_size, None, "inference")
    sampling = _sampling(lut, min_samples, min_seconds)
    return _predict(name, model, size, lut, measure_missing, sampling, use_regressors)


def measure_like(model: nn.Module | str, lut: LatencyTable, input_size, **kw) -> float:
    """Median latency (ms) of a whole model measured under the table's setting."""
    lat = _measure(
        model,
        input_size,
        lut.batch_size,
        _backend(lut),
        device=lut.device,
        threads=lut.threads,
        **kw,
    )
    return lat.median_ms


@dataclass(frozen=True)
class LutRow:
    """One model of an accuracy check: predicted and measured latency (ms) and their error."""

    model: str
    predicted_ms: float
    measured_ms: float
    coverage: float  # of the table before any operator was measured on demand
    held_out: bool  # not among the models the table was built from
    measured_now: int = 0  # operators measured on demand for this row
    table_ms: float = 0.0  # exact table entries alone (a lower bound when coverage < 1)
    regressed_ms: float | None = None  # table + regressors, before any on-demand measurement

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted - measured) / measured."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms

    def error_of(self, what: str) -> float | None:
        """Relative error of ``predicted``, ``table`` (exact entries only) or ``regressed``."""
        ms = {"predicted": self.predicted_ms, "table": self.table_ms}.get(what, self.regressed_ms)
        return None if ms is None else (ms - self.measured_ms) / self.measured_ms


@dataclass(frozen=True)
class LutAccuracy:
    """Accuracy over models: nn-Meter's fraction within ±tolerance (Zhang et al. 2021)."""

    rows: tuple[LutRow, ...]
    tolerance: float = NN_METER_TOLERANCE

    def count_within(self, what: str = "predicted", held_out: bool = False) -> tuple[int, int]:
        """(rows within ±tolerance, rows): of all rows, or of the held-out ones only, by the
        error of ``predicted``, ``table`` (exact entries only) or ``regressed``."""
        rows = [r for r in self.rows if r.held_out or not held_out]
        errors = [r.error_of(what) for r in rows]
        return sum(e is not None and abs(e) <= self.tolerance for e in errors), len(rows)

    def _within(self, what: str = "predicted", held_out: bool = False) -> float | None:
        hits, n = self.count_within(what, held_out)
        return hits / n if n else None

    def held_out_within_of(self, what: str) -> float | None:
        """Held-out fraction within ±tolerance of ``table``, ``regressed`` or ``predicted``."""
        return self._within(what, held_out=True)

    @property
    def within(self) -> float | None:
        """Fraction of all rows predicted within ±tolerance."""
        return self._within()

    @property
    def held_out_within(self) -> float | None:
        """Fraction of held-out rows (models the table was not built from) within ±tolerance."""
        return self.held_out_within_of("predicted")

    def as_dict(self) -> dict:
        """The fractions within ±tolerance and every row with its errors, as JSON values."""
        rows = [
            {**asdict(r), "error": r.error, "regressed_error": r.error_of("regressed")}
            for r in self.rows
        ]
        return {
            "tolerance": self.tolerance,
            "within": self.within,
            "held_out_within": self.held_out_within,
            "held_out_within_table_only": self.held_out_within_of("table"),
            "held_out_within_regressed": self.held_out_within_of("regressed"),
            "rows": rows,
        }


def evaluate_lut(
    lut: LatencyTable,
    models: Iterable[nn.Module | str],
    *,
    input_size: tuple[int, int, int] | None = None,
    min_samples: int = 30,
    min_seconds: float = 1.0,
    tolerance: float = NN_METER_TOLERANCE,
    measure_missing: bool = False,
    on_model: Callable[[LutRow], None] | None = None,
) -> LutAccuracy:
    """Predict and measure each model under the table's setting; the fraction within ±tolerance.

    Held-out models (not used to build the table) are what the metric is for. Operators not in
    the table are predicted by the regressors; ``measure_missing`` measures them instead (added to
    ``lut``): then the accuracy tests additivity alone, the assumption of every latency table.
    Every row also keeps the exact-entries-only sum and the table + regressor prediction, so
    one run compares the three.
    """
    if not 0 < tolerance < 1:
        raise BadValue(f"tolerance must be in (0, 1), got {tolerance}")
    check_sampling(min_samples, min_seconds)
    rows = []
    for m in [models] if isinstance(models, (str, nn.Module)) else models:
        name, model, size = _resolve(m, input_size, lut.batch_size, lut.device)
        p = _predict(name, model, size, lut, measure_missing, _sampling(lut, None, None))
        measured = measure_like(model, lut, size, min_samples=min_samples, min_seconds=min_seconds)
        held_out = name not in lut.models
        row = LutRow(
            name,
            p.total_ms,
            measured,
            p.coverage,
            held_out,
            len(p.measured_now),
            p.table_ms,
            p.regressed_ms,
        )
        rows.append(row)
        if on_model is not None:
            on_model(row)
    return LutAccuracy(tuple(rows), tolerance)
