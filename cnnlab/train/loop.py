"""The training loop: ``train(TrainConfig)`` and ``evaluate``; the CLI's ``cnnlab train`` calls it.

One update = ``accum_steps`` micro-batches per worker whose summed loss is divided by the
update's sample count, and DDP averages over equal worker shards: the loss is normalised by the
global batch (Goyal et al. 2017, §2.3 and Remark 1). Each step: set the lr (warmup/schedule;
momentum correction for LARS, whose buffer holds lr x update: Goyal, Remark 2), forward and
backward (autocast if asked), stop on a non-finite loss before any weight changes, update, EMA.
Checkpoints every ``checkpoint_every`` steps and at each epoch end; ``resume`` continues exactly.
A checkpoint is written only of finite weights, and a validation loss that is not finite stops
the run too, so the last checkpoint is always a good one. Nothing is written in ``out`` before
the first step succeeded (config.json then); a folder holding a run is refused unless resumed
or ``overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from cnnlab._io import atomic_write
from cnnlab.errors import BadValue
from cnnlab.train import dist
from cnnlab.train.build import (
    Schedule,
    build_data,
    build_model,
    build_optimizer,
    resolve_small_input,
    with_batch,
)
from cnnlab.train.checkpoint import CHECKPOINT_NAME
from cnnlab.train.config import TrainConfig
from cnnlab.train.ema import ModelEma
from cnnlab.train.progress import Progress
from cnnlab.train.runstate import (
    RunState,
    refuse_existing_run,
    remove_run_files,
    remove_stale_temporaries,
    restore,
    snapshot,
    write_logs,
)
from cnnlab.train.schedules import momentum_correction, noise_scale


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What a run ended with: per-epoch history, the last validation metrics, where it wrote."""

    history: list[dict[str, Any]]
    final: dict[str, float]
    out: Path
    checkpoint: Path | None
    stopped: str  # "done" or "max_steps"


