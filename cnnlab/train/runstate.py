"""Where a run stands (step, epoch, position in the epoch, running sums, history), and how it is
saved into and restored from a checkpoint, and written out as JSONL/CSV logs."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab._io import atomic_write
from cnnlab.errors import BadValue
from cnnlab.train.checkpoint import (
    load_checkpoint,
    optimizer_join,
    optimizer_split,
    prefixed,
    rng_state,
    save_checkpoint,
    set_rng_state,
)

# fields that may differ between a run and its resumption: they do not change the trajectory
RESUME_FREE = {"out", "progress", "max_steps", "checkpoint_every", "workers", "threads"}


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
        "small_input": trainer.small_input,
        "state": dataclasses.asdict(trainer.state),
        "optimizer": opt_meta,
        "scaler": trainer.scaler.state_dict(),
        "rng": rng_meta,
    }
    save_checkpoint(path, {**tensors, **opt_tensors, **rng_tensors}, meta)


def check_compatible(meta: dict, cfg, world_size: int, path: Path) -> None:
    """Refuse a checkpoint of another model, or of a run with another trajectory."""
    saved = meta["config"]
    if saved["model"] != cfg.model:
        raise BadValue(
            f"checkpoint {path} is of model {saved['model']}, this run builds {cfg.model}: pass "
            f"--model {saved['model']} or another --out"
        )
    ours = cfg.to_dict()
    differ = sorted(
        k for k in saved if k not in RESUME_FREE and json.dumps(saved[k]) != json.dumps(ours[k])
    )
    if differ or meta["world_size"] != world_size:
        what = [f"{k}: {saved[k]!r} -> {ours[k]!r}" for k in differ]
        if meta["world_size"] != world_size:
            what.append(f"workers: {meta['world_size']} -> {world_size}")
        raise BadValue(
            f"cannot resume {path} exactly, the run differs in {'; '.join(what)}; resume with "
            f"the saved settings or start a new --out"
        )


def restore(trainer, path: Path) -> None:
    """Load ``path`` into the trainer's model, EMA, optimizer, scaler, RNG and counters."""
    tensors, meta = load_checkpoint(path)
    check_compatible(meta, trainer.cfg, trainer.env.world_size, path)
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
