"""CondenseNet: learned group convolution, condensation, conversion, paper figures, bad input."""

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.blocks.condense import (
    GROUP_LASSO_WEIGHT,
    CondenseConv,
    LearnedGroupConv,
    condense_stage,
    condense_step,
    group_lasso,
)
from cnnlab.counting.trace import traced_counts
from cnnlab.models import get_entry, model_config
from cnnlab.models.condensenet import (
    condense_classifier,
    condensenet_paper_flops,
    convert_condensenet,
)
from cnnlab.ops.cost import Cx
from tests.paper import matches_printed, rounds_to

TINY = dict(stages=(2, 2), growth=(4, 8))  # stem 8 maps; features 8 + 2*4 + 2*8 = 32


def test_trace_counts_index_select_as_read_input_and_index_write_output():
    class Index(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.tensor([3, 0, 0, 5, 1]))

        def forward(self, x):
            return torch.index_select(x, 1, self.index)

    t = traced_counts(Index(), (6, 4, 4))
    assert t.memory_access == 6 * 16 + 5 + 5 * 16
    assert (t.macs, t.activations) == (0, 0)


# ---- condensation schedule and learned group convolution ----------------------------------------


@pytest.mark.parametrize(
    "progress,c,stage",
    [(0.0, 4, 0), (0.16, 4, 0), (1 / 6, 4, 1), (0.34, 4, 2), (0.5, 4, 3), (1.0, 4, 3)]
    + [(0.49, 8, 6), (0.5, 8, 7), (0.3, 1, 0)],
)
def test_stage_s_starts_when_twice_the_progress_reaches_s_over_c_minus_1(progress, c, stage):
    assert condense_stage(progress, c) == stage


def test_each_group_drops_its_weakest_inputs_of_the_strided_output_set():
    lgc = LearnedGroupConv(8, 4, groups=2, condense_factor=4)  # groups are outputs {0, 2}, {1, 3}
    importance = torch.arange(8, 0, -1, dtype=torch.float)  # 8 7 ... 1
    with torch.no_grad():
        lgc.conv.weight.copy_(torch.stack([importance, -importance.flip(0)] * 2)[..., None, None])
    lgc.condense()  # delta = 8 / 4 = 2 inputs per group
    assert lgc.group_mask()[0].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert lgc.group_mask()[1].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]
    assert torch.equal(lgc.mask[2], lgc.mask[0]) and torch.equal(lgc.mask[3], lgc.mask[1])
    lgc.condense()
    lgc.condense()
    assert lgc.done and lgc.group_mask().sum(1).tolist() == [2, 2]  # each group keeps 8 / C
    assert lgc.group_mask()[0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="all 3 stages"):
        lgc.condense()


def test_group_lasso_is_the_sum_of_group_column_norms_until_condensing_ends():
    lgc = LearnedGroupConv(8, 4, groups=2, condense_factor=4)
    with torch.no_grad():
        lgc.conv.weight.fill_(3.0)
    # each (group, input) column holds two weights of 3: norm sqrt(18); 2 groups x 8 inputs
    assert group_lasso(lgc).item() == pytest.approx(16 * 18**0.5)
    lgc.condense()  # 2 columns per group masked: clamped to sqrt(1e-6)
    assert group_lasso(lgc).item() == pytest.approx(12 * 18**0.5 + 4 * 1e-3)
    condense_step(lgc, 1.0)
    assert group_lasso(lgc).item() == 0.0
    assert GROUP_LASSO_WEIGHT == 1e-5


def test_condense_step_runs_every_stage_reached_and_refuses_a_bad_progress():
    net = cnnlab.create_model("condensenet74_c4_g4", condensed=False, **TINY)
    layers = [m for m in net.modules() if isinstance(m, LearnedGroupConv)]
    assert len(layers) == 4 and condense_step(net, 0.1) == 0
    assert condense_step(net, 0.4) == 2 * 4  # a jump over stages 1 and 2 runs both
    assert condense_step(net, 0.4) == 0
    assert condense_step(net, 0.7) == 4 and all(m.done for m in layers)
    with pytest.raises(ValueError, match="progress must be in"):
        condense_step(net, 1.5)


