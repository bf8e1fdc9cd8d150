"""The training loop: exact resume, the recipes' formulas in the run, checkpoints, errors."""

import json
import random

import pytest
import torch
from safetensors.torch import save_file

from cnnlab.cli.main import main
from cnnlab.train.build import Schedule
from cnnlab.train.checkpoint import load_checkpoint, prefixed
from cnnlab.train.config import TrainConfig
from cnnlab.train.ema import ModelEma
from cnnlab.train.loop import Trainer, TrainingDiverged, train
from cnnlab.train.params import param_groups

# a tiny run: MobileNet v1 0.25 (CIFAR-style stem) on the 8x8 digits, 7 updates per epoch
TINY = dict(
    model="mobilenet_v1_x0_25", data="digits", batch_size=224, lr=0.4, epochs=2,
    progress=False, threads=1,
)  # fmt: skip


def _weights(out) -> dict[str, torch.Tensor]:
    tensors, _ = load_checkpoint(out / "checkpoint.safetensors")
    return {k: v for k, v in tensors.items() if not k.startswith("rng.")}


def test_resume_after_a_stop_at_a_random_step_is_bitwise_identical(tmp_path):
    full = train(TrainConfig(out=str(tmp_path / "full"), **TINY))
    stop = random.Random().randrange(1, 14)  # 14 updates in all, 7 per epoch
    cut = TrainConfig(out=str(tmp_path / "cut"), max_steps=stop, **TINY)
    assert train(cut).stopped == "max_steps"
    resumed = train(TrainConfig(out=str(tmp_path / "cut"), **TINY), resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"stopped at step {stop}"
    untimed = [[{k: v for k, v in r.items() if k != "images_per_s"} for r in h.history]
               for h in (resumed, full)]  # fmt: skip
    assert untimed[0] == untimed[1]  # the epoch metrics too


def test_killed_process_resumes_from_its_last_checkpoint(tmp_path):
    """SIGKILL a CLI run after a checkpoint was written; resuming ends where an uninterrupted
    run ends, bit for bit."""
    import signal
    import subprocess
    import sys
    import time

    args = [
        "train", "--model", "mobilenet_v1_x0_25", "--batch-size", "224", "--lr", "0.4",
        "--epochs", "2", "--threads", "1", "--no-progress", "--checkpoint-every", "1",
    ]  # fmt: skip
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", *args, "--out", str(cut)])
    deadline = time.time() + 120
    while not (cut / "checkpoint.safetensors").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = load_checkpoint(cut / "checkpoint.safetensors")
    assert meta["state"]["step"] >= 1
    assert main([*args, "--out", str(cut), "--resume"]) == 0
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    a, b = _weights(tmp_path / "full"), _weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradual_warmup_and_scaling_rule_in_the_run():
    """Goyal et al.: lr = 0.1 x 1024/256 = 0.4 after 1 epoch of linear warmup from 0.1."""
    cfg = TrainConfig(batch_size=1024, lr=0.1, warmup="gradual", warmup_epochs=1, epochs=3)
    s = Schedule(cfg, num_train=10240, world_size=1)
    assert s.epoch_steps == [10, 10, 10] and s.warmup_steps == 10
    assert s.lr(0, 0) == pytest.approx(0.1)
    assert s.lr(5, 0) == pytest.approx(0.1 + 0.3 * 5 / 10)
    assert s.lr(10, 1) == pytest.approx(0.4)  # cosine starts at the peak
    constant = TrainConfig(**{**cfg.__dict__, "warmup": "constant"})
    assert Schedule(constant, 10240, 1).lr(9, 0) == pytest.approx(0.1)


def test_batch_increase_replaces_step_decay():
    """Smith et al.: at each milestone the batch grows by 1/gamma and the lr stays."""
    cfg = TrainConfig(
        batch_size=64, lr=0.1, epochs=4, schedule="step", milestones=(2,), increase_batch=True
    )
    s = Schedule(cfg, num_train=1280, world_size=1)
    assert [s.batch(e) for e in range(4)] == [64, 64, 640, 640]
    assert s.epoch_steps == [20, 20, 2, 2]
    assert s.lr(0, 0) == s.lr(41, 3) == pytest.approx(0.1 * 64 / 256)


def test_accumulation_equals_one_large_step_with_ghost_bn(tmp_path):
    """Two micro-batches of 112 with BN over each = one batch of 224 with ghost BN of 112: the
    same update up to float summation order (a wrong loss normalisation would be off by lr x
    gradient, ~1e-2)."""
    common = dict(TINY, epochs=1, max_steps=1, bn="ghost", ghost_batch=112)
    one = train(TrainConfig(out=str(tmp_path / "one"), **common))
    two = train(TrainConfig(out=str(tmp_path / "two"), accum_steps=2, **common))
    assert one.stopped == two.stopped == "max_steps"
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        if k.startswith("model."):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4)


