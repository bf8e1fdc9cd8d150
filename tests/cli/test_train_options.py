"""``cnnlab train``'s options are TrainConfig's fields: defaults and help stated once, there."""

import dataclasses

import pytest
import typer

from cnnlab.cli.main import app, main
from cnnlab.errors import BadValue
from cnnlab.train.config import TrainConfig


def _params() -> dict:
    return {p.name: p for p in typer.main.get_command(app).commands["train"].params}


def test_every_field_is_an_option_with_its_help_and_default():
    params = _params()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "deterministic":
            assert f.name not in params  # always on from the command line
            continue
        p = params[f.name]
        assert p.help == f.metadata["help"], f.name
        if "parse" not in f.metadata:
            assert p.default == f.default, f.name
    assert set(params) - {f.name for f in dataclasses.fields(TrainConfig)} == {"resume"}


def test_option_names_users_type():
    params = _params()
    names = {opt for p in params.values() for opt in (*p.opts, *p.secondary_opts)}
    assert {"--batch-size", "--model-arg", "--wd-bn-bias", "--scale-lr", "--no-scale-lr"} <= names
    assert {"--nesterov", "--increase-batch", "--small-input", "--no-small-input"} <= names
    assert {"--no-progress", "--no-zero-gamma", "--milestones", "--resume"} <= names
    assert "--no-nesterov" not in names and "--deterministic" not in names


@pytest.fixture
def captured(monkeypatch):
    """The TrainConfig the command would train with: Trainer records it and refuses."""
    seen = {}

    def trainer(cfg, resume=False, console=None):
        seen.update(cfg=cfg, resume=resume)
        raise BadValue("captured")

    monkeypatch.setattr("cnnlab.cli.train.Trainer", trainer)
    return seen


def test_the_readme_recipe_becomes_the_config(captured, tmp_path):
    args = ["train", "--model", "resnet18", "--data", "cifar10:PATH", "--batch-size", "1024",
            "--lr", "0.1", "--warmup", "gradual", "--warmup-epochs", "5", "--schedule", "step",
            "--milestones", "30,60,80", "--epochs", "90", "--out", str(tmp_path)]  # fmt: skip
    assert main(args) == 2
    expected = TrainConfig(model="resnet18", data="cifar10:PATH", batch_size=1024, lr=0.1,
                           warmup="gradual", warmup_epochs=5, schedule="step",
                           milestones=(30, 60, 80), epochs=90, out=str(tmp_path))  # fmt: skip
    assert captured == {"cfg": expected, "resume": False}


def test_flags_text_forms_and_defaults(captured, tmp_path):
    args = ["train", "--out", str(tmp_path), "--wd-bn-bias", "--no-zero-gamma", "--nesterov",
            "--no-small-input", "--model-arg", "width=0.5", "--model-arg", "act=hswish",
            "--threads", "1", "--resume"]  # fmt: skip
    assert main(args) == 2
    cfg = captured["cfg"]
    assert (cfg.no_wd_bn_bias, cfg.zero_gamma, cfg.nesterov, cfg.small_input) == (
        False, False, True, False,
    )  # fmt: skip
    assert cfg.extra == {"width": 0.5, "act": "hswish"} and cfg.threads == 1
    assert captured["resume"] is True
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert captured["cfg"] == TrainConfig(out=str(tmp_path))  # every default is TrainConfig's


def test_from_options_parses_text_forms_and_keeps_defaults():
    cfg = TrainConfig.from_options({"milestones": "2,3", "extra": ["se=true"], "epochs": None})
    assert cfg.milestones == (2, 3) and cfg.extra == {"se": True} and cfg.epochs == 20
    with pytest.raises(BadValue, match="unknown training options"):
        TrainConfig.from_options({"epoch": 3})
