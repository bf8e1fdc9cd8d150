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
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from cnnlab.deployment.cudagraphs import CudaGraphModule
from cnnlab.deployment.fold import fold_batch_norms
from cnnlab.deployment.runtimes import AHEAD_OF_TIME, export_onnx, runtime_available
from cnnlab.deployment.shuffle_fold import fold_shuffles
from cnnlab.errors import BadValue
from cnnlab.measure.latency import compare, num_threads
from cnnlab.measure.request import Request, check_request

GRAPHED = {"cudagraphs": "eager", "compile-cudagraphs": "compile"}  # backend -> what it records
CANDIDATES = ("eager", "compile", *GRAPHED, *AHEAD_OF_TIME)  # what "auto" measures, where available
BACKENDS = (*CANDIDATES, "auto")
TOLERANCE = 1e-4  # outputs of every backend equal the original's within this (max abs diff)


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
    input_size: tuple[int, int, int] | None = None  # the input it was deployed for


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


def _eager_layout(model: nn.Module, req: Request) -> tuple[nn.Module, bool]:
    """The folded model in whichever memory layout measures faster here."""
    cl = ChannelsLast(model)
    res = compare({"nchw": model, "nhwc": cl}, req, rounds=10, min_seconds=0.5)
    return (cl, True) if res[1].ratio < 1.0 else (model, False)


