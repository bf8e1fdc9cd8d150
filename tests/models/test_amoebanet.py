"""AmoebaNet-A: the TPU reference's genotype, TF-slim's odd-width factorized reduction, widths."""

import pytest

import cnnlab
from cnnlab.models.amoebanet import AMOEBANET_A


def test_the_genotype_is_the_tpu_references():
    normal, reduce = AMOEBANET_A.normal, AMOEBANET_A.reduce
    assert str(normal.nodes[0]) == "avg_pool_3x3(h_{i-1}) + max_pool_3x3(h_{i-1})"
    assert str(normal.nodes[3]) == "sep_conv_3x3(h_{i-1}) + sep_conv_5x5(node0)"
    assert normal.outputs == (0, 3, 4, 6)  # h_{i-2}, node1, node2, node4: 4F
    assert str(reduce.nodes[3]) == "sep_conv_3x3(node2) + 1x7_7x1(h_{i-1})"
    assert reduce.outputs == (2, 3, 4, 5, 6)  # 5F


def test_mobile_widths_and_the_odd_stem_width():
    stack = cnnlab.create_model("amoebanet_a_mobile", num_classes=0).features.cells
    stem1 = stack.cell_stem_1
    # F/2 = 25: the factorized reduction of the 32-channel stem conv gives 2 x 12 channels
    assert stem1.spec.c == 25 and stem1.conv_prev_1x1.bn.num_features == 24
    assert stem1.spec.c_in == (32, 5 * 12)
    assert stack.cell_0.spec.c_in == (60, 125) and stack.cell_0.spec.prev == "reduce"
    assert stack.cell_11.spec.c_out == 16 * 50


def test_computed_figures_agree_with_the_unverified_mobile_row():
    # documented, not a paper figure: 555 M MACs and 5.1 M params are quoted from memory
    c = cnnlab.complexity("amoebanet_a_mobile")
    assert c.macs / 1e6 == pytest.approx(555.5, abs=0.05)
    assert c.params / 1e6 == pytest.approx(5.09, abs=0.005)
