"""The four guideline experiments of ShuffleNet v2 (Ma et al. 2018, §2, Tables 1-4), re-measured.

Each table's networks (:mod:`cnnlab.speedlab.guidelines.nets`) are timed side by side with
:func:`~cnnlab.measure.latency.compare_latency`, interleaved on one shared input, and set beside
the paper's GPU (GTX 1080Ti, batches/s) and ARM (Snapdragon 810, images/s) figures. Whether this
machine orders the rows as the paper's platforms did is measured with Spearman's rank correlation.
An honest disagreement is a result: the guidelines are claims about hardware, and this is other
hardware.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from torch import nn

from cnnlab._io import atomic_write, save_figure
from cnnlab.deployment.select import check_backend
from cnnlab.deployment.timed import compare_request
from cnnlab.errors import BadValue
from cnnlab.measure.latency import Contender, LatencySettings, check_rounds
from cnnlab.measure.request import Request, check_device, check_request
from cnnlab.speedlab.guidelines.nets import (
    INPUT_HW,
    SCALES,
    TABLES,
    benchmark_specs,
    check_platform,
    check_table,
)

# Paper figures, Tables 1-4 of Ma et al. 2018: one (x1, x2, x4) triple per row, rows in the order
# of cnnlab.speedlab.guidelines.nets.benchmark_specs. GPU in batches/s, ARM in images/s.
PAPER_SPEED = {
    "G1": {
        "gpu": ((1480, 723, 232), (1296, 586, 206), (876, 489, 189), (748, 392, 163)),
        "arm": ((76.2, 21.7, 5.3), (72.9, 20.5, 5.1), (69.1, 17.9, 4.6), (57.6, 15.1, 4.4)),
    },
    "G2": {
        "gpu": ((2451, 1289, 437), (1725, 873, 341), (1026, 644, 338), (634, 445, 230)),
        "arm": ((40.0, 10.2, 2.3), (35.0, 9.5, 2.2), (32.9, 8.7, 2.1), (27.8, 7.5, 1.8)),
    },
    "G3": {
        "gpu": (
            (2446, 1274, 434),
            (1790, 909, 336),
            (752, 745, 349),
            (1537, 803, 320),
            (691, 572, 292),
        ),
        "arm": (
            (40.2, 10.1, 2.3),
            (38.6, 10.1, 2.2),
            (38.4, 10.1, 2.3),
            (33.4, 9.1, 2.2),
            (35.0, 8.4, 2.1),
        ),
    },
    "G4": {
        "gpu": ((2427, 2066, 1436), (2647, 2256, 1735), (2672, 2121, 1458), (2842, 2376, 1782)),
        "arm": ((56.7, 16.9, 5.0), (61.9, 18.8, 5.2), (57.3, 18.2, 5.1), (66.3, 20.2, 5.4)),
    },
}
TITLES = {
    "G1": "Equal channel width minimizes MAC (Table 1)",
    "G2": "Excessive group convolution increases MAC (Table 2)",
    "G3": "Network fragmentation reduces degree of parallelism (Table 3)",
    "G4": "Element-wise operations are non-negligible (Table 4)",
}
AGREE_RHO = 0.5  # Spearman rho at or above which our ordering "agrees" with the paper's

# Measurement effort: (scales, rounds, min_seconds, max_seconds) per compare_latency call.
_QUICK = ((1,), 10, 0.5, 15.0)
_FULL = (SCALES, 30, 2.0, 60.0)


@dataclass(frozen=True)
class GuidelineRow:
    """One network of a guideline table: its cost, our measured speed and the paper's."""

    table: str
    scale: int
    label: str
    widths: str
    macs: int
    memory_access: int
    median_ms: float
    q1_ms: float
    q3_ms: float
    images_per_s: float  # batch_size * 1000 / median_ms
    relative_speed: float  # speed / first row's, from the interleaved per-round time ratios
    relative_low: float  # 95% interval of relative_speed
    relative_high: float
    paper_gpu: float  # batches/s on the GTX 1080Ti
    paper_arm: float  # images/s on the Snapdragon 810


@dataclass(frozen=True)
class GuidelineCorrelation:
    """Spearman rho between our speed ordering and the paper's, for one table at one scale."""

    table: str
    scale: int
    rho_gpu: float
    rho_arm: float

    @property
    def verdict_gpu(self) -> str:
        return verdict(self.rho_gpu)

    @property
    def verdict_arm(self) -> str:
        return verdict(self.rho_arm)

    def as_dict(self) -> dict:
        """Plain values for JSON: an undefined rho becomes None."""
        d = {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }
        return {**d, "verdict_gpu": self.verdict_gpu, "verdict_arm": self.verdict_arm}


