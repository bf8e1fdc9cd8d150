"""Training throughput: cnnlab's loop against a plain PyTorch loop, interleaved, same everything.

The reference is the inner loop of torchvision's classification reference script
(``train_one_epoch``: forward, loss, zero_grad, backward, step) over the same loader, model
(same initial weights), optimizer settings and batch. cnnlab's loop adds what it does every step:
the lr schedule, the NaN check, metrics, the progress state. The two run alternately in chunks of
``--chunk`` updates; each round's images/s ratio (ours / reference) is kept and the median with a
95% CI is reported. Target (issue 5): ratio >= 0.95.

    python -m benchmarks.bench_train_loop --threads 2 [--data cifar10:PATH]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from benchmarks._common import save
from cnnlab.measure.latency import median_ci
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import Trainer


def reference_chunk(model, optimizer, batches, n_steps: int) -> int:
    """torchvision's train_one_epoch inner loop for ``n_steps``; returns the image count."""
    n = 0
    for _, (image, target) in zip(range(n_steps), batches):
        output = model(image)
        loss = F.cross_entropy(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n += len(target)
    return n


def cnnlab_chunk(trainer: Trainer, batches, n_steps: int) -> int:
    """cnnlab's per-update work (Trainer._step: lr, autocast, NaN check, metrics, progress)."""
    seen = trainer.state.seen
    for _ in range(n_steps):
        t0 = time.perf_counter()
        trainer._step([next(batches)], t0)
    return trainer.state.seen - seen


def endless(loader):
    """The loader's batches epoch after epoch (each epoch its own shuffle)."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="shufflenet_v2_x0_5")
    p.add_argument("--data", default="digits")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--chunk", type=int, default=10, help="updates per contender per round")
    p.add_argument("--rounds", type=int, default=12)
    args = p.parse_args()
    cfg = TrainConfig(
        model=args.model, data=args.data, batch_size=args.batch_size, epochs=1000,
        progress=False, threads=args.threads, out="/tmp/cnnlab-bench-train-loop",
    )  # fmt: skip
    ours = Trainer(cfg)
    ref_model = copy.deepcopy(ours.model).train()
    ref_opt = torch.optim.SGD(
        ref_model.parameters(), lr=cfg.peak_lr, momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )  # fmt: skip
    batches = {"cnnlab": endless(ours.data.train), "reference": endless(ours.data.train)}
    run = {
        "cnnlab": lambda n: cnnlab_chunk(ours, batches["cnnlab"], n),
        "reference": lambda n: reference_chunk(ref_model, ref_opt, batches["reference"], n),
    }
    for f in run.values():  # warm-up: oneDNN picks its kernels on the first calls
        f(3)
    ratios, rates = [], {"cnnlab": [], "reference": []}
    for r in range(args.rounds):
        order = ("cnnlab", "reference") if r % 2 == 0 else ("reference", "cnnlab")
        rate = {}
        for who in order:
            t0 = time.perf_counter()
            images = run[who](args.chunk)
            rate[who] = images / (time.perf_counter() - t0)
            rates[who].append(rate[who])
        ratios.append(rate["cnnlab"] / rate["reference"])
    low, high = median_ci(ratios)
    result = {
        "model": args.model,
        "data": args.data,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "chunk": args.chunk,
        "rounds": args.rounds,
        "images_per_s": {k: statistics.median(v) for k, v in rates.items()},
        "ratio": statistics.median(ratios),
        "ratio_ci95": [low, high],
        "target": ">= 0.95",
    }
    print(
        f"{args.model} on {args.data}, batch {args.batch_size}, {args.threads} threads: "
        f"cnnlab {result['images_per_s']['cnnlab']:.0f} img/s, reference "
        f"{result['images_per_s']['reference']:.0f} img/s, ratio {result['ratio']:.3f} "
        f"(95% CI {low:.3f}-{high:.3f})"
    )
    save(f"train_loop_{args.data.split(':')[0]}", result)


if __name__ == "__main__":
    main()
