"""Process group set-up for ``torchrun``: PyTorch's own engine (gloo on CPU, nccl on GPU).

``torchrun --nproc-per-node N -m cnnlab train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK; a
plain ``cnnlab train`` runs as the only process. Nothing here is home-made: the model is wrapped
in ``DistributedDataParallel``, which averages gradients over the workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnlab._device import check_device


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run: rank, world size, local rank and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 logs and writes checkpoints."""
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is refused with the fix."""
    return check_device(name, auto=True)  # the one device check of every command


def setup(device: str) -> DistEnv:
    """Join the torchrun process group if launched by torchrun, else a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few float64 numbers over all workers (metrics: correct counts, losses)."""
    if env.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """True on every worker if it is true on any (a NaN on one rank stops all)."""
    return bool(all_sum([float(flag)], env)[0] > 0)
