"""PNASNet-5: one cell everywhere (stride 2 to reduce), the paper's widths, timm's port."""

import timm
import torch

import cnnlab
from cnnlab.models.pnasnet import PNASNET_5
from tests.bn import randomise_bn


def test_one_genotype_serves_normal_and_reduction_cells():
    # Liu et al. 2018, Fig. 1: five blocks, all concatenated; reduction = the same cell at stride 2
    assert PNASNET_5.reduce is None and PNASNET_5.cell(True) is PNASNET_5.normal
    assert PNASNET_5.normal.outputs == (2, 3, 4, 5, 6)
    assert str(PNASNET_5.normal.nodes[3]) == "sep_conv_3x3(node2) + max_pool_3x3(h_{i-1})"


def test_widths_and_resolutions():
    stack = cnnlab.create_model("pnasnet5_large", num_classes=0).features.cells
    # timm's widths: stem cells 54, 108 (5F out), cells 216 / 432 / 864, penultimate 5 * 864
    assert stack.cell_stem_1.spec.c_in == (96, 270)
    assert stack.cell_5.spec.c_in == (1080, 2160) and stack.cell_5.spec.prev == "reduce"
    assert stack.cell_11.spec.c_out == 4320
    assert cnnlab.complexity("pnasnet5_mobile").rows[1].cx.shape == (1080, 7, 7)


def test_timm_pnasnet5large_port_is_identical():
    ref = randomise_bn(timm.create_model("pnasnet5large"))
    net = cnnlab.from_timm(ref)
    assert net.matches_plan() and not net.training
    assert cnnlab.complexity(net).params == cnnlab.complexity("pnasnet5_large").params
    x = torch.randn(1, 3, 48, 48)  # 23 -> 12 -> 6 -> 3 -> 2: odd and even sizes at stride 2
    with torch.no_grad():
        assert (ref(x) - net(x)).abs().max().item() <= 1e-5
