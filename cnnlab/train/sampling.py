"""Resumable, reproducible sampling: each epoch's order and each image's augmentation are pure
functions of (seed, epoch, index), so a run resumed mid-epoch, or split across workers, sees
exactly the images and random crops an uninterrupted single-process run sees.

- :class:`EpochSampler`: PyTorch's ``DistributedSampler`` (one shuffle per epoch from
  (seed, epoch), split across ranks: Goyal et al. 2017, Remark 4) that yields ``(epoch, index)``
  and can skip the samples of an epoch already trained on (resume).
- :class:`SeededSamples`: draws each image's augmentation from a generator seeded by
  (seed, epoch, index), isolated from the global RNG, so loader workers and ranks do not matter.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, DistributedSampler

from cnnlab.errors import BadValue

_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)  # splitmix64 constants
_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed from (seed, epoch, index) (splitmix64-style mixing; distinct per sample)."""
    z = (seed * _MIX[0] + epoch * _MIX[1] + index * _MIX[2]) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * _MIX[1]) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * _MIX[2]) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


class EpochSampler(DistributedSampler):
    """DistributedSampler yielding ``(epoch, index)``; ``skip`` drops this rank's first samples."""

    def __init__(self, dataset: Dataset, **kwargs):
        super().__init__(dataset, **kwargs)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Start ``epoch``, leaving out the first ``skip`` samples of this rank's shard."""
        if not 0 <= skip <= self.num_samples:
            raise BadValue(f"skip={skip} must lie in [0, {self.num_samples}] for this shard")
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[self.skip :]
        return iter([(self.epoch, i) for i in indices])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class SeededSamples(Dataset):
    """``dataset[(epoch, i)]``: sample ``i`` with its augmentation drawn from its own seed."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        gen = torch.default_generator  # the CPU generator the transforms draw from
        state = gen.get_state()  # (torch.manual_seed would also seed CUDA: 1 ms a call)
        gen.manual_seed(sample_seed(self.seed, epoch, i))
        try:
            return self.dataset[i]
        finally:
            gen.set_state(state)
