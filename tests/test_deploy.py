"""deploy: BN folding, every backend's outputs equal the original's, and its report."""

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis import deploy as deploy_module
from cnnlab.analysis import runtimes
from cnnlab.analysis.deploy import default_backend, deploy, fold_batch_norms, fold_conv_bn
from cnnlab.analysis.runtimes import OnnxRuntimeModule, OpenVinoModule
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
    assert default_backend(torch.device("cuda")) == "eager"  # the runtimes run on the CPU
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


def test_measure_latency_takes_the_backend():
    pytest.importorskip("onnxruntime")
    lat = cnnlab.measure_latency(
        "shufflenet_v2_x0_5", backend="onnxruntime", min_samples=3, min_seconds=0, **SMALL
    )
    assert lat.settings.backend == "onnxruntime"
    with pytest.raises(ValueError, match="backend= deploys an fp32 inference module"):
        cnnlab.measure_latency("shufflenet_v2_x0_5", backend="eager", mode="train", **SMALL)


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


@pytest.mark.parametrize("batch,streams", [(4, 2), (3, 1), (1, 1)])
def test_openvino_splits_a_batch_among_streams(batch, streams):
    pytest.importorskip("openvino")
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5")).eval()
    x = torch.randn(batch, 3, 32, 32)
    rt = OpenVinoModule(model, x, 2)
    assert rt.streams == streams
    with torch.no_grad():
        assert (rt(x) - model(x)).abs().max().item() <= 1e-4
