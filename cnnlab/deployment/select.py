"""``deploy``: an inference module with batch norm folded and the fastest measured runtime.

Two exact transforms come first: every BN that follows a conv is folded into it, and the
channel shuffles of ShuffleNet v2 units move into the weights of the convs around them
(``cnnlab.deployment.shuffle_fold``).

Backends: "eager" (BN folded into the preceding conv, channels_last where it measures faster),
"compile" (``torch.compile`` of the folded model with inductor freezing the weights),
"onnxruntime" (exported to ONNX, run by ONNX Runtime: the ``onnx`` extra), "openvino"
(the same ONNX graph compiled by OpenVINO for this CPU: the ``openvino`` extra), and on a GPU
"cudagraphs" and "compile-cudagraphs" (the eager or the compiled module recorded as one CUDA
graph and replayed, which removes the launch cost that dominates small CNNs there). "auto"
measures the available candidates side by side for this device, batch size and input size and
keeps the fastest. The ranking of two designs can change with the runtime (Ma et al. 2018
measured an in-house library with tensor fusion), so every speed table states the backend it
ran on. ``deploy_batches`` deploys for several batch sizes with one fold and one ONNX export.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnlab.counting.analytic import check_input_size
from cnnlab.deployment.cudagraphs import CudaGraphModule
from cnnlab.deployment.runtimes import AHEAD_OF_TIME, export_onnx, runtime_available
from cnnlab.deployment.shuffle_fold import fold_shuffles
from cnnlab.errors import BadValue
from cnnlab.measure.latency import check_device, check_settings, compare_latency, num_threads

GRAPHED = {"cudagraphs": "eager", "compile-cudagraphs": "compile"}  # backend -> what it records
CANDIDATES = ("eager", "compile", *GRAPHED, *AHEAD_OF_TIME)  # what "auto" measures, where available
BACKENDS = (*CANDIDATES, "auto")
TOLERANCE = 1e-4  # outputs of every backend equal the original's within this (max abs diff)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv computing conv then eval-mode BN: w' = w*g/s, b' = (b - mu)*g/s + beta, s = sqrt(var+eps)."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    fused = copy.deepcopy(conv)
    fused.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused


def fold_batch_norms(model: nn.Module) -> tuple[nn.Module, int, int]:
    """A copy of ``model`` (eval) with every BN that directly follows a conv in a Sequential folded.

    Returns (folded model, BNs folded, BNs left). A BN that does not directly follow a conv in
    an ``nn.Sequential`` stays (a torchvision ResNet's ``conv1``/``bn1`` attributes, say).
    """
    model = copy.deepcopy(model).eval()
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            # any BatchNorm2d subclass (batch renorm, ghost, cross-process) normalises with its
            # running statistics in eval mode, exactly as BatchNorm2d does
            foldable = isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            if isinstance(conv, nn.Conv2d) and foldable:
                seq._modules[a] = fold_conv_bn(conv, bn)
                seq._modules[b] = nn.Identity()
                folded += 1
    left = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return model, folded, left


class ChannelsLast(nn.Module):
    """A channels_last copy of ``model`` (the model given stays as it is), run on inputs in any
    layout (converted on entry)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))


@dataclass
class DeployReport:
    """What ``deploy`` did: the backend, why, BN folding and the measured candidates."""

    backend: str
    reason: str
    bn_folded: int
    bn_left: int
    channels_last: bool
    max_abs_diff: float
    candidates: dict[str, float] = field(default_factory=dict)  # name -> median ms
    shuffles_folded: int = 0  # ShuffleNet v2 units whose channel shuffle moved into the weights


def _max_abs_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.inference_mode():
        return (a(x).float() - b(x).float()).abs().max().item()


