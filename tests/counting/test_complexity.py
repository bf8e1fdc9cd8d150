"""Analytic complexity against the built module, for every registered model."""

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.counting.analytic import clear_caches
from cnnlab.counting.trace import traced_counts
from cnnlab.models import get_entry
from cnnlab.models.net import Layer, Plan, clear_cost_caches, plan_cost
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, conv2d_cx, conv_out, linear_cx


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_analytic_equals_traced(name):
    size = get_entry(name).input_size
    model = cnnlab.create_model(name)
    analytic = cnnlab.complexity(name, size)
    traced = traced_counts(model, size)
    assert analytic.params == sum(p.numel() for p in model.parameters())
    assert analytic.params == traced.params
    assert analytic.macs == traced.macs
    assert analytic.activations == traced.activations
    assert analytic.memory_access == traced.memory_access
    # a built model and its name give the same analytic figures
    assert cnnlab.complexity(model, size).macs == analytic.macs


def _counts(name, size=None, **overrides):
    c = cnnlab.complexity(name, size, **overrides)
    return [(r.name, r.kind, tuple(r.cx)) for r in c.rows]


# configs whose layers share blocks with the registered ones but not all their arguments
_VARIANTS = [
    ("shufflenet_v2_x1_0", {"stage_channels": (120, 240, 480)}),
    ("shufflenet_v2_x1_0", {"repeats": (3, 7, 3)}),
    ("mobilenet_v2_x1_0", {"width": 0.75}),
    ("densenet121", {"growth": 24}),
    ("nasnet_a_mobile", {"f": 32}),
]


def test_remembered_counts_equal_cold_counts():
    # every model counted with the memo full of other models' plans and blocks equals the same
    # model counted cold
    cases = [(n, {}) for n in cnnlab.list_models()] + _VARIANTS
    warm = [_counts(name, **overrides) for name, overrides in cases]
    for (name, overrides), counted in zip(cases, warm):
        clear_caches()
        assert counted == _counts(name, **overrides), (name, overrides)


def test_a_model_counted_again_is_looked_up_and_a_cleared_cache_counts_afresh():
    first = cnnlab.complexity("shufflenet_v2_x1_0")
    assert cnnlab.complexity("shufflenet_v2_x1_0") is first  # remembered: the same result
    clear_caches()
    again = cnnlab.complexity("shufflenet_v2_x1_0")
    assert again is not first and again == first


def test_layers_differing_only_in_arguments_do_not_share_a_count():
    def conv(name, c_in, k):
        return Layer(name, ConvNormAct, {"c_in": c_in, "c_out": 8, "k": k})

    clear_cost_caches()
    cfg = get_entry("shufflenet_v2_x1_0").cfg
    plan = Plan([conv("stem", 3, 1), conv("a", 8, 3), conv("a", 8, 1), conv("b", 8, 3)], 8)
    _, k3, k1, same, _head = plan_cost(cfg, plan, (3, 6, 6))
    assert (k3.cx.macs, k1.cx.macs) == (36 * 8 * 8 * 9, 36 * 8 * 8)
    assert same.cx is k3.cx  # equal block and arguments on an equal input: counted once


def test_a_layer_with_unhashable_arguments_is_counted_without_the_memo():
    class Scale(nn.Module):
        def __init__(self, factors):
            super().__init__()

        @staticmethod
        def complexity(cx, factors):
            return cx.add(memory_access=len(factors) * cx.numel)

    layer = Layer("s", Scale, {"factors": [1.0, 2.0]})
    cfg = get_entry("shufflenet_v2_x1_0").cfg
    rows = plan_cost(cfg, Plan([layer, layer], 3), (3, 4, 4))
    assert [r.cx.memory_access for r in rows[:2]] == [96, 96]  # each row: its layer alone


def test_pointwise_conv_memory_access_is_shufflenet_v2_eq1():
    # ShuffleNet v2 §2: a 1x1 conv has B = h*w*c1*c2 and MAC = h*w*(c1+c2) + c1*c2
    h, w, c1, c2 = 56, 56, 128, 64
    out = conv2d_cx(Cx(c1, h, w), c2, 1)
    assert out.macs == h * w * c1 * c2
    assert out.memory_access == h * w * (c1 + c2) + c1 * c2
    # Eq. 1's bound: MAC >= 2*sqrt(h*w*B) + B/(h*w), equality at c1 == c2
    eq = conv2d_cx(Cx(96, h, w), 96, 1)
    bound = 2 * (h * w * eq.macs) ** 0.5 + eq.macs / (h * w)
    assert eq.memory_access == pytest.approx(bound)
    assert out.memory_access > 2 * (h * w * out.macs) ** 0.5 + out.macs / (h * w)


