"""Activations against their closed forms, their gradients, and their memory-access cost."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.counting.trace import traced_counts
from cnnlab.ops.act import activation_cost, activation_names, check_activation, get_activation
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, norm_cx


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _sinc(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x == 0, 1.0, np.sin(x) / x)


# name, options, closed form (numpy, float64)
CLOSED_FORMS = [
    ("relu", {}, lambda x: np.maximum(0, x)),
    ("relu6", {}, lambda x: np.minimum(np.maximum(0, x), 6)),
    ("leaky_relu", {}, lambda x: np.where(x > 0, x, 0.01 * x)),
    ("leaky_relu", {"slope": 0.2}, lambda x: np.where(x > 0, x, 0.2 * x)),
    ("sigmoid", {}, _sigmoid),
    ("hard_sigmoid", {}, lambda x: np.clip(x / 6 + 0.5, 0, 1)),
    ("hard_swish", {}, lambda x: x * np.clip(x + 3, 0, 6) / 6),
    ("silu", {}, lambda x: x * _sigmoid(x)),
    ("swish", {}, lambda x: x * _sigmoid(x)),
    ("swish", {"beta": 1.5}, lambda x: x * _sigmoid(1.5 * x)),
    ("swish", {"beta": 0.0}, lambda x: x / 2),  # beta = 0: x/2 (Ramachandran et al. §4)
    ("swish_trainable", {"beta": 0.75}, lambda x: x * _sigmoid(0.75 * x)),
    ("max_sigmoid", {}, lambda x: np.maximum(x, _sigmoid(x))),
    ("cos_minus_x", {}, lambda x: np.cos(x) - x),
    ("min_sin", {}, lambda x: np.minimum(x, np.sin(x))),
    ("atan_sq_minus_x", {}, lambda x: np.arctan(x) ** 2 - x),
    ("max_tanh", {}, lambda x: np.maximum(x, np.tanh(x))),
    ("sinc_plus_x", {}, lambda x: _sinc(x) + x),
    ("x_asinh_sq", {}, lambda x: x * np.arcsinh(x) ** 2),
]
GRID = np.concatenate([np.arange(-80, 81) / 10, [1e-9, -1e-9, 0.6590460684]])


def test_every_name_has_a_closed_form_test():
    assert sorted({name for name, _, _ in CLOSED_FORMS}) == activation_names()


@pytest.mark.parametrize("name,options,form", CLOSED_FORMS)
def test_closed_form_on_a_grid(name, options, form):
    act = get_activation(name, inplace=False, **options).double()
    x = torch.from_numpy(GRID.copy())
    np.testing.assert_allclose(act(x).detach().numpy(), form(GRID), rtol=1e-12, atol=1e-12)


def test_sinc_is_the_papers_unnormalised_sinc():
    act = get_activation("sinc_plus_x")
    x = torch.tensor([0.0, math.pi, 2 * math.pi, 1.0])
    # sin(x)/x: zero at multiples of pi (torch.sinc's zeros are at the integers)
    expected = torch.tensor([1.0, math.pi, 2 * math.pi, math.sin(1.0) + 1.0])
    torch.testing.assert_close(act(x), expected, atol=1e-6, rtol=0)


# piecewise-linear functions are not differentiable at their kinks: gradcheck avoids those points
KINKS = {"relu": [0.0], "relu6": [0.0, 6.0], "leaky_relu": [0.0]}


@pytest.mark.parametrize("name,options", [(n, o) for n, o, _ in CLOSED_FORMS])
def test_gradcheck_float64(name, options):
    points = [-4.5, -2.0, -0.5, 0.0, 0.3, 1.0, 2.5, 5.0]
    x = torch.tensor([p for p in points if p not in KINKS.get(name, [])], dtype=torch.float64)
    act = get_activation(name, inplace=False, **options).double()
    assert torch.autograd.gradcheck(act, (x.requires_grad_(),))


def test_sinc_gradient_at_zero_is_zero():
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    y = get_activation("sinc_plus_x")(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(y.detach(), torch.ones(3, dtype=torch.float64))
    assert torch.equal(g, torch.ones(3, dtype=torch.float64))  # sinc'(0) = 0, plus d(x)/dx = 1


def test_swish_derivative_matches_survey_formula():
    # f' = beta f + sigmoid(beta x) (1 - beta f)  (docs/provenance.md#activations)
    beta = 1.7
    x = torch.linspace(-5, 5, 41, dtype=torch.float64, requires_grad=True)
    f = get_activation("swish", beta=beta)(x)
    (g,) = torch.autograd.grad(f.sum(), x)
    s = torch.sigmoid(beta * x)
    torch.testing.assert_close(g, beta * f + s * (1 - beta * f))


@pytest.mark.parametrize("channels", [None, 3])
def test_trainable_beta_gets_its_gradient(channels):
    act = get_activation("swish_trainable", beta=0.5, channels=channels).double()
    (beta,) = act.parameters()
    assert beta.shape == (() if channels is None else (3, 1, 1))
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    act(x).sum().backward()
    # d/dbeta [x sigmoid(beta x)] = x^2 sigmoid(beta x) (1 - sigmoid(beta x))
    s = torch.sigmoid(0.5 * x)
    per_elem = x * x * s * (1 - s)
    expected = per_elem.sum() if channels is None else per_elem.sum((0, 2, 3)).view(3, 1, 1)
    torch.testing.assert_close(beta.grad, expected)


def test_unknown_name_lists_every_name():
    with pytest.raises(ValueError, match="unknown activation 'gelu2'") as e:
        get_activation("gelu2")
    for name in activation_names():
        assert name in str(e.value)
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        check_activation("swishy")
    check_activation(None)
    assert isinstance(get_activation(None), nn.Identity)


def test_unknown_option_is_refused():
    with pytest.raises(TypeError, match="activation 'relu': unknown option.*'beta'.*takes: none"):
        get_activation("relu", beta=2.0)
    with pytest.raises(TypeError, match="takes: beta, channels"):
        get_activation("swish_trainable", slope=0.1)
    with pytest.raises(ValueError, match="channels=3 needs trainable=True"):
        from cnnlab.ops.act import Swish

        Swish(1.0, channels=3)


def test_existing_names_keep_their_modules():
    assert isinstance(get_activation("relu"), nn.ReLU) and get_activation("relu").inplace
    assert not get_activation("relu", inplace=False).inplace
    assert isinstance(get_activation("relu6"), nn.ReLU6)
    assert isinstance(get_activation("hard_swish"), nn.Hardswish)
    assert isinstance(get_activation("hard_sigmoid"), nn.Hardsigmoid)
    assert isinstance(get_activation("silu"), nn.SiLU)
    assert get_activation("leaky_relu", slope=0.3).negative_slope == 0.3


@pytest.mark.parametrize("name", activation_names())
def test_conv_act_analytic_equals_traced(name):
    size = (4, 6, 5)
    model = ConvNormAct(4, 8, 3, act=name)
    analytic = ConvNormAct.complexity(Cx(*size), 4, 8, 3, act=name)
    traced = traced_counts(model, size)
    assert analytic.params == traced.params == sum(p.numel() for p in model.parameters())
    assert analytic.macs == traced.macs
    assert analytic.memory_access == traced.memory_access
    # what the activation itself moves, per element: 2 for one pass, more for composite ones
    n = 8 * 6 * 5
    moved = act_cx(Cx(8, 6, 5), name).memory_access
    assert moved == MOVED_PER_ELEMENT.get(name, 2) * n + (name == "swish_trainable")


# elements moved per input element: f(g(x)) is 2 + 2, a binary op with x adds 3 (2 reads, 1 write)
MOVED_PER_ELEMENT = {
    "max_sigmoid": 5,
    "cos_minus_x": 5,
    "min_sin": 5,
    "max_tanh": 5,
    "atan_sq_minus_x": 7,
    "sinc_plus_x": 7,
    "x_asinh_sq": 7,
    "swish_trainable": 7,
}


@pytest.mark.parametrize(
    "name,options,per_element",
    [("swish", {"beta": 2.0}, 7), ("swish_trainable", {"channels": 8}, 7), ("max_tanh", {}, 5)],
)
def test_activation_cost_with_options_equals_traced(name, options, per_element):
    size = (4, 6, 5)
    act = get_activation(name, **options)
    model = nn.Sequential(nn.Conv2d(4, 8, 1, bias=False), nn.BatchNorm2d(8), act)
    params, mem = activation_cost(name, 8 * 30, **options)
    assert mem - params == per_element * 8 * 30  # beta * x, sigmoid, x * s: 2n + 2n + 3n
    analytic = norm_cx(conv2d_cx(Cx(*size), 8, 1)).add(params=params, memory_access=mem)
    traced = traced_counts(model, size)
    assert (analytic.params, analytic.memory_access) == (traced.params, traced.memory_access)


@pytest.mark.parametrize(
    "name,act",
    [
        ("shufflenet_v2_x0_5", "hard_swish"),
        ("shufflenet_v2_x0_5", "x_asinh_sq"),
        ("shufflenet_v1_g3_x0_5", "swish_trainable"),
        ("mobilenet_v1_x0_25", "min_sin"),
    ],
)
def test_model_takes_activation_by_name(name, act):
    size = (3, 64, 64)
    model = cnnlab.create_model(name, act=act, num_classes=10)
    assert model(torch.randn(2, *size)).shape == (2, 10)
    analytic = cnnlab.complexity(model, size)
    traced = traced_counts(model, size)
    assert (analytic.params, analytic.macs, analytic.activations, analytic.memory_access) == (
        traced.params,
        traced.macs,
        traced.activations,
        traced.memory_access,
    )
    relu = cnnlab.complexity(name, size, num_classes=10)
    assert analytic.macs == relu.macs
    # hard_swish is one pass like ReLU; the composite functions make more
    more = analytic.memory_access - relu.memory_access
    assert (more == 0) if act == "hard_swish" else (more > 0)


@pytest.mark.parametrize(
    "name", ["shufflenet_v1_g3_x0_5", "shufflenet_v2_x0_5", "mobilenet_v1_x0_25", "xception"]
)
def test_family_act_reaches_every_activation(name):
    relus = [m for m in cnnlab.create_model(name).modules() if isinstance(m, nn.ReLU)]
    model = cnnlab.create_model(name, act="hard_swish")
    swishes = [m for m in model.modules() if isinstance(m, nn.Hardswish)]
    assert not [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    assert len(swishes) == len(relus) > 0


def test_family_refuses_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'gelu2'"):
        cnnlab.create_model("shufflenet_v2_x0_5", act="gelu2")
