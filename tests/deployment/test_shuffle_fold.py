"""fold_shuffles: ShuffleNet v2's channel shuffles moved into the weights, outputs unchanged."""

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.blocks import shufflenet_v2 as unit_module
from cnnlab.deployment.fold import fold_batch_norms
from cnnlab.deployment.select import deploy
from cnnlab.deployment.shuffle_fold import FoldedShuffleUnit, fold_shuffles
from cnnlab.ops.se import SqueezeExcite
from tests.bn import randomise_bn


def folded_pair(model: nn.Module):
    model = randomise_bn(model).eval()
    bn_folded, _, _ = fold_batch_norms(model)
    return model, bn_folded, *fold_shuffles(bn_folded)


@pytest.mark.parametrize(
    "name",
    [
        "shufflenet_v2_x0_5",
        "shufflenet_v2_x1_5",
        "shufflenet_v2_x0_5_star",
        "shufflenet_v2_x2_0_se",
    ],
)
def test_folding_keeps_the_outputs(name):
    model, _, folded, n = folded_pair(cnnlab.create_model(name))
    assert n == 16  # every unit: 4 + 8 + 4
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max().item() <= 1e-5


def test_torchvision_layout_folds_too():
    """torchvision's stride-2 units emit c_out/2 from each branch, the paper's c_in and the rest."""
    model, _, folded, n = folded_pair(
        cnnlab.from_torchvision(torchvision.models.shufflenet_v2_x0_5())
    )
    assert n == 16
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (folded(x) - model(x)).abs().max().item() <= 1e-5


def test_the_folded_model_never_shuffles(monkeypatch):
    model, bn_folded, folded, _ = folded_pair(cnnlab.create_model("shufflenet_v2_x0_5"))
    assert sum(isinstance(m, FoldedShuffleUnit) for m in folded.modules()) == 16

    def shuffle(*args):
        raise AssertionError("channel_shuffle called")

    monkeypatch.setattr(unit_module, "channel_shuffle", shuffle)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        folded(x)  # no shuffle left
        with pytest.raises(AssertionError, match="channel_shuffle called"):
            bn_folded(x)


def test_each_unit_passes_a_prefix_and_concatenates_slices():
    """A stride-1 unit passes the first half of its input on and consumes the second: the
    half it passes is a prefix of memory. Its output is built from contiguous slices, and the
    slices of each source never overlap and cover it."""
    _, _, folded, _ = folded_pair(cnnlab.create_model("shufflenet_v2_x1_0"))
    for unit in (m for m in folded.modules() if isinstance(m, FoldedShuffleUnit)):
        for source in (0, 1):
            spans = sorted((a, b) for s, a, b in unit.pieces if s == source)
            assert spans[0][0] == 0 and all(b == a2 for (_, b), (a2, _) in zip(spans, spans[1:]))
        assert len(unit.pieces) <= 16


def test_a_model_without_shufflenet_v2_units_is_left_as_it_is():
    model, bn_folded, folded, n = folded_pair(cnnlab.create_model("mobilenet_v2_x0_35"))
    assert n == 0
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(folded(x), bn_folded(x))


def test_unfolded_batch_norms_leave_the_model_as_it_is():
    model = randomise_bn(cnnlab.create_model("shufflenet_v2_x0_5")).eval()
    _, n = fold_shuffles(model)  # BN in every branch: a permutation cannot pass through it here
    assert n == 0
    se_bn = cnnlab.create_model("shufflenet_v2_x2_0_se")
    for m in se_bn.modules():  # an SE block with BN in its excitation path stops the fold too
        if isinstance(m, SqueezeExcite):
            m.bn = nn.BatchNorm2d(m.fc1.out_channels).eval()
    assert fold_shuffles(fold_batch_norms(se_bn)[0])[1] == 0


def test_deploy_reports_the_folded_shuffles():
    out = deploy("shufflenet_v2_x0_5", backend="eager", threads=1, input_size=(3, 32, 32))
    assert out.deploy_report.shuffles_folded == 16
    out = deploy("mobilenet_v2_x0_35", backend="eager", threads=1, input_size=(3, 32, 32))
    assert out.deploy_report.shuffles_folded == 0