# ---- a tiny training run, then the conversion to the test-time model ----------------------------


def _condensed_training_run(groups: int, condense_factor: int, steps: int = 8) -> nn.Module:
    """A few SGD steps on random 32x32 data, progress driven from 0 to 1 through every stage."""
    cfg = dict(group_1x1=groups, group_3x3=groups, condense_factor=condense_factor, **TINY)
    net = cnnlab.create_model("condensenet74_c4_g4", num_classes=5, condensed=False, **cfg)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))
    for step in range(steps):
        condense_step(net, step / (steps - 1))
        loss = nn.functional.cross_entropy(net(x), y) + GROUP_LASSO_WEIGHT * group_lasso(net)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def _converted_params(g, c, stages=(2, 2), growth=(4, 8), classes=5, keep=0.5):
    """Closed form: stem; per layer BN(c_in*G/C), 1x1 out*(c_in/C), BN(4k), 3x3 G-conv; BN; FC."""
    width = 2 * growth[0]
    total = 3 * width * 9
    for n, k in zip(stages, growth):
        for _ in range(n):
            total += 2 * width * g // c + 4 * k * width // c + 2 * 4 * k + k * (4 * k // g) * 9
            width += k
    kept = int(width * keep)
    return total + 2 * width + kept * classes + classes


