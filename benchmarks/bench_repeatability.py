"""The same model measured 5 times in one process: the spread of the medians.

Target (issue: the speed lab): interquartile range of the 5 medians <= 5% of their median.
"""

from __future__ import annotations

import argparse
import statistics

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, save


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
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
                model, threads=args.threads, min_seconds=args.min_seconds
            ).median_ms
            for _ in range(args.repeats)
        ]
        q1, med, q3 = statistics.quantiles(medians, n=4, method="inclusive")
        spread = (q3 - q1) / med
        rows.append(
            {
                "model": name,
                "medians_ms": medians,
                "iqr_over_median": spread,
                "pass": spread <= 0.05,
            }
        )
        print(
            f"{name}: medians {', '.join(f'{m:.2f}' for m in medians)} ms; IQR/median {spread:.1%} ({'met' if spread <= 0.05 else 'MISSED'} <= 5%)"
        )
    print(
        "wrote",
        save(
            "repeatability",
            {"threads": args.threads, "min_seconds": args.min_seconds, "rows": rows},
        ),
    )


if __name__ == "__main__":
    main()
