"""ResNet / ResNeXt / SE-ResNet / Deep Roots: figures, stride placement, ports, block structure."""

import pytest
import timm
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.blocks.resnet import Bottleneck, bottleneck_width
from cnnlab.models import create_model, model_config
from cnnlab.models.net import plan_cost
from cnnlab.models.resnet import FAMILY
from cnnlab.ops.se import SqueezeExcite
from tests.bn import randomise_bn


def _macs_params(name, **kw):
    c = cnnlab.complexity(create_model(name, **kw) if kw else name)
    return c.macs, c.params


@pytest.mark.parametrize(
    "name,gmacs,params",
    [
        # torchvision IMAGENET1K_V1 metadata: _ops (3 decimals) and num_params
        ("resnet18", "1.814", 11689512),
        ("resnet34", "3.664", 21797672),
        ("resnet50", "4.089", 25557032),
        ("resnet101", "7.801", 44549160),
        ("resnet152", "11.514", 60192808),
        ("resnext50_32x4d", "4.230", 25028904),
        ("resnext101_32x8d", "16.414", 88791336),
        # stride in the first 1x1: SENet Table 2's re-implementation prints 3.86 / 7.58 / 11.30
        ("resnet50_caffe", "3.858", 25557032),
        ("resnet101_caffe", "7.570", 44549160),
        ("resnet152_caffe", "11.282", 60192808),
        # conv + FC MACs; SENet prints 3.87 / 7.60 / 4.25 with SE pooling and scaling counted
        ("se_resnet50", "3.860", 28088024),
        ("se_resnet101", "7.575", 49326872),
        ("se_resnext50_32x4d", "4.233", 27559896),
    ],
)
def test_registered_variant_counts(name, gmacs, params):
    macs, p = _macs_params(name)
    assert f"{macs / 1e9:.3f}" == gmacs
    assert p == params


def test_stride_placement_changes_macs_exactly():
    v15, _ = _macs_params("resnet50")
    caffe, _ = _macs_params("resnet50", stride_in="1x1")
    assert (round(v15 / 1e9, 3), round(caffe / 1e9, 3)) == (4.089, 3.858)
    # closed form: in the first block of stages 3-5 the 1x1 (c_in*planes) runs at the input
    # resolution instead of the output one, and the 3x3 (9*planes^2) at the output resolution
    diff = 0
    for c_in, planes, hw_out in ((256, 128, 28), (512, 256, 14), (1024, 512, 7)):
        hw_in = 2 * hw_out
        v15_cost = c_in * planes * hw_in**2 + 9 * planes**2 * hw_out**2
        caffe_cost = c_in * planes * hw_out**2 + 9 * planes**2 * hw_out**2
        diff += v15_cost - caffe_cost
    assert v15 - caffe == diff


