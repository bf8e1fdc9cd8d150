"""ShuffleNet v1 (Zhang et al. 2018): unit structure, width tables, MACs against Tables 1/2/5."""

import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.blocks.shufflenet_v1 import ShuffleV1Unit
from cnnlab.models.net import Net
from cnnlab.models.shufflenet_v1 import (
    GROUPS,
    TABLE1,
    WIDTHS,
    ShuffleNetV1Config,
    config_for,
    plan,
    scaled_widths,
)
from cnnlab.ops.se import SqueezeExcite
from cnnlab.ops.shuffle import ChannelShuffle
from tests.paper import rounds_to

# MACs (millions, 224x224) this implementation computes, analytic count; test_complexity holds
# the analytic count equal to the traced one for every registered variant.
#   width: (g=1, g=2, g=3, g=4, g=8)
COMPUTED_MACS = {
    0.25: (13.16, 12.96, 13.30, 13.48, 15.72),
    0.5: (38.52, 37.74, 37.59, 37.94, 40.47),
    1.0: (143.08, 140.84, 137.46, 134.34, 138.37),
    1.5: (308.10, 299.86, 292.44, 287.15, 290.19),
    2.0: (550.33, 539.14, 524.05, 510.29, 521.94),
}


def _name(g, width):
    tag = {0.25: "x0_25", 0.5: "x0_5", 1.0: "x1_0", 1.5: "x1_5", 2.0: "x2_0"}[width]
    return f"shufflenet_v1_g{g}_{tag}"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("g", GROUPS)
def test_computed_macs_table(g, width):
    expected = COMPUTED_MACS[width][GROUPS.index(g)]
    assert cnnlab.complexity(_name(g, width)).macs / 1e6 == pytest.approx(expected, abs=0.005)


def test_table1_row_truncated():
    # Table 1's complexity row (1x) is 143/140/137/133/137 for g = 1/2/3/4/8. Truncating the
    # computed MACs reproduces g = 1..3 exactly; g = 4 and g = 8 are about 1.3 M higher (the
    # documented exceptions; Megvii's README gives 138 M for g = 8).
    truncated = [int(cnnlab.complexity(_name(g, 1.0)).macs / 1e6) for g in GROUPS]
    assert truncated == [143, 140, 137, 134, 138]


def test_official_megvii_widths_and_counts():
    assert scaled_widths(3, 0.5) == (12, (120, 240, 480))
    assert scaled_widths(8, 0.5) == (16, (192, 384, 768))
    assert scaled_widths(3, 2.0) == (48, (480, 960, 1920))
    # Megvii README: 1.5x g=3 292 M, 2.0x g=3 524 M; params 0.7 M at 0.5x g=3
    assert rounds_to(cnnlab.complexity("shufflenet_v1_g3_x1_5").macs / 1e6, "292.44")
    assert rounds_to(cnnlab.complexity("shufflenet_v1_g3_x2_0").macs / 1e6, "524.05")
    assert rounds_to(cnnlab.complexity("shufflenet_v1_g3_x0_5").params / 1e6, "0.72")


def test_scaled_widths_adjust_only_what_does_not_divide():
    assert scaled_widths(1, 0.25) == (12, (36, 72, 144))  # Table 1 x 0.25, untouched
    assert scaled_widths(2, 0.5) == (12, (98, 200, 400))  # 100 // 4 = 25 is odd -> 98
    assert scaled_widths(4, 0.25) == (12, (64, 144, 272))  # 68 -> 64, 136 -> 144 (tie up)
    assert scaled_widths(8, 0.25) == (16, (96, 192, 384))  # Conv1 12 -> 16 for g=8
    assert TABLE1[2] == (200, 400, 800) and TABLE1[4] == (272, 544, 1088)  # tables unchanged
    with pytest.raises(ValueError, match="width=0.75"):
        scaled_widths(3, 0.75)


def test_first_stage2_pointwise_conv_is_not_grouped():
    feats = cnnlab.create_model("shufflenet_v1_g3_x1_0").features
    assert feats.stage2_0.main[0].conv.groups == 1
    assert feats.stage2_0.main[0].conv.in_channels == 24
    assert feats.stage2_1.main[0].conv.groups == 3
    assert feats.stage3_0.main[0].conv.groups == 3
    # the second pointwise conv is grouped everywhere, the first unit included
    assert feats.stage2_0.main[3].conv.groups == 3
    # the official code shuffles whenever g > 1, also after the ungrouped conv
    assert isinstance(feats.stage2_0.main[1], ChannelShuffle)


