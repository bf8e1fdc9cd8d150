"""GUNN: the gradually updated layer's ordering (exact), GUNN-15's params against the README."""

import pytest
import torch

import cnnlab
from cnnlab.blocks.gunn import GunnLayer
from cnnlab.counting.trace import traced_counts
from cnnlab.models import model_config
from cnnlab.ops.cost import Cx
from tests.paper import matches_printed


def _inputs_seen_by_each_update(layer, x):
    seen = []
    hooks = [
        u.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone())) for u in layer.units
    ]
    with torch.no_grad():
        y = layer(x)
    for h in hooks:
        h.remove()
    return seen, y


def test_each_update_sees_the_updated_segments_before_it_and_the_untouched_ones_after():
    torch.manual_seed(0)
    layer = GunnLayer(12, 4).eval()
    x = torch.randn(2, 12, 5, 5)
    seen, y = _inputs_seen_by_each_update(layer, x)
    xs, ys = x.split(3, 1), y.split(3, 1)
    for i, z in enumerate(seen):
        # before update i: segments < i hold their final outputs, segments >= i their inputs
        assert torch.equal(z, torch.cat(ys[:i] + xs[i:], 1))
        with torch.no_grad():
            assert torch.equal(ys[i], xs[i] + layer.units[i](z))


def test_later_segments_depend_on_earlier_updates_not_the_reverse():
    torch.manual_seed(0)
    layer = GunnLayer(8, 4).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        y = layer(x)
        unit0 = layer.units[0]
        for p in unit0.parameters():  # a different first update ...
            p.add_(0.5)
        y2 = layer(x)
    changed = [not torch.equal(a, b) for a, b in zip(y.split(2, 1), y2.split(2, 1))]
    assert changed == [True, True, True, True]  # ... reaches every later segment
    torch.manual_seed(0)
    layer = GunnLayer(8, 4).eval()
    with torch.no_grad():
        y = layer(x)
        for p in layer.units[3].parameters():  # a different last update ...
            p.add_(0.5)
        y2 = layer(x)
    changed = [not torch.equal(a, b) for a, b in zip(y.split(2, 1), y2.split(2, 1))]
    assert changed == [False, False, False, True]  # ... changes only the last segment


def test_zero_updates_make_the_layer_the_identity():
    layer = GunnLayer(8, 2).eval()
    with torch.no_grad():
        for unit in layer.units:  # the last BN of each branch outputs zeros
            for bn in (unit.conv[2].bn, unit.shortcut.bn):
                bn.weight.zero_()
                bn.bias.zero_()
        x = torch.randn(1, 8, 4, 4)
        assert torch.equal(layer(x), x)


def _unit_params(c, o):
    # 1x1 c->2o, 3x3 2o->2o, 1x1 2o->o, projection 1x1 c->o; a BN (2 per channel) after each
    return c * 2 * o + 4 * o + 9 * 4 * o * o + 4 * o + 2 * o * o + 2 * o + c * o + 2 * o


def _gunn15_params(classes):
    p = 27 * 64 + 2 * 64
    c = 64
    for w, k in ((240, 20), (300, 25), (360, 30)):
        p += c * w + 2 * w + k * _unit_params(w, w // k)
        c = w
    p += 360 * 360 + 2 * 360
    return p + 360 * classes + classes


def test_gunn15_params_are_the_readme_1_6_m():
    for classes, total in ((10, 1_585_746), (100, 1_618_236)):
        assert _gunn15_params(classes) == total
        assert cnnlab.complexity("gunn15_cifar", num_classes=classes).params == total
        assert matches_printed(total / 1e6, "1.6")


def test_gunn18_params_are_the_readme_28_9_m():
    # ResNet stem 7x7/2 64; stages 400/10, 800/20, 1600/40, 2000/50 (40-channel segments), no
    # projection shortcut in the ImageNet update unit; FC 1000
    def unit(c, o):
        return c * 2 * o + 4 * o + 9 * 4 * o * o + 4 * o + 2 * o * o + 2 * o

    p, c = 49 * 3 * 64 + 2 * 64, 64
    for w, k in ((400, 10), (800, 20), (1600, 40), (2000, 50)):
        p += c * w + 2 * w + k * unit(w, w // k)
        c = w
    p += 2000 * 1000 + 1000
    assert cnnlab.complexity("gunn18").params == p == 28_909_736
    assert matches_printed(p / 1e6, "28.9")
    rows = cnnlab.complexity("gunn18").rows
    assert [r.cx.h for r in rows if r.name.startswith("gunn")] == [56, 28, 14, 7]


def test_gunn15_stages_and_segments():
    net = cnnlab.create_model("gunn15_cifar")
    layers = [net.features.gunn1, net.features.gunn2, net.features.gunn3]
    assert [(g.c, len(g.units), g.c_seg) for g in layers] == [
        (240, 20, 12),
        (300, 25, 12),
        (360, 30, 12),
    ]
    rows = cnnlab.complexity("gunn15_cifar").rows
    assert [r.cx.h for r in rows if r.name.startswith("gunn")] == [32, 16, 8]


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(widths=(241, 300, 360)), "241 channels cannot be split into K=20 equal segments"),
        (dict(segments=(20, 25)), r"need one entry per stage"),
        (dict(final=-1), "stem_width must be >= 1 and final >= 0"),
        (dict(stem="resnet"), "stem must be one of"),
    ],
)
def test_bad_config_raises(override, message):
    with pytest.raises(ValueError, match=message):
        model_config("gunn15_cifar", **override)


@pytest.mark.parametrize("segments", [1, 2, 5])
@pytest.mark.parametrize("shortcut", [True, False])
def test_layer_analytic_equals_traced(segments, shortcut):
    # the count repeats the cost of updates 2..K instead of walking each: it must still match
    layer = GunnLayer(20, segments, shortcut)
    analytic = GunnLayer.complexity(Cx(20, 6, 5), 20, segments, shortcut)
    traced = traced_counts(layer, (20, 6, 5))
    assert (analytic.params, analytic.macs) == (traced.params, traced.macs)
    assert (analytic.activations, analytic.memory_access) == (
        traced.activations,
        traced.memory_access,
    )