def test_se_resnet_adds_senet_params():
    """SENet §7: SE adds (2/r) * sum_s N_s * C_s^2 weights (+ the FC biases)."""
    _, plain = _macs_params("resnet50_caffe")
    _, se = _macs_params("se_resnet50")
    weights = sum(n * 2 * c * c // 16 for n, c in zip((3, 4, 6, 3), (256, 512, 1024, 2048)))
    biases = sum(n * (c + c // 16) for n, c in zip((3, 4, 6, 3), (256, 512, 1024, 2048)))
    assert se - plain == weights + biases


def test_se_sits_on_the_branch_before_the_add():
    block = Bottleneck(64, 16, se=4).eval()
    assert isinstance(block.se, SqueezeExcite) and block.se.fc1.in_channels == 64
    x = torch.randn(1, 64, 8, 8)
    with torch.no_grad():
        y = block.conv3(block.conv2(block.conv1(x)))
        expected = torch.relu(block.se(y) + x)
        assert torch.equal(block(x), expected)
        assert not torch.allclose(block(x), torch.relu(y + x))


def test_stride_in_moves_the_stride():
    v15 = Bottleneck(64, 32, 2, stride_in="3x3")
    caffe = Bottleneck(64, 32, 2, stride_in="1x1")
    assert (v15.conv1.conv.stride, v15.conv2.conv.stride) == ((1, 1), (2, 2))
    assert (caffe.conv1.conv.stride, caffe.conv2.conv.stride) == ((2, 2), (1, 1))
    assert v15.downsample.conv.stride == caffe.downsample.conv.stride == (2, 2)


def test_resnext_width_rule():
    assert bottleneck_width(64, 32, 4) == 128  # ResNeXt-50 32x4d, conv2: 128 = 32 x 4
    assert bottleneck_width(256, 32, 8) == 1024
    net = create_model("resnext50_32x4d")
    conv = net.features.stage5_0.conv2.conv
    assert (conv.in_channels, conv.groups) == (1024, 32)


def test_root_module_structure():
    """Deep Roots: grouped 3x3 root at full width planes, then a dense 1x1 (groups only there)."""
    net = create_model("root_resnet50_g16")
    for name, planes in (("stage2_0", 64), ("stage5_2", 512)):
        block = getattr(net.features, name)
        assert (block.conv2.conv.in_channels, block.conv2.conv.groups) == (planes, 16)
        assert block.conv1.conv.groups == block.conv3.conv.groups == 1
    # the root is the grouped 3x3 of ResNet-50: its weights shrink 16x, the rest is unchanged
    macs, params = _macs_params("root_resnet50_g16")
    base_macs, base_params = _macs_params("resnet50")
    grouped = sum(n * 9 * p * p for n, p in zip((3, 4, 6, 3), (64, 128, 256, 512)))
    assert base_params - params == grouped - grouped // 16


def test_zero_init_residual_option():
    net = create_model("resnet18", zero_init_residual=True)
    assert net.features.stage2_0.conv2.bn.weight.abs().sum() == 0
    assert create_model("resnet18").features.stage2_0.conv2.bn.weight.min() == 1


def test_groups_not_dividing_width_names_layer_and_numbers():
    # a root of 5 groups on the 64-wide 3x3 of the first block: built and counted
    msg = r"layer 'stage2_0': Bottleneck: 3x3 width=64 \(planes=64\).*groups=5"
    with pytest.raises(ValueError, match=msg):
        create_model("resnet50", root=5)
    cfg = model_config("resnet50", root=5)
    with pytest.raises(ValueError, match=msg):
        plan_cost(cfg, FAMILY.plan(cfg), (3, 224, 224))
    with pytest.raises(ValueError, match=r"width=24 \(planes=16\).*groups=5"):
        Bottleneck(64, 16, width=24, groups=5)


def test_bad_config_values():
    with pytest.raises(ValueError, match="stride_in='2x2'"):
        model_config("resnet50", stride_in="2x2")
    with pytest.raises(ValueError, match="stride_in='3x1'"):
        Bottleneck(64, 16, stride_in="3x1")
    with pytest.raises(ValueError, match="basic blocks support only groups=1"):
        model_config("resnet18", groups=32)
    with pytest.raises(ValueError, match="not both"):
        model_config("resnet50", root=16, groups=32)


@pytest.mark.parametrize("tv_name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torchvision_port_identical(tv_name):
    tv = torchvision.models.get_model(tv_name, weights=None).eval()
    randomise_bn(tv)
    ours = cnnlab.from_torchvision(tv).eval()
    assert ours.cfg == model_config(tv_name)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (tv(x) - ours(x)).abs().max().item() <= 1e-5
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())


def test_dilated_torchvision_resnet_is_refused():
    tv = torchvision.models.resnet50(replace_stride_with_dilation=[False, False, True])
    with pytest.raises(ValueError, match="dilated ResNet.*layer4.1.conv2"):
        cnnlab.from_torchvision(tv)


def _copy_in_order(src: nn.Module, dst: nn.Module) -> None:
    s, d = src.state_dict(), dst.state_dict()
    assert [v.shape for v in s.values()] == [v.shape for v in d.values()]
    dst.load_state_dict(dict(zip(d.keys(), s.values())))


@pytest.mark.parametrize(
    "timm_name,name",
    [("legacy_seresnet50", "se_resnet50"), ("legacy_seresnext50_32x4d", "se_resnext50_32x4d")],
)
def test_timm_senet_copy_identical(timm_name, name):
    """SENet's released architectures (timm's Cadene port): same tensors in order, same outputs."""
    ref = timm.create_model(timm_name).eval()
    randomise_bn(ref)
    ours = create_model(name).eval()
    _copy_in_order(ref, ours)
    x = torch.randn(1, 3, 112, 112)  # Caffe's unpadded ceil-mode pool: other windows than pad 1
    with torch.no_grad():
        assert (ref(x) - ours(x)).abs().max().item() <= 1e-5
