"""A run folder is never overwritten by accident, and a diverging run never leaves a NaN
checkpoint: new runs into a run's folder are refused without --overwrite, nothing is written
before the first good step, and the NaN check covers the last step and the validation."""

import json

import pytest
import torch

from cnnlab.cli.main import main
from cnnlab.train import loop
from cnnlab.train.checkpoint import load_checkpoint, prefixed
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import Trainer, TrainingDiverged, train

ARGS = [
    "train", "--model", "mobilenet_v1_x0_25", "--batch-size", "224", "--lr", "0.4",
    "--epochs", "1", "--threads", "1", "--no-progress",
]  # fmt: skip
TINY = dict(
    model="mobilenet_v1_x0_25", data="digits", batch_size=224, lr=0.4, epochs=2,
    progress=False, threads=1,
)  # fmt: skip
RUN_FILES = ("checkpoint.safetensors", "config.json", "log.jsonl", "log.csv")


def _contents(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """One finished epoch: checkpoint, config.json and logs."""
    out = tmp_path_factory.mktemp("old") / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == set(RUN_FILES)
    return out


def _copy(run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name, data in _contents(run).items():
        (out / name).write_bytes(data)
    return out


@pytest.mark.parametrize("extra", [[], ["--lr", "1e6"]])
def test_a_new_run_into_a_run_folder_is_refused(old_run, tmp_path, capsys, extra):
    out = _copy(old_run, tmp_path)
    before = _contents(out)
    assert main([*ARGS, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out} holds a run (checkpoint.safetensors, config" in err
    assert "pass --resume to continue it, --overwrite to replace it, or another --out" in err
    assert _contents(out) == before  # config.json and checkpoint untouched


def test_overwrite_replaces_the_run_and_its_logs(old_run, tmp_path):
    out = _copy(old_run, tmp_path)
    assert main([*ARGS, "--out", str(out), "--overwrite", "--max-steps", "2", "--lr", "0.2"]) == 0
    assert not (out / "log.jsonl").exists() and not (out / "log.csv").exists()  # the old run's
    assert json.loads((out / "config.json").read_text())["lr"] == 0.2
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["state"]["step"] == 2 and meta["config"]["lr"] == 0.2


def test_a_diverging_overwrite_leaves_the_old_run_as_it_was(old_run, tmp_path, capsys):
    out = _copy(old_run, tmp_path)
    before = _contents(out)
    assert main([*ARGS, "--out", str(out), "--overwrite", "--lr", "1e6"]) == 1
    assert f"nothing was written to {out}" in capsys.readouterr().err
    assert _contents(out) == before


def test_resume_and_overwrite_together_are_refused(old_run, tmp_path, capsys):
    out = _copy(old_run, tmp_path)
    assert main([*ARGS, "--out", str(out), "--overwrite", "--resume"]) == 2
    assert "--resume continues the run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra", [["--model", "nosuchnet"], ["--lr", "1e6", "--max-steps", "1"], ["--lr", "1e30"]]
)
def test_a_refused_or_diverging_new_run_leaves_no_folder(tmp_path, extra):
    out = tmp_path / "new" / "run"
    assert main([*ARGS, "--out", str(out), *extra]) in (1, 2)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "extra", [["--lr", "1e6", "--max-steps", "1"], ["--batch-size", "100000", "--max-steps", "2"]]
)
def test_divergence_on_the_last_step_fails_and_saves_no_nan_model(tmp_path, capsys, extra):
    """The issue's commands (ShuffleNet v2 0.5x, batch 64): the last update leaves finite
    weights whose outputs are NaN, which no later step shows; exit 0 with that model before."""
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--no-progress", "--threads", "1", *extra]) == 1
    err = capsys.readouterr().err
    assert "non-finite" in err or "loss became nan" in err
    if (out / "checkpoint.safetensors").exists():  # the last good one, of epoch 1
        assert main(["eval", str(out / "checkpoint.safetensors"), "--json"]) == 0
        loss = json.loads(capsys.readouterr().out)["loss"]
        assert loss == loss and loss < float("inf")


def _nan_after(trainer: Trainer, calls: int) -> None:
    """Make the ``calls``-th optimizer step leave a NaN weight."""
    step, count = trainer.optimizer.step, [0]

    def broken(*args, **kwargs):
        out = step(*args, **kwargs)
        count[0] += 1
        if count[0] == calls:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))
        return out

    trainer.optimizer.step = broken


def test_a_nan_at_the_final_step_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(out=str(out), max_steps=2, checkpoint_every=1, **TINY))
    _nan_after(trainer, 2)
    with pytest.raises(TrainingDiverged, match="last good checkpoint in .* is kept"):
        trainer.run()
    tensors, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["state"]["step"] == 1
    assert all(torch.isfinite(v).all() for v in prefixed(tensors, "model").values())


def test_a_nan_validation_loss_stops_the_run_before_its_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(out=str(out), checkpoint_every=7, **TINY))
    nan = {"loss": float("nan"), "top1": 10.0, "top5": 50.0}
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: nan)
    with pytest.raises(TrainingDiverged, match="val loss became nan after update 7"):
        trainer.run()
    _, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["state"]["epoch"] == 0 and not meta["state"]["history"]  # the step-7 one
    assert not (out / "log.jsonl").exists()


def test_the_library_refuses_a_run_folder_too(old_run, tmp_path):
    out = _copy(old_run, tmp_path)
    from cnnlab.errors import BadValue

    with pytest.raises(BadValue, match="holds a run"):
        train(TrainConfig(out=str(out), **TINY))
