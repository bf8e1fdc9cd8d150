"""Fold ShuffleNet v2's channel shuffles into the convolutions around them (a deploy transform).

A unit's output is ``shuffle(cat(a, b))`` and the next unit splits it in half again. Which
channel sits where in memory matters only to the convolutions, and a 1x1 conv reads its input
channels in any order its weight columns say (a depthwise conv or an SE block carries an
order through once its per-channel weights are permuted). So
the transform keeps each tensor in a memory order of its own choosing, tracks the logical
order beside it, and moves the permutation into the weights: the first conv of each branch
reads its input in memory order, the last conv of each branch writes its output in the order
the next concat wants, and the conv after the last unit (conv5) reads the final order. Each
unit then costs one concatenation of contiguous slices and no transpose: the channels are
kept sorted by the unit that will consume them, latest first, so the half a unit passes on
is always a prefix and the half it consumes a suffix. Exact: only the order of weights moves.

ShuffleNet v2's runtime breakdown (Ma et al. 2018, Fig. 2) shows data movement (shuffle,
concat) as a cost that FLOPs do not count; here the shuffle's share is removed, not reduced.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from cnnlab.blocks.shufflenet_v2 import ShuffleV2Unit
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.se import SqueezeExcite

# Layers a permutation of channels passes through unchanged (they act on each value alone).
_ELEMENTWISE = (nn.Identity, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.Sigmoid, nn.Hardsigmoid)

# A slice of a unit's output: (source, start, end); source 0 is the half passed on (stride 1)
# or the projection branch (stride 2), source 1 the main branch.
Piece = tuple[int, int, int]


def _layers(branch: nn.Module) -> list[nn.Module] | None:
    """The layers of a branch in execution order (convs, element-wise layers, SE blocks), or
    None unless the branch is a plain chain of them (nested Sequentials): an unfolded BN, or
    a block with a forward of its own other than SE, stops the fold."""
    layers: list[nn.Module] = []

    def walk(m: nn.Module) -> bool:
        if isinstance(m, SqueezeExcite):
            layers.append(m)
            return m.bn is None
        children = list(m.children())
        if not children:
            layers.append(m)
            return isinstance(m, (nn.Conv2d, *_ELEMENTWISE))
        return type(m) in (nn.Sequential, ConvNormAct) and all(walk(c) for c in children)

    return layers if walk(branch) else None


def _carries(m: nn.Module) -> bool:
    """Whether a channel order passes through ``m`` once its per-channel weights are permuted:
    a depthwise conv, or SE (its FCs read and write channels in the same order)."""
    if isinstance(m, nn.Conv2d):
        return m.groups == m.in_channels == m.out_channels
    return isinstance(m, SqueezeExcite)


def _ends(branch: nn.Module) -> tuple[list[nn.Module], nn.Conv2d, nn.Conv2d, list[nn.Module]]:
    """(carriers before the first other conv, that conv, the last other conv, carriers after).
    The branch reads its input order at the first conv and writes its output order at the last."""
    layers = [m for m in _layers(branch) if isinstance(m, nn.Conv2d) or _carries(m)]
    mixing = [i for i, m in enumerate(layers) if not _carries(m)]
    return layers[: mixing[0]], layers[mixing[0]], layers[mixing[-1]], layers[mixing[-1] + 1 :]


def _foldable(branch: nn.Module) -> bool:
    """A plain chain whose first and last channel-mixing layers are dense convs."""
    layers = _layers(branch)
    if layers is None or not any(isinstance(m, nn.Conv2d) and not _carries(m) for m in layers):
        return False
    _, first, last, _ = _ends(branch)
    return first.groups == 1 and last.groups == 1


def _permuted(param: torch.Tensor | None, perm: torch.Tensor, dim: int = 0):
    if param is None:
        return None
    return nn.Parameter(param.detach().index_select(dim, perm.to(param.device)))


def _carry(m: nn.Module, perm: torch.Tensor) -> None:
    """Permute a carrier's per-channel weights so it maps order ``perm`` to order ``perm``."""
    if isinstance(m, SqueezeExcite):
        m.fc1.weight = _permuted(m.fc1.weight, perm, 1)
        m.fc2.weight, m.fc2.bias = _permuted(m.fc2.weight, perm), _permuted(m.fc2.bias, perm)
    else:
        m.weight, m.bias = _permuted(m.weight, perm), _permuted(m.bias, perm)


def _read_in_order(branch: nn.Module, perm: torch.Tensor) -> None:
    """Make ``branch`` take its input with memory channel i holding logical channel perm[i]."""
    before, first, _, _ = _ends(branch)
    for m in before:
        _carry(m, perm)
    first.weight = _permuted(first.weight, perm, 1)


def _write_in_order(branch: nn.Module, order: torch.Tensor) -> None:
    """Make ``branch`` write output channel order[i] at memory channel i."""
    _, _, last, after = _ends(branch)
    last.weight, last.bias = _permuted(last.weight, order), _permuted(last.bias, order)
    for m in after:
        _carry(m, order)


def _width(branch: nn.Module) -> int:
    """Output channels of a branch (its last conv's; SE and depthwise convs keep the width)."""
    return _ends(branch)[2].out_channels


