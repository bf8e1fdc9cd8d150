"""Runtime breakdown by operator category, as in ShuffleNet v2 (Ma et al. 2018, §2, Figure 2).

FLOPs only account for the convolutions; Figure 2 shows that data movement, shuffles and
element-wise operations take a large share of the runtime too. Here the model runs under
``torch.profiler`` for several iterations after warm-up, and the time is split by category.

Attribution rule (no double counting): every top-level operator of an iteration (an ATen or other
``ns::op`` event whose parent is not an operator) is charged its *total* time, children included,
to its own category, and its children are skipped. So a group convolution that PyTorch runs as
narrow + per-group conv + cat counts entirely as "group conv", and the copy inside
``contiguous()`` counts as data movement. What the iteration spends outside every operator
(Python, module calls, dispatch; on CUDA also GPU idle time) is "framework overhead"; the own time
of a label nested in an iteration (code that torch.compile fused) is "other ops". So the
categories add up to the measured time of an iteration. On CUDA an operator is charged the time of
the GPU kernels it launched (its children's included). The profiler's own per-operator cost
(``record_shapes=True`` is needed for the convolution groups) lengthens every iteration a little,
mostly in the overhead share; ``measure_latency`` gives the unprofiled time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from cnnlab._io import atomic_write, save_figure  # noqa: F401  (re-exported)
from cnnlab.deployment.runtimes import AHEAD_OF_TIME
from cnnlab.deployment.select import GRAPHED, check_backend
from cnnlab.deployment.timed import deployed
from cnnlab.errors import BadType, BadValue
from cnnlab.measure.latency import LatencySettings, Runner, example_input, placed, settings_of
from cnnlab.measure.latency import num_threads as fixed_threads
from cnnlab.measure.request import Request, check_request

DENSE, GROUP, DEPTHWISE = "dense conv", "group conv", "depthwise conv"
ELEMENTWISE, DATA, POOL, FC = (
    "element-wise",
    "data movement & shuffle",
    "pooling",
    "fully connected",
)
OTHER, OVERHEAD = "other ops", "framework overhead"
CATEGORIES = (DENSE, GROUP, DEPTHWISE, ELEMENTWISE, DATA, POOL, FC, OTHER, OVERHEAD)
DEFAULT_MODELS = ("shufflenet_v1_g3_x1_0", "mobilenet_v2_x1_0")  # the two networks of Figure 2
ITERATION = "cnnlab::iteration"  # the record_function label around one profiled forward pass

# Operator base names (namespace and in-place "_" stripped) of each category.
_CONV_OPS = frozenset(
    {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "mkldnn_convolution",
     "cudnn_convolution", "thnn_conv2d", "_slow_conv2d_forward", "_conv_depthwise2d",
     "_convolution_pointwise", "conv_depthwise2d", "_nnpack_spatial_convolution"}
)  # fmt: skip
_ELEMENTWISE_OPS = frozenset(
    {"relu", "relu6", "hardtanh", "clamp", "clamp_min", "clamp_max", "threshold", "add", "sub",
     "mul", "div", "sigmoid", "hardsigmoid", "hardswish", "silu", "gelu", "elu", "leaky_relu",
     "prelu", "tanh", "batch_norm", "_batch_norm_impl_index", "native_batch_norm",
     "_native_batch_norm_legit_no_training", "layer_norm", "group_norm", "dropout", "where"}
)  # fmt: skip
_DATA_OPS = frozenset(
    {"cat", "concat", "stack", "clone", "contiguous", "copy", "to", "_to_copy", "split",
     "split_with_sizes", "chunk", "narrow", "slice", "select", "view", "reshape",
     "_reshape_alias", "flatten", "transpose", "permute", "t", "unsqueeze", "squeeze", "expand",
     "as_strided", "pad", "constant_pad_nd", "channel_shuffle", "native_channel_shuffle",
     "pixel_shuffle", "roll", "unbind"}
)  # fmt: skip
_POOL_OPS = frozenset(
    {"max_pool2d", "max_pool2d_with_indices", "mkldnn_max_pool2d", "avg_pool2d",
     "adaptive_avg_pool2d", "_adaptive_avg_pool2d", "adaptive_max_pool2d", "mean"}
)  # fmt: skip
_FC_OPS = frozenset({"linear", "addmm", "mm", "matmul", "bmm", "_mkldnn_linear"})


def base_name(op: str) -> str:
    """``aten::relu_`` -> ``relu``: the operator without namespace or in-place underscore."""
    name = op.rsplit("::", 1)[-1]
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


def conv_category(groups: int, in_channels: int) -> str:
    """Dense (groups = 1), depthwise (groups = input channels) or group convolution."""
    if groups < 1 or in_channels < 1 or in_channels % groups:
        raise BadValue(
            f"a convolution needs 1 <= groups dividing in_channels; got groups={groups}, "
            f"in_channels={in_channels}"
        )
    if groups == 1:
        return DENSE
    return DEPTHWISE if groups == in_channels else GROUP


def classify_op(op: str, groups: int | None = None, in_channels: int | None = None) -> str:
    """The Figure 2 category of one operator; a convolution also needs its groups and input
    channels (e.g. ``classify_op("aten::conv2d", 24, 24) == "depthwise conv"``)."""
    name = base_name(op)
    if name in _CONV_OPS:
        if groups is None or in_channels is None:
            raise BadValue(f"{op}: a convolution is classified by groups and in_channels")
        return conv_category(groups, in_channels)
    for category, ops in (
        (ELEMENTWISE, _ELEMENTWISE_OPS),
        (DATA, _DATA_OPS),
        (POOL, _POOL_OPS),
        (FC, _FC_OPS),
    ):
        if name in ops:
            return category
    return OTHER


def conv_groups(input_shapes: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(groups, in_channels) of a convolution from its recorded input shapes.

    The first two inputs of every convolution operator are the input (N, C, ...) or unbatched
    (C, ...) and the weight (C_out, C/groups, k...), so groups = C / weight.shape[1]. This needs
    only ``record_shapes=True``; on torch 2.14 ``evt.concrete_inputs`` of ``aten::conv2d`` also
    holds groups as its last entry, and a test checks that the two agree.
    """
    if len(input_shapes) < 2 or len(input_shapes[1]) < 3:
        raise BadValue(f"convolution inputs without a weight shape: {input_shapes}")
    x, w = input_shapes[0], input_shapes[1]
    in_channels = x[0] if len(x) == len(w) - 1 else x[1]
    return in_channels // w[1], in_channels


