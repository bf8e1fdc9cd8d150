"""From a :class:`TrainConfig` to the objects a run needs: data, model, optimizer, lr schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from cnnlab.models import create_model, model_config
from cnnlab.ops.norm import convert_norm
from cnnlab.train.config import TrainConfig, steps_per_epoch
from cnnlab.train.data import build_loaders
from cnnlab.train.dist import DistEnv
from cnnlab.train.lars import LARS
from cnnlab.train.params import param_groups, zero_init_last_gamma
from cnnlab.train.schedules import lr_at

SMALL_INPUT_MAX = 64  # images up to this side get the CIFAR-style stem when the family has one


@dataclass
class Data:
    train: DataLoader
    val: DataLoader
    num_classes: int
    in_chans: int
    image_size: int


def build_data(cfg: TrainConfig, env: DistEnv) -> Data:
    """Loaders at the first phase's micro-batch per worker; the image size read off a sample."""
    micro = cfg.micro_batch(cfg.batch_phases()[0][1], env.world_size)
    train, val, num_classes, in_chans = build_loaders(
        cfg.data,
        batch_size=micro,
        image_size=cfg.image_size,
        workers=cfg.workers,
        seed=cfg.seed,
        world_size=env.world_size,
        rank=env.rank,
    )
    image_size = val.dataset[0][0].shape[-1]
    return Data(train, val, num_classes, in_chans, image_size)


def with_batch(loader: DataLoader, batch: int) -> DataLoader:
    """The same data set and sampler in batches of ``batch`` (Smith et al.'s batch increase)."""
    if loader.batch_size == batch:
        return loader
    return DataLoader(
        loader.dataset,
        sampler=loader.sampler,
        batch_size=batch,
        num_workers=loader.num_workers,
        persistent_workers=loader.num_workers > 0,
    )


def resolve_small_input(cfg: TrainConfig, image_size: int) -> bool:
    """The CIFAR-style stem: as asked, or (None) for small images when the family offers it."""
    if cfg.small_input is not None:
        return cfg.small_input
    return image_size <= SMALL_INPUT_MAX and type(model_config(cfg.model)).SMALL_INPUT


def build_model(cfg: TrainConfig, data: Data, small_input: bool) -> nn.Module:
    """The registered model for this data, with the recipe's gamma init and BN kind."""
    overrides = {k: _as_tuples(v) for k, v in cfg.extra.items()}
    if small_input:
        overrides["small_input"] = True
    if cfg.drop_rate is not None:
        overrides["drop_rate"] = cfg.drop_rate
    model = create_model(
        cfg.model, num_classes=data.num_classes, in_chans=data.in_chans, **overrides
    )
    if cfg.zero_gamma:
        zero_init_last_gamma(model)
    if cfg.bn == "ghost":
        model = convert_norm(model, "ghost", virtual_batch=cfg.ghost_batch)
    elif cfg.bn == "distributed":
        model = convert_norm(model, "distributed")
    return model


def _as_tuples(value):
    """A JSON list (``--model-arg stage_channels=[116,232,464]``, or a config read back from
    JSON) as the tuple a model config holds, nested lists too."""
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    return value


def build_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum (Goyal et al. 2017) or LARS (You et al. 2017), BN/bias groups apart."""
    groups = param_groups(model, cfg.weight_decay, cfg.no_wd_bn_bias)
    if cfg.optimizer == "lars":
        return LARS(
            groups, lr=cfg.peak_lr, momentum=cfg.momentum, trust_coefficient=cfg.trust_coefficient
        )
    for g in groups:
        g.pop("lars_exclude", None)
    return torch.optim.SGD(groups, lr=cfg.peak_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


class Schedule:
    """Per-epoch batch and per-step learning rate of the run (warmup, decay, batch phases)."""

    def __init__(self, cfg: TrainConfig, num_train: int, world_size: int):
        self.cfg, self.phases = cfg, cfg.batch_phases()
        self.epoch_steps = [
            steps_per_epoch(num_train, world_size, self.batch(e)) for e in range(cfg.epochs)
        ]
        self.epoch_start = [sum(self.epoch_steps[:e]) for e in range(cfg.epochs + 1)]
        self.total_steps = self.epoch_start[-1]
        self.warmup_steps = min(self.total_steps, round(cfg.warmup_epochs * self.epoch_steps[0]))

    def phase(self, epoch: int) -> tuple[int, int, float]:
        return [p for p in self.phases if p[0] <= epoch][-1]

    def batch(self, epoch: int) -> int:
        """The global batch in ``epoch``."""
        return self.phase(epoch)[1]

    def lr(self, step: int, epoch: int) -> float:
        """lr_at for this step: warmup then the schedule; batch phases replace step decay."""
        cfg = self.cfg
        warmup = None if cfg.warmup == "none" else cfg.warmup
        start = cfg.lr if cfg.warmup_start is None else cfg.warmup_start
        common = dict(
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps if warmup else 0,
            warmup=warmup,
            warmup_start=min(start, cfg.peak_lr),
        )
        if cfg.increase_batch:
            return lr_at(step, base_lr=self.phase(epoch)[2], schedule="step", **common)
        milestones = [self.epoch_start[m] for m in cfg.milestones]
        return lr_at(
            step,
            base_lr=cfg.peak_lr,
            schedule=cfg.schedule,
            milestones=milestones,
            gamma=cfg.gamma,
            power=cfg.power,
            **common,
        )