def _build(
    wanted: list[str],
    folded: nn.Module,
    x: torch.Tensor,
    req: Request,
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
    cl, threads = False, req.threads
    if needed & {"eager", "compile"}:
        modules["eager"], cl = _eager_layout(folded, req)
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
    installed, else eager. OpenVINO comes first: on an x86-64 VM with 2 vCPUs it ran
    NASNet-A and PNASNet-5 mobile in about 20 ms at batch 1, ONNX Runtime in 33-41 ms, and
    the two were within about 10% of each other on ShuffleNet v2 and MobileNet v2."""
    order = ("cudagraphs", "openvino", "onnxruntime")
    return next((n for n in order if backend_available(n, dev)), "eager")


def check_candidates(candidates: Sequence[str]) -> tuple[str, ...]:
    """What "auto" may try: a subset of CANDIDATES that includes eager."""
    unknown = set(candidates) - set(CANDIDATES)
    if unknown or "eager" not in candidates:
        raise BadValue(
            f"candidates must include 'eager' and come from {', '.join(CANDIDATES)}; "
            f"got {', '.join(candidates)}"
        )
    return tuple(candidates)


def check_backend(req: Request, backend: str) -> Request:
    """``req`` deploying with ``backend``: one of BACKENDS that runs on its device, for an fp32
    inference request in the default layout (a deployed module picks its own)."""
    if backend not in BACKENDS:
        raise BadValue(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if req.mode != "inference" or req.dtype != torch.float32 or req.channels_last:
        raise BadValue(
            f"backend {backend!r} deploys an fp32 inference module that chooses its own layout; "
            "use it with mode='inference', dtype=torch.float32 and channels_last=False, or "
            "leave the backend out"
        )
    if req.device.type != "cpu" and backend in AHEAD_OF_TIME:
        raise BadValue(f"backend {backend!r} runs on the CPU here; use device='cpu'")
    if req.device.type != "cuda" and backend in GRAPHED:
        raise BadValue(f"backend {backend!r} records CUDA graphs; use device='cuda'")
    return replace(req, backend=backend)


def check_deploy(
    model: nn.Module | str,
    batch_sizes: Sequence[int],
    *,
    input_size: tuple[int, int, int] | None = None,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
) -> Request:
    """The checked request of a deploy: settings, device and input once, then the backend."""
    req = check_request(
        model, input_size=input_size, batch_sizes=batch_sizes, device=device, threads=threads
    )
    return check_backend(req, backend)


def deploy(
    model: nn.Module | str,
    *,
    input_size: tuple[int, int, int] | None = None,
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
    ``input_size`` defaults to the model's own (``cnnlab.models.registry.input_size_of``), and
    the module carries it as ``default_input_size``.
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
    input_size: tuple[int, int, int] | None = None,
    backend: str = "auto",
    device: str = "cpu",
    threads: int | None = None,
    candidates: tuple[str, ...] = CANDIDATES,
) -> dict[int, nn.Module]:
    """``deploy`` at each of ``batch_sizes``, keyed by batch size, each module chosen, checked
    and reported as ``deploy`` does; the model is folded once and exported to ONNX once (the
    export takes longer than building a runtime from it)."""
    candidates = check_candidates(candidates)
    req = check_deploy(
        model, batch_sizes, input_size=input_size, backend=backend, device=device, threads=threads
    )
    return deploy_request(model, req, candidates)


@dataclass(frozen=True)
class _Folded:
    """A model prepared once for every batch size: the original (eval, on the device), its
    folded copy, what was folded, and its ONNX export (made on first use)."""

    model: nn.Module
    folded: nn.Module
    counts: tuple[int, int, int]  # BNs folded, BNs left, shuffles folded
    graph: Callable[[], bytes]


def _fold(model: nn.Module | str, req: Request) -> _Folded:
    if isinstance(model, str):
        from cnnlab.models import create_model

        model = create_model(model)
    model = copy.deepcopy(model).to(req.device).eval()
    folded, n_folded, n_left = fold_batch_norms(model)
    folded, n_shuffles = fold_shuffles(folded)
    example = torch.randn(req.batch_sizes[0], *req.input_size, device=req.device)
    graph = functools.cache(lambda: export_onnx(folded, example))  # exported on first use
    return _Folded(model, folded, (n_folded, n_left, n_shuffles), graph)


def deploy_request(
    model: nn.Module | str, req: Request, candidates: tuple[str, ...] = CANDIDATES
) -> dict[int, nn.Module]:
    """``deploy_batches`` of a checked request (``check_deploy``): nothing is checked again."""
    prepared = _fold(model, req)
    if req.backend == "auto":
        wanted = [n for n in candidates if backend_available(n, req.device)]
    else:
        wanted = [req.backend]
    return {b: _deploy_one(prepared, wanted, req.at_batch(b)) for b in req.batch_sizes}


def _deploy_one(prepared: _Folded, wanted: list[str], req: Request) -> nn.Module:
    """The module chosen among ``wanted`` at the request's one batch size, checked, reported."""
    x = torch.randn(req.batch_size, *req.input_size, device=req.device)
    auto = req.backend == "auto"
    failed: dict[str, str] = {}
    modules, cl = _build(wanted, prepared.folded, x, req, prepared.graph, failed if auto else None)
    if auto:
        chosen, reason, medians = _fastest(wanted, modules, failed, req)
    else:
        chosen, reason, medians = req.backend, "requested", {}
    module = modules[chosen]
    diff = _max_abs_diff(prepared.model, module, x)
    if diff > TOLERANCE:
        raise RuntimeError(
            f"deploy backend {chosen!r} changed the outputs by {diff:.2e} > {TOLERANCE}"
        )
    n_folded, n_left, n_shuffles = prepared.counts
    report = DeployReport(chosen, reason, n_folded, n_left, cl, diff, medians, n_shuffles)
    module.deploy_report = replace(report, input_size=req.input_size)
    module.default_input_size = req.input_size  # measured at the input it was deployed for
    return module


def _fastest(wanted, modules, failed, req: Request) -> tuple[str, str, dict[str, float]]:
    """The choice of "auto" among the candidates built: (backend, why, median ms of each)."""
    timed = {n: modules[n] for n in wanted if n in modules}
    res = compare(timed, req, rounds=15, min_seconds=1.0)
    medians = {c.name: c.latency.median_ms for c in res}
    chosen = min(medians, key=medians.get)
    others = ", ".join(f"{n} {ms:.2f} ms" for n, ms in medians.items())
    reason = f"fastest measured at batch {req.batch_size}, input {req.input_size}: {others}"
    if failed:
        reason += "; left out, failed to build: " + "; ".join(
            f"{n} ({why})" for n, why in failed.items()
        )
    return chosen, reason, medians
