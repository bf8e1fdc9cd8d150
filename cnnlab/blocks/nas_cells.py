"""NAS cells built from genotypes, and the stack of cells that forms a NASNet-style network.

A cell (Zoph et al. 2018, §3) first projects its inputs to F filters: h_{i-1} by ReLU-1x1-BN,
h_{i-2} by ReLU-1x1-BN when its width differs, by a factorized reduction when it has twice the
resolution (the cell follows a reduction), or not at all in the first stem cell, whose two inputs
are the same tensor (TF-slim's ``prev_layer=None``). In a reduction cell every op that reads an
input state has stride 2. Each cell reads the outputs of the two cells before it, so the cells
form one layer of the network plan (:class:`CellStack`) whose input and output are one tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.blocks.genotype import CellGenotype, state_name
from cnnlab.blocks.nas_ops import ActConvBn, FactorizedReduction, batch_norm, build_op, op_cx
from cnnlab.errors import BadValue
from cnnlab.ops.cost import Cx, act_cx, conv2d_cx, norm_cx

PREV_MODES = ("raw", "1x1", "reduce")


@dataclass(frozen=True)
class CellSpec:
    """One cell of a network: genotype, input widths (h_{i-2}, h_{i-1}), F, and wiring.

    ``prev``: how h_{i-2} is prepared ("raw", "1x1", "reduce"; see the module docstring).
    ``prev_first``: h_{i-2}'s projection is registered before h_{i-1}'s (the parameter order of
    ported weights). ``keep_prev``: the next cell's h_{i-2} is this cell's h_{i-2}, not its h_{i-1}
    (TF-slim's ``skip_reduction_layer_input`` of NASNet-A large).
    """

    name: str
    cell: CellGenotype
    c_in: tuple[int, int]
    c: int
    reduction: bool = False
    prev: str = "1x1"
    prev_first: bool = True
    keep_prev: bool = False

    def state_widths(self) -> list[int]:
        """Channels of every state: the prepared inputs, then the nodes."""
        c0 = {"raw": self.c_in[0], "reduce": 2 * (self.c // 2)}.get(self.prev, self.c)
        return [c0, self.c] + [2 * self.c if n.combiner == "concat" else self.c
                               for n in self.cell.nodes]  # fmt: skip

    @property
    def c_out(self) -> int:
        widths = self.state_widths()
        return sum(widths[i] for i in self.cell.outputs)


def _prev_projection(spec: CellSpec) -> nn.Module | None:
    c0 = spec.c_in[0]
    if spec.prev == "reduce":
        return FactorizedReduction(c0, spec.c)
    if spec.prev == "1x1" and c0 != spec.c:
        return ActConvBn(c0, spec.c)
    return None


class NasCell(nn.Module):
    """A NAS cell from its genotype (Zoph et al. 2018, Fig. 4): project the two inputs, each node
    op(state) + op(state), concatenate the output states."""

    def __init__(self, spec: CellSpec) -> None:
        super().__init__()
        _check_spec(spec)
        self.spec = spec
        pre = [
            ("conv_prev_1x1", _prev_projection(spec)),
            ("conv_1x1", ActConvBn(spec.c_in[1], spec.c)),
        ]
        for name, module in pre if spec.prev_first else reversed(pre):
            self.add_module(name, module)
        widths = spec.state_widths()
        self.ops = nn.ModuleList()
        for node in spec.cell.nodes:
            for i, op in (node.a, node.b):
                self.ops.append(build_op(op, widths[i], spec.c, _stride(spec, i)))

    def forward(self, h_prev: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        s0 = h_prev if self.conv_prev_1x1 is None else self.conv_prev_1x1(h_prev)
        states = [s0, self.conv_1x1(h)]
        for j, node in enumerate(self.spec.cell.nodes):
            a = self.ops[2 * j](states[node.a[0]])
            b = self.ops[2 * j + 1](states[node.b[0]])
            states.append(a + b if node.combiner == "add" else torch.cat([a, b], 1))
        return torch.cat([states[i] for i in self.spec.cell.outputs], 1)

    @staticmethod
    def complexity(cx_prev: Cx, cx: Cx, spec: CellSpec) -> Cx:
        """The output of the cell with the cost of the cell alone (inputs' costs not included)."""
        _check_spec(spec)
        s0 = cx_prev.branch()
        if spec.prev == "reduce":
            s0 = FactorizedReduction.complexity(s0, spec.c_in[0], spec.c)
        elif spec.prev == "1x1" and spec.c_in[0] != spec.c:
            s0 = ActConvBn.complexity(s0, spec.c_in[0], spec.c)
        s1 = ActConvBn.complexity(cx.branch(), spec.c_in[1], spec.c)
        total = _cost(_cost(Cx(0, 0, 0), s0), s1)
        states = [s0.branch(), s1.branch()]
        widths = spec.state_widths()
        for j, node in enumerate(spec.cell.nodes):
            outs = [
                op_cx(states[i].branch(), op, widths[i], spec.c, _stride(spec, i))
                for i, op in (node.a, node.b)
            ]
            total = _cost(_cost(total, outs[0]), outs[1])
            _check_same_shape(spec, f"node{j}", outs)
            a = outs[0]
            if node.combiner == "add":  # reads a and b, writes the sum
                total, state = total.add(memory_access=3 * a.numel), Cx(a.c, a.h, a.w)
            else:  # reads a and b, writes both side by side
                total, state = total.add(memory_access=4 * a.numel), Cx(2 * a.c, a.h, a.w)
            states.append(state)
        outs = [states[i] for i in spec.cell.outputs]
        _check_same_shape(spec, "the output concat", outs, channels=False)
        c, h, w = sum(s.c for s in outs), outs[0].h, outs[0].w
        return total.add(c=c, h=h, w=w, memory_access=2 * c * h * w)


def _stride(spec: CellSpec, state: int) -> int:
    """2 for an op of a reduction cell that reads an input state, else 1 (TF-slim)."""
    return 2 if spec.reduction and state < 2 else 1


def _cost(total: Cx, r: Cx) -> Cx:
    """``total`` plus the cost carried by ``r``."""
    return total.merge((r,), total.c, total.h, total.w)


def _check_same_shape(spec: CellSpec, what: str, outs: list[Cx], channels: bool = True) -> None:
    shapes = {(o.c, o.h, o.w) if channels else (o.h, o.w) for o in outs}
    if len(shapes) > 1:
        raise BadValue(
            f"cell {spec.name}: {what} combines states of different shapes "
            f"{sorted(shapes)}; a reduction cell may concatenate nodes only, not its inputs"
        )


def _check_spec(spec: CellSpec) -> None:
    if spec.prev not in PREV_MODES:
        raise BadValue(
            f"cell {spec.name}: unknown prev={spec.prev!r}; choose one of {', '.join(PREV_MODES)}"
        )
    if min(spec.c_in) < 1 or spec.c < 1:
        raise BadValue(f"cell {spec.name}: widths must be >= 1, got c_in={spec.c_in}, c={spec.c}")
    if spec.reduction:
        inputs = [i for i in spec.cell.outputs if i < 2]
        if inputs:
            raise BadValue(
                f"cell {spec.name}: a reduction cell cannot concatenate its input "
                f"{', '.join(state_name(i) for i in inputs)} (a different resolution); "
                "list nodes only"
            )


class CellStack(nn.Module):
    """The cells of a NAS network in order, each reading the outputs of the two cells before it
    (the first cell reads its input twice), then ReLU (TF-slim's final activation)."""

    def __init__(self, cells: tuple[CellSpec, ...]) -> None:
        super().__init__()
        _check_chain(cells)
        self.keep_prev = [spec.keep_prev for spec in cells]
        for spec in cells:
            self.add_module(spec.name, NasCell(spec))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h_prev = h = x
        cells = [m for m in self.children() if isinstance(m, NasCell)]
        for keep, cell in zip(self.keep_prev, cells):
            h_prev, h = (h_prev if keep else h), cell(h_prev, h)
        return self.act(h)

    @staticmethod
    def complexity(cx: Cx, cells: tuple[CellSpec, ...]) -> Cx:
        _check_chain(cells)
        if cx.c != cells[0].c_in[1]:
            raise BadValue(f"CellStack: input has {cx.c} channels, the first cell takes "
                             f"{cells[0].c_in[1]}")  # fmt: skip
        total = Cx(0, 0, 0)
        h_prev = h = cx.branch()
        for spec in cells:
            out = NasCell.complexity(h_prev, h, spec)
            total = _cost(total, out)
            h_prev, h = (h_prev if spec.keep_prev else h), out.branch()
        out = act_cx(h, "relu")
        return cx.merge([total, out], out.c, out.h, out.w)


def _check_chain(cells: Sequence[CellSpec]) -> None:
    """Each cell's input widths must be the widths of the two states it reads."""
    if not cells:
        raise BadValue("CellStack needs at least one cell")
    c_prev = c = cells[0].c_in[1]
    for spec in cells:
        if spec.c_in != (c_prev, c):
            raise BadValue(
                f"cell {spec.name}: c_in={spec.c_in} but it reads states of {c_prev} and {c} "
                "channels"
            )
        c_prev, c = (c_prev if spec.keep_prev else c), spec.c_out


def chain_cells(
    c_stem: int,
    rows: Sequence[tuple[str, CellGenotype, int, bool, bool]],
    *,
    reduce_prev_first: bool = True,
) -> tuple[CellSpec, ...]:
    """CellSpecs for rows of (name, genotype, F, reduction, keep_prev) after a c_stem-wide stem.

    Tracks each state's width and resolution level, so that h_{i-2} is "raw" for the first cell
    and "reduce" where a reduction lies between h_{i-2} and h_{i-1}. ``reduce_prev_first``: the
    factorized reduction is registered before h_{i-1}'s projection (PNASNet) or after it (NASNet).
    """
    specs = []
    (c_prev, lvl_prev), (c, lvl) = (c_stem, 0), (c_stem, 0)
    for k, (name, cell, f, reduction, keep_prev) in enumerate(rows):
        prev = "raw" if k == 0 else ("reduce" if lvl_prev < lvl else "1x1")
        spec = CellSpec(name, cell, (c_prev, c), f, reduction, prev,
                        prev_first=prev != "reduce" or reduce_prev_first, keep_prev=keep_prev)  # fmt: skip
        specs.append(spec)
        out = (spec.c_out, lvl + int(reduction))
        (c_prev, lvl_prev), (c, lvl) = ((c_prev, lvl_prev) if keep_prev else (c, lvl)), out
    return tuple(specs)


class StemConv(nn.Module):
    """TF-slim's ImageNet stem conv: 3x3 stride 2 'VALID' conv, BN (no activation)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 2, 0, bias=False)
        self.bn = batch_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))

    @staticmethod
    def complexity(cx: Cx, c_in: int, c_out: int) -> Cx:
        return norm_cx(conv2d_cx(cx, c_out, 3, stride=2, padding=0))
