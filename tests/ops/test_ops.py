"""Ops against closed forms and reference implementations."""

import pytest
import torch
from torch import nn

from cnnlab.ops import ChannelShuffle, ConvNormAct, SeparableConv, SqueezeExcite, channel_shuffle
from cnnlab.ops.act import get_activation


def test_channel_shuffle_matches_pytorch_and_definition():
    x = torch.randn(2, 12, 3, 3)
    y = channel_shuffle(x, 3)
    assert torch.equal(y, nn.ChannelShuffle(3)(x))
    # ShuffleNet §3.1: channels (g, n) -> (n, g): output channel i*g + j is input j*n + i
    g, n = 3, 4
    for i in range(n):
        for j in range(g):
            assert torch.equal(y[:, i * g + j], x[:, j * n + i])
    assert torch.equal(ChannelShuffle(3)(x), y)


def test_channel_shuffle_refuses_indivisible_channels():
    with pytest.raises(ValueError, match="10 channels are not divisible by groups=3"):
        channel_shuffle(torch.zeros(1, 10, 2, 2), 3)


@pytest.mark.parametrize(
    "mid,types",
    [
        ("bn_relu", [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]),
        ("bn", [nn.Conv2d, nn.BatchNorm2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]),
        ("relu", [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]),
        ("none", [nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU]),
    ],
)
def test_separable_conv_mid_choice(mid, types):
    m = SeparableConv(8, 16, 3, 2, mid=mid)
    leaves = [type(x) for x in m.modules() if not list(x.children())]
    assert leaves == types
    assert m.dw.conv.groups == 8 and m.dw.conv.stride == (2, 2)
    assert m(torch.randn(1, 8, 10, 10)).shape == (1, 16, 5, 5)


def test_separable_conv_refuses_unknown_mid():
    with pytest.raises(ValueError, match="unknown mid='bn_act'"):
        SeparableConv(8, 16, mid="bn_act")


def test_group_conv_refuses_indivisible_channels():
    with pytest.raises(ValueError, match="in_channels=10 and out_channels=12 .* groups=3"):
        ConvNormAct(10, 12, 1, groups=3)


def test_squeeze_excite_formula():
    se = SqueezeExcite(32, reduction=4).eval()
    assert se.fc1.out_channels == 8
    x = torch.randn(2, 32, 5, 5)
    s = x.mean((2, 3))
    w1, b1 = se.fc1.weight.flatten(1), se.fc1.bias
    w2, b2 = se.fc2.weight.flatten(1), se.fc2.bias
    gate = torch.sigmoid(torch.relu(s @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'gelu2'"):
        get_activation("gelu2")
