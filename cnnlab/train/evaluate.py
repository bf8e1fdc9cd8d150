"""``cnnlab eval``: a checkpoint's model (or its EMA) on a data set's validation split."""

from __future__ import annotations

import dataclasses

import torch

from cnnlab.errors import BadValue
from cnnlab.train.build import Data, build_model
from cnnlab.train.checkpoint import load_checkpoint, prefixed
from cnnlab.train.config import TrainConfig
from cnnlab.train.data import build_loaders
from cnnlab.train.dist import resolve_device
from cnnlab.train.loop import evaluate


def evaluate_checkpoint(
    path: str,
    *,
    data: str | None = None,
    ema: bool = False,
    batch_size: int = 256,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Loss, top-1 and top-5 (%) of the checkpoint's weights on ``data`` (default: the run's)."""
    if batch_size < 1 or (threads is not None and threads < 1):
        raise BadValue(f"batch_size and threads must be >= 1, got {batch_size} and {threads}")
    dev = resolve_device(device)  # before the checkpoint and the data are read
    tensors, meta = load_checkpoint(path)
    cfg = TrainConfig.from_dict(meta["config"])
    cfg = dataclasses.replace(cfg, data=data or cfg.data, bn="batch")
    if threads is not None:
        torch.set_num_threads(threads)
    _, val, num_classes, in_chans = build_loaders(
        cfg.data, batch_size=batch_size, image_size=cfg.image_size, augment=False
    )
    weights = prefixed(tensors, "ema" if ema else "model")
    if not weights:
        raise BadValue(f"{path} holds no EMA weights; the run had --ema-decay 0, drop --ema")
    shapes = Data(val, val, num_classes, in_chans, val.dataset[0][0].shape[-1])
    model = build_model(cfg, shapes, meta["small_input"])
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        last = str(e).strip().splitlines()[-1].strip()
        raise BadValue(f"{path} does not fit {cfg.model} on {cfg.data}: {last}") from None
    metrics = evaluate(model.to(dev), val, dev, cfg.amp)
    return {
        "model": cfg.model,
        "data": cfg.data,
        "weights": "ema" if ema else "model",
        "images": len(val.dataset),
        **metrics,
    }
