"""DistributedBatchNorm2d against nn.BatchNorm2d in ShuffleNet v2 1x, training steps (ratios, one run).

Target (issue 4): one process, forward + backward + SGD step with every BatchNorm2d replaced by
DistributedBatchNorm2d / with nn.BatchNorm2d <= 1.2 at batch 32. Also shown: the synchronized code
path run without communication (the compute cost of the cross-process formulas alone).

With --procs 2 (gloo, CPU), at the same per-process batch, interleaved round by round in one run:
one process alone (the other waits), two processes with local BN (no communication), two
processes with DistributedBatchNorm2d (statistics synchronized). The overhead is the last over
the first; the synchronization cost is the last over the second. No DDP: parameter gradients are
not all-reduced, so only batch norm's own communication is measured.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from rich.table import Table
from torch import nn

import cnnlab
from benchmarks._common import paired_ratio, save
from cnnlab.measure.latency import Runner, median_ci, num_threads
from cnnlab.ops.distributed_bn import DistributedBatchNorm2d, distributed_batch_norm

TARGET = 1.2


class SyncPathNoComm(DistributedBatchNorm2d):
    """The synchronized code path with a group of one: its compute cost, no communication."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        y, mean, var = distributed_batch_norm(x, self.weight, self.bias, eps=self.eps)
        self._update_running_stats(mean, var)
        return y


def replace_bn(model: nn.Module, cls: type[nn.BatchNorm2d]) -> nn.Module:
    """A copy of ``model`` with every nn.BatchNorm2d replaced by ``cls``, state copied."""
    model = copy.deepcopy(model)

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            if type(child) is nn.BatchNorm2d:
                new = cls(
                    child.num_features,
                    child.eps,
                    child.momentum,
                    child.affine,
                    child.track_running_stats,
                )
                new.load_state_dict(child.state_dict())
                setattr(parent, name, new)
            else:
                swap(child)

    swap(model)
    return model


def one_process(args, model: nn.Module) -> list[dict]:
    """nn.BatchNorm2d, DistributedBatchNorm2d and its synchronized path, interleaved."""
    contenders = {
        "nn.BatchNorm2d": model,
        "DistributedBatchNorm2d": replace_bn(model, DistributedBatchNorm2d),
        "sync path, no communication": replace_bn(model, SyncPathNoComm),
    }
    res = cnnlab.compare_latency(
        contenders,
        input_size=(3, args.input, args.input),
        batch_size=args.batch,
        threads=args.threads,
        mode="train",
        rounds=args.rounds,
    )
    rows = []
    for c in res:
        ratio = paired_ratio(c, res[0])
        rows.append({"contender": c.name, "ms": c.latency.median_ms, "ratio": ratio})
    return rows


def _sample(runner: Runner, calls: int, active: bool) -> float | None:
    """One timed sample started together on every process (idle processes only wait)."""
    dist.barrier()
    return runner.time(calls) if active else None


def _worker(rank: int, world: int, store: str, out: str, args, model: nn.Module) -> None:
    """One process of the gloo run: the three contenders, interleaved round by round."""
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=300),
    )
    try:
        torch.manual_seed(rank)
        x = torch.randn(args.batch, 3, args.input, args.input)
        dev = torch.device("cpu")
        local = Runner(model, x, "train", dev)
        synced = Runner(replace_bn(model, DistributedBatchNorm2d), x, "train", dev)
        # (name, runner, does this rank run it): "1 process" runs on rank 0 while the others wait
        contenders = [
            ("1 process", local, rank == 0),
            (f"{world} processes, nn.BatchNorm2d", local, True),
            (f"{world} processes, DistributedBatchNorm2d", synced, True),
        ]
        for _, runner, active in contenders:  # fixed warm-up: collectives need equal call counts
            _sample(runner, args.warmup, active)
        times: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
        for r in range(args.rounds):
            order = contenders[r % 3 :] + contenders[: r % 3]
            for name, runner, active in order:
                t = _sample(runner, args.calls, active)
                if rank == 0:
                    times[name].append(t)
        if rank == 0:
            Path(out).write_text(json.dumps(times))
    finally:
        dist.destroy_process_group()


def multi_process(args, model: nn.Module) -> list[dict]:
    """Run ``_worker`` in --procs gloo processes; per-step times and ratios to 1 process."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "times.json")
        mp.start_processes(
            _worker,
            args=(args.procs, os.path.join(d, "store"), out, args, model),
            nprocs=args.procs,
            start_method="spawn",
        )
        times = json.loads(Path(out).read_text())
    names = list(times)
    base = times[names[0]]
    rows = []
    for n in names:
        ratios = [t / b for t, b in zip(times[n], base)]
        low, high = median_ci(ratios)
        rows.append(
            {
                "contender": n,
                "ms": statistics.median(times[n]),
                "ratio": (statistics.median(ratios), low, high),
            }
        )
    sync = [s / p for s, p in zip(times[names[2]], times[names[1]])]
    rows[2]["sync_cost"] = (statistics.median(sync), *median_ci(sync))
    return rows


def print_table(title: str, rows: list[dict], first: str, target: float | None) -> None:
    table = Table(title=title)
    for col in ("contender", "ms / step", f"ratio to {first} (95% CI)", "target"):
        table.add_column(col)
    for r in rows:
        q = r["ratio"]
        verdict = "" if target is None or r is rows[0] else ("met" if q[0] <= target else "MISSED")
        table.add_row(
            r["contender"],
            f"{r['ms']:.2f}",
            f"{q[0]:.3f} ({q[1]:.3f}-{q[2]:.3f})",
            f"{verdict} <= {target}" if verdict else "",
        )
    Console(width=200).print(table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="shufflenet_v2_x1_0")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads per process")
    p.add_argument("--batch", type=int, default=32, help="batch per process")
    p.add_argument("--input", type=int, default=224)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--procs", type=int, default=2, help="gloo processes (0: skip that part)")
    p.add_argument("--calls", type=int, default=3, help="steps per sample, multi-process part")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps, multi-process part")
    args = p.parse_args()
    torch.manual_seed(0)
    model = cnnlab.create_model(args.model)
    setting = f"{args.model}, batch {args.batch}, {args.input}x{args.input}, train step, fp32, CPU"
    with num_threads(args.threads):
        single = one_process(args, model)
    print_table(
        f"one process: {setting}, {args.threads} threads, backend as given",
        single,
        "nn.BatchNorm2d",
        TARGET,
    )
    payload = {"settings": vars(args), "one_process": single}
    if args.procs > 1:
        if args.procs * args.threads > (os.cpu_count() or 1):
            print(
                f"note: {args.procs} processes x {args.threads} threads > {os.cpu_count()} cores; "
                "the processes compete for cores"
            )
        multi = multi_process(args, model)
        print_table(
            f"{args.procs} gloo processes: {setting}, {args.threads} threads each, per-process batch",
            multi,
            "1 process",
            None,
        )
        q = multi[2]["sync_cost"]
        print(
            f"overhead of DistributedBatchNorm2d in {args.procs} processes vs 1 process: "
            f"{multi[2]['ratio'][0]:.3f}; synchronization cost (vs {args.procs} processes with "
            f"local BN): {q[0]:.3f} ({q[1]:.3f}-{q[2]:.3f})"
        )
        payload["multi_process"] = multi
    print("wrote", save("distributed_bn", payload))


if __name__ == "__main__":
    main()
