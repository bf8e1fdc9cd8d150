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

from cnnlab._device import FLOAT_BYTES, check_device, check_memory, check_threads
from cnnlab.errors import BadValue
from cnnlab.train.schedules import SCHEDULES, batch_size_schedule, scaled_lr

OPTIMIZERS = ("sgd", "lars")
WARMUP_KINDS = ("gradual", "constant", "none")
AMP_KINDS = ("none", "bf16", "fp16")
BN_KINDS = ("batch", "ghost", "distributed")
DEVICES = ("auto", "cpu", "cuda")


def _doc(default: Any, help: str, **metadata: Any) -> Any:
    """A field with its default and its documentation, ``metadata["help"]``; a class as the
    default (``dict``) is a factory of fresh defaults."""
    metadata = {"help": help, **metadata}
    if isinstance(default, type):
        return field(default_factory=default, metadata=metadata)
    return field(default=default, metadata=metadata)


def parse_milestones(text: str) -> tuple[int, ...]:
    """Epochs from their text form ``"30,60,80"``."""
    try:
        return tuple(int(m) for m in text.split(",") if m.strip())
    except ValueError:
        raise BadValue(f"milestones must be epochs like 30,60,80, got {text!r}") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Model config overrides from ``KEY=VALUE`` texts, each value read as JSON when it is."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadValue(f"a model override must be KEY=VALUE (e.g. width=0.5), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# rates, counts and powers that may be zero but never negative (None: the option's default)
_NON_NEGATIVE = (
    "lr",
    "momentum",
    "weight_decay",
    "trust_coefficient",
    "warmup_epochs",
    "warmup_start",
    "power",
    "workers",
)


