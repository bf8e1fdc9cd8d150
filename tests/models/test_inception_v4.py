"""Inception-v4 (Szegedy et al. 2017) at 299: timm's parameters exactly, Fig. 9 grid, timm port."""

import pytest
import timm
import torch

import cnnlab
from cnnlab.blocks import inception_v4 as v4
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx
from tests.bn import randomise_bn
from tests.paper import rounds_to


def test_params_are_timm_inception_v4_exactly():
    assert cnnlab.complexity("inception_v4").params == 42_679_816
    ref = timm.create_model("inception_v4")
    assert sum(p.numel() for p in ref.parameters()) == 42_679_816


def test_macs_at_299():
    c = cnnlab.complexity("inception_v4")
    assert c.input_size == (3, 299, 299)
    assert c.macs == 12_253_974_624
    assert rounds_to(c.macs / 1e9, "12.25")  # docs/provenance.md#inception-v4 [V-calc]


def test_feature_map_sizes_are_fig_3_and_9():
    rows = {r.name: r.cx.shape for r in cnnlab.complexity("inception_v4").rows}
    stem = ["conv1a", "conv2a", "conv2b", "mixed3a", "mixed4a", "mixed5a"]
    assert [rows[n] for n in stem] == [
        (32, 149, 149),
        (32, 147, 147),
        (64, 147, 147),
        (160, 73, 73),
        (192, 71, 71),
        (384, 35, 35),
    ]
    assert [rows[f"mixed5{x}"] for x in "bcde"] == [(384, 35, 35)] * 4  # 4 x Inception-A
    assert rows["mixed6a"] == (1024, 17, 17)  # Reduction-A
    assert [rows[f"mixed6{x}"] for x in "bcdefgh"] == [(1024, 17, 17)] * 7  # 7 x Inception-B
    assert rows["mixed7a"] == (1536, 8, 8)  # Reduction-B
    assert [rows[f"mixed7{x}"] for x in "bcd"] == [(1536, 8, 8)] * 3  # 3 x Inception-C
    assert len(rows) == 6 + 4 + 1 + 7 + 1 + 3 + 1  # and the head


def test_port_of_timm_inception_v4_is_identical():
    ref = randomise_bn(timm.create_model("inception_v4"))
    net = cnnlab.from_timm(ref)
    assert net.matches_plan() and not net.training
    assert net.cfg.blocks == (4, 7, 3) and net.cfg.reduction_a == (192, 224, 256, 384)
    # the smallest input (75) + 4: every average pool has padded borders, where the mean differs
    x = torch.randn(1, 3, 79, 79)
    with torch.no_grad():
        assert (ref(x) - net(x)).abs().max().item() <= 1e-5


def test_port_reads_the_ends_and_refuses_other_norms_or_activations():
    net = cnnlab.from_timm(timm.create_model("inception_v4", num_classes=7, in_chans=1))
    assert net.get_classifier().out_features == 7
    assert net.features.conv1a.conv.in_channels == 1
    with pytest.raises(ValueError, match=r"activation SiLU; supported: eps 1e-3 and ReLU"):
        cnnlab.from_timm(timm.create_model("inception_v4", act_layer="silu"))


MODULES = [
    (v4.StemA, dict(c_in=64)),
    (v4.StemB, dict(c_in=160)),
    (v4.StemC, dict(c_in=192)),
    (v4.InceptionA, dict(c_in=384)),
    (v4.ReductionA, dict(c_in=384)),
    (v4.ReductionA, dict(c_in=32, k=8, l=12, m=16, n=24)),
    (v4.InceptionB, dict(c_in=1024)),
    (v4.ReductionB, dict(c_in=1024)),
    (v4.InceptionC, dict(c_in=1536)),
]


@pytest.mark.parametrize("block,args", MODULES, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("size", [7, 8])
def test_module_analytic_equals_traced(block, args, size):
    module = block(**args)
    shape = (args["c_in"], size, size)
    analytic = block.complexity(Cx(*shape), **args)
    traced = traced_counts(module, shape)
    assert analytic.params == traced.params
    assert analytic.macs == traced.macs
    assert analytic.activations == traced.activations
    assert analytic.memory_access == traced.memory_access
    with torch.no_grad():
        assert (
            analytic.shape
            == module(torch.zeros(1, *shape)).shape[1:]
            == (module.c_out,)
            + (
                analytic.h,
                analytic.w,
            )
        )


def test_reduction_a_width_is_its_table_1_filters():
    # Table 1 (k, l, m, n): output width n + m + c_in, the conv weights of the two branches
    cx = v4.ReductionA.complexity(Cx(384, 35, 35), 384, k=192, l=224, m=256, n=384)
    assert cx.shape == (384 + 256 + 384, 17, 17)
    weights = 9 * 384 * 384 + 384 * 192 + 9 * 192 * 224 + 9 * 224 * 256
    assert cx.params == weights + 2 * (384 + 192 + 224 + 256)  # + BN gamma and beta


def test_impossible_configurations_are_refused():
    with pytest.raises(ValueError, match=r"blocks must be three module counts >= 1"):
        cnnlab.create_model("inception_v4", blocks=(4, 0, 3))
    with pytest.raises(ValueError, match=r"reduction_a must be four widths"):
        cnnlab.create_model("inception_v4", reduction_a=(192, 224, 256))
    with pytest.raises(ValueError, match=r"ReductionA: branch widths must be >= 1, got \{'m': 0\}"):
        v4.ReductionA(c_in=32, k=8, l=12, m=0, n=24)
    with pytest.raises(ValueError, match=r"layer 'mixed7a'.*too small"):
        cnnlab.complexity("inception_v4", input_size=(3, 64, 64))
