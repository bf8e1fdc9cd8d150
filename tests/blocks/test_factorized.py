"""Factorised 1xM + Mx1 conv (Inception v3 §3.2), GCN and Boundary Refinement (Peng et al. 2017)."""

from fractions import Fraction

import pytest
import torch
from torch.nn import functional as F

from cnnlab.blocks.factorized import BoundaryRefinement, FactorizedConv, GlobalConvolution
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx, conv2d_cx

CASES = [
    (FactorizedConv, dict(c_in=8, c_out=12, m=7, c_mid=6)),
    (FactorizedConv, dict(c_in=8, c_out=8, m=3, row_first=False)),
    (FactorizedConv, dict(c_in=8, c_out=4, m=5, norm=False, act=None)),
    (FactorizedConv, dict(c_in=8, c_out=4, m=5, norm=False, act="relu")),
    (GlobalConvolution, dict(c_in=8, c_out=5, k=7)),
    (GlobalConvolution, dict(c_in=8, c_out=5, k=15)),  # kernel wider than the map
    (BoundaryRefinement, dict(c=8)),
]


def _analytic(block, args, h, w):
    return block.complexity(Cx(8, h, w), **args)


@pytest.mark.parametrize("block,args", CASES, ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("hw", [(9, 9), (10, 7)])
def test_block_analytic_equals_traced(block, args, hw):
    module = block(**args)
    analytic = _analytic(block, args, *hw)
    traced = traced_counts(module, (8, *hw))
    assert analytic.params == traced.params
    assert analytic.macs == traced.macs
    assert analytic.activations == traced.activations
    assert analytic.memory_access == traced.memory_access
    with torch.no_grad():
        out = module(torch.randn(1, 8, *hw))
    assert analytic.shape == out.shape[1:] == (analytic.c, *hw)  # same padding keeps h, w


@pytest.mark.parametrize("m,c_in,c_mid,c_out", [(7, 8, 6, 12), (3, 16, 16, 16), (5, 3, 10, 2)])
def test_factorized_closed_form(m, c_in, c_mid, c_out):
    h, w = 11, 6
    weights = m * c_in * c_mid + m * c_mid * c_out  # 1xM (c_in -> c_mid), Mx1 (c_mid -> c_out)
    bn = FactorizedConv.complexity(Cx(c_in, h, w), c_out=c_out, c_in=c_in, m=m, c_mid=c_mid)
    assert bn.params == weights + 2 * (c_mid + c_out)  # + BN gamma, beta after each factor
    assert bn.macs == h * w * weights
    assert bn.activations == h * w * (c_mid + c_out)
    plain = FactorizedConv(c_in, c_out, m, c_mid, norm=False, act=None)
    assert sum(p.numel() for p in plain.parameters()) == weights + c_mid + c_out  # + biases


def test_factorizing_3x3_saves_a_third_as_in_section_3_2():
    # §3.2: a 3x1 then a 1x3 conv with the same number of output filters is 33% cheaper than 3x3
    cx = Cx(64, 17, 17)
    full = conv2d_cx(cx, 64, 3, padding=1).macs
    factorized = FactorizedConv.complexity(cx, 64, 64, 3).macs
    assert Fraction(factorized, full) == Fraction(2, 3)
    # and 2/M in general: a 7x7 becomes 1x7 + 7x1 for 2/7 of the cost
    assert Fraction(FactorizedConv.complexity(cx, 64, 64, 7).macs, conv2d_cx(cx, 64, 7).macs) == (
        Fraction(2, 7)
    )


def test_factorized_linear_conv_is_an_mxm_conv_of_rank_c_mid():
    # without bias or nonlinearity, 1xM then Mx1 is one MxM conv whose kernel for each
    # (out, in) pair is sum over mid channels of (column kernel) outer (row kernel)
    torch.manual_seed(0)
    m, c_in, c_mid, c_out = 5, 3, 2, 4
    block = FactorizedConv(c_in, c_out, m, c_mid, norm=False, act=None).eval()
    for conv in (block.conv1.conv, block.conv2.conv):
        conv.bias.data.zero_()
    row = block.conv1.conv.weight[:, :, 0, :]  # (c_mid, c_in, M): the 1xM kernels
    col = block.conv2.conv.weight[:, :, :, 0]  # (c_out, c_mid, M): the Mx1 kernels
    full = torch.einsum("omh,miw->oihw", col, row)
    assert block.conv1.conv.kernel_size == (1, m) and block.conv2.conv.kernel_size == (m, 1)
    x = torch.randn(1, c_in, 9, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), F.conv2d(x, full, padding=m // 2))


@pytest.mark.parametrize("k,c_in,c_out", [(7, 8, 5), (15, 2048, 21), (3, 4, 4)])
def test_gcn_closed_form(k, c_in, c_out):
    # two branches, each a (c_in -> c_out) and a (c_out -> c_out) k-tap conv, every conv biased
    h, w = 16, 16
    cx = GlobalConvolution.complexity(Cx(c_in, h, w), c_in, c_out, k)
    assert cx.params == 2 * k * c_out * (c_in + c_out) + 4 * c_out
    assert cx.macs == h * w * 2 * k * c_out * (c_in + c_out)
    if c_in < 100:
        assert sum(p.numel() for p in GlobalConvolution(c_in, c_out, k).parameters()) == cx.params


def test_gcn_sees_exactly_a_k_by_k_window():
    # the two separable branches together connect an output to the full kxk input window
    torch.manual_seed(0)
    k, size, centre = 7, 15, 7
    gcn = GlobalConvolution(2, 3, k)
    x = torch.randn(1, 2, size, size, requires_grad=True)
    gcn(x)[0, :, centre, centre].sum().backward()
    reach = x.grad[0].abs().sum(0) > 0
    window = torch.zeros(size, size, dtype=torch.bool)
    window[centre - k // 2 : centre + k // 2 + 1, centre - k // 2 : centre + k // 2 + 1] = True
    assert torch.equal(reach, window)


def test_boundary_refinement_is_a_residual_branch():
    br = BoundaryRefinement(4).eval()
    assert sum(p.numel() for p in br.parameters()) == 2 * (9 * 4 * 4 + 4)
    x = torch.randn(1, 4, 6, 5)
    x_copy = x.clone()
    with torch.no_grad():
        y = br(x)
        assert torch.equal(x, x_copy)  # the in-place ReLU acts on conv1's output only
        torch.testing.assert_close(y, x + br.conv2(F.relu(br.conv1(x))))
        br.conv2.weight.zero_()
        br.conv2.bias.zero_()
        assert torch.equal(br(x), x)  # a zero residual passes the input through


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"FactorizedConv: the kernel size must be odd .* got 4"):
        FactorizedConv(8, 8, 4)
    with pytest.raises(
        ValueError, match=r"FactorizedConv: widths must be >= 1, got \{'c_mid': 0\}"
    ):
        FactorizedConv.complexity(Cx(8, 9, 9), 8, 8, 3, c_mid=0)
    with pytest.raises(ValueError, match=r"GlobalConvolution: the kernel size must be odd"):
        GlobalConvolution(8, 8, 0)
    with pytest.raises(ValueError, match=r"BoundaryRefinement: input has 8 channels, .* takes 4"):
        BoundaryRefinement.complexity(Cx(8, 9, 9), 4)
