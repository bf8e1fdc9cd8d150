"""Analytic complexity against building and tracing each model (ratio of times, one run).

Target (issue: the speed lab): analytic >= 1000x faster than build + trace, for every model.
Three readings: ``warm``, the steady state every cnnlab timing reports (the same model counted
again: its count remembered); ``fresh``, a config never seen before in a warm process
(num_classes changed: the plan rebuilt, its blocks' costs remembered; a search's next
candidate); ``cold``, a first count (every remembered count and block cost forgotten first).
"""

from __future__ import annotations

import itertools
import statistics
import time

import cnnlab
from benchmarks._common import save
from cnnlab.counting.analytic import clear_caches
from cnnlab.counting.trace import traced_counts
from cnnlab.models import get_entry


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
    new_classes = itertools.count(2)  # a num_classes not used before: a config not seen before
    for name in cnnlab.list_models():
        size = get_entry(name).input_size
        cold = seconds(lambda n=name, s=size: (clear_caches(), cnnlab.complexity(n, s)), 20)
        warm = seconds(lambda n=name, s=size: cnnlab.complexity(n, s), 20)
        fresh = seconds(
            lambda n=name, s=size: cnnlab.complexity(n, s, num_classes=next(new_classes)), 20
        )
        traced = seconds(lambda n=name, s=size: traced_counts(cnnlab.create_model(n), s), 3)
        rows.append(
            {
                "model": name,
                "cold_s": cold,
                "warm_s": warm,
                "fresh_s": fresh,
                "build_trace_s": traced,
            }
        )
    total_t = sum(r["build_trace_s"] for r in rows)
    summary = {}
    for kind, what in (
        ("warm", "steady state: the same model again, its count remembered"),
        ("fresh", "a config not seen before: plan rebuilt, blocks remembered"),
        ("cold", "a first count: counts and block costs forgotten before every call"),
    ):
        total = sum(r[f"{kind}_s"] for r in rows)
        per_model = sorted(r["build_trace_s"] / r[f"{kind}_s"] for r in rows)
        worst = min(rows, key=lambda r, k=kind: r["build_trace_s"] / r[f"{k}_s"])["model"]
        summary[kind] = {
            "total_s": total,
            "speedup": total_t / total,
            "min": per_model[0],
            "min_model": worst,
            "median": statistics.median(per_model),
        }
        print(
            f"analytic, {kind} ({what}): {total * 1e3:.1f} ms for {len(rows)} models; "
            f"build + trace {total_t:.1f} s; speed-up {total_t / total:,.0f}x over the registry, "
            f"per model min {per_model[0]:,.0f}x ({worst}), "
            f"median {statistics.median(per_model):,.0f}x; "
            f"target >= 1000x {'met' if per_model[0] >= 1000 else 'missed'}"
        )
    print("wrote", save("complexity", {"rows": rows, "summary": summary}))


if __name__ == "__main__":
    main()
