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
from cnnlab.models.net import LAYER_COSTS


def seconds(fn, repeat: int, sample_s: float = 0.002) -> float:
    """Median seconds per call over ``repeat`` samples, each of enough back-to-back calls to
    last ``sample_s`` (a count of 0.1 ms timed one call at a time is mostly the host's jitter)."""
    t0 = time.perf_counter()
    fn()
    loops = max(1, round(sample_s / max(time.perf_counter() - t0, 1e-7)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(loops):
            fn()
        times.append((time.perf_counter() - t0) / loops)
    return statistics.median(times)


def main() -> None:
    rows = []
    for name in cnnlab.list_models():
        size = get_entry(name).input_size
        cold = seconds(lambda n=name, s=size: (LAYER_COSTS.clear(), cnnlab.complexity(n, s)), 20)
        warm = seconds(lambda n=name, s=size: cnnlab.complexity(n, s), 20)
        traced = seconds(lambda n=name, s=size: traced_counts(cnnlab.create_model(n), s), 3)
        rows.append({"model": name, "cold_s": cold, "warm_s": warm, "build_trace_s": traced})
    total_t = sum(r["build_trace_s"] for r in rows)
    summary = {}
    for kind, what in (
        ("cold", "block-cost cache cleared before every call"),
        ("warm", "each distinct block counted once, then remembered"),
    ):
        total = sum(r[f"{kind}_s"] for r in rows)
        per_model = sorted(r["build_trace_s"] / r[f"{kind}_s"] for r in rows)
        summary[kind] = {"total_s": total, "speedup": total_t / total, "min": per_model[0]}
        print(
            f"analytic, {kind} ({what}): {total * 1e3:.1f} ms for {len(rows)} models; "
            f"build + trace {total_t:.1f} s; speed-up {total_t / total:,.0f}x over the registry, "
            f"per model min {per_model[0]:,.0f}x, median {statistics.median(per_model):,.0f}x; "
            f"target >= 1000x {'met' if per_model[0] >= 1000 else 'missed'}"
        )
    print("wrote", save("complexity", {"rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
