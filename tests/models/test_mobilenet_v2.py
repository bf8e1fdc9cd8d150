"""MobileNet v2 widths and rounding against torchvision and TF-slim."""

import pytest
import torchvision

import cnnlab
from cnnlab.models.mobilenet_v2 import VARIANTS, make_divisible


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_width_equals_torchvision_width_mult(name):
    tv = cnnlab.complexity(torchvision.models.mobilenet_v2(width_mult=VARIANTS[name][0]))
    ours = cnnlab.complexity(name)
    assert (ours.params, ours.macs, ours.memory_access) == (tv.params, tv.macs, tv.memory_access)


def test_width_1_4_without_rounding():
    # paper prints 585 M; rounding to 8 gives 582.20 M, no rounding 571.7 M
    # (docs/provenance.md#mobilenet-v2)
    assert round(cnnlab.complexity("mobilenet_v2_x1_4").macs / 1e6, 2) == 582.20
    assert round(cnnlab.complexity("mobilenet_v2_x1_4", round_to=1).macs / 1e6, 1) == 571.7
    tv = torchvision.models.mobilenet_v2(width_mult=1.4, round_nearest=1)
    assert cnnlab.complexity("mobilenet_v2_x1_4", round_to=1).macs == cnnlab.complexity(tv).macs


def test_make_divisible():
    assert make_divisible(32 * 0.35) == 16  # 11.2 -> 8 would lose more than 10%
    assert make_divisible(24 * 1.4) == 32
    assert make_divisible(1280 * 1.4) == 1792


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width multiplier must be > 0, got 0"):
        cnnlab.create_model("mobilenet_v2_x1_0", width=0)
