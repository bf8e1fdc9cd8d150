"""deploy: BN folding, every backend's outputs equal the original's, and its report."""

import copy

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.deployment import runtimes
from cnnlab.deployment import select as deploy_module
from cnnlab.deployment.cudagraphs import CudaGraphModule
from cnnlab.deployment.fold import fold_batch_norms, fold_conv_bn
from cnnlab.deployment.runtimes import OnnxRuntimeModule, OpenVinoModule
from cnnlab.deployment.select import default_backend, deploy, deploy_batches
from tests.bn import randomise_bn

SMALL = dict(input_size=(3, 32, 32), batch_size=2)


@pytest.mark.parametrize("bias,groups", [(False, 1), (True, 1), (False, 4)])
def test_fold_conv_bn_equals_conv_then_bn(bias, groups):
    conv = nn.Conv2d(8, 12, 3, padding=1, bias=bias, groups=groups)
    bn = randomise_bn(nn.Sequential(nn.BatchNorm2d(12)))[0]
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fold_conv_bn(conv, bn)(x), bn(conv(x)), atol=1e-5, rtol=1e-5)


def test_fold_batch_norms_counts_and_keeps_outputs():
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5"))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded, n_folded, n_left = fold_batch_norms(model)
    assert (n_folded, n_left) == (n_bn, 0)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn  # a copy
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max() <= 1e-4


def test_a_bn_not_after_a_conv_stays():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4))
    _, n_folded, n_left = fold_batch_norms(model)
    assert (n_folded, n_left) == (0, 1)


@pytest.mark.parametrize("backend", ["eager", "onnxruntime", "openvino"])
def test_backends_equal_the_original(backend):
    if backend != "eager":
        pytest.importorskip(backend)
    model = randomise_bn(cnnlab.create_model("mobilenet_v2_x0_35"))
    out = deploy(model, backend=backend, threads=1, **SMALL)
    report = out.deploy_report
    assert report.backend == backend and report.reason == "requested"
    assert report.bn_left == 0 and report.bn_folded == 52
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (out(x) - model(x)).abs().max().item() <= 1e-4
    assert report.max_abs_diff <= 1e-4


def test_compile_backend_on_a_tiny_model():
    model = randomise_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()))
    out = deploy(model, backend="compile", threads=1, input_size=(3, 8, 8), batch_size=1)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert (out(x) - model(x)).abs().max().item() <= 1e-4


def test_auto_measures_and_says_why():
    pytest.importorskip("onnxruntime")
    model = cnnlab.create_model("shufflenet_v2_x0_5")
    out = deploy(model, backend="auto", candidates=("eager", "onnxruntime"), threads=1, **SMALL)
    report = out.deploy_report
    assert set(report.candidates) == {"eager", "onnxruntime"}
    assert report.backend == min(report.candidates, key=report.candidates.get)
    assert report.reason.startswith("fastest measured at batch 2")


@pytest.mark.parametrize("module", [OnnxRuntimeModule, OpenVinoModule])
def test_runtime_module_refuses_another_shape(module):
    pytest.importorskip(module.__name__.removesuffix("Module").lower())
    rt = module(nn.Conv2d(3, 4, 1).eval(), torch.randn(1, 3, 8, 8), 1)
    with pytest.raises(ValueError, match=r"exported for input shape \(1, 3, 8, 8\)"):
        rt(torch.randn(2, 3, 8, 8))


def test_missing_runtime_names_the_extra(monkeypatch):
    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(runtimes.importlib, "import_module", missing)
    with pytest.raises(ValueError, match=r"pip install 'cnnlab\[openvino\]'"):
        OpenVinoModule(nn.Conv2d(3, 4, 1).eval(), torch.randn(1, 3, 8, 8), 1)
    with pytest.raises(ValueError, match=r"pip install 'cnnlab\[onnx\]'"):
        OnnxRuntimeModule(nn.Conv2d(3, 4, 1).eval(), torch.randn(1, 3, 8, 8), 1)


def test_default_backend_prefers_an_installed_runtime(monkeypatch):
    assert default_backend(torch.device("cuda")) == "cudagraphs"  # the runtimes run on the CPU
    installed = {"onnxruntime"}
    monkeypatch.setattr(deploy_module, "runtime_available", lambda n, dev: n in installed)
    assert default_backend(torch.device("cpu")) == "onnxruntime"
    installed.add("openvino")
    assert default_backend(torch.device("cpu")) == "openvino"
    installed.clear()
    assert default_backend(torch.device("cpu")) == "eager"