def is_op(name: str) -> bool:
    """Whether a profiler event is an operator (``aten::conv2d``), not a label of ours."""
    return "::" in name and not name.startswith("cnnlab::")


def event_category(evt) -> str:
    """The category of one profiler event (convolutions read their groups from the shapes)."""
    if base_name(evt.name) in _CONV_OPS:
        return classify_op(evt.name, *conv_groups(evt.input_shapes))
    return classify_op(evt.name)


def _is_cpu(evt) -> bool:
    return getattr(evt.device_type, "name", "CPU") == "CPU"


def _op_us(evt, on_cuda: bool) -> float:
    """Time charged to an operator: its CPU total, or on CUDA the kernel time it launched."""
    if not on_cuda:
        return evt.cpu_time_total
    return getattr(evt, "device_time_total", None) or getattr(evt, "cuda_time_total", 0.0)


def _self_us(evt, on_cuda: bool) -> float:
    """Time of an event outside its children: CPU self time, or its own kernels on CUDA."""
    if not on_cuda:
        return evt.self_cpu_time_total
    return getattr(evt, "self_device_time_total", None) or getattr(evt, "self_cuda_time_total", 0)


def attribute(events, on_cuda: bool = False) -> tuple[dict[str, float], float, int]:
    """Split profiled iterations by category: (microseconds per category, total, iterations).

    Top-level operators are charged their total time and their children skipped (module
    docstring); the time of an iteration outside every operator is framework overhead.
    """
    us = dict.fromkeys(CATEGORIES, 0.0)
    roots = [e for e in events if e.name == ITERATION and _is_cpu(e)]
    total = 0.0
    for root in roots:
        total += root.cpu_time_total
        stack = list(root.cpu_children)
        while stack:
            evt = stack.pop()
            if not _is_cpu(evt):
                continue
            if is_op(evt.name):
                us[event_category(evt)] += _op_us(evt, on_cuda)
            else:  # a label inside the iteration (torch.compile): its own time runs code the
                us[OTHER] += _self_us(evt, on_cuda)  # profiler cannot name (fused kernels)
                stack.extend(evt.cpu_children)
    us[OVERHEAD] = max(0.0, total - sum(us.values()))
    return us, total, len(roots)


