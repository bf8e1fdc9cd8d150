"""Squeeze-and-excitation and the residual attention module: formulas, layout and cost."""

import pytest
import torch
from torch import nn

from cnnlab.counting.trace import traced_counts
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx
from cnnlab.ops.residual_attention import PreActBottleneck, ResidualAttentionModule
from cnnlab.ops.se import SqueezeExcite


def _assert_counts_equal(analytic: Cx, model: nn.Module, size) -> None:
    traced = traced_counts(model, size)
    assert analytic.params == traced.params == sum(p.numel() for p in model.parameters())
    assert analytic.macs == traced.macs
    assert analytic.activations == traced.activations
    assert analytic.memory_access == traced.memory_access


# --- squeeze-and-excitation ---------------------------------------------------------------------


def test_se_positional_constructor_unchanged():
    se = SqueezeExcite(32, 4)  # as ShuffleNet v1/v2 build it
    assert se.fc1.out_channels == 8 and se.bn is None
    assert [type(m) for m in se.children()] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Sigmoid]


def test_se_with_bn_formula():
    se = SqueezeExcite(16, 4, use_bn=True).eval()
    se.bn.running_mean.uniform_(-1, 1)
    se.bn.running_var.uniform_(0.5, 2)
    se.bn.weight.data.uniform_(0.5, 1.5)
    se.bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 16, 5, 5)
    s = x.mean((2, 3))
    h = s @ se.fc1.weight.flatten(1).T + se.fc1.bias
    bn = se.bn
    h = (h - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    gate = torch.sigmoid(torch.relu(h) @ se.fc2.weight.flatten(1).T + se.fc2.bias)
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])
    # BN sits after the first FC, before its activation (SKNet's fuse layer)
    names = [n for n, _ in se.named_children()]
    assert names.index("fc1") < names.index("bn") < names.index("act") < names.index("fc2")


@pytest.mark.parametrize("use_bn", [False, True])
@pytest.mark.parametrize("gate,act", [("sigmoid", "relu"), ("hard_sigmoid", "swish_trainable")])
def test_se_analytic_equals_traced(use_bn, gate, act):
    size = (24, 7, 6)
    se = SqueezeExcite(24, 4, gate=gate, act=act, use_bn=use_bn)
    _assert_counts_equal(
        SqueezeExcite.complexity(Cx(*size), 24, 4, gate=gate, act=act, use_bn=use_bn), se, size
    )


def test_se_bad_reduction():
    with pytest.raises(ValueError, match="reduction must be >= 1, got 0"):
        SqueezeExcite(16, 0)


# --- residual attention module ------------------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_output_shape_equals_input(depth):
    m = ResidualAttentionModule(8, depth=depth)
    x = torch.randn(2, 8, 16, 8)
    assert m(x).shape == x.shape
    assert m.mask(x).shape == x.shape


def test_layout_matches_attention56_stage1():
    # the authors' Attention-56 first module (depth 3): trunk/res1-3 (p + t), down_sample res1_1,
    # res2_1, res3_1, res3_2, skip res1-2, up_sample res2_1, res1_1, and one unit after the fusion
    m = ResidualAttentionModule(16, depth=3)
    units = [u for u in m.modules() if isinstance(u, PreActBottleneck)]
    assert len(units) == 12
    assert [len(d) for d in m.down] == [1, 1, 2]
    assert len(m.skips) == 2 and len(m.up) == 2
    convs = [c for c in m.mask_head if isinstance(c, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (1, 1)]
    assert isinstance(m.mask_head[-1], nn.Sigmoid)


def _captured(m: ResidualAttentionModule, x: torch.Tensor, zero_mask=False):
    seen = {}

    def keep(name):
        def hook(_, args, out=None):
            seen[name] = args[0] if out is None else out

        return hook

    m.trunk.register_forward_hook(keep("T"))
    if zero_mask:
        m.mask_head.register_forward_hook(lambda _, a, out: torch.zeros_like(out))
    else:
        m.mask_head.register_forward_hook(keep("M"))
    m.post.register_forward_pre_hook(keep("H"))
    out = m(x)
    return out, seen


def test_attention_residual_learning_formula():
    m = ResidualAttentionModule(8, depth=2).eval()
    out, seen = _captured(m, torch.randn(2, 8, 8, 8))
    assert ((seen["M"] > 0) & (seen["M"] < 1)).all()
    torch.testing.assert_close(
        seen["H"], (1 + seen["M"]) * seen["T"]
    )  # attention residual learning
    torch.testing.assert_close(out, m.post(seen["H"]))


def test_zero_mask_gives_the_trunk():
    m = ResidualAttentionModule(8, depth=2).eval()
    x = torch.randn(2, 8, 8, 8)
    out, seen = _captured(m, x, zero_mask=True)
    torch.testing.assert_close(seen["H"], seen["T"])
    with torch.no_grad():
        torch.testing.assert_close(out, m.post(m.trunk(m.pre(x))))


def test_gradient_reaches_every_parameter():
    m = ResidualAttentionModule(8, depth=2)
    x = torch.randn(2, 8, 8, 8, requires_grad=True)
    m(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "depth,p,t,r", [(1, 1, 2, 1), (2, 1, 2, 1), (3, 1, 2, 1), (2, 0, 1, 2), (1, 2, 3, 1)]
)
def test_analytic_equals_traced(depth, p, t, r):
    size = (16, 16, 8)
    m = ResidualAttentionModule(16, depth=depth, p=p, t=t, r=r)
    cx = ResidualAttentionModule.complexity(Cx(*size), 16, depth=depth, p=p, t=t, r=r)
    assert cx.shape == size
    _assert_counts_equal(cx, m, size)


def test_analytic_equals_traced_after_conv_bn_relu():
    # the module's first BN reads an in-place ReLU of a conv output: it cannot fold into the conv
    size = (3, 16, 16)
    model = nn.Sequential(ConvNormAct(3, 8, 3), ResidualAttentionModule(8, depth=2))
    cx = ConvNormAct.complexity(Cx(*size), 3, 8, 3)
    cx = ResidualAttentionModule.complexity(cx, 8, depth=2)
    _assert_counts_equal(cx, model, size)


def test_bad_sizes_name_the_numbers():
    m = ResidualAttentionModule(8, depth=3)
    with pytest.raises(ValueError, match=r"input 20x16 must be divisible by 2\*\*depth = 8"):
        m(torch.zeros(1, 8, 20, 16))
    with pytest.raises(ValueError, match=r"input 12x12 must be divisible by 2\*\*depth = 8"):
        ResidualAttentionModule.complexity(Cx(8, 12, 12), 8, depth=3)
    with pytest.raises(ValueError, match="depth .* must be >= 1, got 0"):
        ResidualAttentionModule(8, depth=0)
    with pytest.raises(ValueError, match="needs c >= 4 channels .* got c=2"):
        ResidualAttentionModule(2)
    with pytest.raises(ValueError, match="got p=1, t=2, r=0"):
        ResidualAttentionModule(8, r=0)