def _compile(model: nn.Module, x: torch.Tensor, threads: int | None) -> nn.Module:
    """torch.compile with frozen weights (inductor constant-folds them into the compiled graph),
    compiled now, under the thread count it will be timed with (a change of thread count is a
    recompilation). On a GPU, "compile-cudagraphs" records this module as a CUDA graph."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(model, dynamic=False)
    with num_threads(threads), torch.inference_mode():
        compiled(x)  # compile now, not on the user's first call
    return compiled


def _eager_layout(model: nn.Module, x: torch.Tensor, threads: int | None) -> tuple[nn.Module, bool]:
    """The folded model in whichever memory layout measures faster here."""
    cl = ChannelsLast(model)
    res = compare_latency(
        {"nchw": model, "nhwc": cl}, threads=threads, **_shape(x), rounds=10, min_seconds=0.5
    )
    return (cl, True) if res[1].ratio < 1.0 else (model, False)


def _shape(x: torch.Tensor) -> dict:
    """compare_latency's input arguments for inputs like ``x`` (shape and device)."""
    return {"input_size": tuple(x.shape[1:]), "batch_size": x.shape[0], "device": x.device.type}


def _build(
    wanted: list[str],
    folded: nn.Module,
    x: torch.Tensor,
    threads: int | None,
    graph: Callable[[], bytes],
    failed: dict[str, str] | None = None,
) -> tuple[dict[str, nn.Module], bool]:
    """The modules of the ``wanted`` backends (and of what a CUDA graph records), and whether
    the folded model runs channels_last. The layout is measured only where it is used; the
    ahead-of-time runtimes load ``graph()``, the folded model's ONNX export. Given ``failed``
    ("auto"), a candidate that cannot be built here is left out and its error kept there;
    otherwise the error propagates."""

    def attempt(name: str, make: Callable[[], nn.Module]) -> None:
        try:
            modules[name] = make()
        except Exception as e:
            if failed is None:
                raise
            failed[name] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"

    needed = set(wanted) | {GRAPHED[n] for n in wanted if n in GRAPHED}
    modules: dict[str, nn.Module] = {}
    cl = False
    if needed & {"eager", "compile"}:
        modules["eager"], cl = _eager_layout(folded, x, threads)
    if "compile" in needed:
        attempt("compile", lambda: _compile(ChannelsLast(folded) if cl else folded, x, threads))
    for name in wanted:
        if name in GRAPHED and GRAPHED[name] in modules:
            attempt(name, lambda n=name: CudaGraphModule(modules[GRAPHED[n]], x))
        elif name in AHEAD_OF_TIME:
            with num_threads(threads) as n:
                runtime = AHEAD_OF_TIME[name]
                attempt(name, lambda r=runtime, n=n: r(folded, x, n, graph=graph()))
    return modules, cl


def backend_available(name: str, dev: torch.device) -> bool:
    """Whether backend ``name`` can run here: the ahead-of-time runtimes on the CPU when they
    are installed, CUDA graphs on a GPU, the rest anywhere."""
    if name in AHEAD_OF_TIME:
        return runtime_available(name, dev)
    return dev.type == "cuda" if name in GRAPHED else True


def default_backend(dev: torch.device) -> str:
    """The deployed column's backend when none is asked for: on a GPU, CUDA graphs of the
    folded model (no compilation to wait for); on the CPU an ahead-of-time runtime if one is
    installed, else eager. OpenVINO comes first: on this project's 2-vCPU x86 VM it ran
    NASNet-A and PNASNet-5 mobile in about 20 ms at batch 1, ONNX Runtime in 33-41 ms, and
    the two were within about 10% of each other on ShuffleNet v2 and MobileNet v2."""
    order = ("cudagraphs", "openvino", "onnxruntime")
    return next((n for n in order if backend_available(n, dev)), "eager")


def deploy(
    model: nn.Module | str,
    *,
    input_size: tuple[int, int, int] = (3, 224, 224),
    batch_size: int = 1,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    candidates: tuple[str, ...] = CANDIDATES,
) -> nn.Module:
    """An inference module equal to ``model`` (within 1e-4) on the fastest runtime measured here.

    The returned module carries ``deploy_report`` (a :class:`DeployReport`): the backend chosen
    and why, how many BNs were folded, and the median latency of each candidate measured.
    ``candidates`` limits what "auto" tries (``torch.compile`` takes tens of seconds per model).
    """
    return deploy_batches(
        model,
        (batch_size,),
        input_size=input_size,
        backend=backend,
        device=device,
        threads=threads,
        candidates=candidates,
    )[batch_size]


