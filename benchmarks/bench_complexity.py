"""Analytic complexity against building and tracing each model (ratio of times, one run).

Target (issue: the speed lab): analytic >= 1000x faster than build + trace, over the registry.
"""

from __future__ import annotations

import statistics
import time

import cnnlab
from benchmarks._common import save
from cnnlab.analysis.trace import traced_counts
from cnnlab.models import get_entry


def seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    rows = []
    for name in cnnlab.list_models():
        size = get_entry(name).input_size
        analytic = seconds(lambda n=name, s=size: cnnlab.complexity(n, s), 20)
        traced = seconds(lambda n=name, s=size: traced_counts(cnnlab.create_model(n), s), 3)
        rows.append(
            {
                "model": name,
                "analytic_s": analytic,
                "build_trace_s": traced,
                "speedup": traced / analytic,
            }
        )
    total_a = sum(r["analytic_s"] for r in rows)
    total_t = sum(r["build_trace_s"] for r in rows)
    speedups = sorted(r["speedup"] for r in rows)
    print(
        f"{len(rows)} models: analytic {total_a * 1e3:.1f} ms, build + trace {total_t:.1f} s in all"
    )
    print(
        f"speed-up over the registry: {total_t / total_a:,.0f}x (per model: min {speedups[0]:,.0f}x, median {statistics.median(speedups):,.0f}x)"
    )
    print("target >= 1000x:", "met" if speedups[0] >= 1000 else "MISSED (minimum per model)")
    print("wrote", save("complexity", {"rows": rows, "total_speedup": total_t / total_a}))


if __name__ == "__main__":
    main()
