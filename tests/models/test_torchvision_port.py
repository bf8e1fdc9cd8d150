"""Ports of torchvision models give identical outputs, and their counts match torchvision's."""

import pytest
import torch
import torchvision

import cnnlab
from tests.bn import randomise_bn

TV_MODELS = [
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "mobilenet_v2",
]


@pytest.mark.parametrize("tv_name", TV_MODELS)
def test_port_gives_identical_outputs(tv_name):
    tv = torchvision.models.get_model(tv_name, weights=None).eval()
    randomise_bn(tv)
    ours = cnnlab.from_torchvision(tv).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (tv(x) - ours(x)).abs().max().item()
    assert diff <= 1e-5
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())


@pytest.mark.parametrize(
    "tv_name,ops,params",
    [
        # torchvision weight metadata: _ops (GMACs, 3 decimals) and num_params
        ("shufflenet_v2_x0_5", 0.04, 1366792),
        ("shufflenet_v2_x1_0", 0.145, 2278604),
        ("shufflenet_v2_x1_5", 0.296, 3503624),
        ("shufflenet_v2_x2_0", 0.583, 7393996),
        ("mobilenet_v2", 0.301, 3504872),
    ],
)
def test_port_counts_match_torchvision_metadata(tv_name, ops, params):
    ours = cnnlab.from_torchvision(torchvision.models.get_model(tv_name, weights=None))
    c = cnnlab.complexity(ours)
    assert c.params == params
    assert round(c.macs / 1e9, 3 if ops >= 0.1 else 2) == ops


def test_torchvision_layout_option():
    # 1.0x with torchvision's first stage-2 unit: 144.91 M instead of the paper layout's 145.81 M
    tv_layout = cnnlab.complexity("shufflenet_v2_x1_0", layout="torchvision")
    paper = cnnlab.complexity("shufflenet_v2_x1_0")
    assert round(tv_layout.macs / 1e6, 2) == 144.91
    assert round(paper.macs / 1e6, 2) == 145.81
    traced = cnnlab.complexity(torchvision.models.shufflenet_v2_x1_0())
    assert traced.method == "traced"
    assert (traced.macs, traced.params) == (tv_layout.macs, tv_layout.params)
    assert traced.memory_access == tv_layout.memory_access


def test_width_multiplied_mobilenet_v2_port():
    tv = torchvision.models.mobilenet_v2(width_mult=1.4, num_classes=10).eval()
    ours = cnnlab.from_torchvision(tv).eval()
    assert (
        cnnlab.complexity(ours).macs == cnnlab.complexity("mobilenet_v2_x1_4", num_classes=10).macs
    )
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (tv(x) - ours(x)).abs().max().item() <= 1e-5


def test_unsupported_module_is_refused():
    with pytest.raises(TypeError, match="from_torchvision supports torchvision's .*, got AlexNet"):
        cnnlab.from_torchvision(torchvision.models.alexnet())