def test_unit_order_no_relu_after_depthwise_no_shuffle_at_end():
    unit = ShuffleV1Unit(240, 240, 1, 3)
    pw1, shuffle, dw, pw2 = unit.main
    assert isinstance(shuffle, ChannelShuffle) and shuffle.groups == 3
    assert (pw1.conv.out_channels, dw.conv.groups, dw.conv.out_channels) == (60, 60, 60)
    assert hasattr(pw1, "act") and not hasattr(dw, "act") and not hasattr(pw2, "act")
    assert not any(isinstance(m, ChannelShuffle) for m in ShuffleV1Unit(144, 144, 1, 1).modules())


def test_stride1_unit_adds_identity_then_relu():
    unit = ShuffleV1Unit(48, 48, 1, 4).eval()
    x = torch.randn(2, 48, 8, 8)
    torch.testing.assert_close(unit(x), F.relu(unit.main(x) + x))


def test_stride2_unit_concats_avg_pooled_shortcut():
    unit = ShuffleV1Unit(24, 240, 2, 3, grouped_first=False).eval()
    # mid = total out // 4 = 60 even in a stride-2 unit; main branch emits out - in = 216
    assert unit.main[0].conv.out_channels == 60
    assert unit.main[-1].conv.out_channels == 216
    x = torch.relu(torch.randn(1, 24, 56, 56))  # unit inputs follow a ReLU
    y = unit(x)
    assert y.shape == (1, 240, 28, 28)
    torch.testing.assert_close(y[:, :24], F.avg_pool2d(x, 3, 2, 1))
    torch.testing.assert_close(y[:, 24:], F.relu(unit.main(x)))
    assert (y >= 0).all()  # ReLU on the main branch only equals the paper's ReLU after concat


def test_se_variant():
    base = cnnlab.complexity("shufflenet_v1_g3_x2_0").macs
    se = cnnlab.complexity("shufflenet_v1_g3_x2_0_se").macs
    # SE (r=16) on every main branch: two 1x1 convs c -> c/16 -> c; main widths of 2x g=3
    mains = [480 - 48] + [480] * 3 + [960 - 480] + [960] * 7 + [1920 - 960] + [1920] * 3
    assert se - base == sum(2 * c * (c // 16) for c in mains)
    assert rounds_to(se / 1e6, "526.49")  # Table 5: 527 M
    units = list(cnnlab.create_model("shufflenet_v1_g3_x2_0_se").features.children())
    assert all(isinstance(u.main[-1], SqueezeExcite) for u in units[2:])


def test_g8_conv1_12_is_impossible_as_the_exception_note_says():
    cfg = ShuffleNetV1Config(groups=8, stem=12, stage_channels=(96, 192, 384))
    with pytest.raises(ValueError, match=r"layer 'stage2_0'.*output 84 .*groups=8"):
        Net(cfg, plan(cfg))


def test_bad_widths_name_layer_and_numbers():
    name = "shufflenet_v1_g3_x1_0"
    with pytest.raises(ValueError, match=r"layer 'stage3_0'.*c_out // 4 = 121 .*groups=3"):
        cnnlab.create_model(name, stage_channels=(240, 484, 960))
    with pytest.raises(ValueError, match=r"layer 'stage2_0'.*= 60 .*groups=8"):
        cnnlab.create_model(name, groups=8)
    with pytest.raises(ValueError, match=r"layer 'stage2_0'.*= 60 .*groups=8"):
        cnnlab.complexity(name, groups=8)  # the analytic path refuses it the same way
    with pytest.raises(ValueError, match=r"layer 'stage3_0'.*c_out > c_in.*c_in=240, c_out=200"):
        cnnlab.create_model(name, stage_channels=(240, 200, 960))


def test_bad_config_values():
    name = "shufflenet_v1_g3_x1_0"
    with pytest.raises(ValueError, match="groups=5 is not one of Table 1's 1, 2, 3, 4, 8"):
        cnnlab.create_model(name, groups=5)
    with pytest.raises(ValueError, match=r"must all be >= 1; got stem=0"):
        cnnlab.create_model(name, stem=0)
    with pytest.raises(ValueError, match=r"stage_channels=\(240, 0, 960\)"):
        cnnlab.create_model(name, stage_channels=(240, 0, 960))
    with pytest.raises(ValueError, match="stride must be 1 or 2, got 3"):
        ShuffleV1Unit(24, 48, 3, 1)
    with pytest.raises(ValueError, match="c_in=30 is not divisible by groups=4"):
        ShuffleV1Unit(30, 66, 2, 4)


def test_config_for_builds_named_variant():
    cfg = config_for(4, 0.5, se=True)
    assert (cfg.groups, cfg.stem, cfg.stage_channels, cfg.se) == (4, 12, (144, 272, 544), True)