@dataclass(kw_only=True)
class TrainConfig:
    """A training run. Batch sizes are global (all workers together), per optimizer update.

    Each field's documentation is ``metadata["help"]`` (``cnnlab train``'s option help); a field
    whose text form differs from its value (milestones "30,60,80", model overrides "KEY=VALUE")
    names its parser in ``metadata["parse"]`` and the form's type in ``metadata["text"]``.
    """

    model: str = _doc("shufflenet_v2_x0_5", "registered model name")
    data: str = _doc(
        "digits",
        "digits | mnist:PATH | fashion-mnist:PATH | cifar10:PATH | cifar100:PATH | folder:PATH",
    )
    out: str = _doc("cnnlab-out/train", "run folder: config, logs, checkpoint")
    epochs: int = _doc(20, "epochs to train")
    batch_size: int = _doc(64, "global batch per update (all workers together)")
    image_size: int | None = _doc(None, "image side the data is resized to (default: its own)")
    small_input: bool | None = _doc(
        None,
        "CIFAR-style stem, stride 1 and no stem pool (default: for inputs <= 64 px if offered)",
    )
    drop_rate: float | None = _doc(None, "dropout before the classifier (default: the model's)")
    lr: float = _doc(
        0.1, "base lr at reference_batch (linear scaling rule, Goyal et al. 2017 §2.1)"
    )
    reference_batch: int = _doc(256, "the batch lr is given for: lr x batch / reference_batch")
    scale_lr: bool = _doc(True, "linear scaling rule (Goyal et al. 2017 §2.1)")
    warmup: str = _doc("none", "none, gradual or constant, per iteration (Goyal et al. 2017 §2.2)")
    warmup_epochs: float = _doc(0.0, "epochs of warmup")
    warmup_start: float | None = _doc(None, "lr the warmup starts from (default: lr)")
    schedule: str = _doc(
        "cosine",
        "step (/gamma at milestones, Goyal et al. 2017), cosine (SGDR, Loshchilov and Hutter "
        "2017), linear to zero (ShuffleNet, Zhang et al. 2018) or poly (LARS, You et al. 2017)",
    )
    milestones: tuple[int, ...] = _doc(
        (), "epochs of the step decay, e.g. 30,60,80", parse=parse_milestones, text=str
    )
    gamma: float = _doc(0.1, "step decay factor")
    power: float = _doc(2.0, "poly decay power (You et al. 2017)")
    increase_batch: bool = _doc(
        False,
        "multiply the batch by 1/gamma at the milestones instead of decaying lr (Smith et al. "
        "2017)",
    )
    max_batch: int | None = _doc(
        None, "largest increased batch (default: batch x (1/gamma)^milestones)"
    )
    optimizer: str = _doc("sgd", "sgd or lars (You et al. 2017)")
    momentum: float = _doc(0.9, "momentum")
    nesterov: bool = _doc(False, "Nesterov momentum")
    weight_decay: float = _doc(5e-5, "L2 weight decay")
    trust_coefficient: float = _doc(0.001, "LARS eta (You et al. 2017)")
    no_wd_bn_bias: bool = _doc(
        True, "no weight decay on BN parameters and biases (Goyal et al. 2017; You et al. 2017)"
    )
    zero_gamma: bool = _doc(
        True, "gamma = 0 in each residual branch's last BN (Goyal et al. 2017 §5.1)"
    )
    label_smoothing: float = _doc(0.0, "label smoothing epsilon (Szegedy et al. 2016 §7)")
    accum_steps: int = _doc(
        1, "micro-batches per update (the batch is split, the update is the same)"
    )
    amp: str = _doc("none", "none, bf16 autocast (CPU and GPU) or fp16 with loss scaling (GPU)")
    ema_decay: float = _doc(0.0, "EMA of the weights (Polyak averaging), evaluated too; 0: off")
    bn: str = _doc(
        "batch",
        "batch, ghost (statistics per ghost_batch images, Hoffer et al. 2017) or distributed "
        "(statistics over the global batch of all workers)",
    )
    ghost_batch: int = _doc(
        32, "images per ghost batch (Goyal et al. 2017 normalise over 32 per worker)"
    )
    seed: int = _doc(0, "random seed: data order, initial weights, augmentation")
    deterministic: bool = _doc(True, "deterministic algorithms (bitwise resume on CPU)")
    workers: int = _doc(0, "data loader processes")
    device: str = _doc("auto", "auto, cpu or cuda")
    threads: int | None = _doc(None, "intra-op threads (default: torch's current count)")
    checkpoint_every: int = _doc(0, "steps between checkpoints; 0: at each epoch end only")
    max_steps: int | None = _doc(None, "stop (with a checkpoint) after this many updates")
    overwrite: bool = _doc(False, "replace the run already in out (else refused; or --resume)")
    progress: bool = _doc(True, "progress bar")
    extra: dict[str, Any] = _doc(
        dict,
        "model config override KEY=VALUE, the value read as JSON when it is (e.g. width=0.5); "
        "repeat for more",
        parse=parse_overrides,
        text=list[str],
    )

    def check(self, world_size: int = 1) -> None:
        """Refuse impossible values: what, the value, how to fix."""
        self._check_values()
        self._check_schedule()
        self._check_batch(world_size)
        if self.checkpoint_every < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise BadValue(
                f"checkpoint_every must be >= 0 and max_steps >= 1, got "
                f"{self.checkpoint_every} and {self.max_steps}"
            )
        check_threads(self.threads)
        self._check_image(world_size)

    def _check_image(self, world_size: int) -> None:
        """An image side >= 1 (0 is refused, not read as the data's own), and a micro-batch of
        such images that fits this machine's memory (a lower bound: one channel, 4 bytes each,
        before any activation), refused before any data is loaded."""
        if self.image_size is not None and self.image_size < 1:
            raise BadValue(
                f"image_size must be >= 1 pixels, got {self.image_size}; leave --image-size out "
                "for the data's own size"
            )
        micro = self.micro_batch(self.batch_size, world_size)
        side = self.image_size or 1  # the data's own size is not known here: at least 1 pixel
        check_memory(
            side**2 * micro * FLOAT_BYTES,
            check_device(self.device, auto=True),
            f"a forward pass of {micro} images"
            + (f" at image_size={side}" if self.image_size else ""),
            "use a smaller --image-size or --batch-size",
        )

    def _check_values(self) -> None:
        """Each choice among its options, each count and rate in its range."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("warmup", self.warmup, WARMUP_KINDS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_KINDS)
        _choice("bn", self.bn, BN_KINDS)
        _choice("device", self.device, DEVICES)
        for name in (
            "epochs",
            "batch_size",
            "reference_batch",
            "accum_steps",
            "ghost_batch",
            "max_batch",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise BadValue(f"{name} must be >= 1, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise BadValue(f"{f.name} must be a finite number, got {value}")
        for name in _NON_NEGATIVE:
            if (getattr(self, name) or 0) < 0 or (name == "lr" and self.lr == 0):
                raise BadValue(
                    f"{name} must be {'> 0' if name == 'lr' else '>= 0'}, got {getattr(self, name)}"
                )
        if self.gamma <= 0:
            raise BadValue(f"gamma must be > 0 (the step decay's factor), got {self.gamma}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.ema_decay < 1:
            raise BadValue(
                f"label_smoothing and ema_decay must lie in [0, 1), got "
                f"{self.label_smoothing} and {self.ema_decay}"
            )

    def _check_schedule(self) -> None:
        """Warmup within the run, milestones increasing epochs inside it."""
        if self.warmup_epochs > self.epochs:
            raise BadValue(f"warmup_epochs={self.warmup_epochs} exceeds epochs={self.epochs}")
        if list(self.milestones) != sorted(set(self.milestones)) or any(
            not 0 < m < self.epochs for m in self.milestones
        ):
            raise BadValue(
                f"milestones={list(self.milestones)} must be increasing epochs in (0, "
                f"{self.epochs})"
            )

    def _check_batch(self, world_size: int) -> None:
        """The batch splits evenly over workers, micro-batches and ghost batches; a batch
        increase has milestones to increase at."""
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

    @classmethod
    def from_options(cls, values: dict[str, Any]) -> TrainConfig:
        """A config from text-level options: None keeps a field's default, and a field with a
        text form (``metadata["parse"]``) is parsed from it."""
        parsers = {f.name: f.metadata.get("parse") for f in dataclasses.fields(cls)}
        return cls.from_dict(
            {k: parsers[k](v) if parsers.get(k) else v for k, v in values.items() if v is not None}
        )

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
