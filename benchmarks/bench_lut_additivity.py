"""Additivity of a latency table, without the host's drift: a model against its own operators.

A latency table predicts a model as the sum of its operators, each timed alone (``cnnlab lut
build``). Its held-out accuracy here mixes two errors: that sum's own, and the machine's change
of speed between the build and the measurement (10-40% within minutes on a 2-vCPU VM).
This separates the first: each round times the whole model once, then every distinct operator
once, alone, as ``lut build`` does (operators from ``cnnlab.speedlab.lut.opsig.extract_ops``); the
ratio sum(count x operator) / model is taken per round, so both sides see the same machine.

Reported: the median per-round ratio and its 95% interval. Within +-10% is what nn-Meter's
metric asks of a whole prediction; a ratio away from 1 would be a bias of the method itself.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, operator_counts, save
from cnnlab.measure.latency import Runner, _calls_per_sample, median_ci, timing_settings

CPU = torch.device("cpu")


def _runner(model: torch.nn.Module, shape: tuple[int, ...], warmup_s: float):
    runner = Runner(model.eval(), torch.randn(*shape), "inference", CPU)
    runner.warm_up(max_seconds=warmup_s)
    return runner, _calls_per_sample(runner.time())


def additivity(name: str, threads: int, rounds: int) -> dict:
    """Per-round sum of the model's operators over the model, timed side by side."""
    model = cnnlab.create_model(name)
    size = cnnlab.models.get_entry(name).input_size
    counts, sigs = operator_counts(model, size)
    with timing_settings(threads):
        whole, whole_calls = _runner(model, (1, *size), 3.0)
        ops = {}
        for key, sig in sigs.items():
            module, op_size, batch = sig.build(1)
            ops[key] = _runner(module, (batch, *op_size), 0.5)
        model_ms, sum_ms = [], []
        for _ in range(rounds):
            time.sleep(0.02)  # as compare_latency: idle, one untimed call, then the sample
            whole.step()
            model_ms.append(whole.time(whole_calls))
            total = 0.0
            for key, (runner, calls) in ops.items():
                runner.step()
                total += counts[key] * runner.time(calls)
            sum_ms.append(total)
    ratios = [s / m for s, m in zip(sum_ms, model_ms)]
    low, high = median_ci(ratios)
    return {
        "model": name,
        "operators": sum(counts.values()),
        "distinct": len(counts),
        "model_ms": statistics.median(model_ms),
        "model_ms_range": [min(model_ms), max(model_ms)],
        "sum_ms": statistics.median(sum_ms),
        "ratio": [statistics.median(ratios), low, high],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument(
        "--models",
        default="mobilenet_v2_x1_0,shufflenet_v2_x1_0,shufflenet_v2_x2_0,mobilenet_v1_x1_0",
    )
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    rows = []
    for name in args.models.split(","):
        r = additivity(name, args.threads, args.rounds)
        rows.append(r)
        ratio, low, high = r["ratio"]
        lo_ms, hi_ms = r["model_ms_range"]
        print(
            f"{name}: {r['operators']} operators ({r['distinct']} distinct); model "
            f"{r['model_ms']:.2f} ms (rounds {lo_ms:.1f}-{hi_ms:.1f}), sum of operators "
            f"{r['sum_ms']:.2f} ms; sum / model {ratio:.3f} (95% CI {low:.3f}-{high:.3f}); "
            f"{'within' if abs(ratio - 1) <= 0.10 else 'OUTSIDE'} +-10%"
        )
    print("wrote", save("lut_additivity", {"threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
