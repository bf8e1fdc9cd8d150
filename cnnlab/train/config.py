"""The training run's configuration: one dataclass, printed and saved with every run.

Every recipe is a named field with its paper beside it; ``check`` refuses impossible values with
the value and the fix, and ``resolve`` turns the recipe into the numbers the loop runs on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import BadValue
from cnnlab.train.schedules import SCHEDULES, batch_size_schedule, scaled_lr

OPTIMIZERS = ("sgd", "lars")
WARMUP_KINDS = ("gradual", "constant", "none")
AMP_KINDS = ("none", "bf16", "fp16")
BN_KINDS = ("batch", "ghost", "distributed")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(kw_only=True)
class TrainConfig:
    """A training run. Batch sizes are global (all workers together), per optimizer update."""

    model: str = "shufflenet_v2_x0_5"
    data: str = "digits"
    out: str = "cnnlab-out/train"
    epochs: int = 20
    batch_size: int = 64
    image_size: int | None = None
    small_input: bool | None = None  # None: the CIFAR-style stem for inputs <= 64 px if offered
    drop_rate: float | None = None
    # Goyal et al. 2017 §2.1: lr = base lr x global batch / reference batch (linear scaling rule)
    lr: float = 0.1
    reference_batch: int = 256
    scale_lr: bool = True
    # Goyal et al. 2017 §2.2: gradual warmup per iteration from warmup_start (default: lr)
    warmup: str = "none"
    warmup_epochs: float = 0.0
    warmup_start: float | None = None
    # step (Goyal: /10 at milestones), cosine (SGDR), linear to zero (ShuffleNet), poly (LARS)
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()  # epochs
    gamma: float = 0.1
    power: float = 2.0
    # Smith et al. 2017: at each milestone multiply the batch by 1/gamma instead of decaying lr
    increase_batch: bool = False
    max_batch: int | None = None
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-5
    trust_coefficient: float = 0.001  # LARS eta (You et al. 2017)
    no_wd_bn_bias: bool = True  # Goyal et al. 2017 (and LARS): no decay on BN and bias
    zero_gamma: bool = True  # Goyal et al. 2017 §5.1: gamma = 0 in each residual branch's last BN
    label_smoothing: float = 0.0  # Szegedy et al. 2016 §7
    accum_steps: int = 1  # micro-batches per update (the batch is split, the update is the same)
    amp: str = "none"  # bf16 autocast (CPU and GPU) or fp16 with loss scaling (GPU)
    ema_decay: float = 0.0  # 0: off; else EMA of weights (Polyak averaging), evaluated too
    bn: str = "batch"  # ghost: statistics per ghost_batch images (Goyal: 32); distributed: global
    ghost_batch: int = 32
    seed: int = 0
    deterministic: bool = True
    workers: int = 0
    device: str = "auto"
    threads: int | None = None
    checkpoint_every: int = 0  # steps; 0: only at each epoch end
    max_steps: int | None = None  # stop (with a checkpoint) after this many updates
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # model overrides, e.g. {"width": 0.5}

    def check(self, world_size: int = 1) -> None:
        """Refuse impossible values: what, the value, how to fix."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("warmup", self.warmup, WARMUP_KINDS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_KINDS)
        _choice("bn", self.bn, BN_KINDS)
        _choice("device", self.device, DEVICES)
        for name in ("epochs", "batch_size", "reference_batch", "accum_steps", "ghost_batch"):
            if getattr(self, name) < 1:
                raise BadValue(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "momentum", "weight_decay", "trust_coefficient", "warmup_epochs"):
            if getattr(self, name) < 0 or (name == "lr" and self.lr == 0):
                raise BadValue(
                    f"{name} must be {'> 0' if name == 'lr' else '>= 0'}, got {getattr(self, name)}"
                )
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1:
            raise BadValue(
                f"label_smoothing and ema_decay must lie in [0, 1), got "
                f"{self.label_smoothing} and {self.ema_decay}"
            )
        if self.warmup_epochs > self.epochs:
            raise BadValue(f"warmup_epochs={self.warmup_epochs} exceeds epochs={self.epochs}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            not 0 < m < self.epochs for m in self.milestones
        ):
            raise BadValue(
                f"milestones={list(self.milestones)} must be increasing epochs in (0, "
                f"{self.epochs})"
            )
        per_update = world_size * self.accum_steps
        if self.batch_size % per_update:
            raise BadValue(
                f"batch_size={self.batch_size} is not divisible by workers x accum_steps = "
                f"{world_size} x {self.accum_steps}; choose a multiple of {per_update}"
            )
        if self.bn == "ghost" and (self.batch_size // per_update) % self.ghost_batch:
            raise BadValue(
                f"ghost batch norm needs the micro-batch per worker "
                f"({self.batch_size // per_update}) to be a multiple of ghost_batch="
                f"{self.ghost_batch}"
            )
        if self.increase_batch and (not self.milestones or self.schedule != "step"):
            raise BadValue("increase_batch replaces step decay: set schedule='step' and milestones")
        if self.checkpoint_every < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise BadValue(
                f"checkpoint_every must be >= 0 and max_steps >= 1, got "
                f"{self.checkpoint_every} and {self.max_steps}"
            )
        if self.threads is not None and self.threads < 1:
            raise BadValue(f"threads must be >= 1, got {self.threads}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadValue(f"unknown training options {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "milestones" in values:
            values["milestones"] = tuple(values["milestones"])
        return cls(**values)

    def micro_batch(self, batch: int, world_size: int) -> int:
        """Images per forward pass on one worker: the global ``batch`` split over the workers
        and the accumulated micro-batches of one update."""
        return batch // (world_size * self.accum_steps)

    @property
    def peak_lr(self) -> float:
        """The learning rate after warmup: scaled by the linear scaling rule if ``scale_lr``."""
        if not self.scale_lr:
            return self.lr
        return scaled_lr(self.lr, self.batch_size, self.reference_batch)

    def batch_phases(self) -> list[tuple[int, int, float]]:
        """(start epoch, global batch, peak lr) per phase: one phase unless ``increase_batch``."""
        if not self.increase_batch:
            return [(0, self.batch_size, self.peak_lr)]
        phases = batch_size_schedule(
            base_lr=self.peak_lr,
            base_batch=self.batch_size,
            milestones=self.milestones,
            factor=1 / self.gamma,
            max_batch=self.max_batch
            or self.batch_size * round(1 / self.gamma) ** len(self.milestones),
        )
        return [(p.start_epoch, p.batch, p.lr) for p in phases]


def _choice(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise BadValue(f"unknown {name} {value!r}; choose one of {', '.join(options)}")


def steps_per_epoch(num_samples: int, world_size: int, batch: int) -> int:
    """Updates per epoch: each rank's shard (DistributedSampler, drop_last) in batches of
    ``batch / world_size``, the last one partial."""
    shard = num_samples // world_size
    return math.ceil(shard / (batch // world_size))
