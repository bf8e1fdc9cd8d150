"""Where a run stands (step, epoch, position in the epoch, running sums, history), and how it is
saved into and restored from a checkpoint, and written out as JSONL/CSV logs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab._io import atomic_write
from cnnlab.errors import BadValue
from cnnlab.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    optimizer_join,
    optimizer_split,
    prefixed,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

# fields that may differ between a run and its resumption: they do not change the trajectory
# (``threads`` as given may differ; the thread count it resolves to may not: see ``execution``)
RESUME_FREE = {
    "out", "progress", "max_steps", "checkpoint_every", "workers", "threads", "overwrite",
}  # fmt: skip


@dataclass
class RunState:
    """Counters of the run; the epoch sums are this worker's, over the epoch so far."""

    step: int = 0
    epoch: int = 0
    epoch_step: int = 0
    lr: float = 0.0
    seen: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    def advance(self, n: int, loss_sum: float, correct: float, lr: float, seconds: float) -> None:
        self.step += 1
        self.epoch_step += 1
        self.seen += n
        self.loss_sum += loss_sum
        self.correct += correct
        self.seconds += seconds

    def epoch_row(self, totals: list[float]) -> dict[str, Any]:
        """This epoch's training figures from the (all-worker) totals seen, loss, correct."""
        seen, loss_sum, correct = totals
        return {
            "epoch": self.epoch + 1,
            "step": self.step,
            "lr": self.lr,
            "train": {"loss": loss_sum / seen, "top1": 100 * correct / seen},
            "images_per_s": seen / self.seconds if self.seconds else 0.0,
        }

    def finish_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        self.epoch += 1
        self.epoch_step = self.seen = 0
        self.loss_sum = self.correct = self.seconds = 0.0


def snapshot(trainer, path: Path) -> None:
    """Everything needed to continue exactly: weights, EMA, optimizer, scaler, RNG, counters."""
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    if trainer.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in trainer.ema.module.state_dict().items()})
    opt_tensors, opt_meta = optimizer_split(trainer.optimizer.state_dict())
    rng_tensors, rng_meta = rng_state()
    meta = {
        "config": trainer.cfg.to_dict(),
        "world_size": trainer.env.world_size,
        **execution(trainer.env),
        "small_input": trainer.small_input,
        "state": dataclasses.asdict(trainer.state),
        "optimizer": opt_meta,
        "scaler": trainer.scaler.state_dict(),
        "rng": rng_meta,
    }
    save_checkpoint(path, {**tensors, **opt_tensors, **rng_tensors}, meta)


def execution(env) -> dict[str, Any]:
    """How the run executes, beyond its config, that changes its floating-point results: the
    intra-op thread count (reduction order) and the device kind."""
    return {"threads": torch.get_num_threads(), "device": env.device.type}


def check_compatible(meta: dict, cfg, env, path: Path) -> None:
    """Refuse a checkpoint of another model, or of a run with another trajectory: another
    config, number of processes (world size), thread count or device kind."""
    saved = meta["config"]
    if saved["model"] != cfg.model:
        raise BadValue(
            f"checkpoint {path} is of model {saved['model']}, this run builds {cfg.model}: pass "
            f"--model {saved['model']} or another --out"
        )
    ours = cfg.to_dict()
    differ = sorted(
        k for k in saved if k not in RESUME_FREE and json.dumps(saved[k]) != json.dumps(ours.get(k))
    )
    what = [f"{k}: {saved[k]!r} -> {ours.get(k)!r}" for k in differ]
    now = {"world_size": env.world_size, **execution(env)}
    for key, name, fix in _EXECUTION:
        if key in meta and meta[key] != now[key]:  # (older checkpoints lack threads, device)
            what.append(f"{name}: {meta[key]!r} -> {now[key]!r} ({fix.format(meta[key])})")
    if what:
        raise BadValue(
            f"cannot resume {path} exactly, the run differs in {'; '.join(what)}; resume with "
            f"the saved settings or start a new --out"
        )


# what a resume must keep besides the config: checkpoint key, its name, how to restore it
_EXECUTION = (
    ("world_size", "processes (world size)", "torchrun --nproc-per-node {}"),
    ("threads", "threads", "--threads {}"),
    ("device", "device", "--device {}"),
)


def restore(trainer, path: Path) -> None:
    """Load ``path`` into the trainer's model, EMA, optimizer, scaler, RNG and counters."""
    tensors, meta = load_checkpoint(path)
    check_compatible(meta, trainer.cfg, trainer.env, path)
    try:
        trainer.model.load_state_dict(prefixed(tensors, "model"))
        if trainer.ema is not None:
            trainer.ema.module.load_state_dict(prefixed(tensors, "ema"))
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise BadValue(f"checkpoint {path} does not fit the model: {first[-1].strip()}") from None
    opt = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    trainer.optimizer.load_state_dict(optimizer_join(opt, meta["optimizer"]))
    trainer.scaler.load_state_dict(meta["scaler"])
    set_rng_state(tensors, meta["rng"])
    trainer.state = RunState(**meta["state"])


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update({f"{k}_{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def write_logs(out: Path, history: list[dict[str, Any]]) -> None:
    """log.jsonl (one row per epoch) and log.csv, rewritten whole and atomically."""
    atomic_write(out / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    rows = [_flat(r) for r in history]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(out / "log.csv", buf.getvalue())


# the files a run writes in its folder; any of them there means the folder holds a run
RUN_FILES = (CHECKPOINT_NAME, "config.json", "log.jsonl", "log.csv")
# cnnlab._io.atomic_write's temporary beside a target: .{name}.{pid}.{8 hex}.tmp
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def refuse_existing_run(out: Path, resume: bool, overwrite: bool) -> None:
    """A new run into a folder holding a run needs ``--overwrite``; a resume may not have it."""
    if resume and overwrite:
        raise BadValue(
            f"--resume continues the run in {out} and --overwrite replaces it: pass one of them"
        )
    held = [n for n in RUN_FILES if (out / n).exists()] if out.is_dir() else []
    if held and not resume and not overwrite:
        raise BadValue(
            f"{out} holds a run ({', '.join(held)}); pass --resume to continue it, --overwrite "
            f"to replace it, or another --out"
        )


def remove_run_files(out: Path) -> None:
    """The files of the run a new one replaces (``--overwrite``), so none outlives it."""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def remove_stale_temporaries(out: Path) -> list[Path]:
    """Remove the temporaries of atomic writes that a killed process left in ``out`` (only
    names of cnnlab's pattern whose process is gone); the removed paths."""
    removed = []
    for path in sorted(out.iterdir()) if out.is_dir() else []:
        m = _TEMPORARY.fullmatch(path.name)
        if m and path.is_file() and not _alive(int(m["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    """Whether another process ``pid`` runs (this one writes nothing yet at the start)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or not a pid at all: leave the file
    return True
