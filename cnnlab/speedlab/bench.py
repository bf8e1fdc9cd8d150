"""``cnnlab bench``: ShuffleNet v2's speed comparison at matched MACs, measured on this machine.

Ma et al. 2018 (Table 8, Fig. 1) compare ShuffleNet v2 against MobileNet v1/v2, ShuffleNet v1 and
Xception at four complexity levels (40 / 140 / 300 / 500-600 M MACs) and show that models of equal
MACs run at very different speeds. This runs that comparison here: within each level the models
and their deployed versions are timed side by side (interleaved, same input) at each batch size.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from torch import nn

from cnnlab._io import atomic_write, save_figure
from cnnlab.counting.analytic import Complexity, complexity
from cnnlab.deployment.select import check_backend, default_backend, deploy_request
from cnnlab.measure.latency import Latency, check_rounds, compare
from cnnlab.measure.request import Request, check_request, for_models
from cnnlab.models import create_model, get_entry

# ShuffleNet v2's comparison (Ma et al. 2018, Table 8) at matched MACs: (model, input side or None).
# MobileNet v2 0.75 runs at 192 as the paper's "0.75 MobileNet v2 (**)" row does (154 M here);
# Chollet's Xception (8.4 G at 299) runs at 80x80, where its MACs match the 600 M level.
# Table 8's other rows join where it puts them: CondenseNet-74 C=G=8 (262 M here) and IGCV3-D
# (313 M) at 300 M, CondenseNet-74 C=G=4 (517 M) at 600 M. AmoebaNet-A (555 M) and clcNet (343 /
# 425 M), which Table 8 lacks, are left to `cnnlab bench MODEL ...` to keep the default run under
# 5 minutes on 2 cores; the other families have no member near these levels.
SURVEY_LEVELS: dict[str, list[tuple[str, int | None]]] = {
    "40M": [
        ("shufflenet_v2_x0_5", None),
        ("mobilenet_v1_x0_25", None),
        ("mobilenet_v2_x0_35", None),
        ("shufflenet_v1_g3_x0_5", None),
    ],
    "140M": [
        ("shufflenet_v2_x1_0", None),
        ("mobilenet_v1_x0_5", None),
        ("mobilenet_v2_x0_75", 192),
        ("shufflenet_v1_g3_x1_0", None),
    ],
    "300M": [
        ("shufflenet_v2_x1_5", None),
        ("mobilenet_v1_x0_75", None),
        ("mobilenet_v2_x1_0", None),
        ("shufflenet_v1_g3_x1_5", None),
        ("condensenet74_c8_g8", None),
        ("igcv3_d", None),
    ],
    "600M": [
        ("shufflenet_v2_x2_0", None),
        ("shufflenet_v2_x2_0_se", None),
        ("mobilenet_v1_x1_0", None),
        ("mobilenet_v2_x1_4", None),
        ("shufflenet_v1_g3_x2_0", None),
        ("xception", 80),
        ("nasnet_a_mobile", None),
        ("pnasnet5_mobile", None),
        ("condensenet74_c4_g4", None),
    ],
}


@dataclass(frozen=True)
class BenchRow:
    """One model at one batch size: its counts and its measured speed, eager and deployed."""

    level: str
    model: str
    input_size: tuple[int, int, int]
    batch_size: int
    params: int
    macs: int
    memory_access: int
    latency_ms: float
    iqr_ms: float
    throughput: float
    deployed_ms: float
    deploy_backend: str
    deploy_speedup: float  # eager latency / deployed latency
    threads: int
    unreliable: bool = field(init=False)  # IQR above the median: the timing spread too much

    def __post_init__(self) -> None:
        object.__setattr__(self, "unreliable", self.iqr_ms > self.latency_ms)


def _input_size(name: str, side: int | None) -> tuple[int, int, int]:
    c, h, w = get_entry(name).input_size
    return (c, side, side) if side else (c, h, w)


def bench_levels(
    models: Sequence[str] | None, side: int | None = None
) -> dict[str, list[tuple[str, int | None]]]:
    """ShuffleNet v2's Table 8 levels, or one level "custom" holding the given model names.

    ``side`` replaces every model's input height and width (e.g. for a quick run).
    """
    if not models:
        levels = SURVEY_LEVELS
    else:
        for name in models:
            get_entry(name)  # an unknown name fails here, naming the closest ones
        levels = {"custom": [(n, None) for n in models]}
    if side is None:
        return levels
    return {lv: [(n, side) for n, _ in entries] for lv, entries in levels.items()}


def run_bench(
    models: Sequence[str] | None = None,
    *,
    batch_sizes: Sequence[int] = (1, 8),
    device: str = "cpu",
    threads: int | None = None,
    backend: str | None = None,
    rounds: int = 6,
    min_seconds: float = 1.0,
    side: int | None = None,
    progress: Callable[[int, str], None] | None = None,
    on_step: Callable[[list[BenchRow]], None] | None = None,
) -> list[BenchRow]:
    """Measure every model of every level at every batch size, eager and deployed side by side.

    ``backend`` defaults to ``default_backend`` of the device. ``progress(done, what)`` is called
    before each (level, batch size) step, and ``on_step(rows)`` after it with every row so far
    (the CLI saves them: an interrupted run keeps what it measured).

    All models of a level share one interleaved comparison per batch size and input size, so
    their ratios are measured under the same machine conditions.
    """
    check_rounds(rounds)
    req = check_request(batch_sizes=batch_sizes, device=device, threads=threads)
    req = check_backend(req, backend or default_backend(req.device))
    levels = _requests(bench_levels(models, side), req)  # a bad input fails before any timing
    rows: list[BenchRow] = []
    done = 0
    for level, entries in levels.items():
        deployed: list[_Deployed] = []
        for batch in req.batch_sizes:
            if progress:
                progress(done, f"{level} at batch {batch}")
            deployed = deployed or _deploy_level(entries)  # once for every batch size
            rows += _bench_group(level, deployed, batch, rounds, min_seconds)
            for d in deployed:
                d.modules.pop(batch)  # measured: free its memory before the next batch size
            done += 1
            if on_step:
                on_step(rows)
    return rows


def _requests(levels, req: Request) -> dict[str, list[tuple[str, Request]]]:
    """Each model of each level with its request: the bench's, at the model's input, checked."""
    return {
        level: [(name, for_models(req, [name], _input_size(name, side))) for name, side in entries]
        for level, entries in levels.items()
    }


@dataclass(frozen=True)
class _Deployed:
    """One model of a level: its request, counts, and its deployed module at each batch size."""

    name: str
    req: Request
    model: nn.Module
    cx: Complexity
    modules: dict[int, nn.Module]


def _deploy_level(entries: list[tuple[str, Request]]) -> list[_Deployed]:
    """Every model of a level built, counted and deployed for all batch sizes (one export)."""
    out = []
    for name, req in entries:
        model = create_model(name)
        cx = complexity(name, req.input_size)
        out.append(_Deployed(name, req, model, cx, deploy_request(model, req)))
    return out


def _bench_group(level, deployed: list[_Deployed], batch, rounds, min_seconds) -> list[BenchRow]:
    """The rows of one level at one batch size: models that share an input size are compared
    in one interleaved run."""
    by_size: dict[tuple, list[_Deployed]] = {}
    for d in deployed:
        by_size.setdefault(d.req.input_size, []).append(d)
    return [
        row
        for group in by_size.values()
        for row in _compare(level, group, batch, rounds, min_seconds)
    ]


def _compare(level, group: list[_Deployed], batch, rounds, min_seconds) -> list[BenchRow]:
    """Each model of ``group`` and its deployed module, side by side at ``batch``."""
    contenders, labels = {}, {}
    for d in group:
        contenders[d.name] = d.model
        contenders[d.name + "+deploy"] = d.modules[batch]
        labels[d.name + "+deploy"] = d.modules[batch].deploy_report.backend
    req = replace(group[0].req.at_batch(batch), backend=None)  # the models as built, and deployed
    effort = dict(rounds=rounds, min_seconds=min_seconds, warmup_seconds=3.0)
    res = {c.name: c.latency for c in compare(contenders, req, backends=labels, **effort)}
    return [_row(level, d, batch, res[d.name], res[d.name + "+deploy"]) for d in group]


def _row(level: str, d: _Deployed, batch: int, eager: Latency, dep: Latency) -> BenchRow:
    """One row: the model's counts, its latency as built and deployed at ``batch``."""
    cx = d.cx
    return BenchRow(
        level,
        d.name,
        d.req.input_size,
        batch,
        cx.params,
        cx.macs,
        cx.memory_access,
        eager.median_ms,
        eager.iqr_ms,
        eager.throughput,
        dep.median_ms,
        dep.settings.backend,
        eager.median_ms / dep.median_ms,
        eager.settings.threads,
    )