def test_no_weight_decay_on_bn_and_bias_and_zero_gamma():
    trainer = Trainer(TrainConfig(model="resnet18", data="digits", progress=False))
    groups = trainer.optimizer.param_groups
    decayed = {id(p) for p in groups[0]["params"]}
    for name, p in trainer.model.named_parameters():
        no_decay = name.endswith("bias") or ".bn." in name
        assert (id(p) not in decayed) == no_decay, name
        assert p.ndim > 1 or no_decay
    assert groups[0]["weight_decay"] == 5e-5 and groups[1]["weight_decay"] == 0.0
    # Goyal §5.1: the last BN of each residual branch starts at gamma = 0
    assert all(b.conv2.bn.weight.abs().sum() == 0 for b in trainer.model.features[1:9])
    assert trainer.model.features[0].bn.weight.abs().sum() > 0
    assert len(param_groups(trainer.model, 1e-4, no_wd_bn_bias=False)) == 1


def test_ema_is_the_exponential_average():
    model = torch.nn.Linear(3, 2)
    ema = ModelEma(model, decay=0.9)
    start = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, 0.9 * start + 0.1 * model.weight)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    # lr 30: the model's outputs are NaN after update 2 (lr 1e30: after update 1, no checkpoint)
    args = [
        "train", "--model", "mobilenet_v1_x0_25", "--batch-size", "224", "--lr", "30",
        "--epochs", "2", "--threads", "1", "--no-progress", "--checkpoint-every", "1",
        "--out", str(tmp_path), "--no-zero-gamma",
    ]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "became non-finite" in err and "last good checkpoint" in err and "Traceback" not in err
    tensors, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert all(torch.isfinite(v).all() for v in prefixed(tensors, "model").values())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "checkpoint.safetensors"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["loss"] < float("inf")  # not NaN either
    with pytest.raises(TrainingDiverged):
        train(TrainConfig(out=str(tmp_path / "lib"), **{**TINY, "lr": 1e30}))


def test_bf16_autocast_and_label_smoothing_run_on_cpu(tmp_path):
    cfg = dict(TINY, epochs=1, max_steps=1, amp="bf16", label_smoothing=0.1, ema_decay=0.9)
    result = train(TrainConfig(out=str(tmp_path), **cfg))
    assert result.stopped == "max_steps"
    _, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["config"]["amp"] == "bf16" and meta["state"]["step"] == 1