def profile_iterations(step: Callable[[], None], iterations: int, device: torch.device):
    """Profiler events of ``iterations`` calls of ``step``, each under the ITERATION label."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(iterations):
            with record_function(ITERATION):
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
    return prof.events()


@dataclass(frozen=True)
class Breakdown:
    """Runtime of one model per Figure 2 category (ms per forward pass, mean over iterations)."""

    ms: dict[str, float]
    total_ms: float
    iterations: int
    settings: LatencySettings

    def percent(self, category: str) -> float:
        return 100.0 * self.ms[category] / self.total_ms if self.total_ms > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "ms": dict(self.ms),
            "percent": {c: self.percent(c) for c in self.ms},
            "total_ms": self.total_ms,
            "iterations": self.iterations,
            "settings": asdict(self.settings),
        }


def _request(model_or_name, backend: str | None, **settings) -> Request:
    """The checked request of a breakdown: a deploy backend must run operators the profiler sees
    ("auto" chooses among eager and compile)."""
    if not isinstance(model_or_name, (str, nn.Module)):
        raise BadType(f"expected a model or a model name, got {type(model_or_name).__name__}")
    if backend in (*AHEAD_OF_TIME, *GRAPHED):
        raise BadValue(
            f"the profiler sees no operators inside {backend}; use --backend eager or compile"
        )
    req = check_request(model_or_name, **settings)
    return req if backend is None else check_backend(req, backend)


def _model(model_or_name, req: Request) -> tuple[nn.Module, Request]:
    """The module profiled (deployed when the request names a backend) and its request."""
    if req.backend is None:
        return placed(model_or_name, req), req
    module, label = deployed(model_or_name, req, candidates=("eager", "compile"))
    return module, replace(req, backend=label)


def runtime_breakdown(
    model_or_name: nn.Module | str,
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    backend: str | None = None,
    iterations: int = 50,
    warmup_max_seconds: float = 20.0,
) -> Breakdown:
    """Profile inference of a model (or registered name) and split its time by category.

    Warm-up runs to a steady state first (``Runner.warm_up`` of cnnlab.measure.latency), then
    ``iterations`` forward passes are profiled (the paper averages 100). ``input_size`` defaults to
    the model's own (``cnnlab.models.registry.input_size_of``; Figure 2 uses 224x224).
    """
    if iterations < 1:
        raise BadValue(f"iterations must be >= 1, got {iterations}")
    shape = dict(input_size=input_size, batch_sizes=(batch_size,), device=device, threads=threads)
    model, req = _model(model_or_name, _request(model_or_name, backend, **shape))
    with fixed_threads(threads):
        runner = Runner(model, example_input(req), "inference", req.device)
        runner.warm_up(max_seconds=warmup_max_seconds)
        events = profile_iterations(runner.step, iterations, req.device)
    us, total, n = attribute(events, on_cuda=req.device.type == "cuda")
    ms = {c: v / n / 1e3 for c, v in us.items()}
    return Breakdown(ms, total / n / 1e3, n, settings_of(req))


_COLORS = {
    DENSE: "#1f4e79",
    GROUP: "#2e75b6",
    DEPTHWISE: "#9dc3e6",
    ELEMENTWISE: "#c00000",
    DATA: "#ed7d31",
    POOL: "#70ad47",
    FC: "#7030a0",
    OTHER: "#a5a5a5",
    OVERHEAD: "#d9d9d9",
}


def plot_breakdown(results: Sequence[tuple[str, Breakdown]], path: str | os.PathLike) -> Path:
    """Stacked bars of each model's runtime share per category (Figure 2 of ShuffleNet v2)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, renders with Agg

    if not results:
        raise BadValue("plot_breakdown needs at least one (name, Breakdown) pair")
    fig = Figure(figsize=(2.2 + 2.0 * len(results), 5.5))
    ax = fig.subplots()
    labels = [f"{name}\n{b.total_ms:.2f} ms" for name, b in results]
    bottoms = [0.0] * len(results)
    for category in CATEGORIES:
        shares = [b.percent(category) for _, b in results]
        bars = ax.bar(labels, shares, 0.6, bottom=bottoms, label=category, color=_COLORS[category])
        for bar, share, bottom in zip(bars, shares, bottoms):
            if share >= 3.0:
                x = bar.get_x() + bar.get_width() / 2
                dark = category in (DENSE, GROUP, ELEMENTWISE, FC)
                ax.text(x, bottom + share / 2, f"{share:.0f}%", ha="center", va="center",
                        fontsize=8, color="white" if dark else "black")  # fmt: skip
        bottoms = [b + s for b, s in zip(bottoms, shares)]
    s = results[0][1].settings
    ax.set_ylabel("share of runtime (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"Runtime breakdown ({s.device}, {s.threads} thread{'s' * (s.threads != 1)}, "
        f"batch {s.batch_size}, "
        f"{'x'.join(map(str, s.input_size))}, backend {s.backend})",
        fontsize=9,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, reverse=True)
    return save_figure(fig, path)