def test_bad_backend():
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        deploy(nn.Conv2d(3, 4, 1), backend="tensorrt")
    with pytest.raises(ValueError, match="candidates must include 'eager'"):
        deploy(nn.Conv2d(3, 4, 1), candidates=("onnxruntime",))


def test_bn_variants_fold_like_bn():
    from cnnlab.ops.norm import convert_norm

    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5"))
    for kind in ("brn", "ghost", "distributed"):
        converted = convert_norm(model, kind).eval()
        folded, n_folded, n_left = fold_batch_norms(converted)
        assert n_left == 0 and n_folded > 0
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            assert (folded(x) - model(x)).abs().max() <= 1e-4


def test_onnx_export_of_tf_same_padding_cells():
    """NASNet's 'SAME' padding is planned from the input size: static under ONNX export."""
    pytest.importorskip("onnxruntime")
    model = cnnlab.create_model("nasnet_a_mobile", num_classes=10).eval()
    x = torch.randn(1, 3, 65, 65)  # odd: the stride-2 cells pad asymmetrically
    with torch.no_grad():
        assert (OnnxRuntimeModule(model, x, 1)(x) - model(x)).abs().max() <= 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_deploy_batches_exports_once(monkeypatch, backend):
    pytest.importorskip(backend)
    exports = []

    def counted(model, example):
        exports.append(tuple(example.shape))
        return runtimes.export_onnx(model, example)

    monkeypatch.setattr(deploy_module, "export_onnx", counted)
    model = randomise_bn(cnnlab.create_model("shufflenet_v1_g3_x0_5")).eval()  # has shuffles
    out = deploy_batches(model, (1, 4), input_size=(3, 32, 32), backend=backend, threads=2)
    assert exports == [(1, 3, 32, 32)]  # one export, at the first batch size
    for batch, module in out.items():
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            assert (module(x) - model(x)).abs().max().item() <= 1e-4
        assert module.shape == (batch, 3, 32, 32)
        assert module.deploy_report.backend == backend


def test_deploy_batches_refuses_no_or_repeated_batch_sizes():
    with pytest.raises(ValueError, match="one or more batch sizes are needed, got none"):
        deploy_batches(nn.Conv2d(3, 4, 1), ())
    with pytest.raises(ValueError, match=r"batch sizes must differ from one another, got \[2, 2\]"):
        deploy_batches(nn.Conv2d(3, 4, 1), (2, 2))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        deploy_batches(nn.Conv2d(3, 4, 1), (1, 0))


