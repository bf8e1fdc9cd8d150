"""deploy(auto) against ONNX Runtime set up by hand, under two harnesses (ratios, one run).

An independent check of ``bench_deploy``: the torchvision model exported to ONNX by hand
(``torch.onnx.export``, opset 17, fixed batch) and run by an ``onnxruntime.InferenceSession``
with only the thread count set (its other settings default: worker threads spin-wait between
runs), against ``cnnlab.deploy(from_torchvision(m), batch_size=b)``. Two harnesses time the same
modules: "plain", rounds of back-to-back calls with no pause between contenders (what a user's
quick loop does), and "cnnlab", ``compare_latency`` (a 20 ms idle and one untimed call before
each sample). Where they disagree, the rows of each contender alone say which is true.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, save
from benchmarks.bench_deploy import ByHandOrt
from cnnlab.measure.latency import median_ci, num_threads


def plain(contenders: dict, x, rounds: int, calls: int) -> dict[str, list[float]]:
    """Rounds of ``calls`` back-to-back calls per contender, rotating order, no pause: ms/call."""
    names = list(contenders)
    times = {n: [] for n in names}
    with torch.inference_mode():
        for m in contenders.values():  # warm-up
            for _ in range(calls):
                m(x)
        for r in range(rounds):
            for n in names[r % len(names) :] + names[: r % len(names)]:
                t0 = time.perf_counter()
                for _ in range(calls):
                    contenders[n](x)
                times[n].append((time.perf_counter() - t0) * 1e3 / calls)
    return times


def alone(module, x, calls: int, repeats: int = 5) -> float:
    """Median ms/call of ``module`` timed by itself, after its own warm-up."""
    with torch.inference_mode():
        for _ in range(calls):
            module(x)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                module(x)
            samples.append((time.perf_counter() - t0) * 1e3 / calls)
    return statistics.median(samples)


def ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    r = [p / q for p, q in zip(a, b)]
    low, high = median_ci(r)
    return statistics.median(r), low, high


def run(model: str, batch: int, threads: int, rounds: int, calls: int) -> dict:
    tv = torchvision.models.get_model(model.replace("_x1_0", "") if "mobilenet" in model else model)
    tv = tv.eval()
    x = torch.randn(batch, 3, 224, 224)
    ours = cnnlab.deploy(cnnlab.from_torchvision(tv), batch_size=batch, threads=threads)
    report = ours.deploy_report
    with num_threads(threads):
        contenders = {
            "deploy": ours,
            "ort by hand": ByHandOrt(tv, x, threads),
            "ort by hand, no spinning": ByHandOrt(tv, x, threads, spinning=False),
        }
        t_plain = plain(contenders, x, rounds, calls)
        t_cnnlab = {
            c.name: list(c.latency.times_ms)
            for c in cnnlab.compare_latency(contenders, batch_size=batch, threads=threads)
        }
        t_alone = {n: [alone(m, x, calls) for _ in range(3)] for n, m in contenders.items()}
    row = {"model": model, "batch": batch, "threads": threads, "chosen": report.backend}
    row["selection_ms"] = report.candidates
    for harness, t in (("plain", t_plain), ("cnnlab", t_cnnlab)):
        row[harness] = {
            "median_ms": {n: statistics.median(v) for n, v in t.items()},
            "deploy/ort by hand": ratio(t["deploy"], t["ort by hand"]),
            "deploy/ort no spinning": ratio(t["deploy"], t["ort by hand, no spinning"]),
        }
    row["alone_ms"] = {n: statistics.median(v) for n, v in t_alone.items()}
    print(row, flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--batches", default="1,32")
    p.add_argument("--models", default="shufflenet_v2_x1_0,mobilenet_v2_x1_0")
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    rows = [
        run(m, int(b), args.threads, args.rounds, args.calls if int(b) == 1 else 3)
        for m in args.models.split(",")
        for b in args.batches.split(",")
    ]
    print("wrote", save("deploy_by_hand", {"rows": rows}))


if __name__ == "__main__":
    main()