def test_run_writes_config_logs_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--batch-size", "224", "--lr", "0.4",
                 "--model", "mobilenet_v1_x0_25", "--threads", "1", "--no-progress",
                 "--out", str(out), "--ema-decay", "0.5"]) == 0  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["peak_lr"] == pytest.approx(0.4 * 224 / 256)
    assert config["resolved"]["steps_per_epoch"] == 7  # ceil(1437 / 224)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and rows[0]["step"] == 7
    assert (out / "log.csv").read_text().splitlines()[0].startswith("epoch,step,lr,train_loss")
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoint.safetensors"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["top1"] == pytest.approx(rows[0]["val"]["top1"])
    assert metrics["images"] == 360
    assert main(["eval", str(out / "checkpoint.safetensors"), "--json", "--ema"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(rows[0]["val_ema"]["top1"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "nosuchnet"], "unknown model 'nosuchnet'"),
        (["--data", "imagenet:/x"], "unknown data spec"),
        (["--data", "mnist:/does/not/exist"], "does not exist"),
        (["--batch-size", "100", "--accum-steps", "3"], "not divisible by workers x accum"),
        (["--optimizer", "adam"], "unknown optimizer 'adam'; choose one of sgd, lars"),
        (["--milestones", "5,x"], "milestones must be epochs like 30,60,80"),
        (["--model-arg", "width"], "a model override must be KEY=VALUE"),
        (["--resume"], "nothing to resume in"),
        (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a GPU"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--threads", "0"], ""),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: ") and message in err and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_resume_refuses_another_model_and_unsafe_files(tmp_path, capsys):
    out = tmp_path / "run"
    train(TrainConfig(out=str(out), **{**TINY, "epochs": 1, "max_steps": 1}))
    before = (out / "checkpoint.safetensors").read_bytes()
    args = ["train", "--out", str(out), "--resume", "--no-progress", "--threads", "1"]
    assert main([*args, "--model", "shufflenet_v2_x0_5"]) == 2
    assert "is of model mobilenet_v1_x0_25, this run builds shufflenet_v2_x0_5" in (
        capsys.readouterr().err
    )
    assert (out / "checkpoint.safetensors").read_bytes() == before  # nothing overwritten
    bad = tmp_path / "bad" / "checkpoint.safetensors"
    bad.parent.mkdir()
    torch.save({"x": 1}, bad)  # a pickle: never unpickled
    assert main(["eval", str(bad)]) == 2
    assert "is not a readable safetensors checkpoint" in capsys.readouterr().err
    save_file({"x": torch.zeros(1)}, str(bad))
    assert main(["eval", str(bad)]) == 2
    assert "not a cnnlab training checkpoint" in capsys.readouterr().err


DDP = dict(TINY, model="shufflenet_v2_x0_5", lr=0.05, max_steps=1, bn="distributed")


def _worker(rank: int, port: int, out: str) -> None:
    import os

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    train(TrainConfig(out=out, **DDP))


def _flat_update(after: dict, before: dict) -> torch.Tensor:
    keys = [k for k in before if before[k].is_floating_point() and "running" not in k]
    return torch.cat([(after["model." + k] - before[k]).flatten() for k in keys])


def test_ddp_two_workers_equal_one_process_with_the_global_batch(tmp_path):
    """torchrun's setting by hand: 2 gloo workers x 112 images with cross-process BN take the
    same update as one process with batch 224 (one shuffle per epoch split across workers).
    Equal up to float summation order, which BN amplifies where a channel's variance is far
    below eps (1x1 feature maps of 8x8 digits): the updates agree within 1% of their norm; a
    wrong loss normalisation or data split would be off by 50% or more."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(tmp_path / "ddp")), nprocs=2, start_method="spawn")
    single = Trainer(TrainConfig(out=str(tmp_path / "one"), **{**DDP, "bn": "batch"}))
    before = {k: v.clone() for k, v in single.model.state_dict().items()}
    single.run()
    one, ddp = _weights(tmp_path / "one"), _weights(tmp_path / "ddp")
    d_one, d_ddp = _flat_update(one, before), _flat_update(ddp, before)
    assert (d_ddp - d_one).norm() <= 0.01 * d_one.norm()  # measured: 0.06%
    for k in before:  # BN running statistics over the global batch, on rank 0's copy
        if "running" in k:
            torch.testing.assert_close(one["model." + k], ddp["model." + k], rtol=1e-3, atol=1e-4)
    assert list((tmp_path / "ddp").iterdir()) and not (tmp_path / "one" / "rank1").exists()


@pytest.mark.parametrize("stop", [7, 8])  # the end of epoch 1 (then evaluated), one past it
def test_resume_at_the_epoch_boundary(tmp_path, stop):
    full = train(TrainConfig(out=str(tmp_path / "full"), **TINY))
    cut = train(TrainConfig(out=str(tmp_path / "cut"), max_steps=stop, **TINY))
    assert cut.stopped == "max_steps" and len(cut.history) == 1
    train(TrainConfig(out=str(tmp_path / "cut"), **TINY), resume=True)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full.stopped == "done"


def test_batch_phases_report_the_noise_scale():
    """Smith et al.: g = lr N / (B (1 - m)) per phase; a 10x batch at the same lr is g / 10."""
    cfg = TrainConfig(
        batch_size=64, lr=0.1, epochs=4, schedule="step", milestones=(2,), increase_batch=True,
        progress=False,
    )  # fmt: skip
    phases = Trainer(cfg).resolved()["resolved"]["batch_phases"]
    assert [(p["start_epoch"], p["batch"]) for p in phases] == [(0, 64), (2, 640)]
    assert phases[0]["noise_scale"] == pytest.approx(0.025 * 1437 / (64 * 0.1))
    assert phases[1]["noise_scale"] == pytest.approx(phases[0]["noise_scale"] / 10)


def test_eval_of_a_run_folder_names_the_checkpoint_file(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"is a folder; pass the checkpoint file of a run, such as {tmp_path}" in err
