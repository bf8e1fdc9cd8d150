"""GoogLeNet and Inception v3: torchvision figures, ports, branch structure, bad input."""

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.blocks.inception import AuxClassifier, GoogLeNetInception, InceptionC, InceptionE
from cnnlab.counting.trace import traced_counts
from cnnlab.models import get_entry, model_config
from tests.bn import randomise_bn


def _max_diff(tv: nn.Module, ours: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (tv(x) - ours(x)).abs().max().item()


def test_googlenet_tv_equals_torchvision_weight_metadata():
    meta = torchvision.models.get_model_weights("googlenet").DEFAULT.meta
    c = cnnlab.complexity("googlenet_tv")
    assert c.params == meta["num_params"] == 6_624_904
    assert round(c.macs / 1e9, 3) == meta["_ops"] == 1.498


def test_googlenet_paper_5x5_branch():
    # 5x5 instead of 3x3 in branch 3 of the nine modules: 1,582.7 M MACs, 7,005,832 params
    c = cnnlab.complexity("googlenet")
    assert (round(c.macs / 1e6, 1), c.params) == (1582.7, 7_005_832)


@pytest.mark.parametrize("transform_input", [False, True])
def test_googlenet_port_gives_identical_outputs(transform_input):
    tv = torchvision.models.googlenet(
        aux_logits=False, init_weights=False, transform_input=transform_input
    ).eval()
    randomise_bn(tv)
    ours = cnnlab.from_torchvision(tv).eval()
    assert ours.cfg.branch3_kernel == 3 and ours.cfg.transform_input == transform_input
    assert _max_diff(tv, ours, torch.randn(1, 3, 64, 64)) <= 1e-5
    assert cnnlab.complexity(ours).params == 6_624_904


def test_googlenet_port_refuses_auxiliary_classifiers():
    tv = torchvision.models.googlenet(init_weights=False)  # aux_logits=True by default
    with pytest.raises(ValueError, match="aux_logits=False"):
        cnnlab.from_torchvision(tv)


def test_googlenet_inception_concatenates_branches():
    m = GoogLeNetInception(192, 64, 96, 128, 16, 32, 32, branch3_kernel=5)
    assert m.branch3[1].conv.kernel_size == (5, 5) and m.c_out == 256
    assert m(torch.randn(1, 192, 7, 7)).shape == (1, 256, 7, 7)


def test_googlenet_bad_input():
    with pytest.raises(ValueError, match="branch3_kernel must be 5 .* or 3 .*, got 7"):
        model_config("googlenet", branch3_kernel=7)
    with pytest.raises(ValueError, match=r"branch widths must be >= 1, got \{'c5r': 0\}"):
        GoogLeNetInception(192, 64, 96, 128, 0, 32, 32)


def test_transform_input_analytic_equals_traced():
    net = cnnlab.create_model("googlenet_tv", transform_input=True)
    c, t = cnnlab.complexity(net, (3, 64, 64)), traced_counts(net, (3, 64, 64))
    assert (c.params, c.macs, c.memory_access) == (t.params, t.macs, t.memory_access)
    plain = cnnlab.complexity("googlenet_tv", (3, 64, 64))
    assert c.memory_access - plain.memory_access == 4 * 3 * 64 * 64 + 6


def test_inception_v3_equals_torchvision_weight_metadata():
    meta = torchvision.models.get_model_weights("inception_v3").DEFAULT.meta
    assert get_entry("inception_v3").input_size == (3, 299, 299)
    plain, aux = cnnlab.complexity("inception_v3"), cnnlab.complexity("inception_v3", aux=True)
    assert round(plain.macs / 1e9, 3) == meta["_ops"] == 5.713
    assert aux.params == meta["num_params"] == 27_161_264  # torchvision counts the aux head
    assert plain.params == 23_834_568 and aux.macs == plain.macs


@pytest.mark.parametrize("aux", [False, True])
def test_inception_v3_port_gives_identical_outputs(aux):
    tv = torchvision.models.inception_v3(aux_logits=aux, init_weights=False).eval()
    randomise_bn(tv)
    ours = cnnlab.from_torchvision(tv).eval()
    assert ours.cfg.aux == aux
    n_params = sum(p.numel() for p in ours.parameters())
    assert n_params == sum(p.numel() for p in tv.parameters())
    if not aux:  # one forward pair at 299 is enough: the aux head is a pass-through in eval
        assert _max_diff(tv, ours, torch.randn(1, 3, 299, 299)) <= 1e-5


def test_aux_head_adds_params_only_analytic_equals_traced():
    net = cnnlab.create_model("inception_v3", aux=True)
    c, t = cnnlab.complexity(net, (3, 96, 96)), traced_counts(net, (3, 96, 96))
    assert (c.params, c.macs, c.memory_access) == (t.params, t.macs, t.memory_access)
    plain = cnnlab.complexity("inception_v3", (3, 96, 96))
    assert (c.params - plain.params, c.macs, c.memory_access) == (
        3_326_696,
        plain.macs,
        plain.memory_access,
    )


def test_aux_classifier_logits_in_training_only():
    aux = AuxClassifier(768, 10)
    x = torch.randn(2, 768, 17, 17)
    assert aux.eval()(x) is x and aux.logits is None
    assert aux.train()(x) is x and aux.logits.shape == (2, 10)


def test_inception_v3_module_widths():
    m = InceptionC(768, c7=160)
    assert m.branch7x7_2.conv.kernel_size == (1, 7) and m.branch7x7_3.conv.kernel_size == (7, 1)
    assert m(torch.randn(1, 768, 5, 5)).shape == (1, 768, 5, 5)
    assert InceptionE(1280).c_out == 320 + 2 * 384 + 2 * 384 + 192


def test_inception_v3_bad_input():
    with pytest.raises(ValueError, match=r"c7 must be widths >= 1, got \(128, 0\)"):
        model_config("inception_v3", c7=(128, 0))
    with pytest.raises(ValueError, match="transform_input needs in_chans=3, got 1"):
        model_config("inception_v3", transform_input=True, in_chans=1)