class FoldedShuffleUnit(nn.Module):
    """A ShuffleNet v2 unit whose shuffle lives in the weights: split by slicing, run the
    branches, concatenate contiguous slices in the order the next unit reads."""

    def __init__(self, unit: ShuffleV2Unit, half: int, pieces: list[Piece]) -> None:
        super().__init__()
        self.stride = unit.stride
        self.proj = unit.proj if unit.stride == 2 else None
        self.main = unit.main
        self.half = half
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.proj is None:
            sources = (x[:, : self.half], self.main(x[:, self.half :]))
        else:
            sources = (self.proj(x), self.main(x))
        return torch.cat([sources[s][:, a:b] for s, a, b in self.pieces], dim=1)


def _shuffle(channels: list) -> list:
    """Logical order after a 2-group channel shuffle: out[2j] = in[j], out[2j+1] = in[C/2+j]."""
    half = len(channels) // 2
    return [c for pair in zip(channels[:half], channels[half:]) for c in pair]


def _merge(a: list, b: list, consumed_at: dict) -> tuple[list, list[Piece]]:
    """Channels of ``a`` and ``b``, each sorted by the unit that consumes them (latest first),
    merged in that order: the new order and the contiguous slices that build it."""
    order, pieces = [], []
    for d in sorted({consumed_at[c] for c in a + b}, reverse=True):
        for s, src in enumerate((a, b)):
            idx = [i for i, c in enumerate(src) if consumed_at[c] == d]
            if idx:
                assert idx == list(range(idx[0], idx[-1] + 1)), "a slice must be contiguous"
                pieces.append((s, idx[0], idx[-1] + 1))
                order += src[idx[0] : idx[-1] + 1]
    return order, pieces


def _fold_stage(units: list[ShuffleV2Unit], start: int, in_perm: torch.Tensor | None):
    """Fold one stage (a stride-2 unit and the stride-1 units after it) in place. ``in_perm``:
    the memory order of the stage's input. Returns the folded units and the memory order of
    the stage's output, as logical channel per memory channel."""
    n = len(units)
    first = units[0]
    p_width = _width(first.proj)
    y_width = [_width(u.main) for u in units]
    proj_ids = [("p", start, j) for j in range(p_width)]
    y_ids = [[("y", start + k, j) for j in range(y_width[k])] for k in range(n)]
    logical = [None, _shuffle(proj_ids + y_ids[0])]
    half = len(logical[1]) // 2
    for k in range(1, n):
        logical.append(_shuffle(logical[k][:half] + y_ids[k]))
    # the unit that consumes each channel (n: the next stage)
    consumed_at = {c: n for c in logical[n]}
    for k in range(1, n):
        consumed_at |= {c: k for c in logical[k][half:]}

    def latest_first(ids: list) -> list:
        return sorted(ids, key=lambda c: -consumed_at[c])

    if in_perm is not None:
        _read_in_order(first.proj, in_perm)
        _read_in_order(first.main, in_perm)
    p_order, y_order = latest_first(proj_ids), latest_first(y_ids[0])
    _write_in_order(first.proj, torch.tensor([c[2] for c in p_order]))
    _write_in_order(first.main, torch.tensor([c[2] for c in y_order]))
    memory, pieces = _merge(p_order, y_order, consumed_at)
    folded = [FoldedShuffleUnit(first, half, pieces)]
    for k in range(1, n):
        passed, consumed = memory[:half], memory[half:]
        assert set(consumed) == set(logical[k][half:])
        position = {c: i for i, c in enumerate(logical[k])}
        _read_in_order(units[k].main, torch.tensor([position[c] - half for c in consumed]))
        y_order = latest_first(y_ids[k])
        _write_in_order(units[k].main, torch.tensor([c[2] for c in y_order]))
        memory, pieces = _merge(passed, y_order, consumed_at)
        folded.append(FoldedShuffleUnit(units[k], half, pieces))
    position = {c: i for i, c in enumerate(logical[n])}
    return folded, torch.tensor([position[c] for c in memory])


def fold_shuffles(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of ``model`` with the channel shuffles of its ShuffleNet v2 units folded into the
    weights, and how many units were folded (0: the model is returned unchanged).

    Folds each run of units in an ``nn.Sequential`` that starts with a stride-2 unit and is
    followed by a dense conv (ShuffleNet v2's stages and conv5). Expects batch norms already
    folded (``fold_batch_norms``); an unfolded BN in a branch (or in an SE block) leaves its
    run as it is.
    """
    model = copy.deepcopy(model)
    total = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        i = 0
        while i < len(names):
            j = i
            while j < len(names) and isinstance(seq._modules[names[j]], ShuffleV2Unit):
                j += 1
            if j > i and _run_foldable(seq, names[i:j], names[j] if j < len(names) else None):
                total += _fold_run(seq, names[i:j], names[j])
            i = max(j, i + 1)
    return model, total


def _run_foldable(seq: nn.Sequential, run: list[str], after: str | None) -> bool:
    units = [seq._modules[n] for n in run]
    if after is None or units[0].stride != 2:
        return False
    branches = [b for u in units for b in ((u.proj, u.main) if u.stride == 2 else (u.main,))]
    return _foldable(seq._modules[after]) and all(_foldable(b) for b in branches)


def _fold_run(seq: nn.Sequential, run: list[str], after: str) -> int:
    units = [seq._modules[n] for n in run]
    starts = [i for i, u in enumerate(units) if u.stride == 2] + [len(units)]
    perm = None
    for a, b in zip(starts, starts[1:]):
        folded, perm = _fold_stage(units[a:b], a, perm)
        for name, unit in zip(run[a:b], folded):
            seq._modules[name] = unit
    _read_in_order(seq._modules[after], perm)
    return len(units)
