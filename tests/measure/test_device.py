"""One device check for every command: the speed lab's and training's say the same."""

import pytest
import torch

from cnnlab._device import check_device, check_memory
from cnnlab.errors import BadValue
from cnnlab.measure.request import check_device as speedlab_check
from cnnlab.train.dist import resolve_device


@pytest.mark.parametrize("device", ["tpu", "meta", "cuda:99"])
def test_speed_lab_and_training_refuse_the_same_devices_alike(device):
    with pytest.raises(BadValue) as lab:
        speedlab_check(device)
    with pytest.raises(BadValue) as train:
        resolve_device(device)
    assert repr(device) in str(lab.value) and repr(device) in str(train.value)


def test_auto_is_trainings_alone():
    assert check_device("auto", auto=True).type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(BadValue, match="unknown device 'auto'"):
        check_device("auto")


def test_memory_past_the_machines_is_refused_naming_both_figures():
    with pytest.raises(BadValue, match=r"needs about 1024\.0 GiB .* RAM \(.* GiB\); fix it"):
        check_memory(2**40, torch.device("cpu"), "this", "fix it")
    check_memory(2**20, torch.device("cpu"), "this", "fix it")
