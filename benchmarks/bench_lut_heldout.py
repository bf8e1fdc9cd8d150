"""The latency table's regressors on held-out models, without the host's drift.

``cnnlab lut evaluate`` compares a table built earlier with models measured now; on this
project's VM the machine's speed moves 10-40% within minutes, more than the +-10% the metric
asks. This takes the regressors' share apart: in one session, every operator of the table's
models, of the held-out models and of the synthetic sample is timed alone once, in a shuffled
order (so drift falls on all of them alike). The regressors are fitted on the table's operators
and the synthetic ones only, as ``lut build`` fits them; each held-out model is then predicted
(table entries where it shares an operator, regressors elsewhere) and compared with the sum of
its own operators' times from the same session.

Reported per held-out model: predicted / exact sum, and whether it is within +-10%. With
``bench_lut_additivity`` (sum of operators against the whole model, side by side) this splits
the table's error into its regressors, its additivity and the host.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter

import torch

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, operator_counts, save
from cnnlab.speedlab.lut.jobs import DEFAULT_MODELS, FULL, select_models
from cnnlab.speedlab.lut.regress import Synthetic, fit_regressors, predict_key, synthetic_ops
from cnnlab.speedlab.lut.table import LatencyTable, environment, measure_op

HELD_OUT = "shufflenet_v2_x1_0,shufflenet_v2_x2_0,mobilenet_v1_x0_5,mobilenet_v1_x1_0,shufflenet_v1_g3_x1_0"


def registered_ops(name: str) -> tuple[Counter, dict]:
    """operator_counts of a registered model at its own input size."""
    return operator_counts(cnnlab.create_model(name), cnnlab.models.get_entry(name).input_size)


def measure_all(sigs: dict, threads: int, seed: int) -> dict[str, float]:
    """Median ms of every operator, timed alone in a shuffled order, as ``lut build`` times it."""
    table = LatencyTable(
        "cpu", batch_size=1, threads=threads, backend="as given", created="", **environment("cpu")
    )
    keys = list(sigs)
    random.Random(seed).shuffle(keys)
    sampling = {**FULL, "max_seconds": 5.0}  # lut build's sampling and build_lut's cap
    return {k: measure_op(sigs[k], table, **sampling).median_ms for k in keys}


def compare(held: dict, table_sigs: dict, ms: dict[str, float]) -> list[dict]:
    """Each held-out model predicted by the table's entries and regressors, against the sum of
    its own operators' times."""
    regressors = fit_regressors({k: ms[k] for k in table_sigs})
    rows = []
    for name, (counts, _) in held.items():
        exact = sum(n * ms[k] for k, n in counts.items())
        predicted = sum(
            n * (ms[k] if k in table_sigs else predict_key(regressors, k)[1] or 0.0)
            for k, n in counts.items()
        )
        shared = sum(n for k, n in counts.items() if k in table_sigs) / sum(counts.values())
        ratio = predicted / exact
        rows.append({"model": name, "predicted_ms": predicted, "exact_ms": exact,
                     "ratio": ratio, "table_share": shared, "within": abs(ratio - 1) <= 0.10})  # fmt: skip
        print(f"{name:24s} predicted {predicted:7.2f} ms, its operators {exact:7.2f} ms: "
              f"{ratio:.3f} ({shared:.0%} of its operators in the table)")  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", default=DEFAULT_MODELS, help="the table's models")
    p.add_argument("--held-out", default=HELD_OUT)
    p.add_argument("--synthetic", type=int, default=16, help="synthetic operators per group")
    p.add_argument("--seed", type=int, default=0, help="order of the measurements")
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    torch.set_num_threads(args.threads)
    table_sigs = {}
    for name in select_models(args.models):
        table_sigs.update(registered_ops(name)[1])
    table_sigs.update(synthetic_ops(Synthetic(per_group=args.synthetic)))
    held = {name: registered_ops(name) for name in select_models(args.held_out)}
    every = dict(table_sigs)
    for _, sigs in held.values():
        every.update(sigs)
    print(f"timing {len(every)} operators alone ({len(table_sigs)} for the table)", flush=True)
    ms = measure_all(every, args.threads, args.seed)
    rows = compare(held, table_sigs, ms)
    n = sum(r["within"] for r in rows)
    print(f"held out within +-10% of their own operators' sum: {n}/{len(rows)}")
    payload = {
        "threads": args.threads,
        "synthetic": args.synthetic,
        "seed": args.seed,
        "rows": rows,
    }
    print("wrote", save("lut_heldout", payload))


if __name__ == "__main__":
    main()
