"""The model contract, held over the whole registry (as timm tests its registry)."""

import pytest
import torch

import cnnlab
from cnnlab.models import get_entry

NAMES = cnnlab.list_models()


def _small_input(name, batch=2):
    c, h, w = get_entry(name).input_size
    side = 96 if h > 224 else 64  # Xception's valid-padded stem needs a larger minimum
    return torch.randn(batch, c, side, side)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_contract(name):
    model = cnnlab.create_model(name, num_classes=7)
    x = _small_input(name)
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features
    logits = model.forward_head(feats)
    assert logits.shape == (2, 7)
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    model(x).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", NAMES)
def test_reset_classifier(name):
    model = cnnlab.create_model(name).eval()
    x = _small_input(name, batch=1)
    model.reset_classifier(0)
    assert model(x).shape == (1, model.num_features)
    model.reset_classifier(5)
    assert model(x).shape == (1, 5)
    assert cnnlab.complexity(model, x.shape[1:]).params == sum(
        p.numel() for p in model.parameters()
    )


@pytest.mark.parametrize("name", NAMES)
def test_in_chans(name):
    model = cnnlab.create_model(name, in_chans=1, num_classes=3).eval()
    c, _, _ = get_entry(name).input_size
    x = _small_input(name, batch=1)[:, :1]
    assert model(x).shape == (1, 3)
