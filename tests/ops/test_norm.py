"""Normalization layers: batch renorm, ghost BN, the factory, convert_norm and weight norm."""

import importlib.util

import pytest
import torch
from torch import nn
from torch.func import functional_call

import cnnlab
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.cost import Cx, conv2d_cx
from cnnlab.ops.ghost_bn import GhostBatchNorm2d
from cnnlab.ops.norm import (
    NORM_KINDS,
    apply_weight_norm,
    convert_norm,
    get_norm,
    get_norm_cx,
    weight_norm_cx,
)
from cnnlab.ops.renorm import BatchRenorm2d

HAS_DISTRIBUTED = importlib.util.find_spec("cnnlab.ops.distributed_bn") is not None
needs_distributed = pytest.mark.skipif(
    not HAS_DISTRIBUTED, reason="cnnlab.ops.distributed_bn (DistributedBatchNorm2d) not landed yet"
)
KINDS = [k if k != "distributed" else pytest.param(k, marks=needs_distributed) for k in NORM_KINDS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny tensors: one intra-op thread avoids thread contention on a loaded machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomise_stats(model: nn.Module) -> nn.Module:
    """Random running statistics and affine parameters, so that copying them is visible."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.num_batches_tracked.fill_(123)
    return model


# ---------------------------------------------------------------- batch renormalization


def _bn_pair(num_features=4, **brn_options):
    bn = nn.BatchNorm2d(num_features, momentum=0.01)
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(num_features))
        bn.running_var.copy_(torch.rand(num_features) + 0.5)
        bn.weight.copy_(torch.rand(num_features) + 0.5)
        bn.bias.copy_(torch.randn(num_features))
    bn.num_batches_tracked.fill_(4997)  # 3 steps below, all before warmup_steps=5000
    brn = BatchRenorm2d(num_features, **brn_options)
    brn.load_state_dict(bn.state_dict())  # same names: state dicts interchange
    return bn, brn


def test_batch_renorm_equals_bn_while_r_max_1_d_max_0():
    bn, brn = _bn_pair()
    for _ in range(3):
        x = (torch.randn(6, 4, 5, 5) * 3 + 2).requires_grad_(True)
        x2 = x.detach().clone().requires_grad_(True)
        y, y2 = bn(x), brn(x2)
        assert torch.allclose(y, y2, atol=1e-6, rtol=0)
        g = torch.randn_like(y)
        y.backward(g)
        y2.backward(g)
        assert torch.allclose(x.grad, x2.grad, atol=1e-6, rtol=0)
        assert torch.allclose(bn.weight.grad, brn.weight.grad, atol=1e-5, rtol=0)
        assert torch.allclose(bn.bias.grad, brn.bias.grad, atol=1e-5, rtol=0)
        bn.zero_grad()
        brn.zero_grad()
    for name, t in bn.state_dict().items():
        assert torch.equal(t, brn.state_dict()[name]), name
    assert int(brn.num_batches_tracked) == 5000
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(bn.eval()(x), brn.eval()(x))
    bn.load_state_dict(brn.state_dict())  # and back


@pytest.mark.parametrize(
    "step,r_max,d_max",
    [(0, 1.0, 0.0), (5000, 1.0, 0.0), (22500, 2.0, 4.375), (25000, 1 + 2 * 20 / 35, 5.0)]
    + [(40000, 3.0, 5.0), (10**6, 3.0, 5.0)],
)
def test_batch_renorm_default_schedule(step, r_max, d_max):
    # Ioffe 2017: plain BN for 5k steps, then linear to r_max=3 at 40k and d_max=5 at 25k
    brn = BatchRenorm2d(4)
    assert brn.limits(step) == pytest.approx((r_max, d_max), abs=1e-12)
    r, d = brn.limits(torch.tensor(step))
    assert (float(r), float(d)) == pytest.approx((r_max, d_max), abs=1e-12)


def test_batch_renorm_schedule_is_configurable():
    brn = BatchRenorm2d(4, r_max=1.5, d_max=0.5, warmup_steps=0, r_max_steps=10, d_max_steps=10)
    assert brn.limits(5) == pytest.approx((1.25, 0.25))
    assert brn.limits(100) == pytest.approx((1.5, 0.5))
    instant = BatchRenorm2d(4, warmup_steps=7, r_max_steps=7, d_max_steps=7)
    assert instant.limits(6) == (1.0, 0.0) and instant.limits(7) == (3.0, 5.0)


def _renorm_reference(x, mean, var, gamma, beta, r_max, d_max, eps=1e-5):
    """Ioffe 2017 Alg. 1 written out: x_hat = (x - mu_B)/sigma_B * r + d, y = gamma x_hat + beta."""
    mu_b = x.mean((0, 2, 3))
    sigma_b = (x.var((0, 2, 3), unbiased=False) + eps).sqrt()
    sigma = (var + eps).sqrt()
    r = ((sigma_b / sigma).clamp(1 / r_max, r_max)).detach()
    d = (((mu_b - mean) / sigma).clamp(-d_max, d_max)).detach()
    x_hat = (x - mu_b[:, None, None]) / sigma_b[:, None, None] * r[:, None, None] + d[:, None, None]
    return gamma[:, None, None] * x_hat + beta[:, None, None], r, d


def test_batch_renorm_follows_formula_with_clipping():
    brn = BatchRenorm2d(4)
    brn.num_batches_tracked.fill_(22500)  # r_max = 2, d_max = 4.375
    with torch.no_grad():
        # channel 0 inside the limits; 1: r clipped low; 2: d clipped; 3: r clipped high
        brn.running_mean.copy_(torch.tensor([0.1, 0.0, -30.0, 0.0]))
        brn.running_var.copy_(torch.tensor([1.2, 100.0, 1.0, 0.01]))
        brn.weight.copy_(torch.tensor([1.5, 0.5, 2.0, 1.0]))
        brn.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    mean0, var0 = brn.running_mean.clone(), brn.running_var.clone()
    x = torch.randn(8, 4, 3, 3).requires_grad_(True)
    y = brn(x)
    gamma = brn.weight.detach().clone().requires_grad_(True)
    beta = brn.bias.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref, r, d = _renorm_reference(x_ref, mean0, var0, gamma, beta, 2.0, 4.375)
    assert r[1] == 0.5 and r[3] == 2.0 and d[2] == 4.375  # clipping is active
    assert 0.5 < r[0] < 2.0 and -4.375 < d[0] < 4.375
    assert torch.allclose(y, y_ref, atol=1e-5, rtol=0)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5, rtol=0)
    assert torch.allclose(brn.weight.grad, gamma.grad, atol=1e-4, rtol=0)
    assert torch.allclose(brn.bias.grad, beta.grad, atol=1e-4, rtol=0)
    # moving averages as nn.BatchNorm2d: mean += a(mu_B - mean), var += a(unbiased var_B - var)
    xd = x.detach()
    assert torch.allclose(brn.running_mean, 0.99 * mean0 + 0.01 * xd.mean((0, 2, 3)), atol=1e-6)
    var_u = xd.var((0, 2, 3), unbiased=True)
    assert torch.allclose(brn.running_var, 0.99 * var0 + 0.01 * var_u, atol=1e-6)
    assert int(brn.num_batches_tracked) == 22501
    brn.eval()
    mean, var = brn.running_mean, brn.running_var
    ref = (
        brn.weight[:, None, None] * (xd - mean[:, None, None]) / (var[:, None, None] + 1e-5).sqrt()
        + brn.bias[:, None, None]
    )
    assert torch.allclose(brn(xd), ref, atol=1e-5)


def test_batch_renorm_gradcheck_float64():
    # momentum 0 keeps the moving stats fixed across gradcheck's calls; they are set so that r and
    # d are clipped in every channel, i.e. constant, as the gradient of the paper assumes
    brn = BatchRenorm2d(3, momentum=0.0).double()
    brn.num_batches_tracked.fill_(10**6)  # r_max = 3, d_max = 5
    with torch.no_grad():
        brn.running_mean.copy_(torch.tensor([500.0, -500.0, 1.0]))
        brn.running_var.copy_(torch.tensor([400.0, 400.0, 1e-4]))
    x = torch.randn(3, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    w = torch.rand(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return functional_call(brn, {"weight": w, "bias": b}, (x,), strict=False)

    assert torch.autograd.gradcheck(f, (x, w, b))


def test_batch_renorm_refuses_bad_schedule():
    with pytest.raises(ValueError, match="r_max=0.5"):
        BatchRenorm2d(4, r_max=0.5)
    with pytest.raises(ValueError, match="warmup_steps=5000, r_max_steps=100"):
        BatchRenorm2d(4, r_max_steps=100)


# ---------------------------------------------------------------- ghost batch norm


@pytest.mark.parametrize("batch", [3, 4])
def test_ghost_bn_equals_bn_within_one_virtual_batch(batch):
    bn, ghost = nn.BatchNorm2d(5), GhostBatchNorm2d(5, virtual_batch=4)
    x = torch.randn(batch, 5, 4, 4)
    assert torch.equal(bn(x), ghost(x))
    for name, t in bn.state_dict().items():
        assert torch.equal(t, ghost.state_dict()[name]), name


@pytest.mark.parametrize("batch", [8, 10])  # 2 x virtual, and a short last chunk (4, 4, 2)
def test_ghost_bn_equals_bn_passes_over_chunks(batch):
    bn, ghost = nn.BatchNorm2d(5), GhostBatchNorm2d(5, virtual_batch=4)
    x = torch.randn(batch, 5, 4, 4) * 2 + 1
    y = ghost(x)
    expected = torch.cat([bn(c) for c in x.split(4)])
    assert torch.allclose(y, expected, atol=1e-6, rtol=0)
    assert not torch.allclose(y, nn.BatchNorm2d(5)(x), atol=1e-3)  # not BN over the whole batch
    for name, t in bn.state_dict().items():  # running stats: one BN update per chunk
        assert torch.equal(t, ghost.state_dict()[name]), name
    assert int(ghost.num_batches_tracked) == len(x.split(4))
    x = torch.randn(batch, 5, 4, 4)
    assert torch.equal(bn.eval()(x), ghost.eval()(x))


@pytest.mark.parametrize("bad", [0, -32, 2.5, True, "32"])
def test_ghost_bn_refuses_bad_virtual_batch(bad):
    with pytest.raises(ValueError, match="virtual_batch must be a positive integer"):
        GhostBatchNorm2d(8, bad)


# ---------------------------------------------------------------- factory


def test_get_norm_kinds():
    assert type(get_norm("bn", 64)) is nn.BatchNorm2d
    gn = get_norm("gn", 64)
    assert type(gn) is nn.GroupNorm and (gn.num_groups, gn.num_channels) == (32, 64)
    assert get_norm("gn", 64, groups=4).num_groups == 4
    assert get_norm("ln", 24).num_groups == 1 and get_norm("in", 24).num_groups == 24
    brn = get_norm("brn", 8, r_max=2.0, momentum=0.1)
    assert type(brn) is BatchRenorm2d and brn.r_max == 2.0 and brn.momentum == 0.1
    assert get_norm("ghost", 8, virtual_batch=16).virtual_batch == 16


def test_group_norm_matches_its_definition():
    # Wu & He 2018 Eq. 1-3: per sample, statistics over each group of C/G channels and (H, W)
    gn = get_norm("gn", 8, groups=2)
    with torch.no_grad():
        gn.weight.copy_(torch.rand(8) + 0.5)
        gn.bias.copy_(torch.randn(8))
    x = torch.randn(3, 8, 4, 5)
    xg = x.view(3, 2, 4 * 4 * 5)
    x_hat = (xg - xg.mean(-1, keepdim=True)) / (xg.var(-1, False, keepdim=True) + 1e-5).sqrt()
    ref = x_hat.view_as(x) * gn.weight[:, None, None] + gn.bias[:, None, None]
    assert torch.allclose(gn(x), ref, atol=1e-5)


def test_layer_norm_equals_torch_layer_norm_over_chw():
    ln = get_norm("ln", 6)
    with torch.no_grad():
        ln.weight.copy_(torch.rand(6) + 0.5)
        ln.bias.copy_(torch.randn(6))
    ref = nn.LayerNorm((6, 4, 4))  # per-element affine: set to the per-channel gamma, beta
    with torch.no_grad():
        ref.weight.copy_(ln.weight[:, None, None].expand(6, 4, 4))
        ref.bias.copy_(ln.bias[:, None, None].expand(6, 4, 4))
    x = torch.randn(2, 6, 4, 4) * 3
    assert torch.allclose(ln(x), ref(x), atol=1e-5)


def test_instance_norm_equals_torch_instance_norm():
    inorm, ref = get_norm("in", 6), nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        for m in (inorm, ref):
            m.weight.copy_(torch.arange(1.0, 7.0))
            m.bias.copy_(torch.arange(6.0))
    x = torch.randn(2, 6, 5, 5)
    assert torch.allclose(inorm(x), ref(x), atol=1e-5)
    assert torch.allclose(inorm.eval()(x), ref.eval()(x), atol=1e-5)


def test_get_norm_errors():
    with pytest.raises(ValueError, match="unknown norm kind 'batch'; choose one of bn, gn, ln"):
        get_norm("batch", 8)
    with pytest.raises(ValueError, match="apply_weight_norm"):
        get_norm("wn", 8)
    with pytest.raises(ValueError, match="groups=32 does not divide num_channels=48"):
        get_norm("gn", 48)
    with pytest.raises(ValueError, match="groups must be a positive integer, got 0"):
        get_norm("gn", 48, groups=0)
    with pytest.raises(TypeError, match="unknown option.* momentum; options for 'gn': groups"):
        get_norm("gn", 64, momentum=0.1)
    with pytest.raises(ValueError, match="num_features must be a positive integer, got 0"):
        get_norm("bn", 0)


# ---------------------------------------------------------------- analytic cost


@pytest.mark.parametrize("kind", KINDS)
def test_norm_cost_params_match_the_built_layer(kind):
    options = {"groups": 4} if kind == "gn" else {}
    cx = get_norm_cx(Cx(16, 7, 7), kind, 16, **options)
    assert cx.params == sum(p.numel() for p in get_norm(kind, 16, **options).parameters())
    assert cx.params == 32 and cx.memory_access == 2 * 16 * 7 * 7 + 2 * 16
    folded = get_norm_cx(Cx(16, 7, 7), kind, 16, folded=True, **options)
    assert folded.memory_access == (
        0 if kind in ("bn", "brn", "ghost", "distributed") else cx.memory_access
    )


@pytest.mark.parametrize("cls", [BatchRenorm2d, GhostBatchNorm2d])
def test_batch_norm_variants_cost_matches_trace(cls):
    c_in, c, h = 3, 8, 6
    after_conv = nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1, bias=False), cls(c))
    conv_cx = conv2d_cx(Cx(c_in, h, h), c, 3, padding=1)
    folded = cls.complexity(conv_cx, c, folded=True)
    t = traced_counts(after_conv, (c_in, h, h))
    assert (folded.params, folded.macs, folded.memory_access) == (t.params, t.macs, t.memory_access)
    alone = cls.complexity(Cx(c, h, h), c)  # not after a conv: read + write + 2c
    t = traced_counts(cls(c), (c, h, h))
    assert (
        (alone.params, alone.memory_access)
        == (t.params, t.memory_access)
        == (16, 2 * c * h * h + 16)
    )
    with pytest.raises(ValueError, match="num_features=4 cannot take an input of 8 channels"):
        cls.complexity(Cx(8, 2, 2), 4)


def test_weight_norm_cost_adds_g_per_output_channel():
    conv = nn.Conv2d(4, 6, 3)
    wn = apply_weight_norm(nn.Sequential(conv))
    base = sum(p.numel() for p in conv.parameters())
    assert weight_norm_cx(Cx(6, 5, 5)).params == 6 == sum(p.numel() for p in wn.parameters()) - base


# ---------------------------------------------------------------- convert_norm


@pytest.fixture(scope="module")
def shufflenet():
    torch.manual_seed(0)
    return _randomise_stats(cnnlab.create_model("shufflenet_v2_x0_5")).eval()


def _norms(model):
    return [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]


@pytest.mark.parametrize(
    "kind,cls",
    [
        ("ghost", GhostBatchNorm2d),
        ("brn", BatchRenorm2d),
        pytest.param("distributed", None, marks=needs_distributed),
    ],
)
def test_convert_norm_round_trip_keeps_eval_outputs(shufflenet, kind, cls):
    if cls is None:
        from cnnlab.ops.distributed_bn import DistributedBatchNorm2d as cls
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = shufflenet(x)
        there = convert_norm(shufflenet, kind)
        back = convert_norm(there, "bn")
        assert (there(x) - y).abs().max() <= 1e-6
        assert (back(x) - y).abs().max() <= 1e-6
    n = len(_norms(shufflenet))
    assert n == 56 and [type(m) for m in _norms(there)] == [cls] * n
    assert [type(m) for m in _norms(back)] == [nn.BatchNorm2d] * n
    for a, b in zip(_norms(shufflenet), _norms(back)):
        for name, t in a.state_dict().items():
            assert torch.equal(t, b.state_dict()[name]), name
    assert all(type(m) is nn.BatchNorm2d for m in _norms(shufflenet))  # source left untouched


def test_convert_norm_to_group_norm_keeps_affine(shufflenet):
    gn = convert_norm(shufflenet, "gn", groups=8)
    pairs = list(zip(_norms(shufflenet), _norms(gn)))
    assert len(pairs) == 56 and all(type(g) is nn.GroupNorm and g.num_groups == 8 for _, g in pairs)
    for bn, g in pairs:
        assert torch.equal(bn.weight, g.weight) and torch.equal(bn.bias, g.bias) and bn.eps == g.eps
    ln = convert_norm(gn, "ln")
    assert all(m.num_groups == 1 for m in _norms(ln))
    back = convert_norm(ln, "bn")
    for bn, b in zip(_norms(shufflenet), _norms(back)):  # gamma, beta survive; stats do not exist
        assert torch.equal(bn.weight, b.weight) and torch.equal(
            b.running_var, torch.ones_like(b.running_var)
        )
    assert gn(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_convert_norm_keeps_mode_dtype_and_frozen_params():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.BatchNorm2d(8)
    ).double()
    net[1].eval()
    net[3].weight.requires_grad_(False)
    out = convert_norm(net, "ghost", virtual_batch=2)
    assert [out[1].training, out[3].training] == [False, True]
    assert out[1].weight.dtype == torch.float64 and out[1].virtual_batch == 2
    assert out[3].weight.requires_grad is False and out[3].bias.requires_grad is True
    alone = convert_norm(nn.BatchNorm2d(4), "brn")  # the model itself is a norm layer
    assert type(alone) is BatchRenorm2d


def test_convert_norm_errors_name_the_value(shufflenet):
    with pytest.raises(ValueError, match="unknown norm kind 'group'; choose one of bn, gn"):
        convert_norm(shufflenet, "group")
    with pytest.raises(
        ValueError,
        match="layer 'features.conv1.bn': group norm: groups=32 does not divide num_channels=24",
    ):
        convert_norm(shufflenet, "gn")
    with pytest.raises(ValueError, match="virtual_batch must be a positive integer .*got 0"):
        convert_norm(shufflenet, "ghost", virtual_batch=0)


# ---------------------------------------------------------------- weight norm


def test_weight_norm_equals_the_original_conv_at_init():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(), nn.Linear(200, 5)
    )
    x = torch.randn(2, 3, 9, 9)
    y = net(x)
    wn = apply_weight_norm(net)
    assert torch.allclose(wn(x), y, atol=1e-6)
    conv = wn[0]
    g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
    assert g.shape == (8, 1, 1, 1) and torch.allclose(g.flatten(), v.flatten(1).norm(dim=1))
    assert torch.allclose(conv.weight, g * v / v.flatten(1).norm(dim=1)[:, None, None, None])
    assert all(hasattr(m, "parametrizations") for m in (wn[0], wn[2], wn[4]))
    assert not hasattr(net[0], "parametrizations")  # a copy: the original is untouched
    wn(x).sum().backward()
    assert g.grad is not None and v.grad is not None
