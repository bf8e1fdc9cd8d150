"""clcNet (Zhang 2018): interlacing, the full channel receptive field condition, costs, models."""

import pytest
import torch

import cnnlab
from cnnlab.blocks.clc import CLCBlock, channel_receptive_field, full_channel_receptive_field
from cnnlab.counting.trace import traced_counts
from cnnlab.models.clcnet import CLCNetConfig, plan
from cnnlab.ops.cost import Cx
from cnnlab.ops.shuffle import ChannelShuffle


def official_interlace_index(c: int, g: int) -> list[int]:
    """ChannelInterlace.lua's forward index, 0-based: output p reads input f_idx[p]."""
    f_idx, n = [0] * c, 0
    for i in range(g):
        for p in range(i, c, g):
            f_idx[p] = n
            n += 1
    return f_idx


@pytest.mark.parametrize("c,g", [(12, 3), (16, 8), (8, 1), (8, 8)])
def test_interlace_is_the_official_channel_interlace(c, g):
    x = torch.randn(2, c, 3, 3)
    torch.testing.assert_close(ChannelShuffle(g)(x), x[:, official_interlace_index(c, g)])


def _positive_block(c_in: int, g1: int, g2: int) -> CLCBlock:
    """A CLC block whose every path carries a positive weight, so ReLU never hides a dependency."""
    block = CLCBlock(c_in, c_in, 1, g1, g2).eval()
    for conv in (block.igc.conv, block.gc.conv):
        conv.weight.data = conv.weight.data.abs() + 0.1
    return block


def _channels_seen(block: CLCBlock, c_in: int) -> list[int]:
    x = torch.rand(1, c_in, 5, 5, requires_grad=True)
    y = block(x)
    seen = []
    for o in range(y.shape[1]):
        (grad,) = torch.autograd.grad(y[0, o, 2, 2], x, retain_graph=True)
        seen.append(int((grad[0].abs().sum((1, 2)) > 0).sum()))
    return seen


# (C, g1, g2): g1 * g2 = C, < C and > C
CASES = [(16, 8, 2), (16, 4, 2), (16, 4, 4), (16, 8, 4), (16, 16, 2), (12, 6, 3), (12, 2, 6)]


@pytest.mark.parametrize("c,g1,g2", CASES)
def test_receptive_field_matches_the_closed_form(c, g1, g2):
    seen = _channels_seen(_positive_block(c, g1, g2), c)
    assert seen == [channel_receptive_field(c, g1, g2)] * c
    full = full_channel_receptive_field(c, g1, g2)
    assert full == (g1 * g2 <= c) == (seen[0] == c)
    assert CLCBlock(c, c, 1, g1, g2).full_receptive_field == full


def test_condition_fails_and_holds_as_the_paper_says():
    # g1 * g2 = 64 > 32: each output channel sees half of the input channels
    assert channel_receptive_field(32, 16, 4) == 16
    assert not full_channel_receptive_field(32, 16, 4)
    # g1 * g2 = 32 = C: the official clcNet setting, every input channel
    assert channel_receptive_field(32, 16, 2) == 32


def test_every_official_block_has_the_full_receptive_field_at_the_least_cost():
    for layer in plan(CLCNetConfig(repeats=(1, 1, 7, 3))).layers:
        if layer.block is CLCBlock:
            a = layer.args
            assert a["g1"] * a["g2"] == a["c_in"], layer.name


@pytest.mark.parametrize("stride", [1, 2])
def test_block_analytic_cost_equals_traced(stride):
    args = dict(c_in=16, c_out=32, stride=stride, g1=8, g2=2)
    analytic = CLCBlock.complexity(Cx(16, 9, 9), **args)
    traced = traced_counts(CLCBlock(**args), (16, 9, 9))
    assert (analytic.params, analytic.macs) == (traced.params, traced.macs)
    assert (analytic.activations, analytic.memory_access) == (
        traced.activations,
        traced.memory_access,
    )


def test_block_macs_closed_form():
    # IGC: h*w*C*(C/g1)*9; GC: h*w*c_out*(C/g2)
    cx = CLCBlock.complexity(Cx(64, 14, 14), 64, 128, 1, 32, 2)
    assert cx.macs == 196 * (64 * 2 * 9 + 128 * 32)


def test_official_layout():
    f = cnnlab.create_model("clcnet_a").features
    blocks = [n for n, m in f.named_children() if isinstance(m, CLCBlock)]
    assert len(blocks) == 1 + (1 + 1) + (1 + 1) + (1 + 5) + (1 + 2)
    assert (f.stage0.igc.conv.groups, f.stage0.gc.conv.groups) == (16, 2)
    assert (f.stage4_0.igc.conv.stride, f.stage4_0.gc.conv.out_channels) == ((2, 2), 1024)
    assert f.stem.conv.out_channels == 32


@pytest.mark.parametrize(
    "name,macs,params", [("clcnet_a", 342_973_440, 3_253_640), ("clcnet_b", 424_559_616, 4_085_128)]
)
def test_computed_figures(name, macs, params):
    c = cnnlab.complexity(name)
    assert (c.macs, c.params) == (macs, params)


def test_impossible_block_is_refused():
    with pytest.raises(ValueError, match="g1=16"):
        CLCBlock(24, 64, 1, 16, 2)
    with pytest.raises(ValueError, match="g2=3"):
        CLCBlock.complexity(Cx(32, 8, 8), 32, 64, 1, 16, 3)
    with pytest.raises(ValueError, match="repeats"):
        cnnlab.create_model("clcnet_a", repeats=(1, 1, 5))