def autocast(device: torch.device, amp: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device, amp: str = "none", env=None) -> dict[str, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy (%) of ``model`` over ``loader``."""
    was_training = model.training
    model.eval()
    loss = top1 = top5 = count = 0.0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(x)
        loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices == y[:, None]
        top1 += hits[:, 0].sum().item()
        top5 += hits.any(dim=1).sum().item()
        count += len(y)
    model.train(was_training)
    if env is not None:
        loss, top1, top5, count = dist.all_sum([loss, top1, top5, count], env)
    return {"loss": loss / count, "top1": 100 * top1 / count, "top5": 100 * top5 / count}


class Trainer:
    """Holds one run's objects; ``run`` trains to the end, or to ``max_steps``."""

    def __init__(self, cfg: TrainConfig, resume: bool | str | Path = False, console=None):
        self.env = dist.setup(cfg.device)
        cfg.check(self.env.world_size)
        if cfg.amp == "fp16" and self.env.device.type == "cpu":
            raise BadValue("--amp fp16 needs a GPU (loss scaling); on the CPU use --amp bf16")
        self.cfg, self.out = cfg, Path(cfg.out)
        refuse_existing_run(self.out, bool(resume), cfg.overwrite)
        _set_determinism(cfg)
        self.data = build_data(cfg, self.env)
        self.small_input = resolve_small_input(cfg, self.data.image_size)
        _seed_all(cfg.seed)  # identical initial weights on every worker, identical RNG states
        model = build_model(cfg, self.data, self.small_input).to(self.env.device)
        self.model = model
        self.optimizer = build_optimizer(cfg, model)
        self.ema = ModelEma(model, cfg.ema_decay) if cfg.ema_decay else None
        self.scaler = torch.amp.GradScaler(self.env.device.type, enabled=cfg.amp == "fp16")
        self.schedule = Schedule(cfg, len(self.data.train.dataset), self.env.world_size)
        self.state = RunState()
        if resume:
            path = self.out / CHECKPOINT_NAME if resume is True else Path(resume)
            if resume is True and not path.exists():
                raise BadValue(
                    f"nothing to resume in {self.out}: no {CHECKPOINT_NAME}; drop --resume to "
                    f"start a new run, or pass the run's --out"
                )
            restore(self, path)
        self.resumed, self.saved, self.started = bool(resume), False, False
        self._probe: torch.Tensor | None = None
        if self.env.main:
            remove_stale_temporaries(self.out)
        self.ddp = (
            DistributedDataParallel(model, device_ids=_device_ids(self.env))
            if self.env.world_size > 1
            else model
        )
        self.progress = Progress(console, enabled=cfg.progress and self.env.main)

    # --- the run -------------------------------------------------------------------------------

    def write_config(self) -> None:
        """config.json: the resolved configuration, saved with the run (rank 0). ``run`` writes
        it once the first step succeeded; calling it before is not needed."""
        if self.env.main:
            atomic_write(self.out / "config.json", json.dumps(self.resolved(), indent=2) + "\n")

    def _started(self) -> None:
        """After the first good step: a replaced run's files go, config.json is written."""
        self._check_finite(f"update {self.state.step}")
        if self.env.main and self.cfg.overwrite and not self.resumed:
            remove_run_files(self.out)
        self.write_config()
        self.started = True

    def resolved(self) -> dict[str, Any]:
        """The configuration as run: the config plus every value derived from it."""
        s = self.schedule
        return {
            **self.cfg.to_dict(),
            "resolved": {
                "world_size": self.env.world_size,
                "device": str(self.env.device),
                "threads": torch.get_num_threads(),
                "peak_lr": self.cfg.peak_lr,
                "micro_batch_per_worker": self.cfg.micro_batch(s.batch(0), self.env.world_size),
                "steps_per_epoch": s.epoch_steps[0],
                "total_steps": s.total_steps,
                "warmup_steps": s.warmup_steps,
                "batch_phases": self._phases(),
                "small_input": self.small_input,
                "image_size": self.data.image_size,
                "train_images": len(self.data.train.dataset),
                "val_images": len(self.data.val.dataset),
                "torch": torch.__version__,
            },
        }

    def _phases(self) -> list[dict[str, float]]:
        """Each batch phase with its SGD noise scale g = lr N / (B (1 - m)) (Smith et al. 2017)."""
        n = len(self.data.train.dataset)
        return [
            {"start_epoch": e, "batch": b, "peak_lr": lr,
             "noise_scale": noise_scale(lr, n, b, self.cfg.momentum)}
            for e, b, lr in self.cfg.batch_phases()
        ]  # fmt: skip

    def run(self) -> TrainResult:
        cfg, st = self.cfg, self.state
        stopped = "done"
        with self.progress:
            while st.epoch < cfg.epochs:
                if self._train_epoch():
                    self._end_epoch()  # evaluates, logs and saves
                if self._step_limit_reached():
                    self._save()
                    stopped = "max_steps" if st.epoch < cfg.epochs else "done"
                    break
        ckpt = self.out / CHECKPOINT_NAME if self.env.main else None
        final = st.history[-1]["val"] if st.history else {}
        return TrainResult(st.history, final, self.out, ckpt, stopped)

    def _step_limit_reached(self) -> bool:
        return self.cfg.max_steps is not None and self.state.step >= self.cfg.max_steps

    def _train_epoch(self) -> bool:
        """Train the rest of the current epoch, or up to max_steps; True when it is complete."""
        cfg, st, env = self.cfg, self.state, self.env
        batch = self.schedule.batch(st.epoch)
        micro = cfg.micro_batch(batch, env.world_size)
        loader = with_batch(self.data.train, micro)
        # the samples already trained on: full batches, but the epoch's last batch may be
        # partial, so a checkpoint after the last step (before validation) is at the shard's end
        done = min(st.epoch_step * micro * cfg.accum_steps, loader.sampler.num_samples)
        loader.sampler.set_epoch(st.epoch, skip=done)
        steps = self.schedule.epoch_steps[st.epoch]
        self.ddp.train()
        self.progress.start_epoch(st.epoch, cfg.epochs, steps, st.epoch_step)
        batches = iter(loader)
        while st.epoch_step < steps and not self._step_limit_reached():
            t0 = time.perf_counter()  # data loading counts in images/s
            group = [b for _, b in zip(range(cfg.accum_steps), batches)]
            self._step(group, t0)
            if not self.started:
                self._started()
            if cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0:
                self._save()
        return st.epoch_step >= steps

    def _step(self, group: list, t0: float) -> None:
        cfg, st, env = self.cfg, self.state, self.env
        lr = self.schedule.lr(st.step, st.epoch)
        self._set_lr(lr)
        n = sum(len(y) for _, y in group)
        loss_sum = correct = 0.0
        self.optimizer.zero_grad(set_to_none=True)
        for i, (x, y) in enumerate(group):
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            sync = i == len(group) - 1 or env.world_size == 1
            with _maybe_no_sync(self.ddp, sync):
                with autocast(env.device, cfg.amp):
                    logits = self.ddp(x)
                    loss = F.cross_entropy(
                        logits.float(), y, reduction="sum", label_smoothing=cfg.label_smoothing
                    )
                self.scaler.scale(loss / n).backward()
            loss_sum += loss.detach()
            correct += (logits.detach().argmax(1) == y).sum()
        loss_value = float(loss_sum)
        if dist.broadcast_flag(not math.isfinite(loss_value), env):
            self._diverged(f"loss became {loss_value} at step {st.step} (epoch {st.epoch})")
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        st.advance(n, loss_value, float(correct), lr, time.perf_counter() - t0)
        self.progress.update(st)

    def _set_lr(self, lr: float) -> None:
        old = self.state.lr
        if getattr(self.optimizer, "lr_in_momentum_buffer", False) and old and old != lr:
            momentum_correction(self.optimizer, old, lr)  # Goyal et al. 2017, Remark 2
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.state.lr = lr

    def _end_epoch(self) -> None:
        st = self.state
        row = st.epoch_row(dist.all_sum([st.seen, st.loss_sum, st.correct], self.env))
        row["val"] = evaluate(self.ddp, self.data.val, self.env.device, self.cfg.amp, self.env)
        if self.ema is not None:
            row["val_ema"] = evaluate(
                self.ema.module, self.data.val, self.env.device, self.cfg.amp, self.env
            )
        for key in ("val", "val_ema"):
            if key in row and not math.isfinite(row[key]["loss"]):
                self._diverged(
                    f"the {key.replace('_', ' ')} loss became {row[key]['loss']} after "
                    f"update {st.step} (epoch {st.epoch})"
                )
        st.finish_epoch(row)
        self.progress.end_epoch(row)
        self._save()
        if self.env.main:
            write_logs(self.out, st.history)

    def _save(self) -> None:
        """The checkpoint, of finite weights only: a non-finite one stops the run instead."""
        self._check_finite(f"update {self.state.step} (epoch {self.state.epoch})")
        if self.env.main:
            snapshot(self, self.out / CHECKPOINT_NAME)
        self.saved = True

    def _check_finite(self, when: str) -> None:
        """Every weight, buffer and optimizer tensor finite, and the model's outputs on a few
        validation images: large finite weights can still give NaN (no later step shows it)."""
        bad = _first_nonfinite(self) or self._probe_nonfinite()
        if dist.broadcast_flag(bad is not None, self.env):
            self._diverged(f"{bad or 'a tensor on another worker'} became non-finite after {when}")

    @torch.no_grad()
    def _probe_nonfinite(self) -> str | None:
        if self._probe is None:  # the first validation images, read without touching any RNG
            val = self.data.val.dataset
            with torch.random.fork_rng(devices=[]):
                n = min(len(val), self.data.val.batch_size or 1, 64)
                self._probe = torch.stack([val[i][0] for i in range(n)])
        was_training = self.model.training
        self.model.eval()
        try:
            with autocast(self.env.device, self.cfg.amp):
                logits = self.model(self._probe.to(self.env.device))
        finally:
            self.model.train(was_training)
        return None if bool(torch.isfinite(logits).all()) else "the model's output"

    def _diverged(self, what: str) -> None:
        """Stop the run: what happened, which checkpoint is kept, and what to try."""
        if self.saved or self.resumed:
            kept = f"the last good checkpoint in {self.out} is kept"
        elif self.started:
            kept = "no checkpoint was written yet (rerun with --overwrite once fixed)"
        else:
            kept = f"nothing was written to {self.out}"
        raise TrainingDiverged(f"{what}; stopped, {kept}; lower --lr or add --warmup gradual")


def _first_nonfinite(trainer: Trainer) -> str | None:
    """The name of the first weight, buffer or optimizer tensor with a NaN or infinity."""
    named = [("model", trainer.model.state_dict())]
    if trainer.ema is not None:
        named.append(("ema", trainer.ema.module.state_dict()))
    state = trainer.optimizer.state_dict()["state"]  # per parameter index
    named.append(("optimizer", {str(k): v for k, v in state.items()}))
    for prefix, tensors in named:
        for name, value in _tensors(tensors):
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return f"{prefix}.{name}"
    return None


def _tensors(tree: dict, prefix: str = ""):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from _tensors(v, f"{prefix}{k}.")
        elif isinstance(v, torch.Tensor):
            yield f"{prefix}{k}", v


def _seed_all(seed: int) -> None:
    """torch (initial weights), Python's and numpy's RNGs: saved with each checkpoint, so they
    start from the seed too, and two identical runs are identical in every saved byte."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _device_ids(env: dist.DistEnv):
    return [env.device.index] if env.device.type == "cuda" else None


def _maybe_no_sync(model: nn.Module, sync: bool):
    """DDP's no_sync for the micro-batches before the last of an accumulated update."""
    if sync or not isinstance(model, DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def _set_determinism(cfg: TrainConfig) -> None:
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def train(cfg: TrainConfig, *, resume: bool | str | Path = False, console=None) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; ``resume`` continues from ``out/checkpoint``."""
    try:  # the process group is left even when the set-up itself refuses the config
        return Trainer(cfg, resume=resume, console=console).run()
    finally:
        dist.teardown()
