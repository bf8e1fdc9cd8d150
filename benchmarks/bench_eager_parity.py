"""cnnlab's eager models against torchvision's eager models, same weights (ratio, one run).

Target (issue: the speed lab): cnnlab / torchvision <= 1.05: our structure costs nothing.
"""

from __future__ import annotations

import argparse

import torch
import torchvision
from rich.console import Console
from rich.table import Table

import cnnlab
from benchmarks._common import apply_malloc, malloc_option, paired_ratio, save

PAIRS = {
    "shufflenet_v2_x0_5": "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0": "shufflenet_v2_x1_0",
    "shufflenet_v2_x2_0": "shufflenet_v2_x2_0",
    "mobilenet_v2_x1_0": "mobilenet_v2",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--batches", default="1,8")
    malloc_option(p)
    args = p.parse_args()
    apply_malloc(args.malloc)
    rows = []
    for ours_name, tv_name in PAIRS.items():
        tv = torchvision.models.get_model(tv_name).eval()
        ours = cnnlab.from_torchvision(tv).eval()
        for batch in map(int, args.batches.split(",")):
            res = cnnlab.compare_latency(
                {"torchvision": tv, "cnnlab": ours},
                batch_size=batch,
                threads=args.threads,
                rounds=args.rounds,
            )
            ratio = paired_ratio(res[1], res[0])
            rows.append(
                {
                    "model": ours_name,
                    "batch": batch,
                    "torchvision_ms": res[0].latency.median_ms,
                    "cnnlab_ms": res[1].latency.median_ms,
                    "ratio": ratio,
                    "pass": ratio[0] <= 1.05,
                }
            )
    table = Table(title=f"cnnlab eager vs torchvision eager, {args.threads} threads, fp32, CPU")
    for col in (
        "model",
        "batch",
        "torchvision ms",
        "cnnlab ms",
        "cnnlab/torchvision (95% CI)",
        "target <= 1.05",
    ):
        table.add_column(col)
    for r in rows:
        q = r["ratio"]
        table.add_row(
            r["model"],
            str(r["batch"]),
            f"{r['torchvision_ms']:.2f}",
            f"{r['cnnlab_ms']:.2f}",
            f"{q[0]:.3f} ({q[1]:.3f}-{q[2]:.3f})",
            "met" if r["pass"] else "MISSED",
        )
    Console(width=200).print(table)
    print("wrote", save("eager_parity", {"threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