@pytest.mark.parametrize("groups,condense_factor", [(4, 4), (2, 4)])
def test_converted_model_computes_what_the_condensed_training_model_computes(
    groups, condense_factor
):
    net = _condensed_training_run(groups, condense_factor)
    layers = [m for m in net.modules() if isinstance(m, LearnedGroupConv)]
    assert all(m.done for m in layers)
    for m in layers:  # every group keeps exactly in_channels / C inputs
        assert m.group_mask().sum(1).tolist() == [m.c_in // condense_factor] * groups
    kept = condense_classifier(net)
    assert kept.numel() == 16  # int(0.5 * 32)
    test_time = convert_condensenet(net)
    net.eval()
    test_time.eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert (net(x) - test_time(x)).abs().max().item() <= 1e-5
    params = sum(p.numel() for p in test_time.parameters())
    assert params == _converted_params(groups, condense_factor)
    c = cnnlab.complexity(test_time, (3, 32, 32))
    t = traced_counts(test_time, (3, 32, 32))
    assert c.method == "analytic"
    assert (c.params, c.macs, c.activations, c.memory_access) == (
        params,
        t.macs,
        t.activations,
        t.memory_access,
    )
    # the training-time network (masked full 1x1 convs) is counted exactly too
    c, t = cnnlab.complexity(net, (3, 32, 32)), traced_counts(net, (3, 32, 32))
    assert (c.params, c.macs, c.memory_access) == (t.params, t.macs, t.memory_access)


def test_the_converted_layer_is_index_bn_relu_group_conv_shuffle():
    net = cnnlab.create_model("condensenet74_c8_g8", stages=(1, 1), growth=(8, 16))
    layer = net.features.block1_1.conv_1
    assert isinstance(layer, CondenseConv) and layer.index.numel() == 16  # c_in=16, G/C=1
    assert (layer.conv.groups, layer.conv.in_channels, layer.conv.out_channels) == (8, 16, 32)
    cx = CondenseConv.complexity(Cx(16, 4, 4), 16, 32, groups=8, condense_factor=8)
    index, bn_relu = 16 * 16 + 16 + 16 * 16, 2 * 16 * 16 + 2 * 16 + 2 * 16 * 16
    conv, shuffle = 16 * 16 + 32 * 16 + 32 * 2, 2 * 32 * 16
    assert cx.memory_access == index + bn_relu + conv + shuffle
    assert cx.macs == 16 * 32 * 2  # 1x1 G-conv: 4*4 positions x 32 outputs x 16/8 inputs


def test_conversion_refuses_an_unfinished_or_wrong_model():
    net = cnnlab.create_model("condensenet74_c4_g4", condensed=False, **TINY)
    condense_step(net, 0.2)
    with pytest.raises(ValueError, match="stage 1 of 3"):
        convert_condensenet(net)
    with pytest.raises(ValueError, match="training-time CondenseNet"):
        convert_condensenet(cnnlab.create_model("condensenet74_c4_g4", **TINY))
    condense_step(net, 0.5)
    net.reset_classifier(0)
    with pytest.raises(ValueError, match="num_classes=0"):
        convert_condensenet(net)


# ---- the registered CondenseNet-74 models and the paper's counting convention -----------------


@pytest.mark.parametrize(
    "name,macs,params,paper_flops",
    [
        ("condensenet74_c4_g4", "516.6", "4.77", "529.3"),
        ("condensenet74_c8_g8", "261.5", "2.94", "274.2"),
    ],
)
def test_conv_fc_macs_and_the_papers_bn_and_pool_convention(name, macs, params, paper_flops):
    c = cnnlab.complexity(name)
    assert rounds_to(c.macs / 1e6, macs) and rounds_to(c.params / 1e6, params)
    ours = condensenet_paper_flops(name)
    assert rounds_to(ours / 1e6, paper_flops)
    paper = get_entry(name).paper
    assert paper.macs == paper_flops.split(".")[0] and matches_printed(ours / 1e6, paper.macs)
    assert paper.computed_macs == macs and f"{paper_flops} M" in paper.note


def test_paper_convention_adds_bn_outputs_and_avg_pool_inputs_of_the_built_network():
    net = cnnlab.create_model("condensenet74_c4_g4", **TINY).eval()
    size = (3, 64, 64)
    macs = traced_counts(net, size).macs
    extra = []

    def on_bn(m, inp, out):
        extra.append(out.numel())

    def on_pool(m, inp, out):
        extra.append(inp[0].numel())

    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(on_bn)
        if isinstance(m, nn.AvgPool2d) or m is net.features.norm_final:
            m.register_forward_hook(on_pool)  # the final BN-ReLU feeds the official 7x7 pool
    net(torch.zeros(1, *size))
    expected = macs + sum(extra)
    assert condensenet_paper_flops(net, size) == expected
    with pytest.raises(TypeError, match="not a CondenseNet"):
        condensenet_paper_flops(model_config("densenet121"))


def test_registered_models_are_the_test_time_architecture_at_224():
    net = cnnlab.create_model("condensenet74_c8_g8")
    assert [type(m).__name__ for m in net.features.children()][:2] == [
        "ConvNormAct",
        "CondenseLayer",
    ]
    assert net.features.stem.conv.stride == (2, 2) and net.features.stem.conv.out_channels == 16
    assert net.num_features == 1032  # int(0.5 * (16 + 4*8 + 6*16 + 8*32 + 10*64 + 8*128))
    assert get_entry("condensenet74_c8_g8").input_size == (3, 224, 224)
    assert sum(isinstance(m, CondenseConv) for m in net.modules()) == 4 + 6 + 8 + 10 + 8


@pytest.mark.parametrize(
    "override,message",
    [
        (dict(growth=(8, 16)), "one rate >= 1 per stage"),
        (dict(growth=(6, 8, 8, 8, 8), group_1x1=2, group_3x3=2), "condense_factor=4"),
        (dict(group_3x3=3), "divisible by groups=3"),
        (dict(condense_factor=0), "C must be >= 1"),
        (dict(fc_keep=1.5), "keep must be in"),
    ],
)
def test_impossible_configurations_are_refused_at_construction(override, message):
    with pytest.raises(ValueError, match=message):
        cnnlab.create_model("condensenet74_c4_g4", **override)


def test_small_input_is_the_cifar_network_with_a_stride_1_stem():
    net = cnnlab.create_model("condensenet74_c4_g4", small_input=True, **TINY).eval()
    assert net.features.stem.conv.stride == (1, 1)
    assert net.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 16, 16, 16)
    c, t = cnnlab.complexity(net, (3, 32, 32)), traced_counts(net, (3, 32, 32))
    assert (c.params, c.macs, c.memory_access) == (t.params, t.macs, t.memory_access)
