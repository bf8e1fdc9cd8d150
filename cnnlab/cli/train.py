"""``cnnlab train`` and ``cnnlab eval``: the training loop from the command line.

Under ``torchrun --nproc-per-node N -m cnnlab train ...`` every worker runs this command; rank 0
prints, logs and writes checkpoints.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cnnlab.cli.app import AsJson, Threads, UsageError, app, console, writable_folder
from cnnlab.train import dist
from cnnlab.train.config import TrainConfig
from cnnlab.train.evaluate import evaluate_checkpoint
from cnnlab.train.loop import Trainer, TrainingDiverged

Opt = typer.Option


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise UsageError(f"--milestones must be epochs like 30,60,80, got {text!r}") from None


def _model_args(items: list[str]) -> dict:
    """KEY=VALUE overrides of the model config; values parsed as JSON when they can be."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--model-arg must be KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("train")
def train_command(
    model: Annotated[str, Opt("--model", help="registered model name")] = "shufflenet_v2_x0_5",
    data: Annotated[
        str, Opt("--data", help="digits | mnist:PATH | fashion-mnist:PATH | cifar10:PATH | ...")
    ] = "digits",
    out: Annotated[str, Opt("--out", help="run folder: config, logs, checkpoint")] = (
        "cnnlab-out/train"
    ),
    epochs: Annotated[int, Opt("--epochs")] = 20,
    batch_size: Annotated[int, Opt("--batch-size", help="global batch per update")] = 64,
    lr: Annotated[float, Opt("--lr", help="base lr at --reference-batch")] = 0.1,
    reference_batch: Annotated[int, Opt("--reference-batch")] = 256,
    scale_lr: Annotated[bool, Opt("--scale-lr/--no-scale-lr", help="linear scaling rule")] = True,
    warmup: Annotated[str, Opt("--warmup", help="none, gradual or constant (Goyal)")] = "none",
    warmup_epochs: Annotated[float, Opt("--warmup-epochs")] = 0.0,
    warmup_start: Annotated[float | None, Opt("--warmup-start", help="default: --lr")] = None,
    schedule: Annotated[str, Opt("--schedule", help="step, cosine, linear or poly")] = "cosine",
    milestones: Annotated[str, Opt("--milestones", help="epochs, e.g. 30,60,80")] = "",
    gamma: Annotated[float, Opt("--gamma", help="step decay factor")] = 0.1,
    power: Annotated[float, Opt("--power", help="poly decay power")] = 2.0,
    increase_batch: Annotated[
        bool, Opt("--increase-batch", help="multiply the batch by 1/gamma at milestones (Smith)")
    ] = False,
    max_batch: Annotated[int | None, Opt("--max-batch")] = None,
    optimizer: Annotated[str, Opt("--optimizer", help="sgd or lars")] = "sgd",
    momentum: Annotated[float, Opt("--momentum")] = 0.9,
    nesterov: Annotated[bool, Opt("--nesterov")] = False,
    weight_decay: Annotated[float, Opt("--weight-decay")] = 5e-5,
    trust_coefficient: Annotated[float, Opt("--trust-coefficient", help="LARS eta")] = 0.001,
    wd_bn_bias: Annotated[bool, Opt("--wd-bn-bias", help="decay BN and bias too")] = False,
    zero_gamma: Annotated[bool, Opt("--zero-gamma/--no-zero-gamma")] = True,
    label_smoothing: Annotated[float, Opt("--label-smoothing")] = 0.0,
    accum_steps: Annotated[int, Opt("--accum-steps")] = 1,
    amp: Annotated[str, Opt("--amp", help="none, bf16 or fp16 (GPU)")] = "none",
    ema_decay: Annotated[float, Opt("--ema-decay", help="0 = off")] = 0.0,
    bn: Annotated[str, Opt("--bn", help="batch, ghost or distributed")] = "batch",
    ghost_batch: Annotated[int, Opt("--ghost-batch")] = 32,
    image_size: Annotated[int | None, Opt("--image-size")] = None,
    small_input: Annotated[
        bool | None, Opt("--small-input/--no-small-input", help="CIFAR-style stem (default: auto)")
    ] = None,
    drop_rate: Annotated[float | None, Opt("--drop-rate")] = None,
    model_arg: Annotated[list[str] | None, Opt("--model-arg", help="KEY=VALUE override")] = None,
    seed: Annotated[int, Opt("--seed")] = 0,
    workers: Annotated[int, Opt("--workers", help="data loader processes")] = 0,
    device: Annotated[str, Opt("--device", help="auto, cpu or cuda")] = "auto",
    threads: Threads = None,
    checkpoint_every: Annotated[int, Opt("--checkpoint-every", help="steps; 0 = epochs")] = 0,
    max_steps: Annotated[int | None, Opt("--max-steps")] = None,
    resume: Annotated[bool, Opt("--resume", help="continue from OUT/checkpoint")] = False,
    progress: Annotated[bool, Opt("--progress/--no-progress")] = True,
) -> None:
    """Train MODEL on DATA with the survey's large-batch recipes; logs and checkpoints in OUT."""
    cfg = TrainConfig(
        model=model,
        data=data,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        small_input=small_input,
        drop_rate=drop_rate,
        lr=lr,
        reference_batch=reference_batch,
        scale_lr=scale_lr,
        warmup=warmup,
        warmup_epochs=warmup_epochs,
        warmup_start=warmup_start,
        schedule=schedule,
        milestones=_milestones(milestones),
        gamma=gamma,
        power=power,
        increase_batch=increase_batch,
        max_batch=max_batch,
        optimizer=optimizer,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        trust_coefficient=trust_coefficient,
        no_wd_bn_bias=not wd_bn_bias,
        zero_gamma=zero_gamma,
        label_smoothing=label_smoothing,
        accum_steps=accum_steps,
        amp=amp,
        ema_decay=ema_decay,
        bn=bn,
        ghost_batch=ghost_batch,
        seed=seed,
        workers=workers,
        device=device,
        threads=threads,
        checkpoint_every=checkpoint_every,
        max_steps=max_steps,
        progress=progress,
        extra=_model_args(model_arg or []),
    )
    writable_folder(Path(out))  # before any data is loaded or any step is taken
    out_console = console()
    try:
        trainer = Trainer(cfg, resume=resume, console=out_console)
        if trainer.env.main:
            out_console.print_json(json.dumps(trainer.resolved()))
        trainer.write_config()
        result = trainer.run()
    except TrainingDiverged as e:
        print(f"cnnlab: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        dist.teardown()
    if not trainer.env.main:
        return
    last = result.history[-1] if result.history else None
    where = f"step {trainer.state.step} ({result.stopped}), run in {result.out}"
    if last is None:
        out_console.print(f"stopped at {where}; no epoch finished yet")
    else:
        v = last["val"]
        out_console.print(
            f"{where}; epoch {last['epoch']} val top-1 {v['top1']:.2f}% top-5 {v['top5']:.2f}% "
            f"loss {v['loss']:.4f}"
        )


@app.command("eval")
def eval_command(
    checkpoint: Annotated[str, typer.Argument(help="checkpoint.safetensors of a run")],
    data: Annotated[str | None, Opt("--data", help="default: the run's data")] = None,
    ema: Annotated[bool, Opt("--ema", help="evaluate the EMA weights")] = False,
    batch_size: Annotated[int, Opt("--batch-size")] = 256,
    device: Annotated[str, Opt("--device")] = "auto",
    threads: Threads = None,
    as_json: AsJson = False,
) -> None:
    """Top-1/top-5 and loss of a checkpoint's model on the validation split."""
    metrics = evaluate_checkpoint(
        checkpoint, data=data, ema=ema, batch_size=batch_size, device=device, threads=threads
    )
    if as_json:
        print(json.dumps(metrics))
        return
    table = Table("model", "data", "weights", "images", "top-1 %", "top-5 %", "loss")
    table.add_row(
        metrics["model"],
        metrics["data"],
        metrics["weights"],
        str(metrics["images"]),
        f"{metrics['top1']:.2f}",
        f"{metrics['top5']:.2f}",
        f"{metrics['loss']:.4f}",
    )
    console().print(table)
