"""The same model measured 5 times in one process: the spread of the medians.

Target (issue: the speed lab): interquartile range of the 5 medians <= 5% of their median.
A diagnostic beside it: the first two models compared side by side (``compare_latency``) 5 times,
and the same spread of their 5 ratios. The host's drift moves both contenders of a comparison
alike, so if the ratios repeat where the medians do not, the drift is the host's, not the tool's.
"""

from __future__ import annotations

import argparse
import statistics

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, save


def spread(values: list[float]) -> float:
    """Interquartile range over median."""
    q1, med, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / med


def ratio_spread(models: dict, threads: int, repeats: int, device: str = "cpu") -> dict:
    """The first model's time over the second's, from ``repeats`` side-by-side comparisons."""
    ratios = [
        1 / cnnlab.compare_latency(models, threads=threads, device=device)[1].ratio
        for _ in range(repeats)
    ]
    return {"pair": list(models), "ratios": ratios, "iqr_over_median": spread(ratios)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (CUDA synchronised)")
    p.add_argument("--models", default="shufflenet_v2_x1_0,mobilenet_v2_x1_0")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        help="measure_latency's min_seconds per measurement (its default: 1.0)",
    )
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    rows = []
    for name in args.models.split(","):
        model = cnnlab.create_model(name)
        medians = [
            cnnlab.measure_latency(
                model, device=args.device, threads=args.threads, min_seconds=args.min_seconds
            ).median_ms
            for _ in range(args.repeats)
        ]
        s = spread(medians)
        rows.append({"model": name, "medians_ms": medians, "iqr_over_median": s, "pass": s <= 0.05})
        print(
            f"{name}: medians {', '.join(f'{m:.2f}' for m in medians)} ms; IQR/median {s:.1%} "
            f"({'met' if s <= 0.05 else 'MISSED'} <= 5%)"
        )
    names = args.models.split(",")[:2]
    models = {n: cnnlab.create_model(n) for n in names}
    pair = ratio_spread(models, args.threads, args.repeats, args.device)
    print(
        f"diagnostic, {names[0]} / {names[1]} side by side: ratios "
        f"{', '.join(f'{r:.3f}' for r in pair['ratios'])}; IQR/median {pair['iqr_over_median']:.1%}"
    )
    print(
        "wrote",
        save(
            "repeatability" if args.device == "cpu" else f"repeatability_{args.device}",
            {
                "device": args.device,
                "threads": args.threads,
                "min_seconds": args.min_seconds,
                "rows": rows,
                "side_by_side": pair,
            },
        ),
    )


if __name__ == "__main__":
    main()