def deploy_batches(
    model: nn.Module | str,
    batch_sizes: Sequence[int],
    *,
    input_size: tuple[int, int, int] = (3, 224, 224),
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    candidates: tuple[str, ...] = CANDIDATES,
) -> dict[int, nn.Module]:
    """``deploy`` at each of ``batch_sizes``, keyed by batch size, each module chosen, checked
    and reported as ``deploy`` does; the model is folded once and exported to ONNX once (the
    export takes longer than building a runtime from it)."""
    from cnnlab.models import create_model

    wanted, size, dev = _check_request(
        model, batch_sizes, input_size, backend, device, threads, candidates
    )
    if isinstance(model, str):
        model = create_model(model)
    model = copy.deepcopy(model).to(dev).eval()
    folded, n_folded, n_left = fold_batch_norms(model)
    folded, n_shuffles = fold_shuffles(folded)
    inputs = [torch.randn(batch, *size, device=dev) for batch in batch_sizes]
    graph = functools.cache(lambda: export_onnx(folded, inputs[0]))  # exported on first use
    out = {}
    for x in inputs:
        failed: dict[str, str] = {}
        modules, cl = _build(
            wanted, folded, x, threads, graph, failed if backend == "auto" else None
        )
        if backend == "auto":
            chosen, reason, medians = _fastest(wanted, modules, failed, x, threads)
        else:
            chosen, reason, medians = backend, "requested", {}
        module = modules[chosen]
        diff = _max_abs_diff(model, module, x)
        if diff > TOLERANCE:
            raise RuntimeError(
                f"deploy backend {chosen!r} changed the outputs by {diff:.2e} > {TOLERANCE}"
            )
        module.deploy_report = DeployReport(
            chosen, reason, n_folded, n_left, cl, diff, medians, shuffles_folded=n_shuffles
        )
        out[x.shape[0]] = module
    return out


def _check_request(model, batch_sizes, input_size, backend, device, threads, candidates):
    """The backends to build, the input size and the device of a deploy request, checked."""
    if backend not in BACKENDS:
        raise BadValue(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    unknown = set(candidates) - set(CANDIDATES)
    if unknown or "eager" not in candidates:
        raise BadValue(
            f"candidates must include 'eager' and come from {CANDIDATES}, got {candidates}"
        )
    if not batch_sizes or len(set(batch_sizes)) != len(batch_sizes):
        raise BadValue(
            f"deploy_batches needs one or more distinct batch sizes, got {list(batch_sizes)}"
        )
    for batch in batch_sizes:
        size = check_settings(input_size, batch, threads, "inference")
    dev = check_device(device)
    if dev.type != "cpu" and backend in AHEAD_OF_TIME:
        raise BadValue(f"backend {backend!r} runs on the CPU here; use device='cpu'")
    if dev.type != "cuda" and backend in GRAPHED:
        raise BadValue(f"backend {backend!r} records CUDA graphs; use device='cuda'")
    check_input_size(model, size)
    if backend == "auto":
        return [n for n in candidates if backend_available(n, dev)], size, dev
    return [backend], size, dev


def _fastest(wanted, modules, failed, x, threads) -> tuple[str, str, dict[str, float]]:
    """The choice of "auto" among the candidates built: (backend, why, median ms of each)."""
    timed = {n: modules[n] for n in wanted if n in modules}
    res = compare_latency(timed, threads=threads, **_shape(x), rounds=15, min_seconds=1.0)
    medians = {c.name: c.latency.median_ms for c in res}
    chosen = min(medians, key=medians.get)
    others = ", ".join(f"{n} {ms:.2f} ms" for n, ms in medians.items())
    reason = f"fastest measured at batch {x.shape[0]}, input {tuple(x.shape[1:])}: {others}"
    if failed:
        reason += "; left out, failed to build: " + "; ".join(
            f"{n} ({why})" for n, why in failed.items()
        )
    return chosen, reason, medians
