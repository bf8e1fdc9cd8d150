"""NASNet-A: widths and resolutions of the paper, TF 'SAME' padding, and timm's nasnetalarge port."""

import pytest
import timm
import torch

import cnnlab
from cnnlab.blocks.nas_ops import same_pads
from cnnlab.models.nasnet import NASNET_A
from tests.bn import randomise_bn


@pytest.mark.parametrize(
    "n,k,s,pads",
    # TF: total = max((ceil(n/s)-1)*s + k - n, 0), the odd pixel at the end
    [(28, 3, 2, (0, 1)), (111, 5, 2, (2, 2)), (56, 7, 2, (2, 3)), (47, 1, 2, (0, 0))],
)
def test_same_padding_is_tensorflows(n, k, s, pads):
    assert same_pads(n, k, s) == pads
    assert same_pads(n, 3, 1) == (1, 1)  # stride 1: symmetric


def test_penultimate_width_is_24f_and_the_final_map_is_1_32():
    # "4 @ 1056" and "6 @ 4032": N normal cells per stack, penultimate filters 24F
    mobile = cnnlab.create_model("nasnet_a_mobile", num_classes=0)
    assert mobile.num_features == 1056 == 24 * 44
    assert cnnlab.create_model("nasnet_a_large", num_classes=0).num_features == 4032
    rows = cnnlab.complexity("nasnet_a_mobile").rows
    assert rows[1].cx.shape == (1056, 7, 7)  # 224 -> 111 (valid stem) -> 56 -> 28 -> 14 -> 7
    assert cnnlab.complexity("nasnet_a_large").rows[1].cx.shape == (4032, 11, 11)


def test_the_normal_cell_is_the_papers():
    # Zoph et al. 2018, Fig. 4 (left), states 0 = h_{i-2}, 1 = h_{i-1}
    cell = NASNET_A.normal
    assert str(cell.nodes[0]) == "sep_conv_5x5(h_{i-1}) + sep_conv_3x3(h_{i-2})"
    assert str(cell.nodes[4]) == "sep_conv_3x3(h_{i-1}) + identity(h_{i-1})"
    assert cell.outputs == (0, 2, 3, 4, 5, 6)  # h_{i-2} and the five nodes: 6F channels
    assert NASNET_A.reduce.outputs == (3, 4, 5, 6)


def test_large_reduction_cells_keep_their_h_i_minus_2():
    # TF-slim skip_reduction_layer_input: cell_6 reads reduction_cell_0 and cell_4 (1008 ch)
    stack = cnnlab.create_model("nasnet_a_large").features.cells
    assert stack.cell_6.spec.c_in == (6 * 168, 8 * 168)
    assert cnnlab.create_model("nasnet_a_mobile").features.cells.cell_4.spec.c_in == (264, 352)


def test_timm_nasnetalarge_port_is_identical():
    ref = randomise_bn(timm.create_model("nasnetalarge"))
    net = cnnlab.from_timm(ref)
    assert net.matches_plan() and not net.training
    assert cnnlab.complexity(net).params == cnnlab.complexity("nasnet_a_large").params
    x = torch.randn(1, 3, 48, 48)  # 23 -> 12 -> 6 -> 3 -> 2: odd and even sizes at stride 2
    with torch.no_grad():
        assert (ref(x) - net(x)).abs().max().item() <= 1e-5