@pytest.mark.parametrize(
    "k,stride,padding,groups,hw",
    [(3, 2, None, 1, (15, 15)), (1, 1, 0, 4, (7, 9)), (5, 2, 1, 2, (9, 6)), (3, 1, 1, 8, (5, 5))],
)
def test_conv_int_and_pair_arguments_agree(k, stride, padding, groups, hw):
    # square int arguments and the same conv spelt with pairs count alike, as torch builds it
    cx = Cx(8, *hw, 1, 2, 3, 4)
    pad = padding if padding is not None else (k - 1) // 2
    fast = conv2d_cx(cx, 16, k, stride=stride, padding=padding, groups=groups)
    general = conv2d_cx(cx, 16, (k, k), stride=(stride, stride), padding=(pad, pad), groups=groups)
    assert fast == general
    y = torch.nn.Conv2d(8, 16, k, stride, pad, groups=groups)(torch.zeros(1, 8, *hw))
    assert fast.shape == tuple(y.shape[1:])


@pytest.mark.parametrize("hw,size", [((2, 9), 2), ((9, 2), 2), ((1, 1), 1)])
def test_conv_too_small_input_names_the_failing_side(hw, size):
    # int arguments and pairs alike refuse it, with one message
    for k, pad in ((3, 0), ((3, 3), (0, 0))):
        with pytest.raises(ValueError, match=f"input of size {size} is too small for a window"):
            conv2d_cx(Cx(4, *hw), 4, k, padding=pad)


@pytest.mark.parametrize("groups", [0, 4, 5])
def test_conv_refuses_groups_that_do_not_divide_the_channels(groups):
    with pytest.raises(ValueError, match=f"must both be divisible by groups={groups}"):
        conv2d_cx(Cx(6, 8, 8), 9, 1, groups=groups)


def test_group_conv_memory_access_is_shufflenet_v2_eq2():
    h, w, c, g = 28, 28, 240, 3
    out = conv2d_cx(Cx(c, h, w), c, 1, groups=g)
    b = h * w * c * c // g
    assert out.macs == b
    assert out.memory_access == h * w * c + b * g // c + b // (h * w)


@pytest.mark.parametrize(
    "size,k,s,p,ceil",
    [(112, 3, 2, 1, False), (147, 3, 2, 1, False), (7, 3, 2, 0, True), (8, 2, 2, 0, True)],
)
def test_conv_out_matches_pytorch(size, k, s, p, ceil):
    y = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, size, size))
    assert conv_out(size, k, s, p, ceil=ceil) == y.shape[-1]


def test_linear_counts():
    out = linear_cx(Cx(1024, 1, 1), 1000)
    assert (out.params, out.macs, out.activations) == (1024 * 1000 + 1000, 1024 * 1000, 1000)


def test_traced_counts_any_module():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 4))
    c = cnnlab.complexity(m, (3, 4, 4))
    assert c.method == "traced"
    assert c.macs == 8 * 27 * 16 + 128 * 4
    assert c.params == 8 * 27 + 8 + 128 * 4 + 4
    # conv: read 48 + weights 224, write 128; relu 256; linear: read 128 + 516, write 4
    assert c.memory_access == (48 + 224 + 128) + 256 + (128 + 516 + 4)


def test_unknown_operator_is_refused():
    class Odd(nn.Module):
        def forward(self, x):
            return torch.cumsum(x, 1)

    with pytest.raises(NotImplementedError, match="cumsum"):
        traced_counts(Odd(), (3, 4, 4))


def test_input_size_must_match_in_chans():
    with pytest.raises(ValueError, match="in_chans=3"):
        cnnlab.complexity("shufflenet_v2_x1_0", (1, 224, 224))


def test_a_converted_network_is_traced_not_counted_from_its_stale_plan():
    from cnnlab.ops.norm import convert_norm

    model = cnnlab.create_model("shufflenet_v2_x0_5")
    assert cnnlab.complexity(model, (3, 64, 64)).method == "analytic"
    gn = convert_norm(model, "gn", groups=4)
    c = cnnlab.complexity(gn, (3, 64, 64))
    assert c.method == "traced"
    traced = traced_counts(gn, (3, 64, 64))
    assert (c.params, c.macs, c.memory_access) == (traced.params, traced.macs, traced.memory_access)
    # group norm cannot fold into the conv: it reads and writes its input
    assert c.memory_access > cnnlab.complexity(model, (3, 64, 64)).memory_access


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_a_built_model_counts_as_its_name(name):
    """A built registered model carries its registered input size: the same figures as by name."""
    by_name, built = cnnlab.complexity(name), cnnlab.complexity(cnnlab.create_model(name))
    assert built.input_size == by_name.input_size == get_entry(name).input_size
    assert (built.params, built.macs, built.activations, built.memory_access) == (
        by_name.params,
        by_name.macs,
        by_name.activations,
        by_name.memory_access,
    )
