"""IGCV1/IGCV3 blocks and models: the interleaving as one dense conv, receptive fields, costs."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from cnnlab.blocks.igc import (
    IGCResidualBlock,
    IGCV3Block,
    InterleavedGroupConv,
    InterleavedStructuredSparseConv,
    structured_sparse_receptive_field,
)
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx
from cnnlab.ops.shuffle import channel_shuffle
from tests.bn import randomise_bn


def dense_igc_weight(block: InterleavedGroupConv) -> tuple[torch.Tensor, torch.Tensor]:
    """The IGC block as one dense conv, built entry by entry from Zhang et al. 2017 §3.

    Output channel o = j * M + m is secondary-conv output m * L + j (permutation back); it sums
    over the primary partitions l the path through the m-th channel of partition l,
    l * M + m, whose primary weights read input channels l * (c_in / L) .. + c_in / L.
    BN (after the secondary conv) is folded in. Returns (weight, bias).
    """
    L, M = block.L, block.M
    w1, w2 = block.primary.weight.detach(), block.secondary.weight.detach()[:, :, 0, 0]
    c_out, per_l, k, _ = w1.shape
    bn = block.bn
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias.detach() - bn.running_mean * scale
    dense = torch.zeros(c_out, per_l * L, k, k)
    bias = torch.zeros(c_out)
    for j in range(L):
        for m in range(M):
            o, s = j * M + m, m * L + j
            bias[o] = shift[s]
            for l in range(L):  # noqa: E741  (the paper's l)
                dense[o, l * per_l : (l + 1) * per_l] = scale[s] * w2[s, l] * w1[l * M + m]
    return dense, bias


@pytest.mark.parametrize("c_in,L,M,stride", [(12, 4, 3, 1), (8, 4, 3, 2), (6, 2, 5, 1)])
def test_interleaving_is_one_dense_conv(c_in, L, M, stride):
    block = randomise_bn(InterleavedGroupConv(c_in, L * M, L, M, stride=stride, act=None))
    x = torch.randn(2, c_in, 9, 9)
    weight, bias = dense_igc_weight(block)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=1)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)
    # the composed kernel is dense (no structural zero) although each conv is sparse
    assert (weight[..., 1, 1] != 0).all()


def test_without_the_permutations_it_is_not_that_conv():
    # the check above can fail: the same two group convs without the interleaving differ
    block = randomise_bn(InterleavedGroupConv(12, 12, 4, 3, act=None))
    x = torch.randn(1, 12, 5, 5)
    weight, bias = dense_igc_weight(block)
    plain = block.bn(block.secondary(block.primary(x)))
    assert not torch.allclose(plain, F.conv2d(x, weight, bias, padding=1), atol=1e-3)


def test_complementary_condition_exactly_one_path():
    # k = 1, all weights 1, BN the identity: output o on one-hot input i counts the paths i -> o
    L, M = 3, 4
    block = InterleavedGroupConv(L * M, L * M, L, M, k=1, act=None).eval()
    block.primary.weight.data.fill_(1.0)
    block.secondary.weight.data.fill_(1.0)
    block.bn.eps = 0.0
    paths = block(torch.eye(L * M).view(L * M, L * M, 1, 1))[:, :, 0, 0]
    assert torch.equal(paths, torch.ones(L * M, L * M))


def _channels_seen(block, c_in: int, size: int = 7) -> torch.Tensor:
    """For each output channel, how many input channels its centre pixel depends on (autograd)."""
    x = torch.randn(1, c_in, size, size, requires_grad=True)
    y = block(x)
    seen = []
    for o in range(y.shape[1]):
        (grad,) = torch.autograd.grad(y[0, o, size // 2, size // 2], x, retain_graph=True)
        seen.append(int((grad[0].abs().sum((1, 2)) > 0).sum()))
    return torch.tensor(seen)


def test_every_output_sees_every_input_and_a_single_group_conv_does_not():
    block = InterleavedGroupConv(16, 16, 4, 4, act=None).eval()
    assert (_channels_seen(block, 16) == 16).all()
    # the primary group convolution alone sees only its partition of c_in / L channels
    assert (_channels_seen(block.primary, 16) == 4).all()


def test_igcv3_block_sees_every_input_channel():
    # loose complementary condition (Sun et al. 2018): G1 = G2 = 2 with the permutations
    block = IGCV3Block(8, 8, 1, 6).eval()
    assert (_channels_seen(block, 8) == 8).all()
    assert block.expand.conv.groups == 2 and block.project.conv.groups == 2
    assert not hasattr(block.expand, "act")  # linear expansion, as in the official graph


def test_igcv3_second_permutation_undoes_the_first_layout():
    x = torch.randn(1, 24, 2, 2)
    torch.testing.assert_close(channel_shuffle(channel_shuffle(x, 2), 12), x)


@pytest.mark.parametrize(
    "c,ks", [(8, (2, 2, 2)), (12, (3, 4)), (12, (2, 2, 3)), (16, (4, 4)), (16, (2, 4)), (12, (3,))]
)
def test_igcv2_paths(c, ks):
    # 1x1 input, all weights 1, BN the identity: output o on one-hot input i counts the paths
    block = InterleavedStructuredSparseConv(c, ks, act=None).eval()
    for conv in (block.dw, *block.pw):
        conv.weight.data.fill_(1.0)
    block.bn.eps = 0.0
    paths = block(torch.eye(c).view(c, c, 1, 1))[:, :, 0, 0]
    reach = structured_sparse_receptive_field(c, ks)
    # never two paths between a pair; prod(K) inputs per output; all of them iff prod(K) = C
    assert set(paths.unique().tolist()) <= {0.0, 1.0}
    assert paths.sum(0).tolist() == [reach] * c
    assert (reach == c) == bool((paths == 1).all())


def test_igcv2_without_the_shuffles_misses_channels():
    # the check above can fail: the same 1x1 group convs without the permutations reach less
    block = InterleavedStructuredSparseConv(8, (2, 2, 2), act=None).eval()
    y = torch.eye(8).view(8, 8, 1, 1)
    for conv in block.pw:
        conv.weight.data.fill_(1.0)
        y = conv(y)
    assert ((y[:, :, 0, 0] > 0).sum(0) == 2).all()


def test_igcv2_impossible_group_sizes_are_refused():
    with pytest.raises(ValueError, match="does not divide c=12"):
        InterleavedStructuredSparseConv(12, (4, 2))  # 8 does not divide 12
    with pytest.raises(ValueError, match="does not divide c=8"):
        InterleavedStructuredSparseConv.complexity(Cx(8, 4, 4), 8, (2, 2, 2, 2))


BLOCKS = [
    (InterleavedGroupConv, dict(c_in=16, c_out=24, L=4, M=6, stride=2), (16, 10, 10)),
    (InterleavedGroupConv, dict(c_in=12, c_out=12, L=3, M=4, k=5, act="relu6"), (12, 8, 8)),
    (IGCResidualBlock, dict(c_in=8, c_out=16, stride=2, L=4), (8, 10, 10)),
    (IGCResidualBlock, dict(c_in=16, c_out=16, stride=1, L=4), (16, 6, 6)),
    (InterleavedStructuredSparseConv, dict(c=12, ks=(2, 2, 3), stride=2), (12, 9, 9)),
    (InterleavedStructuredSparseConv, dict(c=16, ks=(4, 4), act="relu6"), (16, 5, 5)),
    (IGCV3Block, dict(c_in=8, c_out=8, stride=1, t=6), (8, 9, 9)),
    (IGCV3Block, dict(c_in=8, c_out=12, stride=2, t=1), (8, 9, 9)),
]


@pytest.mark.parametrize("block,args,shape", BLOCKS)
def test_block_analytic_cost_equals_traced(block, args, shape):
    analytic = block.complexity(Cx(*shape), **args)
    traced = traced_counts(block(**args), shape)
    assert (analytic.params, analytic.macs) == (traced.params, traced.macs)
    assert (analytic.activations, analytic.memory_access) == (
        traced.activations,
        traced.memory_access,
    )


def test_igc_block_macs_closed_form():
    # primary h*w*c_out*(c_in/L)*9 + secondary h*w*c_out*L (each secondary partition has L inputs)
    cx = InterleavedGroupConv.complexity(Cx(32, 8, 8), 32, 32, 4, 8)
    assert cx.macs == 64 * 32 * 8 * 9 + 64 * 32 * 4
    assert cx.params == 32 * 8 * 9 + 32 * 4 + 2 * 32


def test_released_imagenet_graphs():
    # models/IGC-L100M2_ImageNet: stem 100, stage 1 at 200 channels with L = 100 and M = 2
    f = cnnlab.create_model("igcnet_l100m2").features
    assert f.stem.conv.out_channels == 100
    igc = f.stage1_0.igc1
    assert (igc.primary.in_channels, igc.primary.out_channels, igc.primary.groups) == (
        100,
        200,
        100,
    )
    assert igc.secondary.groups == 2 and f.stage4_1.igc2.secondary.groups == 2
    assert f.stage1_0.shortcut.conv.groups == 100 and f.stage4_0.shortcut.conv.groups == 800
    # models/IGC-L4M32_ImageNet: L = 4 throughout, M doubles 32 -> 256
    f = cnnlab.create_model("igcnet_l4m32").features
    assert [getattr(f, f"stage{i}_0").igc1.primary.groups for i in range(1, 5)] == [4, 4, 4, 4]
    assert [getattr(f, f"stage{i}_0").igc1.secondary.groups for i in range(1, 5)] == [
        32,
        64,
        128,
        256,
    ]


COMPUTED = {  # millions at the registered input size (analytic; test_complexity holds it = traced)
    "igcnet_l4m32": (1944.641536, 12.25124),
    "igcnet_l16m16": (2265.98912, 13.528296),
    "igcnet_l100m2": (1264.7808, 8.6379),
    "igcnet_plain38_l24m2_cifar": (57.257472, 0.508312),
    "igcv3_d": (312.970176, 3.491688),
}


@pytest.mark.parametrize("name", COMPUTED)
def test_computed_figures(name):
    c = cnnlab.complexity(name, cnnlab.models.get_entry(name).input_size)
    assert (c.macs, c.params) == tuple(round(v * 1e6) for v in COMPUTED[name])


def test_readme_params_of_l100m2_are_without_bn():
    # IGCV1 README prints 8.61 M for IGC-L100M2+Ident.; BN's gamma/beta are 2 x 15,100
    model = cnnlab.create_model("igcnet_l100m2")
    bn = sum(2 * m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn == 2 * 15_100
    assert round((cnnlab.complexity(model).params - bn) / 1e6, 2) == 8.61


def test_igcv3_official_table():
    f = cnnlab.create_model("igcv3_d").features
    blocks = [m for m in f if isinstance(m, IGCV3Block)]
    assert len(blocks) == 1 + 4 + 6 + 8 + 6 + 6 + 1
    # the t = 1 block keeps a grouped expansion (released graph seq-0-block0-exp: 32 -> 32, g=2)
    assert (blocks[0].expand.conv.out_channels, blocks[0].expand.conv.groups) == (32, 2)
    assert f.conv_last.conv.out_channels == 1280


@pytest.mark.parametrize(
    "args,match",
    [
        (dict(c_in=8, c_out=12, L=4, M=2), "must equal L \\* M"),
        (dict(c_in=6, c_out=12, L=4, M=3), "divisible by groups=4"),
        (dict(c_in=8, c_out=8, L=4, M=2, k=2), "odd"),
    ],
)
def test_impossible_igc_is_refused(args, match):
    with pytest.raises(ValueError, match=match):
        InterleavedGroupConv(**args)
    with pytest.raises(ValueError, match=match):
        InterleavedGroupConv.complexity(Cx(args["c_in"], 8, 8), **args)


def test_impossible_igcv3_block_is_refused():
    with pytest.raises(ValueError, match="G1=2"):
        IGCV3Block(3, 8, 1, 1)  # 3 input channels cannot be split into 2 groups
    with pytest.raises(ValueError, match="stride"):
        IGCV3Block(8, 8, 3, 6)
