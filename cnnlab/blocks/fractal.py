"""FractalNet's fractal block (Larsson et al. ICLR 2017, §2 and Fig. 1) with drop-path (§3.1).

The expansion rule f_1(z) = conv(z), f_{C+1}(z) = join(f_C(f_C(z)), conv(z)) unrolls into C
columns: column k (0-based) is a chain of 2^k convolutions, so the deepest column has 2^(C-1).
A join merges every column whose convolution ends at the same depth, by element-wise mean (joins
of 2, 3, ..., C inputs, exactly as the authors' generator gustavla/fractalnet wires them); the
merged map is the input of all those columns' next convolutions.

Drop-path (§3.1), in training only: *local* drops each input of a join with probability p and
keeps at least one; *global* keeps one column for the whole network. A :class:`DropPath` shared
by the blocks of one network holds the draw of the current batch; :class:`DropPathSampler`, the
first layer of the network, makes it. In eval mode every join averages all of its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnlab.errors import BadValue
from cnnlab.ops.conv import ConvNormAct
from cnnlab.ops.cost import Cx


def column_depth(k: int) -> int:
    """Convolutions in column k (0-based) of a fractal block: 2^k."""
    return 2**k


def ending_columns(columns: int, unit: int) -> list[int]:
    """The columns whose convolution ends at depth ``unit`` (1-based) of a C-column block.

    Column k's convolutions each span 2^(C-1-k) units of the deepest column, so column k ends
    one at every multiple of that span; two or more ending together are joined.
    """
    return [k for k in range(columns) if unit % 2 ** (columns - 1 - k) == 0]


def check_columns(columns: int) -> None:
    if columns < 1:
        raise BadValue(f"FractalNet: columns C must be >= 1, got {columns}")


@dataclass(frozen=True)
class DropPath:
    """FractalNet drop-path (§3.1): local with probability p_local per join input, or global.

    ``global_ratio`` is the share of training batches that use global drop-path (one column for
    the whole network); the others use local drop-path. ``state`` holds the current draw and is
    shared by the blocks of one network; it takes no part in equality, so the cost of a block does
    not depend on it.
    """

    p_local: float = 0.15
    global_ratio: float = 0.5
    state: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_local <= 1.0:
            raise BadValue(f"FractalNet: drop-path p_local must be in [0, 1], got {self.p_local}")
        if not 0.0 <= self.global_ratio <= 1.0:
            raise BadValue(
                f"FractalNet: drop-path global_ratio must be in [0, 1], got {self.global_ratio}"
            )

    @property
    def column(self) -> int | None:
        """The column kept by global drop-path for this batch, or None (local drop-path)."""
        return self.state.get("column")

    def set_column(self, column: int | None) -> None:
        self.state["column"] = column

    def draw(self, columns: int) -> None:
        """Choose this batch's mode: global (a uniformly drawn column) or local."""
        use_global = torch.rand(()).item() < self.global_ratio
        self.set_column(int(torch.randint(columns, ())) if use_global else None)


def local_keep(n: int, p: float) -> list[bool]:
    """Which of a join's n inputs survive local drop-path: each dropped with p, at least one kept."""
    keep = (torch.rand(n) >= p).tolist()
    if not any(keep):
        keep[int(torch.randint(n, ()))] = True
    return keep


def mean_join(xs: list[torch.Tensor]) -> torch.Tensor:
    """Element-wise mean of the inputs (the join layer): n-1 adds, then one scaling."""
    y = xs[0]
    for x in xs[1:]:
        y = y + x
    return y * (1.0 / len(xs)) if len(xs) > 1 else y


def mean_join_cx(cx: Cx, n: int) -> Cx:
    """Cost of :func:`mean_join` over n maps of cx's shape: each add 3 passes, the scaling 2."""
    return cx.add(memory_access=(3 * (n - 1) + 2) * cx.numel) if n > 1 else cx


class DropPathSampler(nn.Module):
    """First layer of a FractalNet: draws each training batch's drop-path mode; identity on x."""

    def __init__(self, drop: DropPath, columns: int) -> None:
        super().__init__()
        check_columns(columns)
        self.drop, self.columns = drop, columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.drop.draw(self.columns)
        return x

    @staticmethod
    def complexity(cx: Cx, drop: DropPath, columns: int) -> Cx:
        return cx


class FractalBlock(nn.Module):
    """Fractal block f_C (Larsson et al. 2017, Fig. 1): C columns of 3x3 conv-BN-ReLU, mean joins."""

    def __init__(self, c_in: int, c_out: int, columns: int, drop: DropPath | None = None) -> None:
        super().__init__()
        check_columns(columns)
        self.c_in, self.c_out, self.num_columns, self.drop = c_in, c_out, columns, drop
        self.columns = nn.ModuleList(
            nn.Sequential(
                *(ConvNormAct(c_in if i == 0 else c_out, c_out, 3) for i in range(column_depth(k)))
            )
            for k in range(columns)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        drop = self.drop if self.training else None
        if drop is not None and drop.column is not None:
            return self.columns[drop.column](z)  # global drop-path: one column only
        x = [z] * self.num_columns
        for unit in range(1, column_depth(self.num_columns - 1) + 1):
            ends = ending_columns(self.num_columns, unit)
            outs = [self._conv(k, unit)(x[k]) for k in ends]
            if drop is not None and len(outs) > 1:
                outs = [y for y, kept in zip(outs, local_keep(len(outs), drop.p_local)) if kept]
            y = mean_join(outs)
            for k in ends:
                x[k] = y
        return x[0]

    def _conv(self, k: int, unit: int) -> nn.Module:
        """Column k's convolution that ends at depth ``unit``."""
        return self.columns[k][unit // 2 ** (self.num_columns - 1 - k) - 1]

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int, columns: int, drop: DropPath | None = None) -> Cx:
        check_columns(columns)
        x = [cx.branch()] * columns
        parts = []
        for unit in range(1, column_depth(columns - 1) + 1):
            ends = ending_columns(columns, unit)
            outs = []
            for k in ends:
                first = unit == 2 ** (columns - 1 - k)
                outs.append(ConvNormAct.complexity(x[k].branch(), c_in if first else c_out, c_out))
            joined = mean_join_cx(outs[0].branch(), len(outs))
            parts += outs + [joined]
            for k in ends:
                x[k] = joined.branch()
        return cx.merge(parts, c_out, x[0].h, x[0].w)
