"""Measured latency: warm-up to a steady state, medians and interquartile ranges, and side-by-side
comparisons in which the contenders are interleaved round by round on the same inputs.

FLOPs are not speed (Ma et al. 2018, §2): every speed figure cnnlab prints comes from here.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.measure.allocator import malloc_mode, minor_faults
from cnnlab.measure.request import (  # noqa: F401  (check_device, check_settings re-exported)
    MODES,
    Request,
    check_device,
    check_request,
    check_settings,
)


@dataclass(frozen=True)
class LatencySettings:
    """What a measurement ran under; printed beside every figure."""

    input_size: tuple[int, int, int]
    batch_size: int
    device: str
    threads: int
    channels_last: bool
    dtype: str
    mode: str
    backend: str = "as given"
    malloc: str = "system"  # "retain" after cnnlab.measure.allocator.retain_freed_memory()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Latency:
    """One model's measured latency: median and quartiles of per-call times (ms)."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    throughput: float  # images per second at the median
    samples: int
    warmup_runs: int
    settings: LatencySettings
    page_faults: float = 0.0  # minor page faults of the process per timed call
    times_ms: tuple[float, ...] = field(default=(), repr=False)  # every sample, in order

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def as_dict(self) -> dict:
        d = asdict(self)
        d["iqr_ms"] = self.iqr_ms
        return d


@dataclass(frozen=True)
class Contender:
    """One contender of a side-by-side comparison: its latency and its ratio to the first."""

    name: str
    latency: Latency
    ratio: float  # median of the per-round ratios of this contender's time to the first's
    ratio_low: float  # distribution-free confidence interval of that median
    ratio_high: float


