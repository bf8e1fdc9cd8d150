"""from_timm: timm modules ported by order with identical outputs; the others refused."""

import pytest
import timm
import torch

import cnnlab
from tests.bn import randomise_bn


@pytest.mark.parametrize(
    "timm_name,ours",
    [
        ("legacy_xception", "xception"),
        ("legacy_seresnet50", "se_resnet50"),
        ("legacy_seresnext50_32x4d", "se_resnext50_32x4d"),
    ],
)
def test_port_identical_and_same_architecture(timm_name, ours):
    ref = timm.create_model(timm_name).eval()
    randomise_bn(ref)
    net = cnnlab.from_timm(ref)
    assert net.matches_plan() and not net.training
    assert cnnlab.complexity(net).params == cnnlab.complexity(ours).params
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert (ref(x) - net(x)).abs().max().item() <= 1e-5


def test_reads_the_classifier_and_input_channels():
    net = cnnlab.from_timm(timm.create_model("legacy_seresnet50", num_classes=7, in_chans=1))
    assert net.get_classifier().out_features == 7
    assert net(torch.randn(2, 1, 64, 64)).shape == (2, 7)


def test_unsupported_modules_are_refused_with_the_supported_list():
    with pytest.raises(TypeError, match=r"from_timm supports timm's .*SENet.*got Linear"):
        cnnlab.from_timm(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"SEResNetBlock; supported: SEResNetBottleneck"):
        cnnlab.from_timm(timm.create_model("legacy_seresnet18"))
