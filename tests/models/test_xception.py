"""Xception (Chollet 2017) at 299: Keras/timm structure, exact parameter count, the block."""

import pytest
import torch

import cnnlab
from cnnlab.blocks.xception import XceptionBlock, rep_widths
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx
from tests.paper import rounds_to


def test_params_are_keras_and_paper_table_3_exactly():
    assert cnnlab.complexity("xception").params == 22_855_952
    model = cnnlab.create_model("xception")
    assert sum(p.numel() for p in model.parameters()) == 22_855_952


def test_macs_at_299():
    c = cnnlab.complexity("xception")
    assert c.input_size == (3, 299, 299)
    assert rounds_to(c.macs / 1e9, "8.36"), c.macs  # docs/provenance.md#xception [V-calc]


def test_feature_map_sizes_at_299():
    rows = {r.name: r.cx.shape for r in cnnlab.complexity("xception").rows}
    assert rows["conv1"] == (32, 149, 149)  # valid padding: (299 - 3) / 2 + 1
    assert rows["conv2"] == (64, 147, 147)
    assert rows["block1"] == (128, 74, 74)
    assert rows["block2"] == (256, 37, 37)
    assert rows["block3"] == (728, 19, 19)
    assert [rows[f"block{i}"] for i in range(4, 12)] == [(728, 19, 19)] * 8  # middle flow
    assert rows["block12"] == (1024, 10, 10)
    assert rows["conv4"] == (2048, 10, 10)


def test_rep_widths_grow_first_or_last():
    assert rep_widths(64, 128, 2, True) == [(64, 128), (128, 128)]
    assert rep_widths(728, 1024, 2, False) == [(728, 728), (728, 1024)]
    assert rep_widths(728, 728, 3, True) == [(728, 728)] * 3


def test_block_shortcut_takes_the_input_before_relu():
    # Keras adds the block input itself, not its ReLU: an in-place leading ReLU would corrupt it
    block = XceptionBlock(8, 8, reps=3).eval()
    x = torch.randn(1, 8, 6, 6)
    x_copy = x.clone()
    with torch.no_grad():
        y = block(x)
        expected = block.main(x.clone()) + x_copy
    assert torch.equal(x, x_copy)  # the input is left intact
    torch.testing.assert_close(y, expected)
    assert (x_copy < 0).any()  # so the test above could fail


@pytest.mark.parametrize(
    "args",
    [
        dict(c_in=16, c_out=32, reps=2, stride=2, start_with_relu=False),
        dict(c_in=16, c_out=16, reps=3, stride=1),
        dict(c_in=16, c_out=24, reps=2, stride=1, grow_first=False),
        dict(c_in=16, c_out=24, reps=1, stride=2),
    ],
)
@pytest.mark.parametrize("size", [9, 10])
def test_block_analytic_equals_traced(args, size):
    block = XceptionBlock(**args)
    analytic = XceptionBlock.complexity(Cx(16, size, size), **args)
    traced = traced_counts(block, (16, size, size))
    assert analytic.params == traced.params
    assert analytic.macs == traced.macs
    assert analytic.activations == traced.activations
    assert analytic.memory_access == traced.memory_access
    assert analytic.shape == block(torch.zeros(1, 16, size, size)).shape[1:]


def test_equals_timm_legacy_xception():
    timm = pytest.importorskip("timm")
    ref = timm.create_model("legacy_xception", pretrained=False).eval()
    ours = cnnlab.create_model("xception").eval()
    src, dst = ref.state_dict(), ours.state_dict()
    assert len(src) == len(dst)
    for (k_src, v_src), (k_dst, v_dst) in zip(src.items(), dst.items(), strict=True):
        assert v_src.shape == v_dst.shape, (k_src, k_dst)
    # random running statistics, so that a mismatched BN would show in the outputs
    for k, v in src.items():
        if k.endswith("running_var"):
            v.uniform_(0.5, 2.0)
        elif k.endswith("running_mean"):
            v.normal_(0.0, 0.1)
    ours.load_state_dict(dict(zip(dst, src.values(), strict=True)))
    x = torch.randn(1, 3, 150, 150)
    with torch.no_grad():
        expected = ref(x.clone())
        got = ours(x)
    assert (got - expected).abs().max() <= 1e-5


def test_impossible_configurations_name_the_layer():
    with pytest.raises(ValueError, match=r"layer 'block1'.*reps must be >= 1, got 0"):
        cnnlab.create_model("xception", blocks=((128, 0, 2, 1, True),))
    with pytest.raises(ValueError, match=r"layer 'block2'.*stride must be 1 or 2, got 3"):
        cnnlab.complexity("xception", blocks=((128, 2, 2, 1, True), (256, 2, 3, 1, True)))
    with pytest.raises(ValueError, match=r"layer 'conv2'.*too small"):
        cnnlab.complexity("xception", input_size=(3, 4, 4))
    with pytest.raises(ValueError, match=r"stem must be two widths"):
        cnnlab.create_model("xception", stem=(32,))