@pytest.mark.parametrize("module", [OnnxRuntimeModule, OpenVinoModule])
def test_runtime_runs_a_graph_exported_at_another_batch(module):
    pytest.importorskip(module.__name__.removesuffix("Module").lower())
    model = randomise_bn(cnnlab.create_model("shufflenet_v1_g3_x0_5")).eval()
    graph = runtimes.export_onnx(model, torch.randn(1, 3, 32, 32))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (module(model, x, 2, graph=graph)(x) - model(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("batch,streams", [(4, 2), (3, 1), (1, 1)])
def test_openvino_splits_a_batch_among_streams(batch, streams):
    pytest.importorskip("openvino")
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5")).eval()
    x = torch.randn(batch, 3, 32, 32)
    rt = OpenVinoModule(model, x, 2)
    assert rt.streams == streams
    with torch.no_grad():
        assert (rt(x) - model(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("backend", ["cudagraphs", "compile-cudagraphs"])
def test_cuda_graphs_are_refused_on_the_cpu(backend):
    with pytest.raises(
        ValueError, match=f"backend '{backend}' records CUDA graphs; use device='cuda'"
    ):
        deploy(nn.Conv2d(3, 4, 1), backend=backend)
    with pytest.raises(ValueError, match="CUDA graphs run on a CUDA device, got an input on cpu"):
        CudaGraphModule(nn.Conv2d(3, 4, 1), torch.randn(1, 3, 8, 8))


def test_auto_leaves_out_what_cannot_run_here():
    out = deploy(nn.Conv2d(3, 4, 1), candidates=("eager", "cudagraphs"), threads=1, **SMALL)
    assert set(out.deploy_report.candidates) == {"eager"}


def test_a_model_already_in_place_is_timed_as_it_is():
    """compare_latency copies a model only to convert it: a compiled module or a CUDA graph
    must run as given (a copy recompiles; a graph cannot be copied)."""
    from cnnlab.measure.latency import _needs_copy

    model, cpu = nn.Conv2d(3, 4, 1), torch.device("cpu")
    assert not _needs_copy(model, cpu, torch.float32, torch.contiguous_format)
    assert _needs_copy(model, cpu, torch.float64, torch.contiguous_format)
    assert _needs_copy(model, cpu, torch.float32, torch.channels_last)
    assert _needs_copy(model, torch.device("cuda"), torch.float32, torch.contiguous_format)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("backend", ["eager", "compile", "cudagraphs", "compile-cudagraphs"])
def test_gpu_backends_equal_the_original(backend):
    model = randomise_bn(cnnlab.create_model("mobilenet_v2_x0_35")).cuda().eval()
    out = deploy(model, backend=backend, device="cuda", **SMALL)
    assert out.deploy_report.backend == backend
    x = torch.randn(2, 3, 32, 32, device="cuda")
    with torch.no_grad():
        assert (out(x) - model(x)).abs().max().item() <= 1e-4


@cuda
def test_cuda_graph_replays_each_new_input_and_keeps_old_outputs():
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5")).cuda().eval()
    a, b = torch.randn(2, 2, 3, 32, 32, device="cuda")
    graph = CudaGraphModule(model, a)
    ya, yb = graph(a), graph(b)  # ya must survive the second replay
    with torch.no_grad():
        assert (ya - model(a)).abs().max().item() <= 1e-4
        assert (yb - model(b)).abs().max().item() <= 1e-4
    with pytest.raises(ValueError, match=r"recorded for input shape \(2, 3, 32, 32\), got \(1,"):
        graph(a[:1])
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy(graph)


@cuda
def test_auto_on_a_gpu_measures_the_graphs():
    model = cnnlab.create_model("shufflenet_v2_x0_5")
    out = deploy(model, candidates=("eager", "cudagraphs"), device="cuda", **SMALL)
    report = out.deploy_report
    assert set(report.candidates) == {"eager", "cudagraphs"}
    assert report.backend == min(report.candidates, key=report.candidates.get)
    lat = cnnlab.measure_latency(out, device="cuda", min_samples=3, min_seconds=0, **SMALL)
    assert lat.median_ms > 0


@cuda
@pytest.mark.parametrize("backend", ["cudagraphs", "compile-cudagraphs"])
def test_deploy_batches_records_a_graph_per_batch_size_on_a_gpu(backend):
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5")).cuda().eval()
    out = deploy_batches(model, (1, 4), input_size=(3, 32, 32), backend=backend, device="cuda")
    for batch, module in out.items():
        x = torch.randn(batch, 3, 32, 32, device="cuda")
        with torch.no_grad():
            assert (module(x) - model(x)).abs().max().item() <= 1e-4
        assert module.deploy_report.backend == backend


def test_channels_last_wrapper_leaves_the_model_as_given():
    """bench_deploy wraps torchvision's model for its by-hand compile while timing the same
    model eagerly: converting it in place would change the eager baseline's layout."""
    from cnnlab.deployment.select import ChannelsLast

    model = nn.Conv2d(3, 4, 3)
    wrapped = ChannelsLast(model)
    assert model.weight.is_contiguous()
    assert wrapped.model.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), model(x))


def test_auto_leaves_out_a_candidate_that_fails_to_build(monkeypatch):
    def no_compiler(*args):
        raise RuntimeError("no C compiler found\nmore detail")

    monkeypatch.setattr(deploy_module, "_compile", no_compiler)
    model = nn.Conv2d(3, 4, 1)
    out = deploy(model, candidates=("eager", "compile"), threads=1, **SMALL)
    report = out.deploy_report
    assert set(report.candidates) == {"eager"}
    assert report.reason.endswith(
        "left out, failed to build: compile (RuntimeError: no C compiler found)"
    )
    with pytest.raises(RuntimeError, match="no C compiler found"):  # asked for by name: an error
        deploy(model, backend="compile", threads=1, **SMALL)
