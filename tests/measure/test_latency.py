"""measure_latency and compare_latency on tiny models: structure and settings, never a time."""

import time

import pytest
import torch
from scipy.stats import binom
from torch import nn

from cnnlab.measure.latency import Runner, compare_latency, measure_latency, median_ci

QUICK = dict(input_size=(3, 16, 16), min_samples=5, min_seconds=0.0)


def tiny():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 256, 4),
    )


def test_measure_latency_fields_and_settings():
    before = torch.get_num_threads()
    lat = measure_latency(tiny(), batch_size=3, threads=1, **QUICK)
    assert torch.get_num_threads() == before  # threads restored
    assert lat.samples >= 5 and lat.warmup_runs >= 10
    assert lat.q1_ms <= lat.median_ms <= lat.q3_ms
    assert lat.iqr_ms == pytest.approx(lat.q3_ms - lat.q1_ms)
    assert lat.throughput == pytest.approx(3 * 1000 / lat.median_ms)
    s = lat.settings
    assert (s.input_size, s.batch_size, s.threads, s.mode, s.device) == (
        (3, 16, 16),
        3,
        1,
        "inference",
        "cpu",
    )
    assert s.backend == "as given" and s.dtype == "float32"


def test_train_mode_leaves_the_callers_weights_alone():
    model = tiny()
    before = [p.detach().clone() for p in model.parameters()]
    lat = measure_latency(model, mode="train", batch_size=2, **QUICK)
    assert lat.settings.mode == "train"
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_registered_name_and_channels_last():
    lat = measure_latency(
        "shufflenet_v2_x0_5",
        channels_last=True,
        input_size=(3, 32, 32),
        min_samples=3,
        min_seconds=0,
    )
    assert lat.settings.channels_last


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(threads=0), "threads must be >= 1, got 0"),
        (dict(batch_size=0), "batch_size must be >= 1, got 0"),
        (dict(mode="serve"), "mode must be one of inference, train"),
        (dict(device="tpu"), "device"),
        (dict(input_size=(3, 16)), "input_size must be"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure_latency(tiny(), **{**QUICK, **kwargs})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_gpu():
    with pytest.raises(ValueError, match="CUDA is not available"):
        measure_latency(tiny(), device="cuda", **QUICK)


class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = set()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        self.seen.add(x.data_ptr())
        return self.lin(x.mean((2, 3)))


def test_compare_interleaves_on_the_same_input():
    a, b = Recorder(), Recorder()
    res = compare_latency({"a": a, "b": b}, input_size=(4, 8, 8), rounds=4, min_seconds=0)
    assert [c.name for c in res] == ["a", "b"]
    assert res[0].ratio == 1.0 and res[0].ratio_low == 1.0
    assert res[1].ratio_low <= res[1].ratio <= res[1].ratio_high
    assert a.seen == b.seen and len(a.seen) == 1  # one tensor, shared by both contenders
    assert res[0].latency.samples == res[1].latency.samples >= 4


class Clock(nn.Module):
    """Logs (contender, time) at every call."""

    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append((self.name, time.perf_counter()))
        return x


def test_compare_idles_before_each_sample():
    log = []
    models = {n: Clock(n, log) for n in ("a", "b")}
    res = compare_latency(models, input_size=(1, 2, 2), rounds=4, min_seconds=0, gap_ms=30)
    gaps = [i for i in range(1, len(log)) if log[i][1] - log[i - 1][1] >= 0.030]
    # one idle before every sample of every contender, then that contender's calls alone
    assert len(gaps) == 2 * res[0].latency.samples
    for start, stop in zip(gaps, [*gaps[1:], len(log)]):
        assert len({name for name, _ in log[start:stop]}) == 1
        assert stop - start >= 2  # the untimed wake-up call, then the timed ones


class Sleeper(nn.Module):
    """A steady model that takes ``seconds`` per call."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_warm_up_starts_no_window_that_would_end_past_its_cap():
    runner = Runner(Sleeper(0.1), torch.zeros(1), "inference", torch.device("cpu"))
    # one window of 5 calls takes >= 0.5 s; a second would end past 0.7 s, so none starts
    assert runner.warm_up(max_seconds=0.7) == 5
    # with room for it, a second window runs (and, the model being steady, usually the last)
    assert runner.warm_up(max_seconds=5.0) >= 10


def test_compare_refuses_too_few_rounds():
    with pytest.raises(ValueError, match="rounds must be >= 3"):
        compare_latency({"a": tiny()}, rounds=2)
    with pytest.raises(ValueError, match="gap_ms must be >= 0"):
        compare_latency({"a": tiny()}, gap_ms=-1)


@pytest.mark.parametrize("n", [6, 10, 30, 101])
def test_median_ci_order_statistics_match_binomial(n):
    values = list(range(n))
    low, high = median_ci(values)
    # the CI [v_k, v_(n-k+1)] (1-based) has coverage 1 - 2*P(B < k), B ~ Binomial(n, 1/2)
    k = low + 1
    assert binom.cdf(k - 1, n, 0.5) <= 0.025 < binom.cdf(k, n, 0.5)
    assert high == n - k


def test_the_input_size_comes_from_the_model():
    """A name and the model create_model built from it are timed at the same, registered size."""
    import cnnlab
    from cnnlab.measure.request import check_request

    built = cnnlab.create_model("inception_v3")
    lat = measure_latency(built, min_samples=1, min_seconds=0, max_seconds=0)
    assert lat.settings.input_size == (3, 299, 299)
    assert check_request("inception_v3").input_size == (3, 299, 299)
    assert check_request([built, "shufflenet_v2_x0_5"]).input_size == (3, 299, 299)  # the first's
    assert check_request(tiny()).input_size == (3, 224, 224)  # a plain module: 224