@contextmanager
def num_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block and restore it afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@contextmanager
def timing_settings(threads: int | None) -> Iterator[int]:
    """Threads as asked and cuDNN's autotuner on (it picks each conv's fastest kernel, as the
    ShuffleNet v2 GPU measurements did), both restored afterwards."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        with num_threads(threads) as n:
            yield n
    finally:
        torch.backends.cudnn.benchmark = before


class Runner:
    """One model prepared for timing: placed, formatted, fed the same input, one step callable."""

    def __init__(self, model: nn.Module, x: torch.Tensor, mode: str, device: torch.device) -> None:
        self.device = device
        self.x = x
        if mode == "train":
            self.model = copy.deepcopy(model).train()  # the caller's weights stay untouched
            opt = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)

            def step() -> None:
                opt.zero_grad(set_to_none=True)
                self.model(self.x).float().sum().backward()
                opt.step()

        else:
            self.model = model.eval() if isinstance(model, nn.Module) else model

            def step() -> None:
                with torch.inference_mode():
                    self.model(self.x)

        self.step: Callable[[], None] = step
        self.reset_counts()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, calls: int = 1) -> float:
        """Milliseconds per call, averaged over ``calls`` back-to-back calls."""
        self._sync()
        f0, t0 = minor_faults(), time.perf_counter()
        for _ in range(calls):
            self.step()
        self._sync()
        elapsed = time.perf_counter() - t0
        self.faults, self.calls = self.faults + minor_faults() - f0, self.calls + calls
        return elapsed * 1e3 / calls

    def reset_counts(self) -> None:
        """Count page faults and calls from here on (after the warm-up)."""
        self.faults = self.calls = 0

    @property
    def faults_per_call(self) -> float:
        return self.faults / max(self.calls, 1)

    def warm_up(
        self, *, tolerance: float = 0.05, window: int = 5, max_seconds: float = 20.0
    ) -> int:
        """Run until the medians of two consecutive windows agree within ``tolerance``.

        oneDNN and cuDNN choose kernels during the first calls, so a fixed handful of warm-up
        iterations is not enough; returns how many calls the warm-up took. ``max_seconds``
        bounds it: after the first window, no window starts that would end past it (at the
        last window's median per call), so a slow model is not run a whole window over.
        """
        start = time.perf_counter()
        previous, runs = None, 0
        while True:
            current = statistics.median(self.time() for _ in range(window))
            runs += window
            steady = previous is not None and abs(current - previous) <= tolerance * previous
            next_end = time.perf_counter() - start + window * current / 1e3
            if steady or next_end > max_seconds:
                return runs
            previous = current


def _calls_per_sample(ms_per_call: float, target_ms: float = 1.0) -> int:
    """Calls to average per sample, so that a sample lasts at least ``target_ms``."""
    return max(1, math.ceil(target_ms / max(ms_per_call, 1e-6)))


def _quartiles(times: list[float]) -> tuple[float, float, float]:
    if len(times) < 2:
        return times[0], times[0], times[0]
    q1, q2, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q1, q2, q3


def _result(times: list[float], warmup: int, settings: LatencySettings, faults: float) -> Latency:
    q1, med, q3 = _quartiles(times)
    throughput = settings.batch_size * 1e3 / med
    return Latency(med, q1, q3, throughput, len(times), warmup, settings, faults, tuple(times))


def _needs_copy(model: nn.Module, dev: torch.device, dtype: torch.dtype, fmt) -> bool:
    """Whether ``model`` must be copied and converted to run as asked (the caller's model is
    never changed). One already in place runs as it is: a compiled module or a recorded CUDA
    graph must not be copied (a copy recompiles, and a graph cannot be copied)."""
    if dtype != torch.float32 or fmt != torch.contiguous_format:
        return True

    def elsewhere(t: torch.Tensor) -> bool:  # "cuda" means the current GPU, as in .to("cuda")
        index = dev.index if dev.index is not None else t.device.index
        return (t.device.type, t.device.index) != (dev.type, index)

    return any(elsewhere(t) for t in [*model.parameters(), *model.buffers()])


def settings_of(req: Request, backend: str | None = None) -> LatencySettings:
    """What a measurement of ``req`` runs under, as printed beside its figures."""
    return LatencySettings(
        req.input_size,
        req.batch_size,
        str(req.device),
        req.threads or torch.get_num_threads(),
        req.channels_last,
        str(req.dtype).removeprefix("torch."),
        req.mode,
        backend or req.label,
        malloc_mode(),
    )


def placed(model: nn.Module | str, req: Request) -> nn.Module:
    """``model`` (a name is built) on the request's device, dtype and layout; the caller's model is
    never changed, and a deployed module (``req.backend``) runs as it is."""
    if isinstance(model, str):
        from cnnlab.models import create_model

        model = create_model(model)
    fmt = torch.channels_last if req.channels_last else torch.contiguous_format
    as_given = req.backend is not None or not isinstance(model, nn.Module)
    if as_given or not _needs_copy(model, req.device, req.dtype, fmt):
        return model
    return copy.deepcopy(model).to(device=req.device, dtype=req.dtype, memory_format=fmt)


def example_input(req: Request) -> torch.Tensor:
    """One random batch of the request's shape, device, dtype and layout."""
    fmt = torch.channels_last if req.channels_last else torch.contiguous_format
    x = torch.randn(req.batch_size, *req.input_size, device=req.device, dtype=req.dtype)
    return x.contiguous(memory_format=fmt)


def measure(
    model: nn.Module | str,
    req: Request,
    *,
    min_samples: int = 30,
    min_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> Latency:
    """``measure_latency`` of a checked request (:func:`check_request`): nothing is checked again."""
    settings = settings_of(req)
    with timing_settings(req.threads):
        runner = Runner(placed(model, req), example_input(req), req.mode, req.device)
        warmup = runner.warm_up()
        calls = _calls_per_sample(runner.time())
        runner.reset_counts()
        times: list[float] = []
        start = time.perf_counter()
        while True:
            times.append(runner.time(calls))
            elapsed = time.perf_counter() - start
            enough = len(times) >= min_samples and elapsed >= min_seconds
            if enough or elapsed >= max_seconds:
                break
    return _result(times, warmup, settings, runner.faults_per_call)


def measure_latency(
    model: nn.Module | str,
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
    mode: str = "inference",
    min_samples: int = 30,
    min_seconds: float = 1.0,
    max_seconds: float = 30.0,
) -> Latency:
    """Median latency of one model after warm-up, with its interquartile range.

    Samples are collected until there are ``min_samples`` of them and ``min_seconds`` have passed
    (or ``max_seconds`` is reached). A sample averages enough back-to-back calls to last 1 ms, so
    timer overhead stays negligible on tiny models. ``mode="train"`` times forward + backward +
    SGD step on a copy of the model. ``threads`` is set for the measurement and restored.
    ``input_size`` defaults to the model's own (``cnnlab.models.registry.input_size_of``). The
    model runs as given: ``cnnlab.deployment.timed.measure_deployed`` deploys it first.
    """
    req = check_request(
        model,
        input_size=input_size,
        batch_sizes=(batch_size,),
        device=device,
        threads=threads,
        dtype=dtype,
        mode=mode,
        channels_last=channels_last,
    )
    sampling = dict(min_samples=min_samples, min_seconds=min_seconds, max_seconds=max_seconds)
    return measure(model, req, **sampling)


def median_ci(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median (binomial order statistics)."""
    v = sorted(values)
    n = len(v)
    if n < 6:
        return v[0], v[-1]
    # largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2
    alpha, cdf, k = (1 - confidence) / 2, 0.0, 0
    while True:
        p = math.comb(n, k) / 2**n
        if cdf + p > alpha:
            break
        cdf += p
        k += 1
    return v[max(k - 1, 0)], v[min(n - k, n - 1)]


def check_rounds(rounds: int, gap_ms: float = 0.0, models: int = 1) -> None:
    """The arguments of a side-by-side comparison beyond its request: ``models`` contenders."""
    if models < 1:
        raise BadValue("compare_latency needs at least one model")
    if rounds < 3:
        raise BadValue(f"rounds must be >= 3, got {rounds}")
    if gap_ms < 0:
        raise BadValue(f"gap_ms must be >= 0 (milliseconds idle before a sample), got {gap_ms}")


def _interleave(
    runners: dict[str, Runner],
    calls: dict[str, int],
    rounds: int,
    min_seconds: float,
    max_seconds: float,
    gap_ms: float,
) -> dict[str, list[float]]:
    """Samples of every runner, round by round in rotating order, each after an idle gap and
    one untimed call (``compare`` says why)."""
    names = list(runners)
    times: dict[str, list[float]] = {n: [] for n in names}
    start, r = time.perf_counter(), 0
    while True:
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            time.sleep(gap_ms / 1e3)  # the previous contender's threads stop spinning
            runners[n].step()  # untimed: this contender's own threads are awake again
            times[n].append(runners[n].time(calls[n]))
        r += 1
        elapsed = time.perf_counter() - start
        if (r >= rounds and elapsed >= min_seconds) or elapsed >= max_seconds:
            return times


def _contenders(
    times: dict[str, list[float]],
    warmups: dict[str, int],
    settings: dict[str, LatencySettings],
    runners: dict[str, Runner],
) -> list[Contender]:
    """Each contender's latency and its ratio to the first, from the per-round samples."""
    first = next(iter(times.values()))
    out = []
    for n, samples in times.items():
        ratios = [t / f for t, f in zip(samples, first)]
        low, high = median_ci(ratios)
        lat = _result(samples, warmups[n], settings[n], runners[n].faults_per_call)
        out.append(Contender(n, lat, statistics.median(ratios), low, high))
    return out


def compare(
    models: Mapping[str, nn.Module | str],
    req: Request,
    *,
    rounds: int = 30,
    min_seconds: float = 2.0,
    max_seconds: float = 120.0,
    warmup_seconds: float = 20.0,
    gap_ms: float = 20.0,
    backends: Mapping[str, str] | None = None,
) -> list[Contender]:
    """``compare_latency`` of a checked request: nothing is checked again. ``backends`` names the
    deploy backend of each contender where it differs from the request's (its settings say so)."""
    backends = backends or {}
    settings = {n: settings_of(req, backends.get(n)) for n in models}
    x = example_input(req)  # every contender gets the very same input tensor
    with timing_settings(req.threads):
        runners = {n: Runner(placed(m, req), x, req.mode, req.device) for n, m in models.items()}
        warmups = {n: r.warm_up(max_seconds=warmup_seconds) for n, r in runners.items()}
        calls = {n: _calls_per_sample(r.time()) for n, r in runners.items()}
        for runner in runners.values():
            runner.reset_counts()
        times = _interleave(runners, calls, rounds, min_seconds, max_seconds, gap_ms)
    return _contenders(times, warmups, settings, runners)


def compare_latency(
    models: Mapping[str, nn.Module | str],
    *,
    input_size: tuple[int, int, int] | None = None,
    batch_size: int = 1,
    device: str = "cpu",
    threads: int | None = None,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
    mode: str = "inference",
    rounds: int = 30,
    min_seconds: float = 2.0,
    max_seconds: float = 120.0,
    warmup_seconds: float = 20.0,
    gap_ms: float = 20.0,
) -> list[Contender]:
    """Time several models side by side: round by round, in rotating order, on the same input.

    Each round times every contender once (one sample of back-to-back calls); the ratio of a
    contender to the first is the median of the per-round ratios, so slow drifts of a shared,
    noisy machine cancel out. ``warmup_seconds`` caps each contender's warm-up (it stops earlier
    once two consecutive windows agree within 5%). ``input_size`` defaults to the first model's
    own. Returns the contenders in the given order.

    Each sample is taken in the contender's own steady state, as if it ran alone: the machine
    first idles for ``gap_ms`` and the contender makes one untimed call. A runtime's worker
    threads keep spinning for milliseconds after a call (OpenMP's wait policy, TBB), and a
    contender started in that window shares the cores with them; the untimed call wakes its own
    threads. Without this, the contender that always follows another in the rotation pays for
    it: on 2 vCPUs, one OpenVINO module ran 37% slower right after eager PyTorch than an
    identical one right after ONNX Runtime.
    """
    check_rounds(rounds, gap_ms, len(models))
    req = check_request(
        list(models.values()),
        input_size=input_size,
        batch_sizes=(batch_size,),
        device=device,
        threads=threads,
        dtype=dtype,
        mode=mode,
        channels_last=channels_last,
    )
    effort = dict(rounds=rounds, min_seconds=min_seconds, max_seconds=max_seconds)
    return compare(models, req, **effort, warmup_seconds=warmup_seconds, gap_ms=gap_ms)
