"""``cnnlab train`` and ``cnnlab eval``: the training loop from the command line.

Under ``torchrun --nproc-per-node N -m cnnlab train ...`` every worker runs this command; rank 0
prints, logs and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cnnlab.cli.app import AsJson, Threads, app, console, writable_folder
from cnnlab.train import dist
from cnnlab.train.config import TrainConfig
from cnnlab.train.evaluate import evaluate_checkpoint
from cnnlab.train.loop import Trainer, TrainingDiverged

Opt = typer.Option

NOT_OPTIONS = ("deterministic",)  # always on from the command line (bitwise resume)
RENAMED = {"extra": "--model-arg"}


def _negated(flag: str) -> str:
    """``--x`` -> ``--no-x`` and ``--no-x`` -> ``--x``."""
    return "--" + flag[5:] if flag.startswith("--no-") else "--no-" + flag[2:]


def _option(f: dataclasses.Field, typ: Any) -> inspect.Parameter:
    """``cnnlab train``'s option for one TrainConfig field: its name, type, default and help.

    A flag defaulting to on (or to auto, None) also gets its negation; a field with a text
    form takes the text and leaves the default to TrainConfig.
    """
    text = f.metadata.get("text")
    default = None if text else f.default
    flag = RENAMED.get(f.name, "--" + f.name.replace("_", "-"))
    if typ in (bool, bool | None) and default is not False:
        flag += "/" + _negated(flag)
    option = Opt(flag, help=f.metadata["help"])
    kind = inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(
        f.name, kind, default=default, annotation=Annotated[text | None if text else typ, option]
    )


def _options() -> list[inspect.Parameter]:
    """One option per TrainConfig field, in the dataclass's order, then ``--resume``."""
    hints = typing.get_type_hints(TrainConfig)
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name not in NOT_OPTIONS]
    resume = Annotated[bool, Opt("--resume", help="continue from OUT/checkpoint")]
    kind = inspect.Parameter.KEYWORD_ONLY
    return [
        *(_option(f, hints[f.name]) for f in fields),
        inspect.Parameter("resume", kind, default=False, annotation=resume),
    ]


def train_command(**options: Any) -> None:
    """Train MODEL on DATA with the large-batch recipes of Goyal et al. 2017, You et al. 2017
    (LARS) and Smith et al. 2017; logs and checkpoints in OUT."""
    resume = options.pop("resume")
    cfg = TrainConfig.from_options(options)
    writable_folder(Path(cfg.out))  # before any data is loaded or any step is taken
    _train(cfg, resume, console())


train_command.__signature__ = inspect.Signature(_options())
app.command("train")(train_command)


def _train(cfg: TrainConfig, resume: bool, out: Console) -> None:
    """Run the training, print its resolved configuration first and its last epoch at the end."""
    try:
        trainer = Trainer(cfg, resume=resume, console=out)
        if trainer.env.main:
            out.print_json(json.dumps(trainer.resolved()))
        result = trainer.run()  # writes config.json once its first step succeeded
    except TrainingDiverged as e:
        print(f"cnnlab: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        dist.teardown()
    if trainer.env.main:
        out.print(_summary(trainer, result))


def _summary(trainer: Trainer, result) -> str:
    last = result.history[-1] if result.history else None
    where = f"step {trainer.state.step} ({result.stopped}), run in {result.out}"
    if last is None:
        return f"stopped at {where}; no epoch finished yet"
    v = last["val"]
    return (
        f"{where}; epoch {last['epoch']} val top-1 {v['top1']:.2f}% top-5 {v['top5']:.2f}% "
        f"loss {v['loss']:.4f}"
    )


@app.command("eval")
def eval_command(
    checkpoint: Annotated[str, typer.Argument(help="checkpoint.safetensors of a run")],
    data: Annotated[str | None, Opt("--data", help="default: the run's data")] = None,
    ema: Annotated[bool, Opt("--ema", help="evaluate the EMA weights")] = False,
    batch_size: Annotated[int, Opt("--batch-size", help="images per forward pass")] = 256,
    device: Annotated[str, Opt("--device", help="auto (CUDA when present), cpu or cuda")] = "auto",
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
