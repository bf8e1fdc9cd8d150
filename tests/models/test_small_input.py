"""The small-input (CIFAR-style) stem: stride-1 stem, no stem pool, counted exactly; refused
by families without one."""

import pytest
import torch

import cnnlab
from cnnlab.counting.trace import traced_counts

NAMES = [
    "shufflenet_v2_x0_5",
    "shufflenet_v1_g3_x0_5",
    "mobilenet_v2_x0_35",
    "mobilenet_v1_x0_25",
    "resnet18",
    "densenet121",
]


@pytest.mark.parametrize("name", NAMES)
def test_small_input_keeps_resolution_and_counts_exactly(name):
    model = cnnlab.create_model(name, small_input=True, num_classes=10, in_chans=1).eval()
    default = cnnlab.create_model(name, num_classes=10, in_chans=1).eval()
    size = (1, 32, 32)
    # the stem no longer divides the resolution: the final feature map is 4x (pool) or 2x larger
    small = model.forward_features(torch.zeros(1, *size)).shape[-1]
    large = default.forward_features(torch.zeros(1, *size)).shape[-1]
    assert small == large * (4 if "mobilenet" not in name else 2)
    analytic, traced = cnnlab.complexity(model, size), traced_counts(model, size)
    assert (analytic.params, analytic.macs, analytic.memory_access) == (
        traced.params,
        traced.macs,
        traced.memory_access,
    )


def test_families_without_it_refuse():
    with pytest.raises(ValueError, match="XceptionConfig has no small-input"):
        cnnlab.create_model("xception", small_input=True)
