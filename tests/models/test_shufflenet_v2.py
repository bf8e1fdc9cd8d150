"""ShuffleNet v2 against the figures of the official code and of torchvision."""

import pytest
import torch

import cnnlab
from cnnlab.blocks.shufflenet_v2 import ShuffleV2Unit


@pytest.mark.parametrize(
    "name,paper_layout,tv_layout",
    [
        # computed with the official Megvii code and with torchvision
        # (docs/provenance.md#shufflenet-v2)
        ("shufflenet_v2_x0_5", 40.48, 40.48),
        ("shufflenet_v2_x1_0", 145.81, 144.91),
        ("shufflenet_v2_x1_5", 298.97, 295.76),
        ("shufflenet_v2_x2_0", 590.78, 583.25),
    ],
)
def test_macs_of_both_layouts(name, paper_layout, tv_layout):
    assert round(cnnlab.complexity(name).macs / 1e6, 2) == paper_layout
    assert round(cnnlab.complexity(name, layout="torchvision").macs / 1e6, 2) == tv_layout


def test_official_code_params_plus_fc_bias():
    # the official code counts 2,278,760 at 1.0x with a bias-free FC; ours has the FC bias
    assert cnnlab.complexity("shufflenet_v2_x1_0").params == 2_278_760 + 1000


def test_stride2_unit_branches_paper_layout():
    unit = ShuffleV2Unit(24, 116, 2)
    assert unit.proj[1].conv.out_channels == 24  # projection keeps c_in (official code)
    assert unit.main[-1].conv.out_channels == 116 - 24
    assert unit(torch.randn(1, 24, 56, 56)).shape == (1, 116, 28, 28)


def test_stride1_unit_leaves_half_untouched_before_shuffle():
    unit = ShuffleV2Unit(8, 8, 1).eval()
    x = torch.randn(1, 8, 4, 4)
    y = unit(x)
    # after concat [x1, f(x2)] and the 2-group shuffle, even output channels are x1
    assert torch.equal(y[:, 0::2], x[:, :4])


def test_star_adds_depthwise_before_first_pointwise():
    unit = ShuffleV2Unit(48, 48, 1, extra_dw=True)
    first, second = unit.main[0].conv, unit.main[1].conv
    assert first.groups == 24 and first.kernel_size == (3, 3)
    assert second.kernel_size == (1, 1)
    assert (
        cnnlab.complexity("shufflenet_v2_x1_0_star").macs
        > cnnlab.complexity("shufflenet_v2_x1_0").macs
    )


def test_se_variant_places_se_on_main_branch():
    m = cnnlab.create_model("shufflenet_v2_x2_0_se")
    unit = m.features.stage3_1
    se = unit.main[-1]
    assert type(se).__name__ == "SqueezeExcite"
    assert se.fc1.in_channels == 244 and se.fc1.out_channels == 244  # hidden = branch width
    assert round(cnnlab.complexity("shufflenet_v2_x2_0_se").macs / 1e6, 2) == 593.83


def test_layout_refused():
    with pytest.raises(ValueError, match="unknown layout='caffe'"):
        cnnlab.create_model("shufflenet_v2_x1_0", layout="caffe")
