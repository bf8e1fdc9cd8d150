"""DSOD300: the stem, the six prediction scales, learn/reuse halves, params against the README."""

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.blocks.dsod import DenseScale, LearnReuse
from cnnlab.models import model_config
from cnnlab.models.dsod import SCALES, prediction_scales
from tests.paper import matches_printed, rounds_to


def _scale_shapes(size):
    rows = cnnlab.complexity("dsod300_backbone", (3, size, size)).rows
    return [r.cx.shape for r in rows if r.name in SCALES]


def test_six_scales_at_300_are_38_19_10_5_3_2():
    assert _scale_shapes(300) == [
        (800, 38, 38),
        (512, 19, 19),
        (512, 10, 10),
        (256, 5, 5),
        (256, 3, 3),
        (256, 2, 2),
    ]


def test_prediction_scales_match_the_analytic_shapes_and_end_the_features():
    torch.manual_seed(0)
    net = cnnlab.create_model("dsod300_backbone", num_classes=3).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        scales = prediction_scales(net, x)
        assert [tuple(s.shape[1:]) for s in scales] == _scale_shapes(96)
        assert torch.equal(scales[-1], net.forward_features(x))


def test_stem_and_first_pool():
    f = cnnlab.create_model("dsod300_backbone").features
    convs = [f.stem1.conv, f.stem2.conv, f.stem3.conv]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (64, (3, 3), (2, 2)),
        (64, (3, 3), (1, 1)),
        (128, (3, 3), (1, 1)),
    ]
    assert f.stem_pool(torch.zeros(1, 1, 150, 150)).shape[-1] == 75  # 300 -> 150 -> 75
    assert f.block1_1.conv2.out_channels == 48  # growth rate 48
    assert f.pool1(torch.zeros(1, 1, 75, 75)).shape[-1] == 38  # Caffe's ceil rounding


def test_learn_reuse_halves():
    torch.manual_seed(0)
    unit = LearnReuse(6, 4).eval()
    x = torch.randn(1, 6, 5, 5)
    with torch.no_grad():
        y = unit(x)
        assert torch.equal(y[:, :4], unit.reuse(unit.pool(x)))
        assert torch.equal(y[:, 4:], unit.learn(x))
    assert y.shape == (1, 8, 3, 3)
    scale = DenseScale(6, 2, (1, 1), 2, c_learn=3, c_reuse=5).eval()
    with torch.no_grad():
        y = scale(x)
        assert torch.equal(y[:, 3:], scale.reuse(scale.pool(x)))
    assert y.shape == (1, 8, 3, 3)


def _backbone_params():
    # the official DSOD300_V3_Body, counted by hand: BN gamma/beta (Caffe Scale) + conv weights
    def preact(c_in, c_out, k):
        return 2 * c_in + c_in * c_out * k * k

    p = 3 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64 + 64 * 128 * 9 + 2 * 128
    c, widths = 128, []
    for n, out in ((6, None), (8, None), (8, None), (8, 256)):
        for _ in range(n):
            p += preact(c, 192, 1) + preact(192, 48, 3)
            c += 48
        p += preact(c, out or c, 1)  # transitions keep the width; the last projects to 256
        widths.append(c)
        c = out or c
    assert widths[1] == 800  # scale 1: 128 + 14 * 48
    p += preact(widths[1], 256, 1)  # the reused half of scale 2
    c = 512
    for half in (256, 128, 128, 128):
        p += 2 * preact(c, half, 1) + preact(half, half, 3)
        c = 2 * half
    return p


# the SSD heads of DSOD300_pascal.py: sources, their widths and priors per location
_SOURCES = [(800, 4), (512, 6), (512, 6), (256, 6), (256, 4), (256, 4)]


def _head_params(classes=21):
    # L2 Normalize (one scale per channel), 3x3 conv (no bias) + BN-Scale for loc and conf
    return sum(c + (9 * c + 2) * (4 + classes) * p for c, p in _SOURCES)


def test_params_with_the_official_heads_are_the_readme_14_8_m():
    backbone = cnnlab.complexity("dsod300_backbone", num_classes=0).params
    assert backbone == _backbone_params() == 11_802_912
    assert _head_params() == 2_912_892
    learnable = backbone + _head_params()
    assert matches_printed(learnable / 1e6, "14.8")  # 14.716 M
    # Caffe BatchNorm blobs: mean, variance (c each) and the moving-average factor (1)
    net = cnnlab.create_model("dsod300_backbone", num_classes=0)
    stats = sum(2 * m.num_features + 1 for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    stats += sum((2 * 4 * p + 1) + (2 * 21 * p + 1) for _, p in _SOURCES)  # loc, conf BNs
    assert stats == 80_024
    assert rounds_to((learnable + stats) / 1e6, "14.8")  # 14,795,828: the caffemodel's blobs


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(blocks=(6, 8)), r"blocks must be >= 3 layer counts >= 1"),
        (dict(stem=(64, 64)), r"stem must be three widths >= 1"),
        (dict(halves=()), r"halves must be widths >= 1"),
        (dict(growth=0), "growth rate k must be >= 1, got 0"),
    ],
)
def test_bad_config_raises(override, message):
    with pytest.raises(ValueError, match=message):
        model_config("dsod300_backbone", **override)
