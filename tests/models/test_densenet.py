"""DenseNet-BC: torchvision figures, the port, growth and compression, bad input."""

import pytest
import torch
import torchvision

import cnnlab
from cnnlab.blocks.dense import DenseLayer, Transition
from cnnlab.models import model_config
from cnnlab.ops.cost import Cx
from tests.bn import randomise_bn


@pytest.mark.parametrize("name", ["densenet121", "densenet169", "densenet201", "densenet161"])
def test_counts_equal_torchvision_weight_metadata(name):
    meta = torchvision.models.get_model_weights(name).DEFAULT.meta
    c = cnnlab.complexity(name)
    assert c.params == meta["num_params"]
    assert round(c.macs / 1e9, 3) == meta["_ops"]


def test_densenet121_port_gives_identical_outputs():
    tv = torchvision.models.densenet121().eval()
    randomise_bn(tv)
    ours = cnnlab.from_torchvision(tv).eval()
    assert ours.cfg.growth == 32 and ours.cfg.blocks == (6, 12, 24, 16)
    assert ours.cfg.compression == 0.5 and ours.cfg.bn_size == 4
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (tv(x) - ours(x)).abs().max().item() <= 1e-5


def test_dense_layer_grows_by_k_and_transition_compresses():
    layer = DenseLayer(10, growth=6, bn_size=4)
    assert layer.conv1.out_channels == 24
    assert layer(torch.randn(1, 10, 8, 8)).shape == (1, 16, 8, 8)
    trans = Transition(15, compression=0.5)
    assert trans(torch.randn(1, 15, 8, 8)).shape == (1, 7, 4, 4)  # floor(0.5 * 15) = 7


def test_widths_through_the_blocks():
    # 64 + 6*32 = 256 -> 128; +12*32 = 512 -> 256; +24*32 = 1024 -> 512; +16*32 = 1024
    net = cnnlab.create_model("densenet121", num_classes=0)
    assert net.num_features == 1024
    assert [getattr(net.features, f"transition{i}").c_out for i in (1, 2, 3)] == [128, 256, 512]


def test_unfolded_pre_activation_bn_is_counted():
    # BN(c) on an h*w map read + written, gamma/beta read: 2*c*h*w + 2*c (plus ReLU 2*c*h*w)
    c, h, k = 16, 8, 4
    cx = DenseLayer.complexity(Cx(c, h, h), c, k, bn_size=1)
    bn_relu = 2 * c * h * h + 2 * c + 2 * c * h * h
    conv1 = c * h * h + k * h * h + c * k
    relu2, conv2 = 2 * k * h * h, 2 * k * h * h + 9 * k * k
    cat = 2 * (c + k) * h * h
    assert cx.memory_access == bn_relu + conv1 + relu2 + conv2 + cat


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(growth=0), "growth rate k must be >= 1, got 0"),
        (dict(compression=0.0), r"compression theta must be in \(0, 1\], got 0.0"),
        (dict(compression=1.5), r"compression theta must be in \(0, 1\], got 1.5"),
        (dict(blocks=(6, 0)), r"blocks must be layer counts >= 1, got \(6, 0\)"),
        (dict(bn_size=0), "bn_size must be >= 1"),
    ],
)
def test_bad_config_raises(override, message):
    with pytest.raises(ValueError, match=message):
        model_config("densenet121", **override)
