"""Large-batch learning-rate recipes: scaling rule, warmup, decay, momentum correction, noise scale.

- Linear scaling rule and gradual warmup: Goyal et al. 2017, "Accurate, Large Minibatch SGD"
  (§2.1, §2.2); step decay /10 at epochs 30, 60, 80 of 90 is their ImageNet schedule.
- Momentum correction: Goyal et al. 2017, Remark 2.
- Cosine decay: Loshchilov & Hutter 2017 (SGDR), without restarts.
- Linear decay to zero: the ShuffleNet v1/v2 ImageNet recipe (Zhang et al. 2018; Ma et al. 2018).
- Polynomial decay of power 2: the LARS paper's global schedule (You et al. 2017).
- Noise scale and batch-size increase instead of decay: Smith, Kindermans, Ying, Le 2017,
  "Don't decay the learning rate, increase the batch size".

Steps are iterations (optimizer updates): Goyal warm up per iteration, not per epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch.optim import Optimizer

from cnnlab.errors import BadValue

WARMUPS = ("gradual", "constant")
SCHEDULES = ("step", "cosine", "linear", "poly")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise BadValue(f"{name}={value!r} is invalid; {name} must be > 0")


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """Linear scaling rule (Goyal et al. 2017, §2.1): lr = base_lr * global_batch / reference_batch."""
    _positive("base_lr", base_lr)
    _positive("global_batch", global_batch)
    _positive("reference_batch", reference_batch)
    return base_lr * global_batch / reference_batch


def _check_lr_args(
    step: int,
    base_lr: float,
    total_steps: int,
    warmup_steps: int,
    warmup: str | None,
    warmup_start: float,
    schedule: str,
) -> None:
    if step < 0:
        raise BadValue(f"step={step!r} is invalid; steps count from 0")
    _positive("base_lr", base_lr)
    _positive("total_steps", total_steps)
    if not 0 <= warmup_steps <= total_steps:
        raise BadValue(f"warmup_steps={warmup_steps!r} must lie in [0, total_steps={total_steps}]")
    if warmup is not None and warmup not in WARMUPS:
        raise BadValue(f"warmup={warmup!r} is unknown; use one of {WARMUPS} or None")
    if warmup == "constant" and warmup_steps > 0 and not warmup_start > 0:
        raise BadValue(f"constant warmup needs warmup_start > 0, got {warmup_start!r}")
    if schedule not in SCHEDULES:
        raise BadValue(f"schedule={schedule!r} is unknown; use one of {SCHEDULES}")


def _decayed(
    step: int,
    base_lr: float,
    total_steps: int,
    warmup_steps: int,
    schedule: str,
    milestones: Sequence[int],
    gamma: float,
    power: float,
    min_lr: float,
) -> float:
    if schedule == "step":  # Goyal: x gamma at each milestone (absolute steps, warmup included)
        return base_lr * gamma ** sum(step >= m for m in milestones)
    span = total_steps - warmup_steps
    progress = (step - warmup_steps) / span if span > 0 else 1.0  # 0 -> 1 after warmup
    if schedule == "cosine":  # SGDR without restarts (Loshchilov & Hutter 2017)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":  # ShuffleNet recipe: linear to min_lr (0) at the last step
        return base_lr + (min_lr - base_lr) * progress
    return min_lr + (base_lr - min_lr) * (1.0 - progress) ** power  # poly (LARS: power 2)


def lr_at(
    step: int,
    *,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    warmup: str | None = "gradual",
    warmup_start: float = 0.0,
    schedule: str = "step",
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    power: float = 2.0,
    min_lr: float = 0.0,
) -> float:
    """Learning rate at iteration ``step`` (Goyal et al. 2017 warmup, then a decay schedule).

    ``base_lr`` is the target after warmup (already scaled, see ``scaled_lr``). Gradual warmup
    adds a constant amount each iteration from ``warmup_start`` so that ``lr_at(warmup_steps)``
    is ``base_lr``; constant warmup holds ``warmup_start``. ``milestones`` are absolute steps.
    """
    _check_lr_args(step, base_lr, total_steps, warmup_steps, warmup, warmup_start, schedule)
    # 1) warmup: Goyal §2.2, per iteration; "gradual" is linear from warmup_start to base_lr
    if warmup is not None and step < warmup_steps:
        if warmup == "constant":
            return warmup_start
        return warmup_start + (base_lr - warmup_start) * step / warmup_steps
    # 2) decay: the chosen schedule, its progress measured from the end of warmup
    decay_args = (base_lr, total_steps, warmup_steps, schedule, milestones, gamma, power, min_lr)
    if step < total_steps:
        return _decayed(step, *decay_args)
    # 3) floor: past the end, hold the schedule's final value
    return _decayed(total_steps, *decay_args)


def lr_lambda(**lr_at_kwargs: object) -> Callable[[int], float]:
    """Multiplier ``step -> lr_at(step) / base_lr`` for ``torch.optim.lr_scheduler.LambdaLR``.

    LambdaLR multiplies each group's initial lr by it: set the optimizer's lr to ``base_lr``.
    """
    base_lr = lr_at_kwargs["base_lr"]
    lr_at(0, **lr_at_kwargs)  # refuse bad arguments now, not at the first scheduler step

    def multiplier(step: int) -> float:
        return lr_at(step, **lr_at_kwargs) / base_lr

    return multiplier


def momentum_correction(optimizer: Optimizer, lr_old: float, lr_new: float) -> None:
    """Momentum correction (Goyal et al. 2017, Remark 2): v <- v * lr_new / lr_old on an lr change.

    Needed where the buffer holds the lr, ``v <- m v + lr g; w <- w - v`` (Goyal eq. 9, e.g.
    ``cnnlab.train.LARS``). ``torch.optim.SGD`` uses ``u <- m u + g; w <- w - lr u`` (eq. 10),
    which already behaves as corrected; scaling its buffer would correct twice, so it is refused.
    """
    _positive("lr_old", lr_old)
    if lr_new < 0:
        raise BadValue(f"lr_new={lr_new!r} is invalid; lr_new must be >= 0")
    if not getattr(optimizer, "lr_in_momentum_buffer", False):
        raise BadValue(
            f"momentum_correction: {type(optimizer).__name__} keeps the lr outside its momentum "
            "buffer (Goyal eq. 10), which needs no correction; use it with an optimizer whose "
            "buffer holds lr * gradient (lr_in_momentum_buffer = True, e.g. cnnlab.train.LARS)"
        )
    ratio = lr_new / lr_old
    for state in optimizer.state.values():
        if "momentum_buffer" in state:
            state["momentum_buffer"].mul_(ratio)


def noise_scale(lr: float, dataset_size: int, batch: int, momentum: float = 0.0) -> float:
    """SGD noise scale g = lr*N / (B*(1 - m)) (Smith et al. 2017; momentum form unverified)."""
    # Smith et al. write g = eps*(N/B - 1) ~= eps*N/B for B << N; momentum m divides by (1 - m).
    # The momentum form is taken from X. Zhang's survey ("Recent advances in CNN model research"),
    # not checked against the paper's text (docs/provenance.md#sgd-noise-scale).
    _positive("lr", lr)
    _positive("dataset_size", dataset_size)
    _positive("batch", batch)
    if not 0 <= momentum < 1:
        raise BadValue(f"momentum={momentum!r} is invalid; momentum must lie in [0, 1)")
    return lr * dataset_size / (batch * (1.0 - momentum))


@dataclass(frozen=True)
class BatchPhase:
    """One phase of a batch-size schedule: from ``start_epoch`` on, train at ``batch`` and ``lr``."""

    start_epoch: int
    batch: int
    lr: float

    def noise_scale(self, dataset_size: int, momentum: float = 0.0) -> float:
        """This phase's noise scale (Smith et al. 2017)."""
        return noise_scale(self.lr, dataset_size, self.batch, momentum)