def write_bench(rows: list[BenchRow], out_dir: Path, *, plot: bool = True) -> dict[str, Path]:
    """Write bench.csv, bench.json and (``plot``) bench.png, latency against MACs, to out_dir."""
    out_dir = Path(out_dir)
    records = [asdict(r) for r in rows]
    paths = {
        "csv": out_dir / "bench.csv",
        "json": out_dir / "bench.json",
        "png": out_dir / "bench.png",
    }

    table = io.StringIO()
    w = csv.DictWriter(table, fieldnames=list(records[0]))
    w.writeheader()
    w.writerows(records)
    atomic_write(paths["csv"], table.getvalue())
    atomic_write(paths["json"], json.dumps(records, indent=2))
    if plot:
        plot_bench(rows, paths["png"])
    return paths


def _family(name: str) -> str:
    """The registry's family of a model name (shufflenet_v2, condensenet, ...)."""
    return get_entry(name).family.name


def _annotate_apart(ax, points: list[tuple[float, float, str]], fontsize: float = 6) -> None:
    """Label each (x, y) point; top to bottom, a label that would overlap one already placed is
    moved down a line at a time, with a leader line (models of one MAC level often run at nearly
    the same speed)."""
    ax.autoscale_view()
    to_points = 72 / ax.figure.dpi
    line = fontsize * 1.2
    placed: list[tuple[float, float, float]] = []  # (left, baseline, width) in points
    for x, y, text in sorted(points, key=lambda p: -p[1]):
        px, py = ax.transData.transform((x, y)) * to_points
        box = (px, py, 0.6 * fontsize * len(text))
        dy = 0.0
        while dy > -8 * line and any(_overlap(box, dy, b, line) for b in placed):
            dy -= line
        placed.append((px, py + dy, box[2]))
        leader = {"arrowstyle": "-", "lw": 0.4, "color": "0.6"} if dy else None
        ax.annotate(
            text,
            (x, y),
            xytext=(3, dy),
            textcoords="offset points",
            fontsize=fontsize,
            arrowprops=leader,
        )


