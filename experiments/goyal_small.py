"""Goyal et al. 2017 at small scale: does gradual warmup close the large-batch gap here?

Runs, on real data given by ``--data`` (Fashion-MNIST in the recorded run), the same model for
the same epochs:
  1. batch 64, lr 0.1 x 64/256 (the small-batch baseline),
  2. batch 1024, linear scaling rule (lr 0.1 x 1024/256), no warmup,
  3. batch 1024, linear scaling rule + gradual warmup (Goyal §2.2),
  4. batch 1024, LARS (You et al. 2017) with warmup and the paper's polynomial decay,
for each seed, then writes results JSON and a plot of the validation curves.

    python -m experiments.goyal_small --data fashion-mnist:PATH \
        --epochs 4 --seeds 0,1 --threads 2 --out experiments/results/goyal_small

PATH is a folder holding Fashion-MNIST's four IDX ``.gz`` files; any ``--data`` that
``cnnlab train`` takes works (``mnist:PATH``, ``cifar10:PATH``, ...). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from cnnlab._io import atomic_write, save_figure
from cnnlab.errors import UserError
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import train

# name -> TrainConfig overrides (lr is the base lr at the reference batch of 256)
RECIPES = {
    "B=64": dict(batch_size=64, lr=0.1),
    "B=1024 scaled lr, no warmup": dict(batch_size=1024, lr=0.1),
    "B=1024 scaled lr + gradual warmup": dict(
        batch_size=1024, lr=0.1, warmup="gradual", warmup_epochs=1
    ),
    "B=1024 LARS + warmup": dict(
        batch_size=1024, lr=2.0, optimizer="lars", warmup="gradual", warmup_epochs=1,
        warmup_start=0.1, schedule="poly",
    ),
}  # fmt: skip


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def run_one(args, name: str, recipe: dict, seed: int) -> list[float]:
    """One recipe and seed; a finished run is read back, a stopped one resumed (exactly)."""
    out = Path(args.out) / "runs" / f"{slug(name)}_seed{seed}"
    log = out / "log.jsonl"
    if log.exists():
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        if len(rows) == args.epochs:
            return [r["val"]["top1"] for r in rows]
    settings = {"schedule": "cosine", **recipe}
    resume = (out / "checkpoint.safetensors").exists()  # else nothing to keep: start afresh
    cfg = TrainConfig(
        model=args.model, data=args.data, epochs=args.epochs, seed=seed, threads=args.threads,
        progress=False, out=str(out), overwrite=not resume, **settings,
    )  # fmt: skip
    r = train(cfg, resume=resume)
    return [h["val"]["top1"] for h in r.history]


def run(args) -> dict:
    results: dict[str, list[dict]] = {name: [] for name in RECIPES}
    for seed in args.seeds:
        for name, recipe in RECIPES.items():
            t0 = time.time()
            curve = run_one(args, name, recipe, seed)
            results[name].append({"seed": seed, "val_top1": curve, "seconds": time.time() - t0})
            print(f"{name:36s} seed {seed}: final val top-1 {curve[-1]:.2f}%", flush=True)
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in results.items():
        epochs = range(1, len(runs[0]["val_top1"]) + 1)
        mean = [statistics.mean(r["val_top1"][e - 1] for r in runs) for e in epochs]
        ax.plot(epochs, mean, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 (%), mean over seeds")
    ax.set_title("Large-batch recipes at small scale (Goyal et al. 2017; You et al. 2017)")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        required=True,
        metavar="KIND:PATH",
        help="the data set, as cnnlab train's --data: e.g. fashion-mnist:PATH, where PATH holds "
        "Fashion-MNIST's IDX .gz files (required: nothing is downloaded)",
    )
    p.add_argument("--model", default="mobilenet_v1_x0_25")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="experiments/results/goyal_small")
    args = p.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    try:
        results = run(args)
    except UserError as e:  # a bad --data (unknown kind, missing path): one line, exit status 2
        p.error(str(e))
    summary = {
        name: {
            "final_val_top1_mean": statistics.mean(r["val_top1"][-1] for r in runs),
            "final_val_top1": [r["val_top1"][-1] for r in runs],
        }
        for name, runs in results.items()
    }
    out = Path(args.out)
    payload = {"settings": vars(args), "summary": summary, "runs": results}
    atomic_write(out / "goyal_small.json", json.dumps(payload, indent=2))
    plot(results, out / "goyal_small.png")
    for name, s in summary.items():
        print(f"{name:36s} final val top-1 {s['final_val_top1_mean']:.2f}% {s['final_val_top1']}")


if __name__ == "__main__":
    main()