def batch_size_schedule(
    *,
    base_lr: float,
    base_batch: int,
    milestones: Sequence[int],
    factor: float,
    max_batch: int,
) -> list[BatchPhase]:
    """Smith et al. 2017: at each milestone where lr would be divided by ``factor``, multiply
    the batch by ``factor`` instead, up to ``max_batch``; past the ceiling, divide the lr.

    A step that would overshoot the ceiling raises the batch to ``max_batch`` and divides the
    lr by the rest of the factor, so lr/B (the noise scale) always falls by exactly ``factor``.
    """
    _positive("base_lr", base_lr)
    _positive("base_batch", base_batch)
    if not factor > 1:
        raise BadValue(f"factor={factor!r} is invalid; the decay factor must be > 1")
    if max_batch < base_batch:
        raise BadValue(f"max_batch={max_batch!r} is below base_batch={base_batch!r}")
    if list(milestones) != sorted(set(milestones)) or any(m <= 0 for m in milestones):
        raise BadValue(f"milestones={list(milestones)!r} must be increasing positive epochs")
    phases = [BatchPhase(0, base_batch, base_lr)]
    for epoch in milestones:
        last = phases[-1]
        batch = min(round(last.batch * factor), max_batch)
        lr_divisor = factor * last.batch / batch  # 1 while the batch takes the whole factor
        phases.append(BatchPhase(epoch, batch, last.lr / lr_divisor))
    return phases
