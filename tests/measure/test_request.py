"""check_request: every check of a measurement once, and the request it returns."""

import pytest
import torch
from torch import nn

from cnnlab.measure.request import Request, check_batch_sizes, check_request, for_models


def test_a_request_holds_the_checked_settings():
    req = check_request(nn.Conv2d(3, 4, 1), input_size=[3, 8, 8], batch_sizes=[1, 4], threads=2)
    assert req == Request((3, 8, 8), (1, 4), torch.device("cpu"), 2)
    assert req.at_batch(4).batch_size == 4 and req.label == "as given"
    with pytest.raises(ValueError, match="several batch sizes"):
        assert req.batch_size


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(threads=0), "threads must be >= 1, got 0"),
        (dict(batch_sizes=(0,)), "batch_size must be >= 1, got 0"),
        (dict(batch_sizes=()), "one or more batch sizes are needed"),
        (dict(batch_sizes=(1, 8, 1)), r"batch sizes must differ from one another, got \[1, 8, 1\]"),
        (dict(mode="serve"), "mode must be one of inference, train"),
        (dict(device="tpu"), "device"),
        (dict(input_size=(3, 16)), "input_size must be"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_request(nn.Conv2d(3, 4, 1), **kwargs)


def test_bad_dtype():
    with pytest.raises(TypeError, match="dtype must be a floating torch.dtype"):
        check_request(dtype=torch.int8)


def test_an_input_a_model_cannot_take_is_refused_for_each_model():
    with pytest.raises(ValueError, match="inception_v3 cannot take a 3x32x32 input"):
        check_request(["shufflenet_v2_x0_5", "inception_v3"], input_size=(3, 32, 32))
    req = check_request()
    with pytest.raises(ValueError, match="inception_v3 cannot take a 3x32x32 input"):
        for_models(req, ["inception_v3"], (3, 32, 32))
    assert for_models(req, ["inception_v3"]).input_size == (3, 299, 299)


def test_batch_sizes_keep_their_order():
    assert check_batch_sizes([8, 1]) == (8, 1)