def _overlap(box, dy: float, other, line: float) -> bool:
    """Whether a label at ``box`` moved down by ``dy`` points would cover ``other``."""
    (x, y, w), (ox, oy, ow) = box, other
    return x < ox + ow and ox < x + w and abs(y + dy - oy) < line - 1e-6  # a line apart: clear


def plot_bench(rows: list[BenchRow], path: Path) -> None:
    """Latency against MACs, one panel per batch size: equal MACs, unequal speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r.batch_size for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(6.5 * len(batches), 5), squeeze=False)
    families = sorted({_family(r.model) for r in rows})
    palette = plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2]  # 10 hues, then their tints
    colors = {f: palette[i % len(palette)] for i, f in enumerate(families)}
    for ax, batch in zip(axes[0], batches):
        labels = []
        for r in (r for r in rows if r.batch_size == batch):
            family = _family(r.model)
            ax.scatter(r.macs / 1e6, r.latency_ms, color=colors[family], label=family)
            ax.scatter(r.macs / 1e6, r.deployed_ms, color=colors[family], marker="x")
            name = r.model.replace("shufflenet", "sn").replace("mobilenet", "mn")
            labels.append((r.macs / 1e6, r.latency_ms, name))
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        threads = rows[0].threads
        ax.set_title(f"batch {batch}, {threads} threads (o eager, x {rows[0].deploy_backend})")
        ax.set_xlabel("MACs (M)")
        ax.set_ylabel("latency (ms, median, log scale)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        _annotate_apart(ax, labels)
    fig.tight_layout()
    save_figure(fig, path, bbox_inches=None)
    plt.close(fig)
