"""MobileNet v1 (Howard et al. 2017): Table 1 structure, width multiplier, Table 6 figures."""

import pytest
import torch

import cnnlab
from cnnlab.counting.trace import traced_counts
from cnnlab.models.mobilenet_v1 import TABLE
from cnnlab.ops.conv import SeparableConv
from tests.paper import rounds_to

# docs/provenance.md#mobilenet-v1 [V-calc]: MACs (M) of the int(c * alpha) rule at 224
COMPUTED_MACS = {"x0_25": "41.03", "x0_5": "149.50", "x0_75": "325.40", "x1_0": "568.74"}


@pytest.mark.parametrize("tag", list(COMPUTED_MACS))
def test_macs_reproduce_the_computed_table(tag):
    macs = cnnlab.complexity(f"mobilenet_v1_{tag}").macs / 1e6
    assert rounds_to(macs, COMPUTED_MACS[tag]), (tag, macs)


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0])
def test_macs_equal_the_papers_closed_form(width):
    # §3.1, Eq. 5: a separable layer costs D_K*D_K*M*D_F*D_F + M*N*D_F*D_F
    def a(c):
        return int(c * width)

    side, m = 112, a(32)
    total = side * side * m * 3 * 9  # conv1: 3x3 s2 on 3 channels
    for c, s in TABLE:
        side //= s
        n = a(c)
        total += 9 * m * side * side + m * n * side * side
        m = n
    total += m * 1000  # FC
    assert cnnlab.complexity("mobilenet_v1_x1_0", width=width).macs == total


def test_table_1_shapes():
    model = cnnlab.create_model("mobilenet_v1_x1_0").eval()
    assert len(model.features) == 14  # conv1 + 13 depthwise-separable layers
    assert all(isinstance(m, SeparableConv) for m in list(model.features)[1:])
    x = torch.zeros(1, 3, 224, 224)
    assert model.forward_features(x).shape == (1, 1024, 7, 7)
    assert model.get_classifier().in_features == 1024


def test_width_multiplier_scales_every_layer_conv1_included():
    model = cnnlab.create_model("mobilenet_v1_x0_75")
    assert model.features.conv1.conv.out_channels == 24
    outs = [m.c_out for m in list(model.features)[1:]]
    assert outs == [int(c * 0.75) for c, _ in TABLE]
    assert model.num_features == 768


@pytest.mark.parametrize("mid", ["bn_relu", "bn", "relu", "none"])
def test_mid_choice_analytic_equals_traced(mid):
    model = cnnlab.create_model("mobilenet_v1_x0_25", mid=mid)
    analytic = cnnlab.complexity("mobilenet_v1_x0_25", mid=mid)
    traced = traced_counts(model, (3, 224, 224))
    assert (analytic.params, analytic.macs) == (traced.params, traced.macs)
    assert analytic.memory_access == traced.memory_access
    # BN between depthwise and pointwise adds 2 params per depthwise channel, nothing else
    base = cnnlab.complexity("mobilenet_v1_x0_25", mid="relu")
    dw_channels = sum(int(c * 0.25) for c in (32,) + tuple(c for c, _ in TABLE[:-1]))
    with_bn = 2 * dw_channels if mid in ("bn_relu", "bn") else 0
    assert analytic.params - base.params == with_bn
    assert analytic.macs == base.macs


@pytest.mark.parametrize("width", [1.0, 1.25])
def test_equals_timm_mobilenetv1(width):
    timm = pytest.importorskip("timm")
    # timm uses ReLU6 by default; the paper (and cnnlab) use ReLU
    ref = timm.create_model(f"mobilenetv1_{round(width * 100)}", act_layer="relu").eval()
    ours = cnnlab.create_model("mobilenet_v1_x1_0", width=width).eval()
    src, dst = ref.state_dict(), ours.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    ours.load_state_dict(dict(zip(dst, src.values(), strict=True)))
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)
    assert sum(p.numel() for p in ours.parameters()) == {1.0: 4_231_976, 1.25: 6_270_840}[width]


def test_bad_width_is_refused():
    with pytest.raises(ValueError, match=r"width=0"):
        cnnlab.create_model("mobilenet_v1_x1_0", width=0)
    with pytest.raises(ValueError, match=r"width=-0.5"):
        cnnlab.complexity("mobilenet_v1_x1_0", width=-0.5)
    with pytest.raises(ValueError, match=r"'conv1'.*int\(32 \* 0.02\) = 0"):
        cnnlab.create_model("mobilenet_v1_x1_0", width=0.02)


def test_bad_mid_and_table_are_refused():
    with pytest.raises(ValueError, match=r"mid='bnrelu'.*bn_relu"):
        cnnlab.create_model("mobilenet_v1_x1_0", mid="bnrelu")
    with pytest.raises(ValueError, match=r"'sep2'.*int\(3 \* 0.25\) = 0"):
        cnnlab.create_model("mobilenet_v1_x0_25", table=((64, 1), (3, 2)))
