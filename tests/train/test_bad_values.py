"""Training and evaluation values that used to end in a traceback or be read as a default: each
is refused in one line (exit status 2) that says what, the value and the fix."""

import json

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.cli.main import main
from cnnlab.train.build import Data, build_model
from cnnlab.train.checkpoint import FORMAT
from cnnlab.train.config import TrainConfig

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="refusal of a missing GPU")


def refused(capsys, *args) -> str:
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("cnnlab: error: "), err
    return err.splitlines()[-1]


def train(tmp_path, *args):
    return ("train", "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress", *args)


@pytest.mark.parametrize("device", ["tpu", "meta", pytest.param("cuda:0", marks=NO_CUDA)])
def test_train_refuses_a_device_it_cannot_use(capsys, tmp_path, device):
    err = refused(capsys, *train(tmp_path, "--device", device))
    assert repr(device) in err and "cpu" in err


@pytest.mark.parametrize("device", ["tpu", "meta", pytest.param("cuda:0", marks=NO_CUDA)])
def test_eval_refuses_a_device_before_reading_the_checkpoint(capsys, tmp_path, device):
    err = refused(capsys, "eval", str(tmp_path / "none.safetensors"), "--device", device)
    assert repr(device) in err and "cpu" in err


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (("--lr", "inf"), "lr must be a finite number"),
        (("--lr", "nan"), "lr must be a finite number"),
        (("--lr", "-0.1"), "lr must be > 0"),
        (("--momentum", "nan"), "momentum must be a finite number"),
        (("--image-size", "0"), "image_size must be >= 1"),
        (("--image-size", "100000"), "GiB of memory"),
    ],
)
def test_train_refuses_impossible_values(capsys, tmp_path, args, what):
    assert what in refused(capsys, *train(tmp_path, *args))


def _checkpoint(path, meta: dict | None):
    metadata = {"format": FORMAT} | ({} if meta is None else {"meta": json.dumps(meta)})
    save_file({"model.w": torch.zeros(1)}, str(path), metadata=metadata)
    return str(path)


@pytest.mark.parametrize("meta", [None, {"world_size": 1}])
def test_eval_of_a_hand_made_checkpoint_without_metadata_is_refused(capsys, tmp_path, meta):
    path = _checkpoint(tmp_path / "c.safetensors", meta)
    err = refused(capsys, "eval", path, "--device", "cpu")
    assert "not a cnnlab training checkpoint: no" in err and "metadata" in err
    assert "KeyError" not in err


def test_resume_of_a_hand_made_checkpoint_without_metadata_is_refused(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    _checkpoint(tmp_path / "run" / "checkpoint.safetensors", {"state": {}})
    err = refused(capsys, *train(tmp_path, "--resume", "--device", "cpu"))
    assert "not a cnnlab training checkpoint: no config" in err


def test_a_model_arg_list_is_taken_as_the_tuple_the_config_holds():
    cfg = TrainConfig.from_options(
        {"model": "shufflenet_v2_x0_5", "extra": ["stage_channels=[48,96,192]"]}
    )
    model = build_model(cfg, Data(None, None, 10, 1, 8), small_input=True)
    assert model.cfg.stage_channels == (48, 96, 192)