@dataclass(frozen=True)
class GuidelineResults:
    """Every measured row, the rank correlations, and the settings they were measured under."""

    rows: tuple[GuidelineRow, ...]
    correlations: tuple[GuidelineCorrelation, ...]
    settings: dict = field(default_factory=dict)

    def groups(self) -> list[tuple[str, int, list[GuidelineRow]]]:
        """(table, scale, rows) in measurement order."""
        keys = list(dict.fromkeys((r.table, r.scale) for r in self.rows))
        return [(t, s, [r for r in self.rows if (r.table, r.scale) == (t, s)]) for t, s in keys]

    def correlation(self, table: str, scale: int) -> GuidelineCorrelation:
        return next(c for c in self.correlations if (c.table, c.scale) == (table, scale))

    def as_dict(self) -> dict:
        return {
            "settings": self.settings,
            "rows": [asdict(r) for r in self.rows],
            "correlations": [c.as_dict() for c in self.correlations],
        }


def guideline_networks(table: str, platform: str, scale: int) -> list[tuple[str, nn.Module]]:
    """The benchmark networks of table G1-G4 with the paper's "gpu" or "arm" widths at x1/x2/x4."""
    return [(s.label, s.build()) for s in benchmark_specs(table, platform, scale)]


def paper_speeds(table: str, platform: str, scale: int) -> list[float]:
    """The paper's speeds of the table's rows on one platform at one scale (Tables 1-4)."""
    column = SCALES.index(scale)
    return [row[column] for row in PAPER_SPEED[check_table(table)][check_platform(platform)]]


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the (tie-averaged) ranks.

    NaN when either sequence is constant or shorter than 2 (no ordering to compare).
    """
    if len(x) != len(y):
        raise BadValue(f"spearman: sequences differ in length ({len(x)} and {len(y)})")
    if len(x) < 2:
        return math.nan
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def verdict(rho: float) -> str:
    """ "agrees" when rho >= AGREE_RHO, "disagrees" below, "n/a" when undefined."""
    if math.isnan(rho):
        return "n/a"
    return "agrees" if rho >= AGREE_RHO else "disagrees"


def _widths(spec) -> str:
    a = spec.args
    if "c1" in a:
        return f"({a['c1']}, {a['c2']})"
    if "g" in a:
        return f"c={a['c']}, g={a['g']}"
    if "fragments" in a:
        k, c = a["fragments"], a["c"]
        return f"{k} x {c}->{c}" if a["arrangement"] == "series" else f"{k} x {c}->{c // k}, concat"
    return f"{a['c']}->{a['c'] // 4}->{a['c']}"


def _row(table: str, scale: int, spec, c: Contender, hw: int, paper: tuple) -> GuidelineRow:
    """One network's row: its cost at ``hw``, our speed, and the paper's (GPU, ARM) speeds."""
    lat, cost = c.latency, spec.cost(hw)
    batch = lat.settings.batch_size
    return GuidelineRow(table, scale, spec.label, _widths(spec), cost.macs, cost.memory_access,
                        lat.median_ms, lat.q1_ms, lat.q3_ms, batch * 1e3 / lat.median_ms,
                        1 / c.ratio, 1 / c.ratio_high, 1 / c.ratio_low, *paper)  # fmt: skip


def _measure_group(
    table: str, platform: str, scale: int, effort: tuple, req: Request
) -> tuple[list[GuidelineRow], LatencySettings]:
    """Time one table at one scale side by side: rows in the paper's order, and the settings."""
    _, rounds, min_s, max_s = effort
    hw = req.input_size[1]
    specs = benchmark_specs(table, platform, scale)
    shaped = replace(req, input_size=(max(s.c_in for s in specs), hw, hw))
    nets = {s.label: s.build() for s in specs}
    contenders = compare_request(nets, shaped, rounds=rounds, min_seconds=min_s, max_seconds=max_s)
    papers = zip(paper_speeds(table, "gpu", scale), paper_speeds(table, "arm", scale))
    rows = [_row(table, scale, spec, c, hw, p) for spec, c, p in zip(specs, contenders, papers)]
    return rows, contenders[0].latency.settings


def _correlate(table: str, scale: int, rows: list[GuidelineRow]) -> GuidelineCorrelation:
    ours = [r.relative_speed for r in rows]
    return GuidelineCorrelation(
        table,
        scale,
        spearman(ours, [r.paper_gpu for r in rows]),
        spearman(ours, [r.paper_arm for r in rows]),
    )


def check_guideline_args(
    tables: Sequence[str], platform: str, device: str
) -> tuple[list[str], str]:
    """The tables and platform in canonical spelling; ValueError for an unknown one, an empty
    table list or a device this machine lacks (callers check before writing anything)."""
    platform = check_platform(platform)
    check_device(device)
    return _check_tables(tables), platform


def _check_tables(tables: Sequence[str]) -> list[str]:
    tables = [check_table(t) for t in tables]
    if not tables:
        raise BadValue(f"tables must name at least one of {', '.join(TABLES)}")
    return tables


def run_guidelines(
    *,
    quick: bool = False,
    device: str = "cpu",
    batch_size: int = 1,
    threads: int | None = None,
    backend: str | None = None,
    tables: Sequence[str] = TABLES,
    platform: str = "arm",
    input_hw: int = INPUT_HW,
    rounds: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> GuidelineResults:
    """Measure the guideline tables on this machine beside the paper's figures.

    ``platform`` picks the paper's channel widths: "arm" (default; the widths meant for a CPU) or
    "gpu". ``quick`` measures x1 only with fewer rounds; otherwise x1, x2 and x4. ``input_hw``
    (56 in the paper) and ``rounds`` exist for tests and quick experiments.
    """
    platform, tables = check_platform(platform), _check_tables(tables)
    shape = dict(input_size=(1, input_hw, input_hw), batch_sizes=(batch_size,))
    req = check_request(**shape, device=device, threads=threads)
    req = req if backend is None else check_backend(req, backend)
    scales, r, min_s, max_s = _QUICK if quick else _FULL
    effort = (scales, r if rounds is None else rounds, min_s, max_s)
    check_rounds(effort[1])
    rows: list[GuidelineRow] = []
    correlations: list[GuidelineCorrelation] = []
    for table in tables:
        for scale in scales:
            if progress is not None:
                progress(f"timing {table} x{scale} ({platform} widths)")
            group, s = _measure_group(table, platform, scale, effort, req)
            rows += group
            correlations.append(_correlate(table, scale, group))
    settings = _settings(s, platform, quick, effort[1])
    return GuidelineResults(tuple(rows), tuple(correlations), settings)


def _settings(s: LatencySettings, platform: str, quick: bool, rounds: int) -> dict:
    """The settings a guideline run states beside its tables."""
    return dict(
        platform=platform,
        quick=quick,
        input_size=[s.input_size[1], s.input_size[2]],
        batch_size=s.batch_size,
        device=s.device,
        threads=s.threads,
        backend=s.backend,
        dtype=s.dtype,
        malloc=s.malloc,
        rounds=rounds,
        blocks=10,
    )


# ---- outputs: CSV, JSON, plot -------------------------------------------------------------------


def results_csv(results: GuidelineResults) -> str:
    """One line per network: cost, our speed, the paper's speeds."""
    buf = io.StringIO()
    names = list(GuidelineRow.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=["platform", *names], lineterminator="\n")
    writer.writeheader()
    for r in results.rows:
        writer.writerow({"platform": results.settings.get("platform"), **asdict(r)})
    return buf.getvalue()


def _relative(values: Sequence[float]) -> list[float]:
    return [v / values[0] for v in values]


def plot_guidelines(results: GuidelineResults):
    """Per table and scale: our relative speed beside the paper's GPU and ARM, first row = 1."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = results.groups()
    tables = list(dict.fromkeys(t for t, _, _ in groups))
    scales = list(dict.fromkeys(s for _, s, _ in groups))
    fig = Figure(figsize=(max(5.2 * len(scales), 7.5), 3.4 * len(tables)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(tables), len(scales), squeeze=False)
    series = (
        ("paper GPU", lambda r: r.paper_gpu, "tab:orange"),
        ("ours", lambda r: r.relative_speed, "tab:blue"),
        ("paper ARM", lambda r: r.paper_arm, "tab:green"),
    )
    width = 0.27
    for table, scale, rows in groups:
        ax = axes[tables.index(table)][scales.index(scale)]
        for i, (name, get, color) in enumerate(series):
            ys = _relative([get(r) for r in rows])
            xs = [j + (i - 1) * width for j in range(len(rows))]
            err = None
            if name == "ours":  # the 95% interval of the interleaved ratio
                err = [
                    [y - r.relative_low for y, r in zip(ys, rows)],
                    [r.relative_high - y for y, r in zip(ys, rows)],
                ]
            ax.bar(xs, ys, width, yerr=err, capsize=2, label=name, color=color)
        ax.axhline(1.0, color="0.5", lw=0.8)
        ax.set_xticks(
            range(len(rows)), [r.label for r in rows], rotation=20, ha="right", fontsize=7
        )
        c = results.correlation(table, scale)
        ax.set_title(
            f"{table} x{scale}: Spearman rho vs GPU {c.rho_gpu:+.2f}, vs ARM {c.rho_arm:+.2f}",
            fontsize=9,
        )
        ax.set_ylabel("speed / first row", fontsize=8)
    axes[0][0].legend(fontsize=7)
    s = results.settings
    fig.suptitle(
        f"ShuffleNet v2 guidelines (Ma et al. 2018, Tables 1-4), {s.get('platform')} widths\n"
        f"ours: {s.get('device')}, batch {s.get('batch_size')}, threads {s.get('threads')}, "
        f"backend {s.get('backend')}",
        fontsize=9,
    )
    return fig


def write_guidelines(results: GuidelineResults, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write guidelines.csv, guidelines.json and guidelines.png to ``out_dir`` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "csv": atomic_write(out / "guidelines.csv", results_csv(results).encode()),
        "json": atomic_write(
            out / "guidelines.json", json.dumps(results.as_dict(), indent=2).encode()
        ),
        "png": save_figure(
            plot_guidelines(results), out / "guidelines.png", dpi=110, bbox_inches=None
        ),
    }
